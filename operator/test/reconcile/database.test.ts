import { randomBytes } from 'node:crypto';
import {
  createScratchDatabase,
  LATEST_TENANT_SCHEMA_VERSION,
  LocalKms,
  migratePlatform,
  quoteIdent,
  tenantDbRef,
  tenantId,
  withDatabase,
  withTenant,
  type ScratchDatabase,
} from '@simptu/common';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, KIND, type Tenant } from '../../src/api/types.ts';
import { databaseReconciler, ensureAppRole, type DatabaseDeps } from '../../src/reconcile/database.ts';
import type { StepResult } from '../../src/reconcile/types.ts';

// The "platform database" is a throwaway database; dedicated tenant databases and all roles are
// cluster-global, so every name carries a random suffix and afterAll removes them.
let db: ScratchDatabase;
let admin: pg.Pool;
let app: pg.Pool;
const appRole = `app_${randomBytes(5).toString('hex')}`;
const appPassword = randomBytes(12).toString('hex');
const tenants: Tenant[] = [];
const extraRoles: string[] = [];
const pools: pg.Pool[] = [];

function adminUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url)
    throw new Error("DATABASE_URL is not set: run the tests through 'make test' (or 'make testenv-up')");
  return url;
}

function loginUrl(database: string, user = appRole, password = appPassword): string {
  const u = new URL(withDatabase(adminUrl(), database));
  u.username = user;
  u.password = password;
  return u.toString();
}

function tenant(isolation: 'shared' | 'dedicated' = 'shared'): Tenant {
  const t: Tenant = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: `db-${randomBytes(5).toString('hex')}`, generation: 1 },
    spec: {
      displayName: 'Test',
      businessType: 'gym',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: isolation, agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Retain',
      deletionProtection: false,
      suspended: false,
    },
  };
  tenants.push(t);
  return t;
}

class Counter {
  n = 0;
  inc(_backend: string, by = 1): void {
    this.n += by;
  }
}

function deps(over: Partial<DatabaseDeps> = {}): DatabaseDeps & { writes: Counter } {
  return {
    pg: admin,
    adminUrl: db.url,
    kms: LocalKms.generate(),
    appRole,
    writes: new Counter(),
    ...over,
  } as DatabaseDeps & { writes: Counter };
}

function expectReady(r: StepResult): Extract<StepResult, { kind: 'ready' }> {
  if (r.kind !== 'ready')
    throw new Error(
      `expected ready, got ${JSON.stringify({ ...r, error: String((r as { error?: unknown }).error) })}`,
    );
  return r;
}

async function sqlState(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

const insertAndCount = async (c: pg.ClientBase) => {
  await c.query(
    `INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES ('booking', '1', 'io.simptu.booking.created', '\\x01')`,
  );
  const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  return rows[0]!.n;
};

async function appPool(database: string): Promise<pg.Pool> {
  const p = new pg.Pool({ connectionString: loginUrl(database), max: 2 });
  p.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  pools.push(p);
  return p;
}

beforeAll(async () => {
  db = await createScratchDatabase(adminUrl());
  admin = new pg.Pool({ connectionString: db.url, max: 4 });
  admin.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  await migratePlatform(admin);
  await ensureAppRole(admin, appRole, appPassword);
  app = await appPool(db.name);
});

afterAll(async () => {
  for (const p of pools) await p.end();
  for (const t of tenants) {
    t.spec.deletionPolicy = 'Delete';
    await databaseReconciler.finalize(t, deps());
  }
  await admin?.end();
  await db?.drop();
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    for (const r of [appRole, ...extraRoles]) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`);
  } finally {
    await c.end();
  }
});

describe('ensureAppRole', () => {
  it('makes a LOGIN NOINHERIT role that can read the registry, idempotently, and repairs INHERIT', async () => {
    const { rows } = await admin.query(
      'SELECT rolcanlogin, rolinherit, rolsuper FROM pg_roles WHERE rolname = $1',
      [appRole],
    );
    expect(rows[0]).toEqual({ rolcanlogin: true, rolinherit: false, rolsuper: false });
    expect(await ensureAppRole(admin, appRole)).toEqual({ created: false, changed: [] });
    await admin.query(`ALTER ROLE ${quoteIdent(appRole)} INHERIT`);
    expect((await ensureAppRole(admin, appRole)).changed).toEqual(['LOGIN NOINHERIT']);
    await app.query('SELECT name FROM platform.tenants');
    await app.query('SELECT version FROM platform.tenant_keys');
    expect(await sqlState(app.query(`INSERT INTO platform.tenant_keys VALUES ('x', 1, '\\x00', 'k')`))).toBe(
      '42501',
    );
  });
});

describe('databaseReconciler: shared isolation', () => {
  it('provisions schema, role, membership and migrations; a second run writes nothing', async () => {
    const t = tenant();
    const id = tenantId(t.metadata.name);
    const d = deps();
    const r = expectReady(await databaseReconciler.reconcile(t, d));
    expect(r.status).toEqual({
      database: { name: db.name, schema: id, schemaVersion: LATEST_TENANT_SCHEMA_VERSION },
    });
    expect(d.writes.n).toBeGreaterThan(0);

    const again = deps();
    expectReady(await databaseReconciler.reconcile(t, again));
    expect(again.writes.n).toBe(0);

    const { rows } = await admin.query(
      `SELECT r.rolcanlogin, n.nspowner::regrole::text AS owner FROM pg_roles r, pg_namespace n WHERE r.rolname = $1 AND n.nspname = $1`,
      [id],
    );
    expect(rows[0].rolcanlogin).toBe(false);
    expect(rows[0].owner).not.toBe(id);
  });

  it('has exactly the privileges it should', async () => {
    const [a, b] = [tenant(), tenant()];
    for (const t of [a, b]) expectReady(await databaseReconciler.reconcile(t, deps()));
    const A = tenantDbRef(a.metadata.name);
    const B = tenantDbRef(b.metadata.name);

    // the app role can SET ROLE to the tenant and read/write its tables
    expect(await withTenant(app, A, insertAndCount)).toBe(1);
    // …but can't see another tenant from there
    expect(
      await sqlState(withTenant(app, A, (c) => c.query(`SELECT * FROM ${quoteIdent(B.schema)}.outbox`))),
    ).toBe('42501');
    // …nor the platform schema
    expect(await sqlState(withTenant(app, A, (c) => c.query('SELECT * FROM platform.tenants')))).toBe(
      '42501',
    );
    // without SET ROLE it reads no tenant table (NOINHERIT)
    expect(await sqlState(app.query(`SELECT * FROM ${quoteIdent(A.schema)}.outbox`))).toBe('42501');
    // the tenant role itself holds nothing on platform
    const { rows } = await admin.query(
      `SELECT has_schema_privilege($1, 'platform', 'USAGE') AS usage,
              has_table_privilege($1, 'platform.tenants', 'SELECT') AS tenants,
              has_table_privilege($1, 'platform.tenant_keys', 'SELECT') AS keys,
              has_schema_privilege($1, $1, 'CREATE') AS create_own`,
      [A.role],
    );
    expect(rows[0]).toEqual({ usage: false, tenants: false, keys: false, create_own: false });
  });

  it('repairs drift: revoked grants, dropped membership, a role made LOGIN', async () => {
    const t = tenant();
    const ref = tenantDbRef(t.metadata.name);
    expectReady(await databaseReconciler.reconcile(t, deps()));
    const s = quoteIdent(ref.schema);
    const r = quoteIdent(ref.role);

    await admin.query(`REVOKE INSERT ON ${s}.outbox FROM ${r}`);
    expect(await sqlState(withTenant(app, ref, insertAndCount))).toBe('42501');
    const d1 = deps();
    expectReady(await databaseReconciler.reconcile(t, d1));
    expect(d1.writes.n).toBeGreaterThan(0);
    expect(await withTenant(app, ref, insertAndCount)).toBe(1);

    await admin.query(`REVOKE ${r} FROM ${quoteIdent(appRole)}`);
    expect(await sqlState(withTenant(app, ref, insertAndCount))).toBe('42501');
    const d2 = deps();
    expectReady(await databaseReconciler.reconcile(t, d2));
    expect(d2.writes.n).toBe(1);
    expect(await withTenant(app, ref, insertAndCount)).toBe(2);

    await admin.query(`ALTER ROLE ${r} LOGIN`);
    await admin.query(`GRANT CREATE ON SCHEMA ${s} TO ${r}`);
    const d3 = deps();
    expectReady(await databaseReconciler.reconcile(t, d3));
    expect(d3.writes.n).toBe(2);
    const { rows } = await admin.query(
      `SELECT rolcanlogin, has_schema_privilege($1::text, $1::text, 'CREATE') AS c FROM pg_roles WHERE rolname = $1::text`,
      [ref.role],
    );
    expect(rows[0]).toEqual({ rolcanlogin: false, c: false });

    const steady = deps();
    expectReady(await databaseReconciler.reconcile(t, steady));
    expect(steady.writes.n).toBe(0);
  });

  it('finalize: Retain keeps everything; Delete drops schema and role; both idempotent', async () => {
    const t = tenant();
    const ref = tenantDbRef(t.metadata.name);
    expectReady(await databaseReconciler.reconcile(t, deps()));
    await withTenant(app, ref, insertAndCount);

    const retain = deps();
    expect(await databaseReconciler.finalize(t, retain)).toMatchObject({
      kind: 'ready',
      reason: 'DataRetained',
    });
    expect(retain.writes.n).toBe(0);
    expect(await withTenant(app, ref, insertAndCount)).toBe(2);

    t.spec.deletionPolicy = 'Delete';
    expect(await databaseReconciler.finalize(t, deps())).toMatchObject({
      kind: 'ready',
      reason: 'DataDeleted',
    });
    const { rows } = await admin.query(
      `SELECT (SELECT count(*)::int FROM pg_namespace WHERE nspname = $1) AS schemas, (SELECT count(*)::int FROM pg_roles WHERE rolname = $1) AS roles`,
      [ref.role],
    );
    expect(rows[0]).toEqual({ schemas: 0, roles: 0 });
    const again = deps();
    expectReady(await databaseReconciler.finalize(t, again));
    expect(again.writes.n).toBe(0);
  });

  it('blocks instead of guessing: app role not NOINHERIT, isolation changed to dedicated', async () => {
    const t = tenant();
    expectReady(await databaseReconciler.reconcile(t, deps()));
    const moved: Tenant = {
      ...t,
      spec: { ...t.spec, isolation: { database: 'dedicated', agent: 'shared' } },
    };
    expect(await databaseReconciler.reconcile(moved, deps())).toMatchObject({
      kind: 'blocked',
      reason: 'IsolationChangeUnsupported',
    });

    const inheriting = `app_${randomBytes(5).toString('hex')}`;
    extraRoles.push(inheriting);
    await admin.query(`CREATE ROLE ${quoteIdent(inheriting)} LOGIN INHERIT`);
    const d = deps({ appRole: inheriting });
    expect(await databaseReconciler.reconcile(tenant(), d)).toMatchObject({
      kind: 'blocked',
      reason: 'AppRoleMisconfigured',
    });
    expect(d.writes.n).toBe(0);
  });
});

describe('databaseReconciler: dedicated isolation', () => {
  it('provisions its own database only the app role may connect to, then is steady', async () => {
    const t = tenant('dedicated');
    const ref = tenantDbRef(t.metadata.name);
    const r = expectReady(await databaseReconciler.reconcile(t, deps()));
    expect(r.status).toEqual({
      database: { name: ref.schema, schema: ref.schema, schemaVersion: LATEST_TENANT_SCHEMA_VERSION },
    });
    const again = deps();
    expectReady(await databaseReconciler.reconcile(t, again));
    expect(again.writes.n).toBe(0);

    const ded = await appPool(ref.schema);
    expect(await withTenant(ded, ref, insertAndCount)).toBe(1);
    expect(await sqlState(ded.query(`SELECT * FROM ${quoteIdent(ref.schema)}.outbox`))).toBe('42501');
    // the shared database has no such schema
    expect((await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [ref.schema])).rowCount).toBe(
      0,
    );

    // another login role can't even connect (CONNECT revoked from PUBLIC)
    const stranger = `stranger_${randomBytes(5).toString('hex')}`;
    extraRoles.push(stranger);
    await admin.query(`CREATE ROLE ${quoteIdent(stranger)} LOGIN PASSWORD 'pw'`);
    const c = new pg.Client({ connectionString: loginUrl(ref.schema, stranger, 'pw') });
    expect(await sqlState(c.connect())).toBe('42501');
    await c.end().catch(() => undefined);

    // drift on the database ACL comes back
    await admin.query(`GRANT CONNECT ON DATABASE ${quoteIdent(ref.schema)} TO PUBLIC`);
    await admin.query(`REVOKE CONNECT ON DATABASE ${quoteIdent(ref.schema)} FROM ${quoteIdent(appRole)}`);
    const d = deps();
    expectReady(await databaseReconciler.reconcile(t, d));
    expect(d.writes.n).toBe(2);
    const steady = deps();
    expectReady(await databaseReconciler.reconcile(t, steady));
    expect(steady.writes.n).toBe(0);

    // Delete drops the database (even with the app's connections open) and the role
    await ded.end();
    pools.splice(pools.indexOf(ded), 1);
    t.spec.deletionPolicy = 'Delete';
    expectReady(await databaseReconciler.finalize(t, deps()));
    const { rows } = await admin.query(
      `SELECT (SELECT count(*)::int FROM pg_database WHERE datname = $1) AS dbs, (SELECT count(*)::int FROM pg_roles WHERE rolname = $1) AS roles`,
      [ref.schema],
    );
    expect(rows[0]).toEqual({ dbs: 0, roles: 0 });
  });
});
