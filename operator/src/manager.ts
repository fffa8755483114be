/**
 * Wires the operator together: backends (Postgres, Kafka, KMS), the Tenant informer and the
 * informers of what it owns, the tenant controller, leader election, metrics and probes.
 * `startOperator` is what `main.ts` runs and what the integration tests start in-process.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { Kafka, logLevel as kafkaLogLevel } from 'kafkajs';
import pg from 'pg';
import { Counter } from 'prom-client';
import { FIELD_MANAGER, TENANT_LABEL, migratePlatform, type KmsProvider } from '@simptu/common';
import { API_VERSION, PLURAL, type Tenant, type TenantStatus } from './api/types.ts';
import type { OperatorConfig } from './config.ts';
import {
  Controller,
  ControllerMetrics,
  EventRecorder,
  HealthServer,
  Informer,
  LeaderElector,
  defaultIdentity,
  kubeRequest,
  mapByLabel,
  patchStatus,
  resourcePath,
  slimObject,
  type Logger,
} from './controller/index.ts';
import type { KubeAccess } from './controller/kubeconfig.ts';
import { loadKms } from './kek.ts';
import { agentReconciler } from './reconcile/agent.ts';
import { databaseReconciler, ensureAppRole } from './reconcile/database.ts';
import { encryptionReconciler } from './reconcile/encryption.ts';
import {
  kubeObjectClient,
  namespaceReconciler,
  type KubeObject,
  type ObjectClient,
} from './reconcile/namespace.ts';
import { createRegistryProducer, registryReconciler } from './reconcile/registry.ts';
import { ensurePlatformTopic, topicsReconciler } from './reconcile/topics.ts';
import { reconcileTenant, type Backend, type TenantReconcilerDeps } from './reconcile/tenant.ts';
import type { BackendReconciler, WriteCounter } from './reconcile/types.ts';

export const TENANT_REF = { apiVersion: API_VERSION, plural: PLURAL } as const;

/** Tenants are cached whole (spec and status are what reconciles), minus managedFields and kubectl's copy. */
export const TENANT_TRANSFORM = slimObject(['spec', 'status']);

/**
 * The kinds the operator owns, as its informers watch them. The reconcilers read of these only
 * metadata — the tenant label, the spec-hash annotation, deletionTimestamp (namespace.ts,
 * agent.ts) — and of the dedicated agent's Deployment also `metadata.generation` and `status`
 * (its rollout); drift in content is detected through the spec-hash annotation, never by
 * comparing specs. So all but Deployments are watched metadata-only, and Deployments are cached
 * without their spec (a pod template is most of a Deployment).
 */
export const OWNED_KINDS: ReadonlyArray<{
  kind: string;
  apiVersion: string;
  plural: string;
  metadataOnly?: boolean;
  transform?: (obj: Record<string, unknown>) => Record<string, unknown>;
}> = [
  { kind: 'Namespace', apiVersion: 'v1', plural: 'namespaces', metadataOnly: true },
  {
    kind: 'NetworkPolicy',
    apiVersion: 'networking.k8s.io/v1',
    plural: 'networkpolicies',
    metadataOnly: true,
  },
  { kind: 'ResourceQuota', apiVersion: 'v1', plural: 'resourcequotas', metadataOnly: true },
  { kind: 'LimitRange', apiVersion: 'v1', plural: 'limitranges', metadataOnly: true },
  { kind: 'Deployment', apiVersion: 'apps/v1', plural: 'deployments', transform: slimObject(['status']) },
  { kind: 'Service', apiVersion: 'v1', plural: 'services', metadataOnly: true },
  { kind: 'ConfigMap', apiVersion: 'v1', plural: 'configmaps', metadataOnly: true },
];

export interface StartOptions {
  /** the cluster: `loadKubeConfig()`, or a client-node `KubeConfig` */
  kc: KubeAccess;
  logger: Logger;
  /** leader election identity @default hostname_pid_random */
  identity?: string;
  /** what happens at the configured fault point @default exit the process with code 86 */
  onFault?: (point: string) => void;
  /** Tenants this instance manages (a label selector); tests use it to run operators side by side */
  tenantSelector?: string;
}

export interface OperatorHandle {
  readonly identity: string;
  readonly metricsPort: number;
  readonly probePort: number;
  /** writes per backend since start (postgres, kafka, namespace, agent, status, …) */
  writes(): Record<string, number>;
  isLeader(): boolean;
  /** resolves when leadership is lost (the process should exit and restart clean) */
  readonly lostLeadership: Promise<void>;
  stop(): Promise<void>;
}

export const FAULT_EXIT_CODE = 86;

class CountingWrites implements WriteCounter {
  readonly counts: Record<string, number> = {};
  readonly #metric: Counter<'backend'>;
  constructor(metric: Counter<'backend'>) {
    this.#metric = metric;
  }
  inc(backend: string, n = 1): void {
    this.counts[backend] = (this.counts[backend] ?? 0) + n;
    this.#metric.inc({ backend }, n);
  }
}

export async function startOperator(config: OperatorConfig, opts: StartOptions): Promise<OperatorHandle> {
  const { kc } = opts;
  const log = opts.logger;
  const identity = opts.identity ?? defaultIdentity();
  const metrics = new ControllerMetrics();
  const writes = new CountingWrites(
    new Counter({
      name: 'simptu_operator_backend_writes_total',
      help: 'Writes the operator performed, per backend (zero at steady state)',
      labelNames: ['backend'],
      registers: [metrics.registry],
    }),
  );
  const cleanups: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const c of cleanups.reverse())
      await c().catch((err: unknown) => log.warn({ err }, 'shutdown step failed'));
  };

  try {
    // --- backends ---------------------------------------------------------------------------
    const pool = new pg.Pool({ connectionString: config.databaseUrl, max: Math.max(4, config.workers * 2) });
    pool.on('error', (err) => log.warn({ err }, 'idle postgres connection failed'));
    cleanups.push(() => pool.end());
    const platform = await migratePlatform(pool);
    const appRole = await ensureAppRole(pool, config.appRole, config.appRolePassword);
    log.info(
      { platformSchemaVersion: platform.version, appRole: config.appRole, ...appRole },
      'platform database ready',
    );

    const kafka = new Kafka({
      clientId: 'simptu-operator',
      brokers: config.kafkaBrokers,
      logLevel: kafkaLogLevel.ERROR,
      retry: { retries: 5 },
    });
    const admin = kafka.admin();
    await admin.connect();
    cleanups.push(() => admin.disconnect());
    await ensurePlatformTopic(admin, { replicationFactor: config.kafkaReplicationFactor });
    const producer = createRegistryProducer(kafka);
    await producer.connect();
    cleanups.push(() => producer.disconnect());

    const kms: KmsProvider = await loadKms(kc, {
      namespace: config.platformNamespace,
      secretName: config.kms.secretName,
      createIfMissing: config.kms.createIfMissing,
    });
    log.info({ kekId: kms.kekId }, 'KMS ready');

    // --- informers and the controller ------------------------------------------------------------
    const clog = log.child({ controller: 'tenant' });
    // The informer holds raw JSON (timestamps are strings), which is what `Tenant` describes;
    // client-node's KubernetesObject types timestamps as Date, hence the casts at this boundary.
    const tenants = new Informer(kc, {
      ...TENANT_REF,
      labelSelector: opts.tenantSelector ?? config.tenantSelector,
      transform: TENANT_TRANSFORM,
      logger: clog,
    });
    // What the operator owns, scoped by label; any change (or deletion) re-reconciles its tenant.
    // The caches hold only what the reconcilers read (see OWNED_KINDS).
    const ownedInformers = new Map(
      OWNED_KINDS.map(({ kind, apiVersion, plural, metadataOnly, transform }) => [
        kind,
        new Informer(kc, {
          kind,
          apiVersion,
          plural,
          labelSelector: TENANT_LABEL,
          ...(metadataOnly ? { metadataOnly } : {}),
          ...(transform ? { transform } : {}),
          logger: clog,
        }),
      ]),
    );
    const owned = [...ownedInformers.values()];
    // Reads of owned objects come from these caches once synced: a resync of a Ready tenant then
    // costs no API request at all (writes still go to the API server).
    const kube = cachedObjectClient(kubeObjectClient(kc, FIELD_MANAGER), ownedInformers);

    // --- backends bound to their dependencies (DESIGN §5 order) ---------------------------------
    const dbDeps = { pg: pool, adminUrl: config.databaseUrl, kms, appRole: config.appRole, writes };
    const backends: Backend[] = [
      bind(namespaceReconciler, { kube, writes, platformNamespace: config.platformNamespace }),
      bind(encryptionReconciler, dbDeps),
      bind(databaseReconciler, dbDeps),
      bind(topicsReconciler, { admin, writes, replicationFactor: config.kafkaReplicationFactor }),
      {
        ...bind(agentReconciler, {
          kube,
          writes,
          platformNamespace: config.platformNamespace,
          agentImage: config.agent.image,
          agentReadiness: config.agent.readiness,
          runtime: {
            databaseUrl: config.agent.runtime.databaseUrl,
            redisUrl: config.agent.runtime.redisUrl,
            // the very Secret the KMS reads: agents and operator share one KEK by construction
            kekSecret: config.kms.secretName,
            kafkaBrokers: config.agent.runtime.kafkaBrokers ?? config.kafkaBrokers,
          },
          agentEgress: { cidrs: config.agent.egress.cidrs, ports: config.agent.egress.ports },
          agentSmtpPorts: config.agent.egress.smtpPorts,
        }),
        after: ['NamespaceReady'],
      },
      {
        name: registryReconciler.name,
        condition: registryReconciler.condition,
        after: ['EncryptionKeyReady', 'DatabaseReady', 'TopicsReady'],
        reconcile: (t, facts) => registryReconciler.reconcile(t, { pg: pool, producer, writes, facts }),
        finalize: (t) => registryReconciler.finalize(t, { pg: pool, producer, writes }),
      },
    ];

    const events = new EventRecorder(kc, {
      reportingController: 'simptu.io/operator',
      reportingInstance: identity,
      logger: clog,
    });
    const tenantPath = (name: string) => resourcePath(TENANT_REF, name);
    const onFault =
      opts.onFault ??
      ((point: string) => {
        log.error({ point }, 'fault injection point reached: exiting');
        process.exit(FAULT_EXIT_CODE);
      });

    const fill = (template: string, t: Tenant) => template.replaceAll('{tenant}', t.metadata.name);
    const deps: TenantReconcilerDeps = {
      backends,
      endpoints: (t) => ({
        api: fill(config.endpoints.api, t),
        websocket: fill(config.endpoints.websocket, t),
        issuer: fill(config.endpoints.issuer, t),
      }),
      log: clog,
      getTenant: (name) => tenants.get(name) as unknown as Tenant | undefined,
      readTenant: async (name) => kubeRequest<Tenant>(kc, tenantPath(name)).catch(() => undefined),
      async writeStatus(tenant, status: TenantStatus) {
        const r = await patchStatus<KubernetesObject & { status?: TenantStatus }>(
          kc,
          { ...TENANT_REF, name: tenant.metadata.name },
          () => status,
          {
            fieldManager: FIELD_MANAGER,
          },
        );
        if (r.written) writes.inc('status');
      },
      async setFinalizers(tenant, finalizers) {
        // resourceVersion makes the merge patch conditional: a concurrent change → 409 → retried.
        await kubeRequest(kc, tenantPath(tenant.metadata.name), {
          method: 'PATCH',
          contentType: 'application/merge-patch+json',
          body: { metadata: { finalizers, resourceVersion: tenant.metadata.resourceVersion } },
          query: { fieldManager: FIELD_MANAGER },
        });
        writes.inc('finalizer');
      },
      async event(tenant, type, reason, message) {
        events.record(tenant as unknown as KubernetesObject, type, reason, 'Reconcile', message);
      },
      fault: (point) => {
        if (config.faultPoint === point) onFault(point);
      },
    };

    const controller = new Controller({
      name: 'tenant',
      informer: tenants,
      watches: owned.map((informer) => ({ informer, map: mapByLabel(TENANT_LABEL) })),
      reconcile: (key) => reconcileTenant(key, deps),
      concurrency: config.workers,
      resyncPeriodMs: config.resyncPeriodMs,
      metrics,
      logger: clog,
    });
    cleanups.push(async () => {
      await controller.stop();
      await Promise.all([tenants, ...owned].map((i) => i.stop()));
    });

    // --- leader election ---------------------------------------------------------------------------
    let leading = !config.leaderElection.enabled;
    let signalLost: () => void = () => undefined;
    const lostLeadership = new Promise<void>((resolve) => (signalLost = resolve));
    if (config.leaderElection.enabled) {
      const elector = new LeaderElector(kc, {
        name: config.leaderElection.leaseName,
        namespace: config.platformNamespace,
        identity,
        leaseDurationMs: config.leaderElection.leaseDurationMs,
        renewDeadlineMs: config.leaderElection.renewDeadlineMs,
        retryPeriodMs: config.leaderElection.retryPeriodMs,
        metrics,
        logger: log,
        onStartedLeading: async (signal) => {
          leading = true;
          log.info({ identity }, 'became leader: starting the tenant controller');
          await controller.start(signal);
        },
        onStoppedLeading: () => {
          if (!leading) return;
          leading = false;
          log.warn({ identity }, 'lost leadership');
          void controller.stop().finally(signalLost);
        },
      });
      elector.start();
      // Stop the controller first, then release the lease so a successor takes over at once.
      cleanups.splice(cleanups.length - 1, 0, () => elector.stop({ release: true }));
    } else {
      await controller.start();
    }

    // --- metrics and probes -------------------------------------------------------------------------
    const metricsServer = new HealthServer({
      port: config.metricsPort,
      registry: metrics.registry,
      probes: false,
    });
    const probes = new HealthServer({ port: config.probePort });
    // Ready: a standby replica is ready (it serves nothing until it leads); a leader once its caches synced.
    probes.addReadyCheck('informers', () => !leading || controller.hasSynced() || 'informers not synced');
    probes.addReadyCheck('postgres', async () => {
      await pool.query('select 1');
    });
    const metricsPort = await metricsServer.start();
    const probePort = await probes.start();
    cleanups.unshift(
      () => probes.stop(),
      () => metricsServer.stop(),
    );
    log.info({ identity, metricsPort, probePort }, 'operator started');

    return {
      identity,
      metricsPort,
      probePort,
      writes: () => ({ ...writes.counts }),
      isLeader: () => leading,
      lostLeadership,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Binds a backend reconciler to its dependencies. */
function bind<D>(r: BackendReconciler<D>, deps: D): Backend {
  return {
    name: r.name,
    condition: r.condition,
    reconcile: (t) => r.reconcile(t, deps),
    finalize: (t) => r.finalize(t, deps),
  };
}

/**
 * An ObjectClient whose `get` answers from a synced informer cache for the kinds it watches and
 * asks the API server otherwise (other kinds, or before the caches have synced).
 */
export function cachedObjectClient(
  base: ObjectClient,
  informers: ReadonlyMap<string, Informer>,
): ObjectClient {
  return {
    ...base,
    async get(ref) {
      const informer = informers.get(ref.kind);
      if (!informer?.hasSynced()) return base.get(ref);
      const cached = informer.get(ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name);
      return cached as unknown as KubeObject | undefined;
    },
  };
}

export { loadKubeConfig } from './controller/kubeconfig.ts';
