/**
 * Integration-test fixture: tenants provisioned the way the operator does it (DESIGN §5.3) in
 * a scratch database — platform schema, NOLOGIN tenant roles with migrated schemas, a NOINHERIT
 * login role that is a member of them, a data key per tenant wrapped by a local KMS — plus
 * their Kafka topics. Everything has a random suffix and `close()` removes it all.
 */
import { randomBytes } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import pg from 'pg';
import { generateDek } from '../src/crypto/envelope.ts';
import { KeyringCache } from '../src/crypto/keyring-cache.ts';
import { dekWrapAad, LocalKms } from '../src/crypto/kms.ts';
import { quoteIdent, quoteLiteral } from '../src/db/identifiers.ts';
import { migratePlatform, migrateTenantSchema } from '../src/db/migrations.ts';
import { createScratchDatabase, uniqueName, type ScratchDatabase } from '../src/db/scratch.ts';
import { tenantDbRef, type TenantDbRef } from '../src/db/tenant-db.ts';
import { createKafka } from '../src/events/producer.ts';
import { tenantTopics } from '../src/names.ts';
import { adminUrl, dropRoles } from './support.ts';

export function kafkaBrokers(): string[] {
  const b = process.env.KAFKA_BROKERS;
  if (!b)
    throw new Error("KAFKA_BROKERS is not set: run the tests through 'make test' (or 'make testenv-up')");
  return b.split(',').map((s) => s.trim());
}

/** A valid, unique tenant name: `<prefix>-<8 hex>`. */
export function uniqueTenantName(prefix = 'ev'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface TenantFixture {
  db: ScratchDatabase;
  /** superuser pool on the scratch database (inspection, platform reads) */
  admin: pg.Pool;
  /** the services' NOINHERIT login-role pool */
  app: pg.Pool;
  tenants: TenantDbRef[];
  keyrings: KeyringCache;
  kafka: Kafka;
  close(): Promise<void>;
}

export async function createTenantFixture(
  names: string[],
  opts: { topics?: boolean; partitions?: number } = {},
): Promise<TenantFixture> {
  const db = await createScratchDatabase(adminUrl());
  const admin = new pg.Pool({ connectionString: db.url, max: 4 });
  admin.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  const login = uniqueName('app_test');
  const password = uniqueName('pw');
  const tenants = names.map(tenantDbRef);
  const kms = LocalKms.generate();
  const kafka = createKafka({ clientId: 'simptu-common-test', brokers: kafkaBrokers() });
  let kadmin: Admin | undefined;
  const topics = opts.topics === false ? [] : names.flatMap((n) => Object.values(tenantTopics(n)));

  const close = async () => {
    if (kadmin) {
      await kadmin.deleteTopics({ topics, timeout: 10_000 }).catch(() => undefined);
      await kadmin.disconnect();
    }
    await app?.end();
    await admin.end();
    await db.drop();
    await dropRoles(adminUrl(), [login, ...tenants.map((t) => t.role)]);
  };

  let app: pg.Pool | undefined;
  try {
    await migratePlatform(admin);
    await admin.query(`CREATE ROLE ${quoteIdent(login)} LOGIN NOINHERIT PASSWORD ${quoteLiteral(password)}`);
    for (const t of tenants) {
      await admin.query(`CREATE ROLE ${quoteIdent(t.role)} NOLOGIN`);
      await migrateTenantSchema(admin, t);
      await admin.query(`GRANT ${quoteIdent(t.role)} TO ${quoteIdent(login)}`);
      const wrapped = await kms.wrap(generateDek(), dekWrapAad(t.name, 1));
      await admin.query(
        'INSERT INTO platform.tenant_keys (tenant, version, wrapped_dek, kek_id) VALUES ($1, 1, $2, $3)',
        [t.name, wrapped, kms.kekId],
      );
    }
    const url = new URL(db.url);
    url.username = login;
    url.password = password;
    app = new pg.Pool({ connectionString: url.toString(), max: 6 });
    app.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
    if (topics.length > 0) {
      kadmin = kafka.admin();
      await kadmin.connect();
      await kadmin.createTopics({
        waitForLeaders: true,
        topics: topics.map((topic) => ({ topic, numPartitions: opts.partitions ?? 3, replicationFactor: 1 })),
      });
    }
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  return { db, admin, app, tenants, keyrings: new KeyringCache({ db: admin, kms }), kafka, close };
}
