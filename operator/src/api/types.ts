/**
 * The Tenant resource (DESIGN §4) as TypeScript types — the CONTRACT the reconcilers code against.
 * `schema.ts` holds the TypeBox schema that generates the CRD; it must describe exactly this shape
 * (a compile-time check there keeps the two equal). Fields marked "defaulted" are always present
 * on objects read from the API server, because the CRD schema defaults them.
 */
import type { AgentToolName, SideEffectToolName } from './tools.ts';

export type { AgentToolName, SideEffectToolName } from './tools.ts';

export const GROUP = 'simptu.io';
export const VERSION = 'v1alpha1';
export const KIND = 'Tenant';
export const PLURAL = 'tenants';
export const API_VERSION = `${GROUP}/${VERSION}`;

export type BusinessType = 'dental' | 'gym' | 'hotel';
export type IsolationMode = 'shared' | 'dedicated';
export type ModelProvider = 'builtin' | 'bedrock' | 'openai' | 'anthropic';
export type DeletionPolicy = 'Retain' | 'Delete';
export type TenantPhase = 'Pending' | 'Provisioning' | 'Ready' | 'Degraded' | 'Deleting' | 'Suspended';

export interface SecretRef {
  name: string;
  /** @default the platform namespace */
  namespace?: string;
}

/**
 * Which tools the agent may use (guard rails, DESIGN §7). Lists are sets (no duplicates); an
 * empty or absent `allow` means the business type's whole tool set.
 */
export interface AgentToolPolicy {
  /** only these tools; empty/absent = every tool of the business type */
  allow?: AgentToolName[];
  /** never these tools */
  deny?: AgentToolName[];
  /** tools that change data and stay allowed while the agent handles untrusted input (e-mail) */
  untrustedAllow?: SideEffectToolName[];
}

export interface TenantSpec {
  displayName: string;
  businessType: BusinessType;
  /** BCP 47, defaulted 'en-US' */
  locale: string;
  /** IANA zone, defaulted 'UTC' */
  timezone: string;
  /** defaulted {database: shared, agent: shared} */
  isolation: { database: IsolationMode; agent: IsolationMode };
  /** defaulted */
  agent: {
    replicas: number; // defaulted 1
    model: { provider: ModelProvider; name?: string; baseURL?: string; secretRef?: SecretRef }; // defaulted {provider: builtin}
    instructions?: string;
    tools?: AgentToolPolicy;
  };
  /** defaulted {partitions: 3, retentionHours: 168} */
  kafka: { partitions: number; retentionHours: number };
  /** defaulted {rotationDays: 90} */
  encryption: { rotationDays: number };
  frontend?: { origins?: string[]; redirectURIs?: string[] };
  integrations?: {
    twilio?: { phoneNumber: string; credentialsSecretRef: SecretRef };
    meta?: { pageId: string; whatsappPhoneNumberId?: string; credentialsSecretRef: SecretRef };
    email?: { ingestAddress: string };
  };
  /** defaulted Retain */
  deletionPolicy: DeletionPolicy;
  /** defaulted false */
  deletionProtection: boolean;
  /** defaulted false */
  suspended: boolean;
}

export interface TenantCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface TenantStatus {
  phase?: TenantPhase;
  observedGeneration?: number;
  conditions?: TenantCondition[];
  database?: { name: string; schema: string; schemaVersion: number };
  encryption?: { activeKeyVersion: number; rotatedAt: string };
  topics?: string[];
  endpoints?: { api?: string; websocket?: string; issuer?: string };
}

export interface ObjectMeta {
  name: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
}

export interface Tenant {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: TenantSpec;
  status?: TenantStatus;
}

/** Condition types, one per backend reconciler, rolled up into Ready (DESIGN §5). */
export const CONDITION_TYPES = [
  'NamespaceReady',
  'EncryptionKeyReady',
  'DatabaseReady',
  'TopicsReady',
  'AgentReady',
  'RegistryReady',
] as const;
export type BackendConditionType = (typeof CONDITION_TYPES)[number];
