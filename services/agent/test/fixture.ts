/**
 * Tenants for the agent's integration tests, provisioned the way the operator does it (DESIGN
 * §5.3): a scratch platform database with the platform schema, a NOINHERIT login role, per
 * tenant a NOLOGIN role + migrated schema (exact grants by `migrateTenantSchema`), a DEK
 * wrapped by a local KMS in `platform.tenant_keys`, the registry row in `platform.tenants`
 * and the three Kafka topics. (The API's support uses the operator's reconcilers themselves;
 * this package's tsconfig doesn't reference the operator project, so this mirrors their
 * outputs with the common library's primitives.)
 */
import { randomBytes } from 'node:crypto';
import kafkajs, { type Admin } from 'kafkajs';
import pg from 'pg';
import {
  createScratchDatabase,
  dekWrapAad,
  generateDek,
  KeyringCache,
  LocalKms,
  migratePlatform,
  migrateTenantSchema,
  quoteIdent,
  quoteLiteral,
  tenantDbRef,
  tenantTopics,
  uniqueName,
  withTenant,
  type DomainContext,
  type FieldCipher,
  type ScratchDatabase,
  type TenantDbRef,
} from '@simptu/common';

function env(name: 'DATABASE_URL' | 'KAFKA_BROKERS'): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: source .testenv/env`);
  return v;
}

export function uniqueTenantName(prefix = 'ag'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface TestPlatform {
  db: ScratchDatabase;
  admin: pg.Pool;
  appRole: string;
  /** login-role URL on the platform database */
  appUrl: string;
  kms: LocalKms;
  kekBase64: string;
  kafkaAdmin: Admin;
  keyrings: KeyringCache;
  close(): Promise<void>;
}

async function dropRole(role: string): Promise<void> {
  const c = new pg.Client({ connectionString: env('DATABASE_URL') });
  await c.connect();
  try {
    if ((await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount === 0) return;
    await c.query(`DROP OWNED BY ${quoteIdent(role)}`);
    await c.query(`DROP ROLE ${quoteIdent(role)}`);
  } finally {
    await c.end();
  }
}

export async function createTestPlatform(): Promise<TestPlatform> {
  const db = await createScratchDatabase(env('DATABASE_URL'), 'simptu_agent');
  const admin = new pg.Pool({ connectionString: db.url, max: 4 });
  // DROP DATABASE … WITH (FORCE) at the end terminates connections still closing (57P01).
  admin.on('error', () => undefined);
  const appRole = uniqueName('app_agent');
  const password = randomBytes(12).toString('hex');
  const kek = randomBytes(32);
  const kms = new LocalKms(kek);
  const kafka = new kafkajs.Kafka({
    clientId: 'simptu-agent-fixture',
    brokers: env('KAFKA_BROKERS').split(','),
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const kafkaAdmin = kafka.admin();
  await migratePlatform(admin);
  await admin.query(`CREATE ROLE ${quoteIdent(appRole)} LOGIN NOINHERIT PASSWORD ${quoteLiteral(password)}`);
  await admin.query(`GRANT USAGE ON SCHEMA platform TO ${quoteIdent(appRole)}`);
  await admin.query(`GRANT SELECT ON platform.tenants, platform.tenant_keys TO ${quoteIdent(appRole)}`);
  await kafkaAdmin.connect();
  const url = new URL(db.url);
  url.username = appRole;
  url.password = password;
  return {
    db,
    admin,
    appRole,
    appUrl: url.toString(),
    kms,
    kekBase64: kek.toString('base64'),
    kafkaAdmin,
    keyrings: new KeyringCache({ db: admin, kms }),
    async close() {
      await kafkaAdmin.disconnect().catch(() => undefined);
      await admin.end();
      await db.drop();
      await dropRole(appRole);
    },
  };
}

export interface ProvisionOptions {
  businessType?: 'dental' | 'gym' | 'hotel';
  timezone?: string;
  displayName?: string;
  locale?: string;
  agent?: Record<string, unknown>;
  integrations?: Record<string, unknown>;
  agentIsolation?: 'shared' | 'dedicated';
}

export interface TestTenant {
  name: string;
  ref: TenantDbRef;
  timezone: string;
  topics: { inbound: string; agent: string; domain: string };
  adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: unknown[],
  ): Promise<pg.QueryResult<R>>;
  table(name: string): string;
  cipher(): Promise<FieldCipher>;
  run<T>(fn: (ctx: DomainContext) => Promise<T>): Promise<T>;
  deprovision(): Promise<void>;
}

export async function provisionTenant(
  platform: TestPlatform,
  name = uniqueTenantName(),
  o: ProvisionOptions = {},
): Promise<TestTenant> {
  const ref = tenantDbRef(name);
  const tz = o.timezone ?? 'UTC';
  await platform.admin.query(`CREATE ROLE ${quoteIdent(ref.role)} NOLOGIN`);
  await migrateTenantSchema(platform.admin, ref);
  await platform.admin.query(`GRANT ${quoteIdent(ref.role)} TO ${quoteIdent(platform.appRole)}`);
  const wrapped = await platform.kms.wrap(generateDek(), dekWrapAad(name, 1));
  await platform.admin.query(
    'INSERT INTO platform.tenant_keys (tenant, version, wrapped_dek, kek_id) VALUES ($1, 1, $2, $3)',
    [name, wrapped, platform.kms.kekId],
  );
  const topics = tenantTopics(name);
  await platform.kafkaAdmin.createTopics({
    waitForLeaders: true,
    topics: Object.values(topics).map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })),
  });
  await platform.admin.query(
    `INSERT INTO platform.tenants (name, tenant_id, display_name, business_type, locale, timezone, agent_isolation,
                                   database_name, schema_name, schema_version, active_key_version, topics, integrations, agent)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 5, 1, $10, $11, $12)`,
    [
      name,
      ref.schema,
      o.displayName ?? `Test ${name}`,
      o.businessType ?? 'dental',
      o.locale ?? 'en-US',
      tz,
      o.agentIsolation ?? 'shared',
      platform.db.name,
      ref.schema,
      Object.values(topics),
      JSON.stringify(o.integrations ?? {}),
      JSON.stringify(o.agent ?? { replicas: 1, model: { provider: 'builtin' } }),
    ],
  );
  const app = new pg.Pool({ connectionString: platform.appUrl, max: 2 });
  app.on('error', () => undefined);
  let gone = false;
  return {
    name,
    ref,
    timezone: tz,
    topics,
    adminQuery: (sql, params) => platform.admin.query(sql, params),
    table: (t) => `${quoteIdent(ref.schema)}.${quoteIdent(t)}`,
    cipher: () => platform.keyrings.cipher(name),
    async run(fn) {
      const cipher = await platform.keyrings.cipher(name);
      return withTenant(app, ref, (client) => fn({ client, cipher, timeZone: tz }));
    },
    async deprovision() {
      if (gone) return;
      gone = true;
      await app.end();
      await platform.kafkaAdmin
        .deleteTopics({ topics: Object.values(topics), timeout: 10_000 })
        .catch(() => undefined);
      await platform.admin.query('DELETE FROM platform.tenants WHERE name = $1', [name]);
      await platform.admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(ref.schema)} CASCADE`);
      await dropRole(ref.role);
    },
  };
}
