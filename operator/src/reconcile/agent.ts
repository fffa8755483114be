/**
 * AgentReady (DESIGN §5.5).
 *
 *   dedicated  Deployment, Service and NetworkPolicy in the tenant namespace, built from the
 *              cdk8s `TenantAgent` construct and applied with server-side apply plus the
 *              spec-hash skip (see namespace.ts), together with the Secrets the agent needs
 *              there (pods can only read their own namespace's Secrets):
 *                - `simptu-agent-runtime`: the agent's backends, composed from the platform's
 *                  own Secrets — the services' database URL, the Redis URL, the KEK (from the
 *                  very Secret the operator's KMS uses, so agent and operator cannot disagree
 *                  on it) — and the Kafka brokers from the operator configuration; plus the
 *                  SMTP URL of e-mail replies when the platform has one (`simptu-smtp`/`url`,
 *                  optional: without it the agent runs and sends no e-mail, and the
 *                  NetworkPolicy opens no SMTP egress);
 *                - mirrors of the credentials Secrets the spec references (model, Twilio,
 *                  Meta), mounted where the agent's `secrets.dir` looks them up by the name the
 *                  spec uses.
 *              A digest of those Secrets is a pod template annotation, so a rotated credential
 *              rolls the pods. Source Secrets are read directly (no Secret informer: that would
 *              need list/watch on every Secret of the cluster), so a rotation reaches the
 *              tenant namespace at the next reconcile (at the latest the resync period).
 *              Replicas come from the spec, 0 while the tenant is suspended.
 *   shared     the pooled agent serves the tenant from the registry; any dedicated objects left
 *              over are deleted (CEL forbids dedicated→shared, but the reconciler does not rely
 *              on it).
 *
 * Readiness: `agentReadiness: 'rollout'` (default) reports progressing until the Deployment has
 * rolled out (`observedGeneration` caught up, `updatedReplicas` and `availableReplicas` ≥ the
 * desired count). `'applied'` reports ready as soon as the objects are applied: the test
 * environment (and `make dev`) has a kube-apiserver and kube-controller-manager without the
 * deployment controller, scheduler or kubelet, so pods never run there.
 */
import type { TenantAgentBackendEgress, TenantAgentCredentials, TenantAgentResources } from '@simptu/cdk8s';
import { PLATFORM_NAMESPACE, TENANT_LABEL, tenantLabels, tenantNamespace } from '@simptu/common';
import type { Tenant } from '../api/types.ts';
import { kekFromSecretData } from '../kek.ts';
import type { BackendReconciler, StepResult, WriteCounter } from './types.ts';
import {
  applyObjects,
  describeRef,
  errorStep,
  refOf,
  stableHash,
  withSpecHash,
  type KubeObject,
  type ObjectClient,
  type ObjectRef,
} from './namespace.ts';

// The names a dedicated agent's objects have, as the cdk8s `TenantAgent` construct gives them
// (agent.test.ts checks they are @simptu/cdk8s's). Kept here so that an operator whose tenants
// all use the pooled agent never loads cdk8s and cdk8s-plus (jsii, ~13 MB of RSS): the construct
// is imported on the first dedicated reconcile (`desiredAgentObjects`).
export const AGENT_OBJECT_NAME = 'simptu-agent';
export const AGENT_CONFIGMAP_NAME = 'simptu-agent-config';
export const AGENT_RUNTIME_SECRET = 'simptu-agent-runtime';
export const AGENT_RUNTIME_KEYS = {
  databaseUrl: 'database-url',
  redisUrl: 'redis-url',
  kafkaBrokers: 'kafka-brokers',
  kekBase64: 'kek-base64',
  smtpUrl: 'smtp-url',
} as const;

export type AgentReadiness = 'rollout' | 'applied';

/** Tenant-namespace copies of the credentials Secrets, one per role. */
export const AGENT_CREDENTIALS_SECRETS = {
  model: 'simptu-agent-model-credentials',
  twilio: 'simptu-agent-twilio-credentials',
  meta: 'simptu-agent-meta-credentials',
} as const;
export type CredentialsRole = keyof typeof AGENT_CREDENTIALS_SECRETS;
/** The model credentials copy (kept for callers of earlier versions). */
export const AGENT_CREDENTIALS_SECRET = AGENT_CREDENTIALS_SECRETS.model;

export interface SecretKeyRef {
  name: string;
  key: string;
}

/** Where the runtime Secret's values come from (Secrets of the platform namespace). */
export interface AgentRuntimeSources {
  /** the services' NOINHERIT login role URL @default { name: 'simptu-database', key: 'app-url' } */
  databaseUrl?: SecretKeyRef;
  /** @default { name: 'simptu-redis', key: 'url' } */
  redisUrl?: SecretKeyRef;
  /** the KMS's KEK Secret (`kek` raw or `kek-base64`, as kek.ts reads it) @default 'simptu-kek' */
  kekSecret?: string;
  /** the SMTP URL of e-mail replies; optional (missing Secret or key: none) @default { name: 'simptu-smtp', key: 'url' } */
  smtpUrl?: SecretKeyRef;
  /** bootstrap servers as the agent pods reach them */
  kafkaBrokers: string[];
}

export const DEFAULT_RUNTIME_REFS = {
  databaseUrl: { name: 'simptu-database', key: 'app-url' },
  redisUrl: { name: 'simptu-redis', key: 'url' },
  kekSecret: 'simptu-kek',
  smtpUrl: { name: 'simptu-smtp', key: 'url' },
} as const;

export interface AgentOptions {
  /** @default 'simptu/agent:latest' */
  agentImage?: string;
  /** @default 'simptu-system' */
  platformNamespace?: string;
  /** container resources of dedicated agents @default the TenantAgent defaults */
  agentResources?: TenantAgentResources;
  /** egress of dedicated agents to backends outside the cluster @default none */
  agentEgress?: TenantAgentBackendEgress;
  /**
   * SMTP ports dedicated agents may reach on public addresses, opened only for a runtime Secret
   * with an SMTP URL; `[]` opens none. @default the TenantAgent default, [587, 465]
   */
  agentSmtpPorts?: readonly number[];
}

export interface AgentDeps extends AgentOptions {
  kube: ObjectClient;
  writes: WriteCounter;
  runtime: AgentRuntimeSources;
  /** @default 'rollout' — use 'applied' where no kubelet runs pods (test environment, make dev) */
  agentReadiness?: AgentReadiness;
  /** how soon to look again while rolling out @default 5000 */
  pollMs?: number;
}

/** What the Deployment gets from the Secrets the reconciler wrote beside it. */
export interface AgentSecretsInfo {
  credentials: TenantAgentCredentials[];
  /** digest of every Secret the pods read (`secretsChecksum`) */
  checksum?: string;
  /** the runtime Secret has an SMTP URL: open SMTP egress @default false */
  smtp?: boolean;
}

const BACKEND = 'agent';

/** Replicas the dedicated Deployment should have: the spec's, or 0 while suspended. */
export function desiredAgentReplicas(tenant: Tenant): number {
  return tenant.spec.suspended ? 0 : tenant.spec.agent.replicas;
}

/**
 * The dedicated agent's objects (Deployment, Service, NetworkPolicy), each with its spec hash.
 * Pure. The Secrets are not included: their content is read from the cluster (see
 * `runtimeSecret`, `mirroredSecret`); `secrets` says what to mount and the digest.
 */
export async function desiredAgentObjects(
  tenant: Tenant,
  opts: AgentOptions = {},
  secrets: AgentSecretsInfo = { credentials: [] },
): Promise<KubeObject[]> {
  const name = tenant.metadata.name;
  const { synthTenantAgent } = await import('@simptu/cdk8s');
  const objs = synthTenantAgent({
    tenant: name,
    namespace: tenantNamespace(name),
    replicas: desiredAgentReplicas(tenant),
    model: { provider: tenant.spec.agent.model.provider },
    runtimeSecret: AGENT_RUNTIME_SECRET,
    credentials: secrets.credentials,
    ...(secrets.checksum ? { secretsChecksum: secrets.checksum } : {}),
    ...(opts.agentImage ? { image: opts.agentImage } : {}),
    ...(opts.agentResources ? { resources: opts.agentResources } : {}),
    ...(opts.agentEgress && opts.agentEgress.cidrs.length > 0 ? { backendEgress: opts.agentEgress } : {}),
    // No SMTP URL, no e-mail sent: no reason to let the pods reach mail servers.
    ...(!secrets.smtp
      ? { smtpEgressPorts: [] }
      : opts.agentSmtpPorts
        ? { smtpEgressPorts: opts.agentSmtpPorts }
        : {}),
    platformNamespace: opts.platformNamespace ?? PLATFORM_NAMESPACE,
  });
  return objs.map((o) => withSpecHash(o as unknown as KubeObject));
}

function secretObject(tenant: Tenant, name: string, data: Record<string, string>): KubeObject {
  const t = tenant.metadata.name;
  return withSpecHash({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace: tenantNamespace(t),
      labels: { ...tenantLabels(t, 'agent'), 'app.kubernetes.io/name': 'simptu-agent' },
    },
    type: 'Opaque',
    data,
  });
}

/**
 * The tenant-namespace copy of a credentials Secret. Pure: takes the source Secret. Only `data`
 * is copied (stringData is write-only and never read back).
 */
export function mirroredSecret(
  tenant: Tenant,
  source: KubeObject,
  name: string = AGENT_CREDENTIALS_SECRET,
): KubeObject {
  return secretObject(tenant, name, { ...((source.data ?? {}) as Record<string, string>) });
}

export interface RuntimeValues {
  /** `data` values as the API returns them (base64) */
  databaseUrlB64: string;
  redisUrlB64: string;
  kafkaBrokers: readonly string[];
  kek: Buffer;
  /** base64 `data` of the optional SMTP URL; absent: no `smtp-url` key */
  smtpUrlB64?: string;
}

/** The runtime Secret (keys `AGENT_RUNTIME_KEYS`). Pure. */
export function runtimeSecret(tenant: Tenant, v: RuntimeValues): KubeObject {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return secretObject(tenant, AGENT_RUNTIME_SECRET, {
    [AGENT_RUNTIME_KEYS.databaseUrl]: v.databaseUrlB64,
    [AGENT_RUNTIME_KEYS.redisUrl]: v.redisUrlB64,
    [AGENT_RUNTIME_KEYS.kafkaBrokers]: b64(v.kafkaBrokers.join(',')),
    [AGENT_RUNTIME_KEYS.kekBase64]: b64(v.kek.toString('base64')),
    ...(v.smtpUrlB64 ? { [AGENT_RUNTIME_KEYS.smtpUrl]: v.smtpUrlB64 } : {}),
  });
}

/** Digest of the Secrets the pods read (name and data only). Pure. */
export function secretsChecksum(secrets: readonly KubeObject[]): string {
  return stableHash(
    [...secrets]
      .map((s) => ({ name: s.metadata.name, data: s.data ?? {} }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  );
}

export interface CredentialsSource {
  /** the roles that reference this Secret (the first names the copy) */
  roles: CredentialsRole[];
  source: ObjectRef;
  /** the copy in the tenant namespace */
  mirror: string;
  /** the name the spec uses: the directory the agent looks in */
  mountName: string;
}

/**
 * The credentials Secrets a tenant references, one entry per distinct source. Pure. Two refs
 * with one name in different namespaces cannot both be mounted under that name: a conflict.
 */
export function credentialsSources(
  tenant: Tenant,
  platformNamespace: string = PLATFORM_NAMESPACE,
): { sources: CredentialsSource[] } | { conflict: string } {
  const refs: Array<[CredentialsRole, { name: string; namespace?: string } | undefined]> = [
    ['model', tenant.spec.agent.model.secretRef],
    ['twilio', tenant.spec.integrations?.twilio?.credentialsSecretRef],
    ['meta', tenant.spec.integrations?.meta?.credentialsSecretRef],
  ];
  const sources: CredentialsSource[] = [];
  for (const [role, ref] of refs) {
    if (!ref) continue;
    const namespace = ref.namespace ?? platformNamespace;
    const same = sources.find((s) => s.mountName === ref.name);
    if (same && same.source.namespace !== namespace)
      return {
        conflict: `Secret name ${JSON.stringify(ref.name)} is referenced in namespaces ${same.source.namespace} (${same.roles.join(', ')}) and ${namespace} (${role}); the agent looks credentials up by name only`,
      };
    if (same) {
      same.roles.push(role);
      continue;
    }
    sources.push({
      roles: [role],
      source: { apiVersion: 'v1', kind: 'Secret', name: ref.name, namespace },
      mirror: AGENT_CREDENTIALS_SECRETS[role],
      mountName: ref.name,
    });
  }
  return { sources };
}

/** Every object a dedicated agent may leave in the tenant namespace. */
export function dedicatedAgentRefs(tenantName: string): ObjectRef[] {
  const namespace = tenantNamespace(tenantName);
  return [
    { apiVersion: 'apps/v1', kind: 'Deployment', name: AGENT_OBJECT_NAME, namespace },
    { apiVersion: 'v1', kind: 'Service', name: AGENT_OBJECT_NAME, namespace },
    { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: AGENT_OBJECT_NAME, namespace },
    // created by earlier versions only
    { apiVersion: 'v1', kind: 'ConfigMap', name: AGENT_CONFIGMAP_NAME, namespace },
    { apiVersion: 'v1', kind: 'Secret', name: AGENT_RUNTIME_SECRET, namespace },
    ...Object.values(AGENT_CREDENTIALS_SECRETS).map((name) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      name,
      namespace,
    })),
  ];
}

interface DeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  availableReplicas?: number;
}

/** Rolled out the way `kubectl rollout status` judges it. Pure. */
export function rolloutComplete(deployment: KubeObject, desired: number): { done: boolean; message: string } {
  const generation = Number(deployment.metadata.generation ?? 0);
  const s = (deployment.status ?? {}) as DeploymentStatus;
  if ((s.observedGeneration ?? 0) < generation)
    return { done: false, message: 'waiting for the deployment controller to observe the new spec' };
  const updated = s.updatedReplicas ?? 0;
  const available = s.availableReplicas ?? 0;
  if (updated < desired) return { done: false, message: `${updated} of ${desired} replicas updated` };
  if (available < desired) return { done: false, message: `${available} of ${desired} replicas available` };
  if ((s.replicas ?? 0) > updated)
    return { done: false, message: `${(s.replicas ?? 0) - updated} old replicas pending termination` };
  return { done: true, message: `${available} of ${desired} replicas available` };
}

/**
 * AgentReady reasons after which no dedicated object can have been written: the agent step
 * never ran (`Pending`, `WaitingForDependencies`) or ran for a shared agent (`PooledAgent`).
 */
const NEVER_DEDICATED_REASONS: ReadonlySet<string | undefined> = new Set([
  undefined,
  'Pending',
  'WaitingForDependencies',
  'PooledAgent',
]);

/**
 * The dedicated objects to look for when the agent is shared (or the tenant is being deleted).
 *
 * The Secrets are read from the API server (there is no Secret informer), the other objects
 * from the informer caches. `deleteLeftovers` deletes the Secrets before the other objects, so
 * while a Secret of ours may remain, one of the cached objects remains too — unless the objects
 * were never all written. Hence the Secrets are skipped, saving their GETs on every reconcile of
 * a shared tenant, when none of the cached objects exists AND the tenant's status records no
 * agent outcome other than shared (a dedicated pass that applied Secrets and then failed, say,
 * records a dedicated or blocked reason). What remains unseen is a dedicated pass whose outcome
 * never reached the status, followed by a switch to shared that the CRD forbids; the Secrets
 * then go with the namespace when the tenant is deleted.
 */
async function leftoverRefs(tenant: Tenant, deps: Pick<AgentDeps, 'kube'>): Promise<ObjectRef[]> {
  const all = dedicatedAgentRefs(tenant.metadata.name);
  const cached = all.filter((r) => r.kind !== 'Secret');
  const reason = tenant.status?.conditions?.find((c) => c.type === 'AgentReady')?.reason;
  if (!NEVER_DEDICATED_REASONS.has(reason)) return all;
  for (const ref of cached) {
    const live = await deps.kube.get(ref);
    if (live?.metadata.labels?.[TENANT_LABEL] === tenant.metadata.name) return all;
  }
  return cached;
}

/**
 * Deletes what remains of a dedicated agent among `refs`: only what we created (our tenant
 * label), never an admin's object that happens to share a name. Secrets first, the Deployment
 * last (see `leftoverRefs`).
 */
async function deleteLeftovers(
  tenant: Tenant,
  deps: Pick<AgentDeps, 'kube' | 'writes'>,
  refs: readonly ObjectRef[] = dedicatedAgentRefs(tenant.metadata.name),
): Promise<string[]> {
  const deleted: string[] = [];
  const rank = (r: ObjectRef) => DELETE_ORDER.indexOf(r.kind);
  for (const ref of [...refs].sort((a, b) => rank(a) - rank(b))) {
    const live = await deps.kube.get(ref);
    if (
      !live ||
      live.metadata.deletionTimestamp ||
      live.metadata.labels?.[TENANT_LABEL] !== tenant.metadata.name
    )
      continue;
    if (await deps.kube.delete(ref)) {
      deps.writes.inc(BACKEND);
      deleted.push(describeRef(ref));
    }
  }
  return deleted;
}

/** Deletion order of a dedicated agent's objects (Array.sort is stable: equal kinds keep their order). */
const DELETE_ORDER = ['Secret', 'ConfigMap', 'NetworkPolicy', 'Service', 'Deployment'];

type Read<T> = { ok: true; value: T } | { ok: false; step: StepResult };

const blocked = (reason: string, message: string): { ok: false; step: StepResult } => ({
  ok: false,
  step: { kind: 'blocked', reason, message, requeueAfterMs: 60_000 },
});

/** A non-empty value of a Secret key, as base64 `data`. */
async function readSecretValue(
  kube: ObjectClient,
  ref: ObjectRef,
  key: string,
  what: string,
): Promise<Read<string>> {
  const secret = await kube.get(ref);
  if (!secret)
    return blocked(
      'AgentRuntimeSecretNotFound',
      `${describeRef(ref)} (${what} of dedicated agents) does not exist`,
    );
  const value = ((secret.data ?? {}) as Record<string, string>)[key];
  if (!value)
    return blocked(
      'AgentRuntimeSecretInvalid',
      `${describeRef(ref)} has no key '${key}' (${what} of dedicated agents)`,
    );
  return { ok: true, value };
}

/** The runtime Secret from the platform's Secrets; blocked naming the first thing missing. */
async function readRuntime(tenant: Tenant, deps: AgentDeps): Promise<Read<KubeObject>> {
  const namespace = deps.platformNamespace ?? PLATFORM_NAMESPACE;
  const ref = (name: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Secret', name, namespace });
  const dbRef = deps.runtime.databaseUrl ?? DEFAULT_RUNTIME_REFS.databaseUrl;
  const redisRef = deps.runtime.redisUrl ?? DEFAULT_RUNTIME_REFS.redisUrl;
  const db = await readSecretValue(deps.kube, ref(dbRef.name), dbRef.key, 'the database URL');
  if (!db.ok) return db;
  const redis = await readSecretValue(deps.kube, ref(redisRef.name), redisRef.key, 'the Redis URL');
  if (!redis.ok) return redis;
  const kekRef = ref(deps.runtime.kekSecret ?? DEFAULT_RUNTIME_REFS.kekSecret);
  const kekSecret = await deps.kube.get(kekRef);
  if (!kekSecret)
    return blocked(
      'AgentRuntimeSecretNotFound',
      `${describeRef(kekRef)} (the KEK of dedicated agents) does not exist`,
    );
  const kek = kekFromSecretData(kekSecret.data as Record<string, string> | undefined);
  if (!kek)
    return blocked(
      'AgentRuntimeSecretInvalid',
      `${describeRef(kekRef)} holds no 256-bit key under 'kek' or 'kek-base64'`,
    );
  if (deps.runtime.kafkaBrokers.length === 0)
    return blocked('AgentRuntimeSecretInvalid', 'no Kafka brokers configured for dedicated agents');
  // Optional: a platform without outgoing e-mail has no such Secret; not an error.
  const smtpRef = deps.runtime.smtpUrl ?? DEFAULT_RUNTIME_REFS.smtpUrl;
  const smtp = await deps.kube.get(ref(smtpRef.name));
  const smtpUrlB64 = ((smtp?.data ?? {}) as Record<string, string>)[smtpRef.key];
  return {
    ok: true,
    value: runtimeSecret(tenant, {
      databaseUrlB64: db.value,
      redisUrlB64: redis.value,
      kafkaBrokers: deps.runtime.kafkaBrokers,
      kek,
      ...(smtpUrlB64 ? { smtpUrlB64 } : {}),
    }),
  };
}

/** Copies of the credentials Secrets; blocked when one is missing or two collide. */
async function readCredentials(
  tenant: Tenant,
  deps: AgentDeps,
): Promise<Read<{ secrets: KubeObject[]; mounts: TenantAgentCredentials[] }>> {
  const found = credentialsSources(tenant, deps.platformNamespace ?? PLATFORM_NAMESPACE);
  if ('conflict' in found) return blocked('CredentialsSecretConflict', found.conflict);
  const secrets: KubeObject[] = [];
  const mounts: TenantAgentCredentials[] = [];
  for (const s of found.sources) {
    const source = await deps.kube.get(s.source);
    if (!source) {
      const field = s.roles.map((r) =>
        r === 'model' ? 'spec.agent.model.secretRef' : `spec.integrations.${r}.credentialsSecretRef`,
      );
      return blocked(
        s.roles.includes('model') ? 'ModelSecretNotFound' : 'ChannelSecretNotFound',
        `${describeRef(s.source)} (${field.join(', ')}) does not exist`,
      );
    }
    secrets.push(mirroredSecret(tenant, source, s.mirror));
    mounts.push({ secretName: s.mirror, mountName: s.mountName });
  }
  return { ok: true, value: { secrets, mounts } };
}

async function reconcileAgent(tenant: Tenant, deps: AgentDeps): Promise<StepResult> {
  try {
    if (tenant.spec.isolation.agent === 'shared') {
      const deleted = await deleteLeftovers(tenant, deps, await leftoverRefs(tenant, deps));
      return {
        kind: 'ready',
        reason: 'PooledAgent',
        message: `served by the pooled agent${deleted.length > 0 ? `; removed ${deleted.join(', ')}` : ''}`,
      };
    }

    const runtime = await readRuntime(tenant, deps);
    if (!runtime.ok) return runtime.step;
    const credentials = await readCredentials(tenant, deps);
    if (!credentials.ok) return credentials.step;
    const secrets = [runtime.value, ...credentials.value.secrets];
    // Secrets first: the pods of a new Deployment find them in place.
    const objs: KubeObject[] = [
      ...secrets,
      ...(await desiredAgentObjects(tenant, deps, {
        credentials: credentials.value.mounts,
        checksum: secretsChecksum(secrets),
        smtp: AGENT_RUNTIME_KEYS.smtpUrl in ((runtime.value.data ?? {}) as Record<string, string>),
      })),
    ];

    const out = await applyObjects(objs, deps, BACKEND);
    // What the spec no longer asks for (a removed secretRef, the ConfigMap of earlier
    // versions), after the Deployment that stops mounting it.
    const wanted = new Set(objs.map((o) => `${o.kind}/${o.metadata.name}`));
    await deleteLeftovers(
      tenant,
      deps,
      dedicatedAgentRefs(tenant.metadata.name).filter((r) => !wanted.has(`${r.kind}/${r.name}`)),
    );
    if (out.terminating.length > 0) {
      return {
        kind: 'progressing',
        reason: 'AgentObjectsTerminating',
        message: `waiting for ${out.terminating.join(', ')} to go`,
        requeueAfterMs: deps.pollMs ?? 5_000,
      };
    }
    const desired = desiredAgentReplicas(tenant);
    if ((deps.agentReadiness ?? 'rollout') === 'applied') {
      return {
        kind: 'ready',
        reason: 'AgentApplied',
        message: `dedicated agent applied with ${desired} replicas (readiness: applied)`,
      };
    }
    const deployment = objs.find((o) => o.kind === 'Deployment')!;
    // Re-read after a write: the apply response is enough too, but the cache path keeps one code path.
    const live = await deps.kube.get(refOf(deployment));
    if (!live)
      return {
        kind: 'progressing',
        reason: 'AgentRollingOut',
        message: 'deployment not visible yet',
        requeueAfterMs: deps.pollMs ?? 5_000,
      };
    const rollout = rolloutComplete(live, desired);
    if (!rollout.done)
      return {
        kind: 'progressing',
        reason: 'AgentRollingOut',
        message: rollout.message,
        requeueAfterMs: deps.pollMs ?? 5_000,
      };
    return {
      kind: 'ready',
      reason: tenant.spec.suspended ? 'AgentScaledDown' : 'AgentAvailable',
      message: tenant.spec.suspended ? 'dedicated agent scaled to 0 (tenant suspended)' : rollout.message,
    };
  } catch (err) {
    return errorStep('AgentApplyFailed', err);
  }
}

async function finalizeAgent(tenant: Tenant, deps: AgentDeps): Promise<StepResult> {
  try {
    const deleted = await deleteLeftovers(tenant, deps, await leftoverRefs(tenant, deps));
    // No need to wait: the namespace finalizer waits for the namespace, which holds all of them.
    return {
      kind: 'ready',
      reason: 'AgentDeleted',
      message: deleted.length > 0 ? `deleted ${deleted.join(', ')}` : 'no dedicated agent objects',
    };
  } catch (err) {
    return errorStep('AgentDeleteFailed', err);
  }
}

export const agentReconciler: BackendReconciler<AgentDeps> = {
  name: BACKEND,
  condition: 'AgentReady',
  reconcile: reconcileAgent,
  finalize: finalizeAgent,
};
