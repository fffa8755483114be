/**
 * Integration-test support: a scratch platform database with tenants provisioned the way the
 * operator does it (DESIGN §5.3: registry row, NOLOGIN tenant role with a migrated schema, a
 * NOINHERIT login role that is a member, a wrapped data key, Kafka topics), hub instances
 * started in-process on free ports, and the official `phoenix` client over `ws`.
 * Everything has a random suffix; `close()` removes it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket as NetSocket, connect as netConnect } from 'node:net';
import type { Admin, Kafka } from 'kafkajs';
import pg from 'pg';
import { Socket, type Channel } from 'phoenix';
import { WebSocket } from 'ws';
import {
  createCustomer,
  createKafka,
  createLogger,
  createScratchDatabase,
  createSession,
  dekWrapAad,
  EventProducer,
  generateDek,
  KeyringCache,
  LocalKms,
  migratePlatform,
  migrateTenantSchema,
  newCloudEvent,
  quoteIdent,
  quoteLiteral,
  tenantDbRef,
  tenantTopics,
  uniqueName,
  withDatabase,
  withTenant,
  type ScratchDatabase,
  type TenantDbRef,
  type TestIssuer,
} from '@simptu/common';
import {
  API_VERSION,
  KIND,
  createRegistryProducer,
  databaseReconciler,
  encryptionReconciler,
  ensurePlatformTopic,
  registryReconciler,
  topicsReconciler,
  type StepResult,
  type Tenant,
  type TenantStatus,
} from '@simptu/operator';
import { startRealtime, type RealtimeApp } from '../src/app.ts';
import type { RealtimeConfig } from '../src/config.ts';

export function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through 'make test' (or 'make testenv-up')`);
  return v;
}

export function uniqueTenantName(prefix = 'rt'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface Platform {
  db: ScratchDatabase;
  admin: pg.Pool;
  /** login-role URL on the scratch database (what the hub gets) */
  appUrl: string;
  /** the services' NOINHERIT login role in `appUrl` */
  appRole: string;
  kms: LocalKms;
  /** the KEK, base64, for the hub's config */
  kekBase64: string;
  keyrings: KeyringCache;
  kafka: Kafka;
  tenants: TenantDbRef[];
  producer: EventProducer;
  /** a customer row (its id is the token `sub` of a customer) */
  createCustomer(tenant: string): Promise<string>;
  createSession(tenant: string, customerId: string | null): Promise<string>;
  /** produces a CloudEvent on the tenant's agent/domain topic, keyed by the session (or id) */
  produce(
    tenant: string,
    kind: 'agent' | 'domain',
    type: string,
    data: Record<string, unknown>,
    key?: string,
  ): Promise<string>;
  close(): Promise<void>;
}

export async function createPlatform(
  names: string[],
  opts: { origins?: Record<string, string[]>; partitions?: number } = {},
): Promise<Platform> {
  const adminUrl = env('DATABASE_URL');
  const db = await createScratchDatabase(adminUrl, 'simptu_rt');
  const admin = new pg.Pool({ connectionString: db.url, max: 4 });
  admin.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  const login = uniqueName('app_rt');
  const password = uniqueName('pw');
  const tenants = names.map(tenantDbRef);
  const kek = randomBytes(32);
  const kms = new LocalKms(kek);
  const kafka = createKafka({ clientId: 'simptu-realtime-test', brokers: env('KAFKA_BROKERS').split(',') });
  const topics = names.flatMap((n) => Object.values(tenantTopics(n)));
  let kadmin: Admin | undefined;
  const producer = new EventProducer({ kafka });
  let app: pg.Pool | undefined;
  const roles = [login, ...tenants.map((t) => t.role)];

  const close = async () => {
    await producer.disconnect();
    if (kadmin) {
      await kadmin.deleteTopics({ topics, timeout: 10_000 }).catch(() => undefined);
      await kadmin.disconnect();
    }
    await app?.end();
    await admin.end();
    await db.drop();
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      for (const r of roles) {
        if ((await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [r])).rowCount === 0) continue;
        await c.query(`DROP ROLE ${quoteIdent(r)}`);
      }
    } finally {
      await c.end();
    }
  };

  const url = new URL(db.url);
  url.username = login;
  url.password = password;
  try {
    await migratePlatform(admin);
    await admin.query(`CREATE ROLE ${quoteIdent(login)} LOGIN NOINHERIT PASSWORD ${quoteLiteral(password)}`);
    // What the operator's database reconciler grants the services' role.
    await admin.query(`GRANT USAGE ON SCHEMA platform TO ${quoteIdent(login)}`);
    await admin.query(`GRANT SELECT ON platform.tenants, platform.tenant_keys TO ${quoteIdent(login)}`);
    for (const t of tenants) {
      await admin.query(`CREATE ROLE ${quoteIdent(t.role)} NOLOGIN`);
      await migrateTenantSchema(admin, t);
      await admin.query(`GRANT ${quoteIdent(t.role)} TO ${quoteIdent(login)}`);
      const wrapped = await kms.wrap(generateDek(), dekWrapAad(t.name, 1));
      await admin.query(
        'INSERT INTO platform.tenant_keys (tenant, version, wrapped_dek, kek_id) VALUES ($1, 1, $2, $3)',
        [t.name, wrapped, kms.kekId],
      );
      await admin.query(
        `INSERT INTO platform.tenants (name, tenant_id, display_name, business_type, database_name, schema_name,
                                       active_key_version, topics, origins, state)
         VALUES ($1, $2, $3, 'dental', $4, $5, 1, $6, $7, 'active')`,
        [
          t.name,
          t.role,
          `Test ${t.name}`,
          db.name,
          t.schema,
          Object.values(tenantTopics(t.name)),
          opts.origins?.[t.name] ?? [],
        ],
      );
    }
    app = new pg.Pool({ connectionString: url.toString(), max: 4 });
    app.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
    kadmin = kafka.admin();
    await kadmin.connect();
    await kadmin.createTopics({
      waitForLeaders: true,
      topics: topics.map((topic) => ({ topic, numPartitions: opts.partitions ?? 3, replicationFactor: 1 })),
    });
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  const keyrings = new KeyringCache({ db: admin, kms });
  const appPool = app;
  const refOf = (name: string) => tenants.find((t) => t.name === name)!;
  return {
    db,
    admin,
    appUrl: url.toString(),
    appRole: login,
    kms,
    kekBase64: kek.toString('base64'),
    keyrings,
    kafka,
    tenants,
    producer,
    async createCustomer(tenant) {
      const cipher = await keyrings.cipher(tenant);
      return withTenant(appPool, refOf(tenant), async (client) => {
        const c = await createCustomer({ client, cipher, timeZone: 'UTC' }, { displayName: 'Test Customer' });
        return c.id;
      });
    },
    async createSession(tenant, customerId) {
      const cipher = await keyrings.cipher(tenant);
      return withTenant(appPool, refOf(tenant), async (client) => {
        const s = await createSession({ client, cipher, timeZone: 'UTC' }, { customerId, channel: 'web' });
        return s.id;
      });
    },
    async produce(tenant, kind, type, data, key) {
      const event = newCloudEvent({ type, source: '/simptu/test', tenant, data });
      const k = key ?? (typeof data.session_id === 'string' ? data.session_id : event.id);
      await producer.send(tenantTopics(tenant)[kind], event, k);
      return event.id;
    },
    close,
  };
}

// ------------------------------------------------------------------ operator-provisioned tenants

/** A tenant provisioned by the operator's real reconcilers (e.g. with a dedicated database). */
export interface OperatorTenant {
  name: string;
  ref: TenantDbRef;
  /** the database holding its schema (its own for `dedicated`) */
  database: string;
  /** superuser pool on that database (assertions on stored rows) */
  admin: pg.Pool;
  createCustomer(): Promise<string>;
  createSession(customerId: string | null): Promise<string>;
  deprovision(): Promise<void>;
}

const noWrites = { inc: () => undefined };

/**
 * Provisions a tenant the way the operator does (the API's test support does the same): its
 * `encryptionReconciler` (a DEK in `platform.tenant_keys`), `databaseReconciler` (NOLOGIN role,
 * schema — in a database of its own for `isolation: 'dedicated'` —, migrations, grants,
 * membership and CONNECT for the platform's login role), `topicsReconciler` and
 * `registryReconciler` (the `platform.tenants` row naming its database). `deprovision()` runs
 * their finalizers (deletion policy Delete).
 */
export async function provisionTenant(
  p: Platform,
  name: string,
  opts: { isolation: 'shared' | 'dedicated'; partitions?: number },
): Promise<OperatorTenant> {
  const tenant = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, generation: 1 },
    spec: {
      displayName: `Test ${name}`,
      businessType: 'dental',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: opts.isolation, agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: opts.partitions ?? 1, retentionHours: 1 },
      encryption: { rotationDays: 90 },
      frontend: { origins: [], redirectURIs: [`https://${name}.example/cb`] },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: false,
    },
  } as unknown as Tenant;
  const kadmin = p.kafka.admin();
  await kadmin.connect();
  await ensurePlatformTopic(kadmin, { replicationFactor: 1, numPartitions: 1 });
  const registryProducer = createRegistryProducer(p.kafka);
  await registryProducer.connect();
  const dbDeps = { pg: p.admin, adminUrl: p.db.url, kms: p.kms, appRole: p.appRole, writes: noWrites };
  const untilReady = async (step: string, fn: () => Promise<StepResult>): Promise<Partial<TenantStatus>> => {
    let last: StepResult | undefined;
    for (let i = 0; i < 15; i++) {
      last = await fn();
      if (last.kind === 'ready' || last.kind === 'blocked') break;
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** i)));
    }
    if (last!.kind !== 'ready')
      throw new Error(`provisioning ${step}: ${last!.kind} ${last!.reason}: ${last!.message}`);
    return last!.status ?? {};
  };
  const facts: Partial<TenantStatus> = {};
  const pools: { admin?: pg.Pool; app?: pg.Pool } = {};
  const deprovision = async () => {
    await pools.app?.end();
    await pools.admin?.end();
    const problems: string[] = [];
    const note = (step: string, r: StepResult) => {
      if (r.kind !== 'ready') problems.push(`${step}: ${r.reason} ${r.message}`);
    };
    note(
      'registry',
      await registryReconciler.finalize(tenant, {
        pg: p.admin,
        producer: registryProducer,
        writes: noWrites,
      }),
    );
    note('topics', await topicsReconciler.finalize(tenant, { admin: kadmin, writes: noWrites }));
    note('database', await databaseReconciler.finalize(tenant, dbDeps));
    note('encryption', await encryptionReconciler.finalize(tenant, dbDeps));
    await registryProducer.disconnect().catch(() => undefined);
    await kadmin.disconnect().catch(() => undefined);
    if (problems.length > 0) throw new Error(`deprovisioning ${name}: ${problems.join('; ')}`);
  };
  try {
    Object.assign(
      facts,
      await untilReady('encryption', () => encryptionReconciler.reconcile(tenant, dbDeps)),
    );
    Object.assign(facts, await untilReady('database', () => databaseReconciler.reconcile(tenant, dbDeps)));
    Object.assign(
      facts,
      await untilReady('topics', () =>
        topicsReconciler.reconcile(tenant, { admin: kadmin, writes: noWrites, replicationFactor: 1 }),
      ),
    );
    await untilReady('registry', () =>
      registryReconciler.reconcile(tenant, {
        pg: p.admin,
        producer: registryProducer,
        writes: noWrites,
        facts,
      }),
    );
  } catch (err) {
    await deprovision().catch(() => undefined);
    throw err;
  }
  const database = facts.database!.name;
  const ref: TenantDbRef = { name, schema: facts.database!.schema, role: facts.database!.schema };
  const admin = (pools.admin = new pg.Pool({ connectionString: withDatabase(p.db.url, database), max: 2 }));
  // The services' login role on the tenant's database, as the hub's pool for it connects.
  const appPool = (pools.app = new pg.Pool({ connectionString: withDatabase(p.appUrl, database), max: 2 }));
  for (const pool of [admin, appPool]) pool.on('error', () => undefined); // ended by DROP DATABASE … FORCE
  return {
    name,
    ref,
    database,
    admin,
    async createCustomer() {
      const cipher = await p.keyrings.cipher(name);
      return withTenant(appPool, ref, async (client) => {
        const c = await createCustomer({ client, cipher, timeZone: 'UTC' }, { displayName: 'Test Customer' });
        return c.id;
      });
    },
    async createSession(customerId) {
      const cipher = await p.keyrings.cipher(name);
      return withTenant(appPool, ref, async (client) => {
        const s = await createSession({ client, cipher, timeZone: 'UTC' }, { customerId, channel: 'web' });
        return s.id;
      });
    },
    deprovision,
  };
}

export function hubConfig(
  p: Platform,
  issuer: TestIssuer,
  over: Partial<RealtimeConfig> = {},
): RealtimeConfig {
  const id = `it-${randomBytes(4).toString('hex')}`;
  return {
    host: '127.0.0.1',
    port: 0,
    instanceId: id,
    logLevel: 'silent',
    databaseUrl: p.appUrl,
    databasePoolMax: 4,
    redisUrl: env('REDIS_URL'),
    kafkaBrokers: env('KAFKA_BROKERS').split(','),
    kafkaGroupPrefix: `simptu-realtime-test-${id}`,
    kafkaPartitionsConcurrency: 8,
    kafkaCommitIntervalMs: 5000,
    auth: { issuer: issuer.issuer, audience: [issuer.audience], jwksUri: issuer.jwksUri },
    kekBase64: p.kekBase64,
    limits: {
      maxFrameBytes: 64 * 1024,
      idleTimeoutMs: 60_000,
      maxChannelsPerSocket: 100,
      maxMalformedFrames: 10,
      highWaterBytes: 64 * 1024,
      maxBufferedBytes: 4 * 1024 * 1024,
    },
    history: { maxCount: 200, maxAgeMs: 600_000, streamTtlMs: 3600_000, dedupTtlMs: 3600_000 },
    presence: { heartbeatMs: 300, instanceTtlMs: 1500 },
    registryRefreshMs: 60_000,
    outboxRelay: true,
    drainTimeoutMs: 5000,
    ...over,
  };
}

export async function startHub(
  p: Platform,
  issuer: TestIssuer,
  over: Partial<RealtimeConfig> = {},
): Promise<RealtimeApp> {
  const app = await startRealtime(hubConfig(p, issuer, over), {
    logger: createLogger({ service: 'realtime-test', level: process.env.RT_TEST_LOG ?? 'silent' }),
  });
  await app.ingest.whenReady();
  return app;
}

// ------------------------------------------------------------------ the phoenix client

export function phoenixSocket(
  url: string,
  params: Record<string, unknown> | (() => Record<string, unknown>),
  opts: Record<string, unknown> = {},
): Socket {
  return new Socket(url, {
    transport: WebSocket as unknown as typeof globalThis.WebSocket,
    params,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
    ...opts,
  });
}

export async function openSocket(
  url: string,
  token: string,
  opts: Record<string, unknown> = {},
): Promise<Socket> {
  const s = phoenixSocket(url, { token }, opts);
  await new Promise<void>((resolve, reject) => {
    const ok = s.onOpen(() => {
      s.off([ok, bad]);
      resolve();
    });
    const bad = s.onError((e: unknown) => {
      s.off([ok, bad]);
      s.disconnect();
      reject(new Error(`socket did not open: ${String((e as { message?: string })?.message ?? e)}`));
    });
    s.connect();
  });
  return s;
}

export interface JoinResult {
  status: 'ok' | 'error' | 'timeout';
  response: Record<string, unknown>;
}

export function join(ch: Channel, timeout = 10_000): Promise<JoinResult> {
  return new Promise((resolve) => {
    ch.join(timeout)
      .receive('ok', (r: Record<string, unknown>) => resolve({ status: 'ok', response: r }))
      .receive('error', (r: Record<string, unknown>) => resolve({ status: 'error', response: r }))
      .receive('timeout', () => resolve({ status: 'timeout', response: {} }));
  });
}

export function push(
  ch: Channel,
  event: string,
  payload: Record<string, unknown>,
  timeout = 10_000,
): Promise<JoinResult> {
  return new Promise((resolve) => {
    ch.push(event, payload, timeout)
      .receive('ok', (r: Record<string, unknown>) => resolve({ status: 'ok', response: r }))
      .receive('error', (r: Record<string, unknown>) => resolve({ status: 'error', response: r }))
      .receive('timeout', () => resolve({ status: 'timeout', response: {} }));
  });
}

/** Collects a channel's pushes of the given events. */
export function collect(
  ch: Channel,
  events: string[],
): Array<{ event: string; payload: Record<string, unknown> }> {
  const out: Array<{ event: string; payload: Record<string, unknown> }> = [];
  for (const e of events)
    ch.on(e, (payload: Record<string, unknown>) => {
      out.push({ event: e, payload });
    });
  return out;
}

export async function waitFor<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A raw `ws` upgrade: the HTTP status it was refused with, or 101. */
export function upgradeStatus(
  url: string,
  headers: Record<string, string> = {},
  protocols?: string[],
): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols, { headers });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.on('error', () => undefined);
  });
}

/** A raw `ws` client that speaks frames by hand (malformed-frame tests). */
export async function rawClient(
  url: string,
): Promise<{ ws: WebSocket; frames: unknown[][]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(url);
  const frames: unknown[][] = [];
  ws.on('message', (d) => {
    try {
      frames.push(JSON.parse(String(d)) as unknown[]);
    } catch {
      // ignore
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.on('close', (code, reason) => r({ code, reason: String(reason) })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, frames, closed };
}

/**
 * A TCP load balancer in front of hub instances: each connection goes to the first backend
 * that accepts it, as a Kubernetes Service does once a draining pod stops listening.
 */
export async function startBalancer(
  ports: () => number[],
): Promise<{ port: number; close(): Promise<void> }> {
  const open = new Set<NetSocket>();
  const server: Server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.pause();
    const tryNext = (i: number) => {
      const list = ports();
      if (i >= list.length) return client.destroy();
      const upstream = netConnect(list[i]!, '127.0.0.1');
      upstream.once('error', () => tryNext(i + 1));
      upstream.once('connect', () => {
        open.add(upstream);
        upstream.on('close', () => open.delete(upstream));
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryNext(0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}

export const newUuid = randomUUID;
