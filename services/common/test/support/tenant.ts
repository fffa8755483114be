/**
 * A migrated tenant in a scratch database, reached the way the services reach it: a NOINHERIT
 * login role that is a member of the tenant's NOLOGIN role, every query inside `withTenant`.
 * Plus the tenant's field cipher (a random DEK, no KMS: the cipher is what the domain needs).
 *
 *     const t = await createTestTenant();
 *     await t.run((client) => …);      // withTenant(t.app, t.ref, …)
 *     await t.close();                 // pools, database, roles
 */
import pg from 'pg';
import { FieldCipher, generateDek, TenantKeyring } from '../../src/crypto/envelope.ts';
import { quoteIdent, quoteLiteral } from '../../src/db/identifiers.ts';
import { migratePlatform, migrateTenantSchema } from '../../src/db/migrations.ts';
import { createScratchDatabase, uniqueName, type ScratchDatabase } from '../../src/db/scratch.ts';
import { tenantDbRef, withTenant, type TenantDbRef } from '../../src/db/tenant-db.ts';
import { adminUrl, dropRoles } from '../support.ts';

export interface TestTenant {
  db: ScratchDatabase;
  /** superuser pool on the scratch database: for reading tables directly in assertions */
  admin: pg.Pool;
  /** the services' NOINHERIT login role */
  app: pg.Pool;
  ref: TenantDbRef;
  cipher: FieldCipher;
  /** key version → DEK, to build rotated keyrings */
  deks: Map<number, Buffer>;
  run<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  /** `schema.table`, quoted, for admin queries */
  table(name: string): string;
  close(): Promise<void>;
}

export interface TestTenantOptions {
  /** size of the login-role pool; @default 4 */
  poolSize?: number;
}

export async function createTestTenant(options: TestTenantOptions = {}): Promise<TestTenant> {
  const db = await createScratchDatabase(adminUrl(), 'simptu_domain');
  const admin = new pg.Pool({ connectionString: db.url, max: 3 });
  // An idle client ended by the server must not surface as an unhandled error in the test run.
  admin.on('error', () => undefined);
  // Tenant names are DNS labels; `dom-<12 hex>` is unique per run and valid everywhere.
  const ref = tenantDbRef(uniqueName('dom').replace('_', '-'));
  const login = uniqueName('app_dom');
  const password = uniqueName('pw');
  let app: pg.Pool | undefined;
  try {
    await migratePlatform(admin);
    await admin.query(`CREATE ROLE ${quoteIdent(login)} LOGIN NOINHERIT PASSWORD ${quoteLiteral(password)}`);
    await admin.query(`CREATE ROLE ${quoteIdent(ref.role)} NOLOGIN`);
    await migrateTenantSchema(admin, ref);
    await admin.query(`GRANT ${quoteIdent(ref.role)} TO ${quoteIdent(login)}`);
    const url = new URL(db.url);
    url.username = login;
    url.password = password;
    app = new pg.Pool({ connectionString: url.toString(), max: options.poolSize ?? 4 });
    app.on('error', () => undefined);
  } catch (err) {
    await admin.end();
    await db.drop();
    await dropRoles(adminUrl(), [login, ref.role]);
    throw err;
  }
  const deks = new Map([[1, generateDek()]]);
  const appPool = app;
  return {
    db,
    admin,
    app: appPool,
    ref,
    cipher: new FieldCipher(new TenantKeyring(ref.name, deks)),
    deks,
    run: (fn) => withTenant(appPool, ref, fn),
    table: (name) => `${quoteIdent(ref.schema)}.${quoteIdent(name)}`,
    async close() {
      await appPool.end();
      await admin.end();
      await db.drop();
      await dropRoles(adminUrl(), [login, ref.role]);
    },
  };
}
