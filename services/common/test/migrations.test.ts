import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LATEST_PLATFORM_SCHEMA_VERSION,
  LATEST_TENANT_SCHEMA_VERSION,
  loadMigrations,
  MIGRATIONS_DIR,
  MigrationChecksumError,
  migratePlatform,
  migrateTenantSchema,
  tenantPrivilegeDrift,
  tenantSchemaVersion,
} from '../src/db/migrations.ts';
import { quoteIdent } from '../src/db/identifiers.ts';
import { createScratchDatabase, uniqueName, type ScratchDatabase } from '../src/db/scratch.ts';
import { adminUrl, connect, dropRoles } from './support.ts';

let db: ScratchDatabase;
let pool: pg.Pool;
const roles: string[] = [];

beforeAll(async () => {
  db = await createScratchDatabase(adminUrl());
  pool = new pg.Pool({ connectionString: db.url, max: 6 });
  pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  await dropRoles(adminUrl(), roles);
});

async function newRole(): Promise<string> {
  const role = uniqueName('t_test');
  roles.push(role);
  await pool.query(`CREATE ROLE ${quoteIdent(role)} NOLOGIN`);
  return role;
}

describe('migration files', () => {
  it('are numbered without gaps and export the latest versions', () => {
    expect(loadMigrations('platform').map((m) => m.version)).toEqual(
      [...Array(LATEST_PLATFORM_SCHEMA_VERSION).keys()].map((i) => i + 1),
    );
    expect(LATEST_TENANT_SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
  });

  it('refuse a badly named file or a gap', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mig-'));
    try {
      writeFileSync(join(dir, '0001_a.sql'), 'SELECT 1');
      writeFileSync(join(dir, '0003_c.sql'), 'SELECT 1');
      expect(() => loadMigrations('tenant', dir)).toThrow(/without gaps/);
      writeFileSync(join(dir, '2_b.sql'), 'SELECT 1');
      expect(() => loadMigrations('tenant', dir)).toThrow(/NNNN_name/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('migratePlatform', () => {
  it('creates the registry and key tables, then is a no-op', async () => {
    const first = await migratePlatform(pool);
    expect(first).toEqual({
      version: LATEST_PLATFORM_SCHEMA_VERSION,
      applied: [...Array(LATEST_PLATFORM_SCHEMA_VERSION).keys()].map((i) => i + 1),
    });
    expect(await migratePlatform(pool)).toEqual({ version: LATEST_PLATFORM_SCHEMA_VERSION, applied: [] });

    const { rows } = await pool.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = 'platform' AND table_name = 'tenants'`,
    );
    expect(rows.map((r) => r.column_name)).toEqual(
      expect.arrayContaining([
        'name',
        'tenant_id',
        'database_isolation',
        'schema_version',
        'active_key_version',
        'topics',
        'origins',
        'redirect_uris',
        'integrations',
        'agent',
        'state',
        'spec_hash',
        'published_hash',
        'generation',
      ]),
    );
    const ext = await pool.query(`SELECT 1 FROM pg_extension WHERE extname = 'btree_gist'`);
    expect(ext.rowCount).toBe(1);
    // keys outlive registry rows: no foreign key from tenant_keys to tenants
    const fks = await pool.query(
      `SELECT 1 FROM pg_constraint WHERE conrelid = 'platform.tenant_keys'::regclass AND contype = 'f'`,
    );
    expect(fks.rowCount).toBe(0);
    await expect(
      pool.query(
        `INSERT INTO platform.tenants (name, tenant_id, display_name, business_type, database_name, schema_name) VALUES ('x', 't_x', 'X', 'dental', 'd', 's')`,
      ),
    ).rejects.toThrow(/check constraint/);
  });
});

describe('migrateTenantSchema', () => {
  it('creates the schema, applies once, records checksums and grants exactly DML', async () => {
    await migratePlatform(pool);
    const role = await newRole();
    const schema = role;
    const r1 = await migrateTenantSchema(pool, { schema, role });
    expect(r1.version).toBe(LATEST_TENANT_SCHEMA_VERSION);
    expect(r1.applied).toHaveLength(LATEST_TENANT_SCHEMA_VERSION);
    expect(await migrateTenantSchema(pool, { schema, role })).toEqual({
      version: LATEST_TENANT_SCHEMA_VERSION,
      applied: [],
    });
    expect(await tenantSchemaVersion(pool, schema)).toBe(LATEST_TENANT_SCHEMA_VERSION);
    expect(await tenantSchemaVersion(pool, 'no_such_schema')).toBe(0);
    expect(await tenantPrivilegeDrift(pool, { schema, role })).toEqual([]);

    const { rows } = await pool.query<{ owner: string }>(
      `SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = $1`,
      [schema],
    );
    expect(rows[0]?.owner).not.toBe(role);
    const tables = await pool.query<{ t: string }>(
      `SELECT tablename AS t FROM pg_tables WHERE schemaname = $1 ORDER BY 1`,
      [schema],
    );
    // exactly the tables the migration files create, plus the runner's ledger
    const declared = loadMigrations('tenant').flatMap((m) =>
      [...m.sql.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?(\w+)/gi)].map((x) => x[1]!),
    );
    expect(declared).toContain('outbox');
    expect(tables.rows.map((r) => r.t)).toEqual([...declared, 'schema_migrations'].sort());
    const idx = await pool.query(
      `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'outbox_unpublished_idx'`,
      [schema],
    );
    expect(idx.rows[0]?.indexdef).toMatch(/WHERE \(published_at IS NULL\)/);

    const priv = (obj: string, p: string) =>
      pool
        .query<{ ok: boolean }>(`SELECT has_table_privilege($1, $2, $3) AS ok`, [role, `${schema}.${obj}`, p])
        .then((r) => r.rows[0]?.ok);
    expect(await priv('outbox', 'INSERT')).toBe(true);
    expect(await priv('outbox', 'TRUNCATE')).toBe(false);
    expect(await priv('schema_migrations', 'SELECT')).toBe(true);
    expect(await priv('schema_migrations', 'INSERT')).toBe(false);
    const create = await pool.query<{ ok: boolean }>(`SELECT has_schema_privilege($1, $2, 'CREATE') AS ok`, [
      role,
      schema,
    ]);
    expect(create.rows[0]?.ok).toBe(false);
  });

  it('detects drift and repairs it, including privileges granted by hand', async () => {
    const role = await newRole();
    const ref = { schema: role, role };
    await migrateTenantSchema(pool, ref);
    await pool.query(`REVOKE DELETE ON ${quoteIdent(role)}.outbox FROM ${quoteIdent(role)}`);
    await pool.query(`GRANT TRUNCATE ON ${quoteIdent(role)}.processed_events TO ${quoteIdent(role)}`);
    await pool.query(`GRANT CREATE ON SCHEMA ${quoteIdent(role)} TO ${quoteIdent(role)}`);
    const drift = await tenantPrivilegeDrift(pool, ref);
    expect(drift).toHaveLength(3);
    await migrateTenantSchema(pool, ref);
    expect(await tenantPrivilegeDrift(pool, ref)).toEqual([]);
  });

  it('refuses to run when an applied file changed', async () => {
    const role = await newRole();
    const ref = { schema: role, role };
    const dir = mkdtempSync(join(tmpdir(), 'mig-'));
    try {
      cpSync(join(MIGRATIONS_DIR, 'tenant'), dir, { recursive: true });
      const original = loadMigrations('tenant', dir);
      await migrateTenantSchema(pool, ref, original);
      writeFileSync(join(dir, '0001_outbox.sql'), original[0]!.sql + '\n-- edited\n');
      const err = await migrateTenantSchema(pool, ref, loadMigrations('tenant', dir)).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MigrationChecksumError);
      expect((err as MigrationChecksumError).version).toBe(1);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('rolls back everything when a migration fails', async () => {
    const role = await newRole();
    const ref = { schema: role, role };
    const good = loadMigrations('tenant');
    const bad = [
      ...good,
      {
        version: good.length + 1,
        name: 'broken',
        sql: 'CREATE TABLE ok_table (id int); SELECT no_such_column FROM outbox',
        checksum: 'x',
      },
    ];
    await expect(migrateTenantSchema(pool, ref, bad)).rejects.toThrow(/no_such_column/);
    expect(await tenantSchemaVersion(pool, role)).toBe(0);
    expect((await pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [role])).rowCount).toBe(0);
  });

  it('two concurrent runners apply each migration exactly once', async () => {
    const role = await newRole();
    const ref = { schema: role, role };
    const [c1, c2] = [await connect(db.url), await connect(db.url)];
    try {
      // A slow extra migration widens the window in which the two runners overlap.
      const slow = [
        ...loadMigrations('tenant'),
        {
          version: LATEST_TENANT_SCHEMA_VERSION + 1,
          name: 'slow',
          sql: 'SELECT pg_sleep(0.5); CREATE TABLE slow_one (id int)',
          checksum: 'slow',
        },
      ];
      const [a, b] = await Promise.all([
        migrateTenantSchema(c1, ref, slow),
        migrateTenantSchema(c2, ref, slow),
      ]);
      expect([a.applied.length, b.applied.length].sort()).toEqual([0, slow.length]);
      expect(a.version).toBe(slow.length);
      expect(b.version).toBe(slow.length);
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${quoteIdent(role)}.schema_migrations`,
      );
      expect(Number(rows[0]?.n)).toBe(slow.length);
      // and the platform runner the same
      const [p1, p2] = await Promise.all([migratePlatform(c1), migratePlatform(c2)]);
      expect(p1.version).toBe(LATEST_PLATFORM_SCHEMA_VERSION);
      expect(p2.version).toBe(LATEST_PLATFORM_SCHEMA_VERSION);
    } finally {
      await c1.end();
      await c2.end();
    }
  });

  it('refuses a schema newer than the code', async () => {
    const role = await newRole();
    await migrateTenantSchema(pool, { schema: role, role });
    await expect(migrateTenantSchema(pool, { schema: role, role }, [])).rejects.toThrow(
      /newer than this code/,
    );
  });
});
