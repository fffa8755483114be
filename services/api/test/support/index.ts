/**
 * Test support for the API's integration tests — READ THIS FIRST (the route engineers use it).
 *
 * Tenants are provisioned by the REAL operator code path (DESIGN §5): the operator's
 * `encryptionReconciler` (a DEK wrapped by a local KMS into `platform.tenant_keys`),
 * `databaseReconciler` (NOLOGIN tenant role, schema or dedicated database, migrations, grants,
 * membership of the NOINHERIT login role made by `ensureAppRole`), `topicsReconciler` (the
 * three tenant topics) and `registryReconciler` (the `platform.tenants` row + lifecycle event).
 * Each test FILE gets its own scratch platform database and login role; tenant names are unique
 * (`<prefix>-<8 hex>`), so files run in parallel against the shared servers. `cleanup()` runs the
 * reconcilers' finalizers with `deletionPolicy: Delete` (drops schemas/databases/roles/topics/
 * keys/rows), then the scratch database and login role.
 *
 * Typical test file:
 *
 *     import { afterAll, beforeAll, describe, expect, it } from 'vitest';
 *     import { buildTestApp, type TestApp } from './support/index.ts';
 *
 *     let t: TestApp;
 *     beforeAll(async () => {
 *       t = await buildTestApp({ tenants: [{ businessType: 'dental', timezone: 'Europe/Bucharest' }, {}] });
 *     });
 *     afterAll(() => t?.cleanup());
 *
 *     it('lists', async () => {
 *       const [a] = t.tenants;
 *       const token = await t.tokenFor(a, { roles: ['staff'] });          // sub defaults to a random uuid
 *       const customer = await t.createCustomer(a, { displayName: 'Ana' }); // a real customers row
 *       const ctoken = await t.tokenFor(a, { sub: customer.id, roles: ['customer'] });
 *       const res = await t.app.inject({ method: 'GET', url: '/v1/sessions', headers: t.auth(token) });
 *       expect(res.statusCode).toBe(200);
 *       // read tables directly (superuser, the tenant's database): encryption-at-rest checks
 *       const { rows } = await a.adminQuery(`SELECT body FROM ${a.table('messages')}`);
 *       // run domain code in the tenant's transaction, as the API does
 *       await a.run((ctx) => createService(ctx, { … }));
 *     });
 *
 * Exports:
 *   buildTestApp(opts?)                 → TestApp {app, issuer, platform, tenants, tokenFor, auth,
 *                                          createCustomer, provision, config, cleanup}
 *   createTestPlatform()                → TestPlatform (scratch db, login role, KEK, Kafka admin)
 *   provisionTenant(platform, name?, opts?) → TestTenant (the operator path)
 *   uniqueTenantName(prefix?)           → 'api-1a2b3c4d'
 *   testApiConfig(platform, issuer, overrides?) → ApiConfig pointing at all of it
 *   tokenFor(issuer, tenant, {sub?, roles?, expiresIn?, audience?}) → signed access token
 * Environment: DATABASE_URL (superuser), REDIS_URL, KAFKA_BROKERS, from the vitest global setup
 * (or `set -a; source .testenv/env; set +a`).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import kafkajs, { type Admin, type Producer } from 'kafkajs';
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import {
  createCustomer as domainCreateCustomer,
  createScratchDatabase,
  LocalKms,
  migratePlatform,
  quoteIdent,
  startTestIssuer,
  tenantTopics,
  uniqueName,
  withDatabase,
  withTenant,
  type Customer,
  type CustomerInput,
  type DomainContext,
  type FieldCipher,
  type KeyringCache,
  type Role,
  type ScratchDatabase,
  type TenantDbRef,
  type TestIssuer,
} from '@simptu/common';
import { KeyringCache as Keyrings } from '@simptu/common';
// The operator's real backend reconcilers provision test tenants (the same code path as the cluster).
import {
  API_VERSION,
  KIND,
  createRegistryProducer,
  databaseReconciler,
  encryptionReconciler,
  ensureAppRole,
  ensurePlatformTopic,
  registryReconciler,
  topicsReconciler,
  type BusinessType,
  type StepResult,
  type Tenant,
  type TenantStatus,
} from '@simptu/operator';
import { buildApp, type AppDeps } from '../../src/app.ts';
import { ApiConfigSchema, type ApiConfig } from '../../src/config.ts';
import type { TenantInfo } from '../../src/types.ts';
import { Value } from '@sinclair/typebox/value';

export function env(name: 'DATABASE_URL' | 'REDIS_URL' | 'KAFKA_BROKERS'): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through 'make test' or source .testenv/env`);
  return v;
}

/** A valid, unique tenant name: `<prefix>-<8 hex>`. */
export function uniqueTenantName(prefix = 'api'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

const noWrites = { inc: () => undefined };

export interface TestPlatform {
  /** the scratch platform database */
  db: ScratchDatabase;
  /** superuser pool on it */
  admin: pg.Pool;
  /** superuser URL of the server (any database) */
  adminUrl: string;
  /** the services' NOINHERIT login role and its URL on the platform database */
  appRole: string;
  appUrl: string;
  kms: LocalKms;
  /** base64 KEK, as the API's `SIMPTU_API_KEK` */
  kekBase64: string;
  kafkaAdmin: Admin;
  registryProducer: Producer;
  /** keyrings over the platform (superuser reads), for tests that encrypt/decrypt themselves */
  keyrings: KeyringCache;
  close(): Promise<void>;
}

export async function createTestPlatform(): Promise<TestPlatform> {
  const adminUrl = env('DATABASE_URL');
  const db = await createScratchDatabase(adminUrl, 'simptu_api');
  const admin = new pg.Pool({ connectionString: db.url, max: 4 });
  admin.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  const appRole = uniqueName('app_api');
  const password = randomBytes(12).toString('hex');
  const kek = randomBytes(32);
  const kms = new LocalKms(kek);
  const kafka = new kafkajs.Kafka({
    clientId: 'simptu-api-test',
    brokers: env('KAFKA_BROKERS').split(','),
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const kafkaAdmin = kafka.admin();
  const registryProducer = createRegistryProducer(kafka);
  try {
    await migratePlatform(admin);
    await ensureAppRole(admin, appRole, password);
    await kafkaAdmin.connect();
    await ensurePlatformTopic(kafkaAdmin, { replicationFactor: 1, numPartitions: 1 });
    await registryProducer.connect();
  } catch (err) {
    await admin.end();
    await db.drop();
    await dropRole(adminUrl, appRole);
    throw err;
  }
  const appUrl = new URL(db.url);
  appUrl.username = appRole;
  appUrl.password = password;
  return {
    db,
    admin,
    adminUrl,
    appRole,
    appUrl: appUrl.toString(),
    kms,
    kekBase64: kek.toString('base64'),
    kafkaAdmin,
    registryProducer,
    keyrings: new Keyrings({ db: admin, kms }),
    async close() {
      await registryProducer.disconnect().catch(() => undefined);
      await kafkaAdmin.disconnect().catch(() => undefined);
      await admin.end();
      await db.drop();
      await dropRole(adminUrl, appRole);
    },
  };
}

async function dropRole(adminUrl: string, role: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (exists.rowCount === 0) return;
    await c.query(`DROP OWNED BY ${quoteIdent(role)}`);
    await c.query(`DROP ROLE ${quoteIdent(role)}`);
  } finally {
    await c.end();
  }
}

export interface ProvisionOptions {
  /** @default 'dental' */
  businessType?: BusinessType;
  /** @default 'UTC' */
  timezone?: string;
  /** database isolation; @default 'shared' */
  isolation?: 'shared' | 'dedicated';
  displayName?: string;
  /** @default 'en-US' */
  locale?: string;
  /** write the registry row as suspended */
  suspended?: boolean;
  /** Kafka partitions; @default 1 */
  partitions?: number;
}

export interface TestTenant {
  name: string;
  /** the Tenant object the reconcilers were given */
  spec: Tenant;
  /** as the API's registry returns it */
  info: TenantInfo;
  ref: TenantDbRef;
  topics: { inbound: string; agent: string; domain: string };
  /** the database holding the tenant (platform db name for shared) */
  database: string;
  /** superuser query on the tenant's database (direct table reads in assertions) */
  adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: unknown[],
  ): Promise<pg.QueryResult<R>>;
  /** `"t_x"."<table>"` */
  table(name: string): string;
  /** the tenant's cipher (its real DEK, via the KMS) */
  cipher(): Promise<FieldCipher>;
  /** runs `fn` in the tenant's transaction as the login role (like `request.withTenant`) */
  run<T>(fn: (ctx: DomainContext) => Promise<T>): Promise<T>;
  /** registry state change (suspend/archive/reactivate) */
  setState(state: 'active' | 'suspended' | 'archived'): Promise<void>;
  deprovision(): Promise<void>;
}

function tenantObject(name: string, o: ProvisionOptions): Tenant {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, generation: 1 },
    spec: {
      displayName: o.displayName ?? `Test ${name}`,
      businessType: o.businessType ?? 'dental',
      locale: o.locale ?? 'en-US',
      timezone: o.timezone ?? 'UTC',
      isolation: { database: o.isolation ?? 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: o.partitions ?? 1, retentionHours: 1 },
      encryption: { rotationDays: 90 },
      frontend: { origins: [`https://${name}.example`], redirectURIs: [`https://${name}.example/cb`] },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: o.suspended ?? false,
    },
  } as Tenant;
}

function must(step: string, r: StepResult): Partial<TenantStatus> {
  if (r.kind !== 'ready') {
    const cause = r.kind === 'error' ? r.error : undefined;
    throw new Error(`provisioning ${step}: ${r.kind} ${r.reason}: ${r.message}`, { cause });
  }
  return r.status ?? {};
}

/**
 * Runs a reconcile step until ready, like the operator's work queue does (transient errors such
 * as a topic's leader not elected yet are retried with backoff; `blocked` fails at once).
 */
async function untilReady(step: string, fn: () => Promise<StepResult>): Promise<Partial<TenantStatus>> {
  let last: StepResult | undefined;
  for (let i = 0; i < 15; i++) {
    last = await fn();
    if (last.kind === 'ready' || last.kind === 'blocked') break;
    await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** i)));
  }
  return must(step, last!);
}

/** Provisions a tenant the way the operator does (see the file comment). */
export async function provisionTenant(
  platform: TestPlatform,
  name: string = uniqueTenantName(),
  opts: ProvisionOptions = {},
): Promise<TestTenant> {
  const tenant = tenantObject(name, opts);
  const dbDeps = {
    pg: platform.admin,
    adminUrl: platform.db.url,
    kms: platform.kms,
    appRole: platform.appRole,
    writes: noWrites,
  };
  const facts: Partial<TenantStatus> = {};
  Object.assign(facts, await untilReady('encryption', () => encryptionReconciler.reconcile(tenant, dbDeps)));
  Object.assign(facts, await untilReady('database', () => databaseReconciler.reconcile(tenant, dbDeps)));
  Object.assign(
    facts,
    await untilReady('topics', () =>
      topicsReconciler.reconcile(tenant, {
        admin: platform.kafkaAdmin,
        writes: noWrites,
        replicationFactor: 1,
      }),
    ),
  );
  await untilReady('registry', () =>
    registryReconciler.reconcile(tenant, {
      pg: platform.admin,
      producer: platform.registryProducer,
      writes: noWrites,
      facts,
    }),
  );
  const database = facts.database!.name;
  const ref: TenantDbRef = { name, schema: facts.database!.schema, role: facts.database!.schema };
  const tenantAdmin =
    database === platform.db.name
      ? undefined
      : new pg.Pool({ connectionString: withDatabase(platform.adminUrl, database), max: 2 });
  const appPool =
    database === platform.db.name
      ? new pg.Pool({ connectionString: platform.appUrl, max: 2 })
      : new pg.Pool({ connectionString: withDatabase(platform.appUrl, database), max: 2 });
  // idle clients ended by DROP DATABASE … FORCE
  for (const pool of [tenantAdmin, appPool]) pool?.on('error', () => undefined);
  const info: TenantInfo = {
    name,
    displayName: tenant.spec.displayName,
    businessType: tenant.spec.businessType,
    locale: tenant.spec.locale,
    timezone: tenant.spec.timezone,
    database,
    schema: ref.schema,
    role: ref.role,
    origins: tenant.spec.frontend?.origins ?? [],
    state: tenant.spec.suspended ? 'suspended' : 'active',
  };
  let gone = false;
  return {
    name,
    spec: tenant,
    info,
    ref,
    topics: tenantTopics(name),
    database,
    adminQuery: (sql, params) => (tenantAdmin ?? platform.admin).query(sql, params),
    table: (t) => `${quoteIdent(ref.schema)}.${quoteIdent(t)}`,
    cipher: () => platform.keyrings.cipher(name),
    async run(fn) {
      const cipher = await platform.keyrings.cipher(name);
      return withTenant(appPool, ref, (client) => fn({ client, cipher, timeZone: info.timezone }));
    },
    async setState(state) {
      await platform.admin.query(
        'UPDATE platform.tenants SET state = $2, updated_at = now() WHERE name = $1',
        [name, state],
      );
    },
    async deprovision() {
      if (gone) return;
      gone = true;
      await appPool.end();
      await tenantAdmin?.end();
      const errors: string[] = [];
      const note = (step: string, r: StepResult) => {
        if (r.kind !== 'ready') errors.push(`${step}: ${r.reason} ${r.message}`);
      };
      note(
        'registry',
        await registryReconciler.finalize(tenant, {
          pg: platform.admin,
          producer: platform.registryProducer,
          writes: noWrites,
        }),
      );
      note(
        'topics',
        await topicsReconciler.finalize(tenant, { admin: platform.kafkaAdmin, writes: noWrites }),
      );
      note('database', await databaseReconciler.finalize(tenant, dbDeps));
      note('encryption', await encryptionReconciler.finalize(tenant, dbDeps));
      if (errors.length > 0) throw new Error(`deprovisioning ${name}: ${errors.join('; ')}`);
    },
  };
}

/** An `ApiConfig` for the platform and issuer; `overrides` are merged per section. */
export function testApiConfig(
  platform: TestPlatform,
  issuer: TestIssuer,
  overrides: DeepPartial<ApiConfig> = {},
): ApiConfig {
  const base = {
    port: 0,
    host: '127.0.0.1',
    databaseUrl: platform.appUrl,
    databasePoolMax: 5,
    redisUrl: env('REDIS_URL'),
    // Unique per app: rate-limit counters and cache entries of parallel files never meet.
    redisPrefix: `test:${randomBytes(4).toString('hex')}:`,
    kafkaBrokers: env('KAFKA_BROKERS').split(','),
    kafkaClientId: 'simptu-api-test',
    kek: platform.kekBase64,
    auth: { issuer: issuer.issuer, audience: issuer.audience, jwksUri: issuer.jwksUri },
    rateLimit: { perPrincipal: 10_000, perTenant: 100_000, anonymous: 10_000 },
    cache: {
      registryTtlMs: 0,
      catalogTtlSec: 300,
      availabilityTtlSec: 30,
      keyringRefreshMs: 60_000,
      historyMaxBytes: 16 * 1024 * 1024,
      historyTtlSec: 60,
    },
    // The purge job runs when a test asks (`app.idempotencyPurge.runNow()`), not on a timer.
    idempotency: { retentionHours: 24, purgeIntervalSec: 0 },
    events: {
      relay: true,
      consumers: true,
      tenantRefreshMs: 1_000,
      groupPrefix: `simptu-api-test-${platform.db.name}`,
    },
    shutdownDelayMs: 0,
    logLevel: (process.env.SIMPTU_TEST_LOG_LEVEL ?? 'silent') as ApiConfig['logLevel'],
  };
  const merged: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    const b = (base as Record<string, unknown>)[k];
    merged[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' ? { ...b, ...v } : v;
  }
  if (!Value.Check(ApiConfigSchema, merged)) {
    const first = [...Value.Errors(ApiConfigSchema, merged)][0];
    throw new Error(`testApiConfig: ${first?.path} ${first?.message}`);
  }
  return merged as ApiConfig;
}

export type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};

export interface TokenOptions {
  /** @default a random uuid */
  sub?: string;
  /** @default ['staff'] */
  roles?: Role[];
  /** jose time span; @default '5m' */
  expiresIn?: string | number;
  audience?: string;
  /** extra claims */
  claims?: Record<string, unknown>;
}

export function tokenFor(
  issuer: TestIssuer,
  tenant: string | { name: string },
  opts: TokenOptions = {},
): Promise<string> {
  const name = typeof tenant === 'string' ? tenant : tenant.name;
  return issuer.signAccessToken(
    { tenant: name, sub: opts.sub ?? randomUUID(), roles: opts.roles ?? ['staff'], ...opts.claims },
    {
      ...(opts.expiresIn !== undefined ? { expiresIn: opts.expiresIn } : {}),
      ...(opts.audience !== undefined ? { audience: opts.audience } : {}),
    },
  );
}

export interface TestApp {
  app: FastifyInstance;
  issuer: TestIssuer;
  platform: TestPlatform;
  config: ApiConfig;
  /** provisioned before the app was built, in the order asked */
  tenants: TestTenant[];
  tokenFor(tenant: string | { name: string }, opts?: TokenOptions): Promise<string>;
  /** `{authorization: 'Bearer <token>'}` */
  auth(token: string): { authorization: string };
  /** a real customers row (encrypted PII) in the tenant; its id is the `sub` of a customer token */
  createCustomer(tenant: TestTenant, input?: CustomerInput): Promise<Customer>;
  /** provisions one more tenant (the app sees it at once: the registry TTL is 0 in tests) */
  provision(opts?: ProvisionOptions & { name?: string }): Promise<TestTenant>;
  cleanup(): Promise<void>;
}

export interface BuildTestAppOptions {
  /** tenants to provision first; @default two shared dental tenants */
  tenants?: Array<ProvisionOptions & { name?: string }>;
  config?: DeepPartial<ApiConfig>;
  deps?: AppDeps;
  /** wait until the relay and agent-replies consumer run for the tenants; @default true */
  waitForEvents?: boolean;
}

export async function buildTestApp(opts: BuildTestAppOptions = {}): Promise<TestApp> {
  const platform = await createTestPlatform();
  const issuer = await startTestIssuer();
  const tenants: TestTenant[] = [];
  let app: FastifyInstance | undefined;
  const cleanup = async () => {
    await app?.close();
    await issuer.close();
    const results = await Promise.allSettled(tenants.map((t) => t.deprovision()));
    await platform.close();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  try {
    for (const t of opts.tenants ?? [{}, {}]) tenants.push(await provisionTenant(platform, t.name, t));
    const config = testApiConfig(platform, issuer, opts.config);
    app = await buildApp(config, { relayPollMs: 200, ...opts.deps });
    await app.ready();
    if (opts.waitForEvents ?? true) await app.events.refresh();
    const built = app;
    return {
      app: built,
      issuer,
      platform,
      config,
      tenants,
      tokenFor: (tenant, o) => tokenFor(issuer, tenant, o),
      auth: (token) => ({ authorization: `Bearer ${token}` }),
      createCustomer: (tenant, input = {}) =>
        tenant.run((ctx) => domainCreateCustomer(ctx, { displayName: 'Test Customer', ...input })),
      async provision(o = {}) {
        const t = await provisionTenant(platform, o.name, o);
        tenants.push(t);
        return t;
      },
      cleanup,
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}
