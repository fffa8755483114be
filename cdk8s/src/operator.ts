/**
 * `Operator`: the Simptu operator (DESIGN §5) — ServiceAccount, least-privilege RBAC, Deployment
 * (2 replicas with Lease leader election), metrics Service, PodDisruptionBudget, NetworkPolicy.
 *
 * The RBAC rules are exactly what the operator's code does, verb by verb (`OPERATOR_CLUSTER_RULES`
 * below cites where); `cdk8s/test/operator-rbac.test.ts` runs the operator as this ServiceAccount
 * against a real API server, provisions a tenant to Ready and shows that anything else is 403.
 * @see https://kubernetes.io/docs/concepts/security/rbac-good-practices/
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PLATFORM_NAMESPACE } from '@simptu/common';
import { DEFAULT_REFS, KEK_SECRET } from './backends.ts';
import { intToString, isPlaceholder } from './placeholders.ts';
import { isCidr } from './tenant-agent.ts';
import {
  checkBrokers,
  checkDnsLabel,
  checkImage,
  checkInt,
  checkResources,
  checkSecretKeyRef,
  checkSecretName,
  fail,
  httpProbe,
  intOrStr,
  platformLabels,
  resources,
  restrictedContainerSecurity,
  restrictedPodSecurity,
  secretEnv,
  type ResourceSpec,
  type SecretKeyRef,
} from './util.ts';

export const OPERATOR_NAME = 'simptu-operator';
export const OPERATOR_LEADER_ELECTION_ROLE = 'simptu-operator-leader-election';
export const OPERATOR_METRICS_PORT = 8080;
export const OPERATOR_PROBE_PORT = 8081;

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/**
 * Cluster-wide rules. Tenant namespaces are created on the fly, so the namespaced kinds need a
 * ClusterRole; nothing here can create RBAC objects, pods or CRDs.
 */
export const OPERATOR_CLUSTER_RULES: readonly PolicyRule[] = [
  // informer list+watch, readTenant get, finalizers by merge patch (manager.ts). No ownerReferences
  // to a Tenant are ever set, so `tenants/finalizers` (OwnerReferencesPermissionEnforcement) is not needed.
  { apiGroups: ['simptu.io'], resources: ['tenants'], verbs: ['get', 'list', 'watch', 'patch'] },
  // patchStatus: PUT on /status with a resourceVersion precondition (controller/apply.ts).
  { apiGroups: ['simptu.io'], resources: ['tenants/status'], verbs: ['update'] },
  // Objects are written with server-side apply (PATCH); an apply that creates the object is
  // authorized as `create` too, so every applied kind needs both.
  // reconcile/namespace.ts and agent.ts: apply, delete on finalize; reads come from label-scoped
  // informers of every owned kind (list+watch) or a direct get on a cache miss (manager.ts).
  {
    apiGroups: [''],
    resources: ['namespaces'],
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
  },
  { apiGroups: [''], resources: ['resourcequotas'], verbs: ['get', 'list', 'watch', 'create', 'patch'] },
  { apiGroups: [''], resources: ['limitranges'], verbs: ['get', 'list', 'watch', 'create', 'patch'] },
  {
    apiGroups: ['networking.k8s.io'],
    resources: ['networkpolicies'],
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
  },
  // Dedicated agents (TenantAgent); their leftovers are deleted when a tenant goes shared.
  {
    apiGroups: ['apps'],
    resources: ['deployments'],
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
  },
  {
    apiGroups: [''],
    resources: ['services', 'configmaps'],
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
  },
  // Dedicated agents (reconcile/agent.ts): the platform Secrets their runtime Secret is composed
  // from (database URL, Redis URL, KEK) and the credentials Secrets the spec references are read
  // with direct gets (no informer: no list/watch, so no reading every Secret of the cluster); the
  // copies are applied into and deleted from the tenant namespace. The KMS reads the KEK (kek.ts).
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'patch', 'delete'] },
  // controller/events.ts: events.k8s.io/v1 create, then merge-patch the series.
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
];

/** Rules of the Role in the platform namespace (controller/leader.ts: get, POST, PUT). */
export const OPERATOR_LEADER_ELECTION_RULES: readonly PolicyRule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

export interface OperatorEndpoints {
  /** Template of `status.endpoints.api`; `{tenant}` is replaced. @default 'https://api.simptu.io/v1' */
  readonly api?: string;
  /** @default 'wss://rt.simptu.io/socket/websocket' */
  readonly websocket?: string;
  /** @default 'https://auth.simptu.io' */
  readonly issuer?: string;
}

export interface OperatorProps {
  /** The platform namespace: the operator's own, its Lease's and the KEK's. @default 'simptu-system' */
  readonly namespace?: string;
  /** @default 'simptu/operator:latest' */
  readonly image?: string;
  /** @default 'IfNotPresent' */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** @default none */
  readonly imagePullSecret?: string;
  /** One leads, the others stand by (Lease leader election). @default 2 */
  readonly replicas?: number;
  /** @default { requests: { cpu: '100m', memory: '192Mi' }, limits: { cpu: '1', memory: '512Mi' } } */
  readonly resources?: ResourceSpec;
  /** @default 'info' */
  readonly logLevel?: string;
  /** Kafka bootstrap servers. */
  readonly kafkaBrokers: readonly string[];
  /** Replication factor of the topics the operator creates. @default 1 */
  readonly kafkaReplicationFactor?: number;
  /** Superuser/migrator URL of the platform database. @default simptu-database / admin-url */
  readonly adminDatabaseUrl?: SecretKeyRef;
  /** The services' login role the operator manages. @default 'simptu_app' */
  readonly appRole?: string;
  /** Password the operator sets on the login role. @default simptu-database / app-password */
  readonly appRolePassword?: SecretKeyRef;
  /** Secret (in `namespace`) holding the KEK under key `kek`. @default 'simptu-kek' */
  readonly kekSecretName?: string;
  /** Image of dedicated tenant agents. @default 'simptu/agent:latest' */
  readonly agentImage?: string;
  /**
   * Database URL (the services' login role) the operator copies into each dedicated agent's
   * runtime Secret. In `namespace`. @default simptu-database / app-url
   */
  readonly agentDatabaseUrl?: SecretKeyRef;
  /** Redis URL for dedicated agents. In `namespace`. @default simptu-redis / url */
  readonly agentRedisUrl?: SecretKeyRef;
  /** Kafka bootstrap servers as dedicated agent pods reach them. @default `kafkaBrokers` */
  readonly agentKafkaBrokers?: readonly string[];
  /**
   * NetworkPolicy egress of dedicated agents to backends outside the cluster (managed
   * PostgreSQL, Redis, Kafka). @default none: backends in the platform namespace only
   */
  readonly agentEgress?: {
    /** e.g. ['10.20.0.0/16'] */
    readonly cidrs: readonly string[];
    /** @default [5432, 6379, 9092] */
    readonly ports?: readonly number[];
  };
  /** Concurrent reconciles. @default 4 */
  readonly workers?: number;
  /** @default 'simptu-operator' */
  readonly leaseName?: string;
  /** Endpoint templates reported in each Tenant's status. @default see OperatorEndpoints */
  readonly endpoints?: OperatorEndpoints;
  /** Namespace allowed to scrape `/metrics` (e.g. 'monitoring'). @default every namespace */
  readonly metricsNamespace?: string;
}

export class Operator extends Construct {
  readonly serviceAccount: k8s.KubeServiceAccount;
  readonly clusterRole: k8s.KubeClusterRole;
  readonly clusterRoleBinding: k8s.KubeClusterRoleBinding;
  readonly leaderElectionRole: k8s.KubeRole;
  readonly leaderElectionRoleBinding: k8s.KubeRoleBinding;
  readonly deployment: k8s.KubeDeployment;
  readonly metricsService: k8s.KubeService;
  readonly podDisruptionBudget: k8s.KubePodDisruptionBudget;
  readonly networkPolicy: k8s.KubeNetworkPolicy;
  readonly namespace: string;
  readonly selectorLabels: Record<string, string>;

  constructor(scope: Construct, id: string, props: OperatorProps) {
    super(scope, id);
    validate(props);
    const namespace = props.namespace ?? PLATFORM_NAMESPACE;
    const replicas = props.replicas ?? 2;
    const labels = platformLabels(OPERATOR_NAME, 'operator');
    const meta = { name: OPERATOR_NAME, namespace, labels };
    this.namespace = namespace;
    this.selectorLabels = { 'app.kubernetes.io/name': OPERATOR_NAME, 'app.kubernetes.io/part-of': 'simptu' };
    const endpoints = props.endpoints ?? {};

    this.serviceAccount = new k8s.KubeServiceAccount(this, 'sa', { metadata: meta });
    const subject = { kind: 'ServiceAccount', name: OPERATOR_NAME, namespace };
    this.clusterRole = new k8s.KubeClusterRole(this, 'cluster-role', {
      metadata: { name: OPERATOR_NAME, labels },
      rules: OPERATOR_CLUSTER_RULES.map(copyRule),
    });
    this.clusterRoleBinding = new k8s.KubeClusterRoleBinding(this, 'cluster-role-binding', {
      metadata: { name: OPERATOR_NAME, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: OPERATOR_NAME },
      subjects: [subject],
    });
    this.leaderElectionRole = new k8s.KubeRole(this, 'leader-election-role', {
      metadata: { name: OPERATOR_LEADER_ELECTION_ROLE, namespace, labels },
      rules: OPERATOR_LEADER_ELECTION_RULES.map(copyRule),
    });
    this.leaderElectionRoleBinding = new k8s.KubeRoleBinding(this, 'leader-election-role-binding', {
      metadata: { name: OPERATOR_LEADER_ELECTION_ROLE, namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: OPERATOR_LEADER_ELECTION_ROLE },
      subjects: [subject],
    });

    // Variable names: operator/src/config.ts `fromEnv`.
    const env: k8s.EnvVar[] = [
      secretEnv('SIMPTU_DATABASE_URL', props.adminDatabaseUrl ?? DEFAULT_REFS.adminUrl),
      { name: 'SIMPTU_KAFKA_BROKERS', value: props.kafkaBrokers.join(',') },
      { name: 'SIMPTU_KAFKA_REPLICATION_FACTOR', value: intToString(props.kafkaReplicationFactor ?? 1) },
      { name: 'SIMPTU_PLATFORM_NAMESPACE', value: namespace },
      { name: 'SIMPTU_APP_ROLE', value: props.appRole ?? 'simptu_app' },
      secretEnv('SIMPTU_APP_ROLE_PASSWORD', props.appRolePassword ?? DEFAULT_REFS.appPassword),
      { name: 'SIMPTU_KEK_SECRET', value: props.kekSecretName ?? KEK_SECRET },
      { name: 'SIMPTU_WORKERS', value: intToString(props.workers ?? 4) },
      { name: 'SIMPTU_LEADER_ELECTION', value: 'true' },
      { name: 'SIMPTU_LEASE_NAME', value: props.leaseName ?? 'simptu-operator' },
      { name: 'SIMPTU_METRICS_PORT', value: String(OPERATOR_METRICS_PORT) },
      { name: 'SIMPTU_PROBE_PORT', value: String(OPERATOR_PROBE_PORT) },
      { name: 'SIMPTU_DEDICATED_AGENT_IMAGE', value: props.agentImage ?? 'simptu/agent:latest' },
      ...refEnv('SIMPTU_DEDICATED_AGENT_DATABASE_URL', props.agentDatabaseUrl ?? DEFAULT_REFS.appUrl),
      ...refEnv('SIMPTU_DEDICATED_AGENT_REDIS_URL', props.agentRedisUrl ?? DEFAULT_REFS.redisUrl),
      ...(props.agentKafkaBrokers
        ? [{ name: 'SIMPTU_DEDICATED_AGENT_KAFKA_BROKERS', value: props.agentKafkaBrokers.join(',') }]
        : []),
      ...(props.agentEgress && props.agentEgress.cidrs.length > 0
        ? [{ name: 'SIMPTU_DEDICATED_AGENT_EGRESS_CIDRS', value: props.agentEgress.cidrs.join(',') }]
        : []),
      ...(props.agentEgress?.ports
        ? [
            {
              name: 'SIMPTU_DEDICATED_AGENT_EGRESS_PORTS',
              value: props.agentEgress.ports.map(intToString).join(','),
            },
          ]
        : []),
      { name: 'SIMPTU_ENDPOINT_API', value: endpoints.api ?? 'https://api.simptu.io/v1' },
      {
        name: 'SIMPTU_ENDPOINT_WEBSOCKET',
        value: endpoints.websocket ?? 'wss://rt.simptu.io/socket/websocket',
      },
      { name: 'SIMPTU_ENDPOINT_ISSUER', value: endpoints.issuer ?? 'https://auth.simptu.io' },
      { name: 'SIMPTU_LOG_LEVEL', value: props.logLevel ?? 'info' },
      { name: 'TMPDIR', value: '/tmp' },
    ];

    this.deployment = new k8s.KubeDeployment(this, 'deployment', {
      metadata: meta,
      spec: {
        replicas,
        selector: { matchLabels: this.selectorLabels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: OPERATOR_NAME,
            enableServiceLinks: false,
            // handle.stop() releases the Lease so a standby takes over at once; main.ts gives it 30 s.
            terminationGracePeriodSeconds: 40,
            securityContext: restrictedPodSecurity(10001),
            ...(props.imagePullSecret ? { imagePullSecrets: [{ name: props.imagePullSecret }] } : {}),
            topologySpreadConstraints: [
              {
                maxSkew: 1,
                topologyKey: 'kubernetes.io/hostname',
                whenUnsatisfiable: 'ScheduleAnyway',
                labelSelector: { matchLabels: this.selectorLabels },
              },
            ],
            containers: [
              {
                name: 'operator',
                image: props.image ?? 'simptu/operator:latest',
                imagePullPolicy: props.imagePullPolicy ?? 'IfNotPresent',
                ports: [
                  { name: 'metrics', containerPort: OPERATOR_METRICS_PORT, protocol: 'TCP' },
                  { name: 'probes', containerPort: OPERATOR_PROBE_PORT, protocol: 'TCP' },
                ],
                env,
                resources: resources(props.resources, {
                  requests: { cpu: '100m', memory: '192Mi' },
                  limits: { cpu: '1', memory: '512Mi' },
                }),
                // Start-up migrates the platform schema and connects to Kafka: give it a minute.
                startupProbe: httpProbe('/healthz', 'probes', { periodSeconds: 2, failureThreshold: 30 }),
                livenessProbe: httpProbe('/healthz', 'probes'),
                readinessProbe: httpProbe('/readyz', 'probes', { periodSeconds: 5 }),
                securityContext: restrictedContainerSecurity(),
                volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
              },
            ],
            volumes: [{ name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') } }],
          },
        },
      },
    });

    this.metricsService = new k8s.KubeService(this, 'metrics-service', {
      metadata: { name: `${OPERATOR_NAME}-metrics`, namespace, labels },
      spec: {
        type: 'ClusterIP',
        selector: this.selectorLabels,
        ports: [
          { name: 'metrics', port: OPERATOR_METRICS_PORT, targetPort: intOrStr('metrics'), protocol: 'TCP' },
        ],
      },
    });

    // A drain never takes the last replica: the standby keeps the Lease warm.
    this.podDisruptionBudget = new k8s.KubePodDisruptionBudget(this, 'pdb', {
      metadata: meta,
      spec: { minAvailable: intOrStr(1), selector: { matchLabels: this.selectorLabels } },
    });

    const metricsFrom: k8s.NetworkPolicyPeer = props.metricsNamespace
      ? { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': props.metricsNamespace } } }
      : { namespaceSelector: {} };
    // Nothing calls the operator but Prometheus (kubelet probes are not subject to NetworkPolicy).
    this.networkPolicy = new k8s.KubeNetworkPolicy(this, 'network-policy', {
      metadata: meta,
      spec: {
        podSelector: { matchLabels: this.selectorLabels },
        policyTypes: ['Ingress'],
        ingress: [
          { from: [metricsFrom], ports: [{ protocol: 'TCP', port: intOrStr(OPERATOR_METRICS_PORT) }] },
        ],
      },
    });
  }
}

/** The name and key of a Secret the operator reads (not an env var from a Secret: it reads it itself). */
function refEnv(prefix: string, ref: SecretKeyRef): k8s.EnvVar[] {
  return [
    { name: `${prefix}_SECRET`, value: ref.name },
    { name: `${prefix}_KEY`, value: ref.key },
  ];
}

function copyRule(r: PolicyRule): k8s.PolicyRule {
  return { apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] };
}

function validate(props: OperatorProps): void {
  const who = 'Operator';
  checkDnsLabel(who, 'namespace', props.namespace);
  checkDnsLabel(who, 'metricsNamespace', props.metricsNamespace);
  checkImage(who, props.image);
  checkImage(who, props.agentImage);
  checkSecretName(who, 'imagePullSecret', props.imagePullSecret);
  checkInt(who, 'replicas', props.replicas, 1, 10);
  checkInt(who, 'kafkaReplicationFactor', props.kafkaReplicationFactor, 1, 10);
  checkInt(who, 'workers', props.workers, 1, 64);
  checkResources(who, props.resources);
  checkBrokers(who, props.kafkaBrokers);
  checkSecretKeyRef(who, 'adminDatabaseUrl', props.adminDatabaseUrl);
  checkSecretKeyRef(who, 'appRolePassword', props.appRolePassword);
  checkSecretName(who, 'kekSecretName', props.kekSecretName);
  checkSecretKeyRef(who, 'agentDatabaseUrl', props.agentDatabaseUrl);
  checkSecretKeyRef(who, 'agentRedisUrl', props.agentRedisUrl);
  if (props.agentKafkaBrokers) checkBrokers(who, props.agentKafkaBrokers);
  for (const cidr of props.agentEgress?.cidrs ?? [])
    if (!isPlaceholder(cidr) && !isCidr(cidr))
      fail(who, `agentEgress.cidrs ${JSON.stringify(cidr)} is not a CIDR`);
  if (props.agentEgress?.ports?.length === 0) fail(who, 'agentEgress.ports must not be empty');
  for (const port of props.agentEgress?.ports ?? []) checkInt(who, 'agentEgress.ports[]', port, 1, 65535);
  checkDnsLabel(who, 'leaseName', props.leaseName);
  if (
    props.appRole !== undefined &&
    !isPlaceholder(props.appRole) &&
    !/^[a-z_][a-z0-9_]{0,62}$/.test(props.appRole)
  )
    fail(who, `appRole ${JSON.stringify(props.appRole)} is not a PostgreSQL role name ([a-z_][a-z0-9_]*)`);
  for (const [k, v] of Object.entries(props.endpoints ?? {})) {
    if (v !== undefined && !isPlaceholder(v) && !URL.canParse(String(v).replaceAll('{tenant}', 'x')))
      fail(who, `endpoints.${k} ${JSON.stringify(v)} is not a URL template`);
  }
}
