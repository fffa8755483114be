/**
 * An isolated operator for integration tests: its own platform database (scratch), app role,
 * KEK Secret, Lease and tenant shard label, so several test files — and the operator they
 * start — run side by side against the one test environment without seeing each other.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { pino } from 'pino';
import {
  createScratchDatabase,
  quoteIdent,
  tenantId,
  tenantTopics,
  type ScratchDatabase,
} from '@simptu/common';
import { API_VERSION, KIND, PLURAL, type Tenant, type TenantSpec } from '../../src/api/types.ts';
import { parseConfig, type OperatorConfig } from '../../src/config.ts';
import { kubeRequest, resourcePath } from '../../src/controller/index.ts';
import { startOperator, type OperatorHandle } from '../../src/manager.ts';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const SHARD_LABEL = 'simptu.io/test-shard';
const TENANTS = { apiVersion: API_VERSION, plural: PLURAL };

export type SpecInput = Partial<Omit<TenantSpec, 'agent' | 'kafka' | 'isolation'>> & {
  agent?: Partial<TenantSpec['agent']>;
  kafka?: Partial<TenantSpec['kafka']>;
  isolation?: Partial<TenantSpec['isolation']>;
};

export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

let crdInstalled: Promise<void> | undefined;
/** `make install`, once per test process (server-side apply is idempotent across processes). */
export function installCrd(): Promise<void> {
  crdInstalled ??= (async () => {
    execFileSync(
      'kubectl',
      [
        'apply',
        '--server-side',
        '--force-conflicts',
        '--field-manager=simptu-install',
        '-f',
        resolve(ROOT, 'crds'),
      ],
      {
        stdio: 'pipe',
      },
    );
    await eventually('the Tenant CRD to be served', async () => {
      await kubeRequest(kubeConfig(), resourcePath(TENANTS), { query: { limit: 1 } });
      return true;
    });
  })();
  return crdInstalled;
}

export function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

export class Harness {
  readonly shard = randomBytes(3).toString('hex');
  readonly kc = kubeConfig();
  readonly adminUrl = process.env.DATABASE_URL!;
  db!: ScratchDatabase;
  pool!: pg.Pool;
  readonly kafka = new Kafka({
    clientId: 'operator-test',
    brokers: process.env.KAFKA_BROKERS!.split(','),
    logLevel: logLevel.NOTHING,
  });
  readonly appRole = `app_${this.shard}`;
  readonly handles: OperatorHandle[] = [];
  readonly children: ChildProcess[] = [];
  readonly created = new Set<string>();

  /** A tenant name unique to this run: `<base>-<shard>`. */
  name(base: string): string {
    return `${base}-${this.shard}`;
  }

  /** Platform Secrets of this run that dedicated agents' runtime Secrets are composed from. */
  readonly runtimeSecrets = { database: `agent-db-${this.shard}`, redis: `agent-redis-${this.shard}` };

  async setup(): Promise<this> {
    await installCrd();
    const core = this.kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'simptu-system' } } }).catch(() => undefined);
    for (const [name, stringData] of [
      [this.runtimeSecrets.database, { 'app-url': 'postgres://simptu_app@db.invalid:5432/simptu' }],
      [this.runtimeSecrets.redis, { url: 'redis://redis.invalid:6379' }],
    ] as const)
      await core.createNamespacedSecret({
        namespace: 'simptu-system',
        body: { metadata: { name }, stringData },
      });
    this.db = await createScratchDatabase(this.adminUrl, 'simptu_op');
    this.pool = new pg.Pool({ connectionString: this.db.url, max: 4 });
    this.pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
    return this;
  }

  config(over: Partial<OperatorConfig> = {}): OperatorConfig {
    return parseConfig({
      databaseUrl: this.db.url,
      kafkaBrokers: process.env.KAFKA_BROKERS!.split(','),
      appRole: this.appRole,
      appRolePassword: `pw-${this.shard}-secret`,
      kms: { secretName: `kek-${this.shard}`, createIfMissing: true },
      workers: 4,
      resyncPeriodMs: 600_000,
      metricsPort: 0,
      probePort: 0,
      agent: {
        readiness: 'applied',
        runtime: {
          databaseUrl: { name: this.runtimeSecrets.database, key: 'app-url' },
          redisUrl: { name: this.runtimeSecrets.redis, key: 'url' },
        },
      },
      leaderElection: {
        leaseName: `op-${this.shard}`,
        leaseDurationMs: 4000,
        renewDeadlineMs: 3000,
        retryPeriodMs: 500,
      },
      endpoints: {
        api: 'http://127.0.0.1:3003/t/{tenant}',
        websocket: 'ws://127.0.0.1:4000/socket/websocket',
        issuer: 'http://127.0.0.1:3001',
      },
      tenantSelector: `${SHARD_LABEL}=${this.shard}`,
      logLevel: 'silent',
      ...over,
    });
  }

  /** An operator in this process. */
  async start(over: Partial<OperatorConfig> = {}): Promise<OperatorHandle> {
    const config = this.config(over);
    const handle = await startOperator(config, { kc: this.kc, logger: pino({ level: config.logLevel }) });
    this.handles.push(handle);
    return handle;
  }

  /** An operator as its own process (`node operator/src/main.ts`), for crash and failover tests. */
  spawn(env: Record<string, string> = {}): ChildProcess & { exited: Promise<number | null> } {
    const c = this.config();
    const child = spawn(process.execPath, [resolve(ROOT, 'operator/src/main.ts')], {
      env: {
        ...process.env,
        SIMPTU_DATABASE_URL: c.databaseUrl,
        SIMPTU_APP_ROLE: c.appRole,
        SIMPTU_APP_ROLE_PASSWORD: c.appRolePassword!,
        SIMPTU_KEK_SECRET: c.kms.secretName,
        SIMPTU_KEK_CREATE_IF_MISSING: 'true',
        SIMPTU_DEDICATED_AGENT_READINESS: 'applied',
        SIMPTU_DEDICATED_AGENT_DATABASE_URL_SECRET: this.runtimeSecrets.database,
        SIMPTU_DEDICATED_AGENT_REDIS_URL_SECRET: this.runtimeSecrets.redis,
        SIMPTU_METRICS_PORT: '0',
        SIMPTU_PROBE_PORT: '0',
        SIMPTU_LEASE_NAME: c.leaderElection.leaseName,
        SIMPTU_LEASE_DURATION_MS: String(c.leaderElection.leaseDurationMs),
        SIMPTU_RENEW_DEADLINE_MS: String(c.leaderElection.renewDeadlineMs),
        SIMPTU_RETRY_PERIOD_MS: String(c.leaderElection.retryPeriodMs),
        SIMPTU_TENANT_SELECTOR: c.tenantSelector!,
        SIMPTU_LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    this.children.push(child);
    return Object.assign(child, { exited, output: () => output });
  }

  manifest(base: string, spec: SpecInput = {}, labels: Record<string, string> = {}): Tenant {
    return {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: this.name(base), labels: { ...labels, [SHARD_LABEL]: this.shard } },
      spec: {
        displayName: `Test ${base}`,
        businessType: 'dental',
        deletionPolicy: 'Delete',
        kafka: { partitions: 1 },
        ...spec,
      } as TenantSpec,
    };
  }

  async create(base: string, spec: SpecInput = {}, labels: Record<string, string> = {}): Promise<Tenant> {
    const m = this.manifest(base, spec, labels);
    this.created.add(m.metadata.name);
    return kubeRequest<Tenant>(this.kc, resourcePath(TENANTS), { method: 'POST', body: m });
  }

  async get(name: string): Promise<Tenant | undefined> {
    return kubeRequest<Tenant>(this.kc, resourcePath(TENANTS, name)).catch(() => undefined);
  }

  async patchSpec(name: string, spec: Record<string, unknown>): Promise<Tenant> {
    return kubeRequest<Tenant>(this.kc, resourcePath(TENANTS, name), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { spec },
    });
  }

  async delete(name: string): Promise<void> {
    await kubeRequest(this.kc, resourcePath(TENANTS, name), { method: 'DELETE' }).catch(() => undefined);
  }

  /** Waits until the tenant is Ready for its latest generation. */
  async ready(name: string, timeoutMs = 90_000): Promise<Tenant> {
    return eventually(
      `tenant ${name} to be Ready`,
      async () => {
        const t = await this.get(name);
        const ready = t?.status?.conditions?.find((c) => c.type === 'Ready');
        return t && ready?.status === 'True' && t.status?.observedGeneration === t.metadata.generation
          ? t
          : undefined;
      },
      timeoutMs,
    );
  }

  async gone(name: string, timeoutMs = 90_000): Promise<void> {
    await eventually(
      `tenant ${name} to be deleted`,
      async () => (await this.get(name)) === undefined,
      timeoutMs,
    );
  }

  async namespaceExists(name: string): Promise<boolean> {
    return this.kc
      .makeApiClient(CoreV1Api)
      .readNamespace({ name })
      .then(
        () => true,
        () => false,
      );
  }

  async topicsOf(name: string): Promise<string[]> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const all = new Set(await admin.listTopics());
      return Object.values(tenantTopics(name)).filter((t) => all.has(t));
    } finally {
      await admin.disconnect();
    }
  }

  async teardown(): Promise<void> {
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGKILL');
    // A clean operator finalizes what the tests left (deletionPolicy Delete everywhere).
    const leftovers = [...this.created];
    if (leftovers.length > 0) {
      const op =
        this.handles.find((h) => h.isLeader()) ??
        (await this.start({ leaderElection: { ...this.config().leaderElection, enabled: false } }));
      for (const n of leftovers) {
        await this.patchSpec(n, { deletionProtection: false, deletionPolicy: 'Delete' }).catch(
          () => undefined,
        );
        await this.delete(n);
      }
      for (const n of leftovers) await this.gone(n, 60_000).catch(() => undefined);
      void op;
    }
    for (const h of this.handles) await h.stop();
    // Safety net for anything a failed test left behind.
    const admin = new pg.Client({ connectionString: this.adminUrl });
    await admin.connect();
    try {
      for (const n of leftovers) {
        const id = tenantId(n);
        await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(id)} WITH (FORCE)`).catch(() => undefined);
      }
      await this.pool.end();
      await this.db.drop();
      const roles = await admin.query<{ rolname: string }>(
        `SELECT rolname FROM pg_roles WHERE rolname = $1 OR rolname = ANY($2)`,
        [this.appRole, leftovers.map(tenantId)],
      );
      for (const { rolname } of roles.rows) {
        await admin.query(`DROP OWNED BY ${quoteIdent(rolname)}`).catch(() => undefined);
        await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(rolname)}`).catch(() => undefined);
      }
    } finally {
      await admin.end();
    }
    const core = this.kc.makeApiClient(CoreV1Api);
    for (const name of [`kek-${this.shard}`, this.runtimeSecrets.database, this.runtimeSecrets.redis])
      await core.deleteNamespacedSecret({ name, namespace: 'simptu-system' }).catch(() => undefined);
  }
}
