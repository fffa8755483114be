/**
 * `TenantAgent`: the dedicated agent of one tenant (DESIGN §5.5, §8) — Deployment, Service,
 * ConfigMap and NetworkPolicy in the tenant namespace. The operator builds a tenant's agent from
 * this very construct (`synthTenantAgent`), so what the Helm chart documents and what the
 * operator applies can never drift apart.
 *
 * Raw `k8s.Kube*` objects (re-exported by cdk8s-plus-27) rather than cdk8s-plus' high-level
 * `Deployment`: the operator diffs and hashes the synthesized objects, so every field must be
 * one we chose, not a default a library version adds.
 */
import { createHash } from 'node:crypto';
import { App, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import {
  PLATFORM_NAMESPACE,
  TENANT_LABEL,
  isValidTenantName,
  tenantLabels,
  tenantNamespace,
} from '@simptu/common';

export const AGENT_APP_NAME = 'simptu-agent';
export const AGENT_DEFAULT_IMAGE = 'simptu/agent:latest';
/** Name of the Deployment, Service and NetworkPolicy in the tenant namespace. */
export const AGENT_OBJECT_NAME = 'simptu-agent';
export const AGENT_CONFIGMAP_NAME = 'simptu-agent-config';
/** Where the ConfigMap is mounted; the agent reads `instructions.md` from here. */
export const AGENT_CONFIG_DIR = '/etc/simptu/agent';
export const AGENT_MAX_REPLICAS = 50;

export type TenantAgentModelProvider = 'builtin' | 'bedrock' | 'openai' | 'anthropic';

export interface TenantAgentModel {
  readonly provider: TenantAgentModelProvider;
  /** Model name/id passed to the provider. @default the agent's default for the provider */
  readonly name?: string;
  /** Base URL of an OpenAI-compatible (or other) endpoint. @default the provider's public URL */
  readonly baseURL?: string;
  /**
   * Secret in the tenant namespace whose keys become environment variables of the agent
   * (e.g. `OPENAI_API_KEY`). Pods can only read Secrets of their own namespace, so this names a
   * Secret in `namespace`; the operator mirrors the admin's Secret there.
   * @default no credentials
   */
  readonly secretRef?: { readonly name: string };
}

export interface TenantAgentResources {
  /** @default { cpu: '100m', memory: '256Mi' } */
  readonly requests?: { readonly cpu?: string; readonly memory?: string };
  /** @default { cpu: '1', memory: '1Gi' } */
  readonly limits?: { readonly cpu?: string; readonly memory?: string };
}

export interface TenantAgentProps {
  /** Tenant name (DESIGN §3: DNS label, 3–40 chars). */
  readonly tenant: string;
  /** Namespace the objects go to. @default `tenant-<tenant>` */
  readonly namespace?: string;
  /** Container image. @default 'simptu/agent:latest' */
  readonly image?: string;
  /** @default 'IfNotPresent' */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Number of pods; 0 is allowed (a suspended tenant). @default 1 */
  readonly replicas?: number;
  /** Model provider configuration. @default { provider: 'builtin' } */
  readonly model?: TenantAgentModel;
  /** Persona / house rules, written to the ConfigMap as `instructions.md`. @default '' */
  readonly instructions?: string;
  /** Container resources; each missing value takes its default. @default see TenantAgentResources */
  readonly resources?: TenantAgentResources;
  /** Namespace of the platform (Kafka, Postgres, the services): the only peer allowed in and out. @default 'simptu-system' */
  readonly platformNamespace?: string;
  /** HTTP port for health, readiness and metrics. @default 8080 */
  readonly port?: number;
  /**
   * Allow HTTPS egress to public addresses (not RFC 1918) for hosted model providers.
   * @default true unless the provider is 'builtin'
   */
  readonly allowModelEgress?: boolean;
}

const DEFAULT_REQUESTS = { cpu: '100m', memory: '256Mi' };
const DEFAULT_LIMITS = { cpu: '1', memory: '1Gi' };
// Kubernetes quantity grammar (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
const QUANTITY_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PROVIDERS: readonly string[] = ['builtin', 'bedrock', 'openai', 'anthropic'];

export class TenantAgent extends Construct {
  readonly deployment: k8s.KubeDeployment;
  readonly service: k8s.KubeService;
  readonly configMap: k8s.KubeConfigMap;
  readonly networkPolicy: k8s.KubeNetworkPolicy;
  /** The namespace every object went to. */
  readonly namespace: string;
  /** Labels that select the agent pods. */
  readonly selectorLabels: Record<string, string>;

  constructor(scope: Construct, id: string, props: TenantAgentProps) {
    super(scope, id);
    validate(props);

    const tenant = props.tenant;
    const namespace = props.namespace ?? tenantNamespace(tenant);
    const image = props.image ?? AGENT_DEFAULT_IMAGE;
    const replicas = props.replicas ?? 1;
    const model: TenantAgentModel = props.model ?? { provider: 'builtin' };
    const port = props.port ?? 8080;
    const platformNamespace = props.platformNamespace ?? PLATFORM_NAMESPACE;
    const allowModelEgress = props.allowModelEgress ?? model.provider !== 'builtin';
    const requests = { ...DEFAULT_REQUESTS, ...definedOnly(props.resources?.requests) };
    const limits = { ...DEFAULT_LIMITS, ...definedOnly(props.resources?.limits) };

    this.namespace = namespace;
    this.selectorLabels = { 'app.kubernetes.io/name': AGENT_APP_NAME, [TENANT_LABEL]: tenant };
    const labels = { ...tenantLabels(tenant, 'agent'), 'app.kubernetes.io/name': AGENT_APP_NAME };
    const meta = (name: string) => ({ name, namespace, labels });

    this.configMap = new k8s.KubeConfigMap(this, 'config', {
      metadata: meta(AGENT_CONFIGMAP_NAME),
      data: { 'instructions.md': props.instructions ?? '' },
    });

    const env: k8s.EnvVar[] = [
      { name: 'SIMPTU_AGENT_MODE', value: 'dedicated' },
      // the agent's own configuration names (services/agent/src/config.ts)
      { name: 'SIMPTU_AGENT_TENANT', value: tenant },
      { name: 'SIMPTU_MODEL_PROVIDER', value: model.provider },
      ...(model.name ? [{ name: 'SIMPTU_MODEL_NAME', value: model.name }] : []),
      ...(model.baseURL ? [{ name: 'SIMPTU_MODEL_BASE_URL', value: model.baseURL }] : []),
      { name: 'SIMPTU_INSTRUCTIONS_FILE', value: `${AGENT_CONFIG_DIR}/instructions.md` },
      { name: 'SIMPTU_AGENT_METRICS_PORT', value: String(port) },
      // The root filesystem is read-only; anything that needs scratch space uses /tmp.
      { name: 'TMPDIR', value: '/tmp' },
    ];
    const probe = (path: string): k8s.Probe => ({
      httpGet: { path, port: k8s.IntOrString.fromString('http') },
      periodSeconds: 10,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });

    this.deployment = new k8s.KubeDeployment(this, 'deployment', {
      metadata: meta(AGENT_OBJECT_NAME),
      spec: {
        replicas,
        selector: { matchLabels: this.selectorLabels },
        // Never run fewer pods than asked while rolling: a tenant has few replicas.
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: {
            maxUnavailable: k8s.IntOrString.fromNumber(0),
            maxSurge: k8s.IntOrString.fromNumber(1),
          },
        },
        template: {
          metadata: {
            labels,
            // A changed ConfigMap must roll the pods: the instructions are read at start.
            annotations: { 'simptu.io/instructions-sha256': sha256Hex(props.instructions ?? '') },
          },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            // Pod Security "restricted" (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 10001,
              runAsGroup: 10001,
              fsGroup: 10001,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'agent',
                image,
                imagePullPolicy: props.imagePullPolicy ?? 'IfNotPresent',
                ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
                env,
                ...(model.secretRef ? { envFrom: [{ secretRef: { name: model.secretRef.name } }] } : {}),
                resources: {
                  requests: quantities(requests),
                  limits: quantities(limits),
                },
                livenessProbe: probe('/healthz'),
                readinessProbe: probe('/readyz'),
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  runAsNonRoot: true,
                  privileged: false,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [
                  { name: 'config', mountPath: AGENT_CONFIG_DIR, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: AGENT_CONFIGMAP_NAME } },
              { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') } },
            ],
          },
        },
      },
    });

    this.service = new k8s.KubeService(this, 'service', {
      metadata: meta(AGENT_OBJECT_NAME),
      spec: {
        type: 'ClusterIP',
        selector: this.selectorLabels,
        ports: [{ name: 'http', port, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' }],
      },
    });

    const platformPeer: k8s.NetworkPolicyPeer = {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': platformNamespace } },
    };
    const egress: k8s.NetworkPolicyEgressRule[] = [
      { to: [platformPeer] },
      // DNS to whatever namespace runs it (kube-system on most clusters, not on all).
      {
        to: [{ namespaceSelector: {} }],
        ports: [
          { protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) },
          { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) },
        ],
      },
    ];
    if (allowModelEgress) {
      egress.push({
        to: [
          {
            ipBlock: {
              cidr: '0.0.0.0/0',
              except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'],
            },
          },
        ],
        ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(443) }],
      });
    }
    this.networkPolicy = new k8s.KubeNetworkPolicy(this, 'network-policy', {
      metadata: meta(AGENT_OBJECT_NAME),
      spec: {
        podSelector: { matchLabels: this.selectorLabels },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [
          { from: [platformPeer], ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) }] },
        ],
        egress,
      },
    });
  }
}

/**
 * Synthesizes a TenantAgent in memory (no files written) and returns the manifests, in the order
 * ConfigMap, Deployment, Service, NetworkPolicy. Used by the operator's agent reconciler.
 */
export function synthTenantAgent(props: TenantAgentProps): Array<Record<string, unknown>> {
  // `outdir` is only used by `app.synth()`, which we never call.
  const app = new App();
  const chart = new Chart(app, 'tenant-agent', { disableResourceNameHashes: true });
  new TenantAgent(chart, 'agent', props);
  return chart.toJson() as Array<Record<string, unknown>>;
}

function validate(props: TenantAgentProps): void {
  if (!isValidTenantName(props.tenant)) {
    throw new TypeError(
      `TenantAgent: tenant ${JSON.stringify(props.tenant)} is not a valid tenant name (DNS label, 3–40 chars)`,
    );
  }
  for (const [what, ns] of [
    ['namespace', props.namespace],
    ['platformNamespace', props.platformNamespace],
  ] as const) {
    if (ns !== undefined && (!DNS_LABEL_RE.test(ns) || ns.length > 63)) {
      throw new TypeError(`TenantAgent: ${what} ${JSON.stringify(ns)} is not a valid namespace name`);
    }
  }
  if (props.image !== undefined && (props.image.trim() === '' || /\s/.test(props.image))) {
    throw new TypeError(`TenantAgent: image ${JSON.stringify(props.image)} is not a valid image reference`);
  }
  const r = props.replicas;
  if (r !== undefined && (!Number.isInteger(r) || r < 0 || r > AGENT_MAX_REPLICAS)) {
    throw new RangeError(
      `TenantAgent: replicas must be an integer from 0 to ${AGENT_MAX_REPLICAS}, got ${r}`,
    );
  }
  const p = props.port;
  if (p !== undefined && (!Number.isInteger(p) || p < 1 || p > 65535)) {
    throw new RangeError(`TenantAgent: port must be an integer from 1 to 65535, got ${p}`);
  }
  if (props.model) {
    if (!PROVIDERS.includes(props.model.provider)) {
      throw new TypeError(
        `TenantAgent: model.provider must be one of ${PROVIDERS.join(', ')}, got ${JSON.stringify(props.model.provider)}`,
      );
    }
    if (props.model.baseURL !== undefined && !URL.canParse(props.model.baseURL)) {
      throw new TypeError(`TenantAgent: model.baseURL ${JSON.stringify(props.model.baseURL)} is not a URL`);
    }
    const s = props.model.secretRef;
    if (s && (!DNS_SUBDOMAIN_RE.test(s.name) || s.name.length > 253)) {
      throw new TypeError(
        `TenantAgent: model.secretRef.name ${JSON.stringify(s.name)} is not a valid Secret name`,
      );
    }
  }
  for (const kind of ['requests', 'limits'] as const) {
    for (const [res, q] of Object.entries(props.resources?.[kind] ?? {})) {
      if (q !== undefined && !QUANTITY_RE.test(q)) {
        throw new TypeError(
          `TenantAgent: resources.${kind}.${res} ${JSON.stringify(q)} is not a Kubernetes quantity`,
        );
      }
    }
  }
}

function definedOnly(o: Record<string, string | undefined> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(o ?? {}).filter((e): e is [string, string] => e[1] !== undefined));
}

function quantities(o: Record<string, string>): Record<string, k8s.Quantity> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, k8s.Quantity.fromString(v)]));
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
