/**
 * `TenantAgent`: the dedicated agent of one tenant (DESIGN §5.5, §8) — Deployment, Service and
 * NetworkPolicy in the tenant namespace. The operator builds a tenant's agent from this very
 * construct (`synthTenantAgent`), so what the docs describe and what the operator applies can
 * never drift apart.
 *
 * The container's environment is exactly what the agent's strict config loader accepts
 * (`services/agent/src/config.ts`, unknown `SIMPTU_AGENT_*` names are refused): mode
 * `dedicated`, the tenant, a consumer group of its own, the metrics/probe port, and the
 * backends from the runtime Secret (`AGENT_RUNTIME_KEYS`) the operator writes into the tenant
 * namespace — a pod can only read Secrets of its own namespace — plus, optionally, the SMTP URL
 * of e-mail replies from the same Secret (`smtp-url`, absent when the platform has none). The
 * NetworkPolicy allows SMTP submission (587, 465) to public addresses. Everything else about the tenant
 * (model provider and name, instructions, tools, channels) the agent reads from the registry at
 * run time, so it is not part of the Deployment. Credentials Secrets (model, Twilio, Meta) are
 * mounted at `/etc/simptu/secrets/<name the tenant spec uses>/<key>`, where the agent's
 * `secrets.dir` lookup (`services/agent/src/secrets.ts`) expects them.
 *
 * Raw `k8s.Kube*` objects (re-exported by cdk8s-plus-27) rather than cdk8s-plus' high-level
 * `Deployment`: the operator diffs and hashes the synthesized objects, so every field must be
 * one we chose, not a default a library version adds.
 */
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
// Where credentials Secrets are mounted (`SIMPTU_AGENT_SECRETS_DIR`): `<dir>/<name>/<key>`, as for the pool.
import { AGENT_SECRETS_DIR } from './pooled-agent.ts';

export const AGENT_APP_NAME = 'simptu-agent';
export const AGENT_DEFAULT_IMAGE = 'simptu/agent:latest';
/** Name of the Deployment, Service and NetworkPolicy in the tenant namespace. */
export const AGENT_OBJECT_NAME = 'simptu-agent';
/**
 * ConfigMap of earlier versions (instructions.md), which the agent never read: it takes the
 * instructions from the registry. No longer created; the operator deletes a leftover one.
 */
export const AGENT_CONFIGMAP_NAME = 'simptu-agent-config';
/** Secret in the tenant namespace with the agent's backends (keys: `AGENT_RUNTIME_KEYS`). */
export const AGENT_RUNTIME_SECRET = 'simptu-agent-runtime';
/** Keys of the runtime Secret. */
export const AGENT_RUNTIME_KEYS = {
  /** URL of the services' NOINHERIT login role on the platform database */
  databaseUrl: 'database-url',
  redisUrl: 'redis-url',
  /** comma-separated host:port */
  kafkaBrokers: 'kafka-brokers',
  /** the 256-bit KEK of the `local` KMS as base64 text */
  kekBase64: 'kek-base64',
  /** the SMTP URL of e-mail replies; optional: absent when the platform has no `simptu-smtp` Secret */
  smtpUrl: 'smtp-url',
} as const;
/** Pod template annotation carrying `secretsChecksum`: a changed Secret rolls the pods. */
export const AGENT_SECRETS_CHECKSUM_ANNOTATION = 'simptu.io/secrets-sha256';
/** Ports allowed to `backendEgress.cidrs` by default: PostgreSQL, Redis, Kafka. */
export const AGENT_DEFAULT_BACKEND_PORTS: readonly number[] = [5432, 6379, 9092];
/** SMTP submission ports allowed to public addresses by default: 587 (STARTTLS), 465 (implicit TLS). */
export const AGENT_DEFAULT_SMTP_PORTS: readonly number[] = [587, 465];
export const AGENT_MAX_REPLICAS = 50;

export type TenantAgentModelProvider = 'builtin' | 'bedrock' | 'openai' | 'anthropic';

export interface TenantAgentModel {
  /** Decides the default of `allowModelEgress`; the agent reads the model itself from the registry. */
  readonly provider: TenantAgentModelProvider;
}

export interface TenantAgentCredentials {
  /** Secret in the tenant namespace (pods can only mount their own namespace's Secrets). */
  readonly secretName: string;
  /**
   * Directory name under `/etc/simptu/secrets`: the Secret name the tenant spec uses
   * (`agent.model.secretRef.name`, `integrations.*.credentialsSecretRef.name`), which is what
   * the agent looks up.
   */
  readonly mountName: string;
}

export interface TenantAgentResources {
  /** @default { cpu: '100m', memory: '256Mi' } */
  readonly requests?: { readonly cpu?: string; readonly memory?: string };
  /** @default { cpu: '1', memory: '1Gi' } */
  readonly limits?: { readonly cpu?: string; readonly memory?: string };
}

export interface TenantAgentBackendEgress {
  /**
   * CIDRs of backends outside the cluster (managed PostgreSQL, Redis, Kafka), e.g.
   * `['10.20.0.0/16']`. Backends in the platform namespace need nothing here.
   */
  readonly cidrs: readonly string[];
  /** TCP ports allowed to those CIDRs. @default [5432, 6379, 9092] */
  readonly ports?: readonly number[];
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
  /** Model provider. @default { provider: 'builtin' } */
  readonly model?: TenantAgentModel;
  /**
   * Secret in `namespace` with the backends, keys `AGENT_RUNTIME_KEYS`; the operator writes it.
   * @default 'simptu-agent-runtime'
   */
  readonly runtimeSecret?: string;
  /** Credentials Secrets mounted for the agent's `secrets.dir`. @default none */
  readonly credentials?: readonly TenantAgentCredentials[];
  /**
   * A digest of the Secrets' content, set as a pod template annotation: env vars from Secrets
   * are read at container start (and the agent caches its models), so a rotated credential must
   * roll the pods. @default no annotation
   */
  readonly secretsChecksum?: string;
  /** Container resources; each missing value takes its default. @default see TenantAgentResources */
  readonly resources?: TenantAgentResources;
  /** Namespace of the platform (Kafka, Postgres, the services): allowed in and out. @default 'simptu-system' */
  readonly platformNamespace?: string;
  /** HTTP port for health, readiness and metrics. @default 8080 */
  readonly port?: number;
  /**
   * Allow HTTPS egress to public addresses (not RFC 1918) for hosted model providers.
   * @default true unless the provider is 'builtin'
   */
  readonly allowModelEgress?: boolean;
  /** Egress to backends outside the cluster. @default none (backends in the platform namespace) */
  readonly backendEgress?: TenantAgentBackendEgress;
  /**
   * TCP ports allowed to public addresses (not RFC 1918) for the SMTP server of e-mail replies
   * (`smtp-url` of the runtime Secret); `[]` opens none. A relay on a private network needs
   * `backendEgress` instead. @default [587, 465]
   */
  readonly smtpEgressPorts?: readonly number[];
  /** @default 'info' */
  readonly logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

const DEFAULT_REQUESTS = { cpu: '100m', memory: '256Mi' };
const DEFAULT_LIMITS = { cpu: '1', memory: '1Gi' };
// Kubernetes quantity grammar (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
const QUANTITY_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IPV4_CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const PROVIDERS: readonly string[] = ['builtin', 'bedrock', 'openai', 'anthropic'];
const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class TenantAgent extends Construct {
  readonly deployment: k8s.KubeDeployment;
  readonly service: k8s.KubeService;
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
    const runtimeSecret = props.runtimeSecret ?? AGENT_RUNTIME_SECRET;
    const credentials = props.credentials ?? [];
    const requests = { ...DEFAULT_REQUESTS, ...definedOnly(props.resources?.requests) };
    const limits = { ...DEFAULT_LIMITS, ...definedOnly(props.resources?.limits) };

    this.namespace = namespace;
    this.selectorLabels = { 'app.kubernetes.io/name': AGENT_APP_NAME, [TENANT_LABEL]: tenant };
    const labels = { ...tenantLabels(tenant, 'agent'), 'app.kubernetes.io/name': AGENT_APP_NAME };
    const meta = (name: string) => ({ name, namespace, labels });

    const fromRuntime = (name: string, key: string): k8s.EnvVar => ({
      name,
      valueFrom: { secretKeyRef: { name: runtimeSecret, key } },
    });
    // Names: services/agent/src/config.ts (SIMPTU_AGENT_ + the schema path in SNAKE_CASE).
    const env: k8s.EnvVar[] = [
      { name: 'SIMPTU_AGENT_MODE', value: 'dedicated' },
      { name: 'SIMPTU_AGENT_TENANT', value: tenant },
      // A consumer group of its own: sharing the pool's group would let Kafka hand this
      // tenant's partitions to pooled agents and other tenants' partitions to this one.
      { name: 'SIMPTU_AGENT_GROUP_ID', value: `${AGENT_APP_NAME}-${tenant}` },
      { name: 'SIMPTU_AGENT_METRICS_PORT', value: String(port) },
      { name: 'SIMPTU_AGENT_LOG_LEVEL', value: props.logLevel ?? 'info' },
      fromRuntime('SIMPTU_AGENT_DATABASE_URL', AGENT_RUNTIME_KEYS.databaseUrl),
      fromRuntime('SIMPTU_AGENT_REDIS_URL', AGENT_RUNTIME_KEYS.redisUrl),
      fromRuntime('SIMPTU_AGENT_KAFKA_BROKERS', AGENT_RUNTIME_KEYS.kafkaBrokers),
      fromRuntime('SIMPTU_AGENT_KEK', AGENT_RUNTIME_KEYS.kekBase64),
      // Optional: without the key the variable is unset and e-mail replies are recorded `failed`.
      {
        name: 'SIMPTU_AGENT_CHANNELS_SMTP_URL',
        valueFrom: { secretKeyRef: { name: runtimeSecret, key: AGENT_RUNTIME_KEYS.smtpUrl, optional: true } },
      },
      ...(credentials.length > 0 ? [{ name: 'SIMPTU_AGENT_SECRETS_DIR', value: AGENT_SECRETS_DIR }] : []),
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
            ...(props.secretsChecksum
              ? { annotations: { [AGENT_SECRETS_CHECKSUM_ANNOTATION]: props.secretsChecksum } }
              : {}),
          },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            // A run in progress finishes and commits on SIGTERM (services/agent/src/main.ts).
            terminationGracePeriodSeconds: 60,
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
                  { name: 'tmp', mountPath: '/tmp' },
                  ...credentials.map((c, i) => ({
                    name: `credentials-${i}`,
                    mountPath: `${AGENT_SECRETS_DIR}/${c.mountName}`,
                    readOnly: true,
                  })),
                ],
              },
            ],
            volumes: [
              { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') } },
              // 0440 + fsGroup: readable by the agent's group only.
              ...credentials.map((c, i) => ({
                name: `credentials-${i}`,
                secret: { secretName: c.secretName, defaultMode: 0o440 },
              })),
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
    const tcp = (p: number): k8s.NetworkPolicyPort => ({
      protocol: 'TCP',
      port: k8s.IntOrString.fromNumber(p),
    });
    const egress: k8s.NetworkPolicyEgressRule[] = [
      // Backends and services running in the platform namespace (any port).
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
    const backend = props.backendEgress;
    if (backend && backend.cidrs.length > 0) {
      egress.push({
        to: backend.cidrs.map((cidr) => ({ ipBlock: { cidr } })),
        ports: (backend.ports ?? AGENT_DEFAULT_BACKEND_PORTS).map(tcp),
      });
    }
    const publicAddresses: k8s.NetworkPolicyPeer[] = [
      {
        ipBlock: {
          cidr: '0.0.0.0/0',
          except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'],
        },
      },
    ];
    if (allowModelEgress) egress.push({ to: publicAddresses, ports: [tcp(443)] });
    // SMTP submission of e-mail replies, whatever the model provider.
    const smtpPorts = props.smtpEgressPorts ?? AGENT_DEFAULT_SMTP_PORTS;
    if (smtpPorts.length > 0) egress.push({ to: publicAddresses, ports: smtpPorts.map(tcp) });
    this.networkPolicy = new k8s.KubeNetworkPolicy(this, 'network-policy', {
      metadata: meta(AGENT_OBJECT_NAME),
      spec: {
        podSelector: { matchLabels: this.selectorLabels },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [platformPeer], ports: [tcp(port)] }],
        egress,
      },
    });
  }
}

/**
 * Synthesizes a TenantAgent in memory (no files written) and returns the manifests, in the order
 * Deployment, Service, NetworkPolicy. Used by the operator's agent reconciler.
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
  if (props.model && !PROVIDERS.includes(props.model.provider)) {
    throw new TypeError(
      `TenantAgent: model.provider must be one of ${PROVIDERS.join(', ')}, got ${JSON.stringify(props.model.provider)}`,
    );
  }
  const secretName = (what: string, v: string) => {
    if (!DNS_SUBDOMAIN_RE.test(v) || v.length > 253)
      throw new TypeError(`TenantAgent: ${what} ${JSON.stringify(v)} is not a valid Secret name`);
  };
  if (props.runtimeSecret !== undefined) secretName('runtimeSecret', props.runtimeSecret);
  const mounts = new Set<string>();
  for (const c of props.credentials ?? []) {
    secretName('credentials[].secretName', c.secretName);
    secretName('credentials[].mountName', c.mountName);
    if (mounts.has(c.mountName))
      throw new TypeError(`TenantAgent: credentials mount ${JSON.stringify(c.mountName)} twice`);
    mounts.add(c.mountName);
  }
  if (props.secretsChecksum !== undefined && !/^[0-9a-f]{16,128}$/.test(props.secretsChecksum)) {
    throw new TypeError('TenantAgent: secretsChecksum must be a hex digest');
  }
  if (props.logLevel !== undefined && !LOG_LEVELS.includes(props.logLevel)) {
    throw new TypeError(`TenantAgent: logLevel must be one of ${LOG_LEVELS.join(', ')}`);
  }
  for (const cidr of props.backendEgress?.cidrs ?? []) {
    if (!isCidr(cidr))
      throw new TypeError(`TenantAgent: backendEgress.cidrs ${JSON.stringify(cidr)} is not a CIDR`);
  }
  const ports = props.backendEgress?.ports;
  if (ports !== undefined) {
    if (ports.length === 0) throw new TypeError('TenantAgent: backendEgress.ports must not be empty');
    for (const bp of ports)
      if (!Number.isInteger(bp) || bp < 1 || bp > 65535)
        throw new RangeError(`TenantAgent: backendEgress.ports must be integers from 1 to 65535, got ${bp}`);
  }
  for (const sp of props.smtpEgressPorts ?? [])
    if (!Number.isInteger(sp) || sp < 1 || sp > 65535)
      throw new RangeError(`TenantAgent: smtpEgressPorts must be integers from 1 to 65535, got ${sp}`);
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

/** An IPv4 (`a.b.c.d/n`) or IPv6 (`x:y::/n`) CIDR, as NetworkPolicy `ipBlock.cidr` takes. */
export function isCidr(s: string): boolean {
  const v4 = IPV4_CIDR_RE.exec(s);
  if (v4) return v4.slice(1, 5).every((o) => Number(o) <= 255) && Number(v4[5]) <= 32;
  const v6 = /^([0-9a-fA-F:]+)\/(\d{1,3})$/.exec(s);
  return !!v6 && v6[1]!.includes(':') && Number(v6[2]) <= 128;
}

function definedOnly(o: Record<string, string | undefined> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(o ?? {}).filter((e): e is [string, string] => e[1] !== undefined));
}

function quantities(o: Record<string, string>): Record<string, k8s.Quantity> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, k8s.Quantity.fromString(v)]));
}
