/**
 * Versioned SQL migrations shipped with this package (DESIGN §5.3):
 *
 *     migrations/platform/NNNN_name.sql   the `platform` schema (registry, wrapped keys)
 *     migrations/tenant/NNNN_name.sql     every tenant schema (shared or dedicated database)
 *
 * Each run takes a transaction-scoped advisory lock (concurrent operators and crash-restarts
 * serialize on it, and it is released by COMMIT/ROLLBACK or a dropped connection), records
 * applied versions with a SHA-256 checksum in `<schema>.schema_migrations`, and refuses to run
 * when an already-applied file has changed. All pending files apply in ONE transaction: a
 * failure leaves the schema exactly as it was.
 * @see https://www.postgresql.org/docs/15/explicit-locking.html#ADVISORY-LOCKS
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { PLATFORM_SCHEMA } from '../names.ts';
import { quoteIdent } from './identifiers.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export type MigrationSet = 'platform' | 'tenant';

const FILE_RE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
export const MIGRATIONS_DIR = join(here, '..', '..', 'migrations');

/** Reads and orders one migration folder; throws on a malformed name or a duplicate/missing version. */
export function loadMigrations(set: MigrationSet, dir = join(MIGRATIONS_DIR, set)): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE_RE.exec(file);
    if (!m) throw new Error(`migration file ${set}/${file} must be named NNNN_name.sql`);
    const sql = readFileSync(join(dir, file), 'utf8');
    out.push({
      version: Number(m[1]),
      name: m[2]!,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  out.forEach((mig, i) => {
    if (mig.version !== i + 1)
      throw new Error(
        `${set} migrations must be numbered 0001, 0002, … without gaps; found ${mig.version} at position ${i + 1}`,
      );
  });
  return out;
}

const PLATFORM_MIGRATIONS = loadMigrations('platform');
const TENANT_MIGRATIONS = loadMigrations('tenant');

export const LATEST_PLATFORM_SCHEMA_VERSION = PLATFORM_MIGRATIONS.length;
export const LATEST_TENANT_SCHEMA_VERSION = TENANT_MIGRATIONS.length;

export class MigrationChecksumError extends Error {
  readonly schema: string;
  readonly version: number;
  constructor(schema: string, version: number, name: string) {
    super(
      `migration ${version}_${name} was changed after it was applied to schema ${schema}; add a new migration instead`,
    );
    this.name = 'MigrationChecksumError';
    this.schema = schema;
    this.version = version;
  }
}

/** The schema was migrated by newer code than this (a downgrade): never touch it. */
export class SchemaTooNewError extends Error {
  readonly schema: string;
  readonly version: number;
  constructor(schema: string, version: number, known: number) {
    super(
      `schema ${schema} is at version ${version}, newer than this code knows (${known}); refusing to run`,
    );
    this.name = 'SchemaTooNewError';
    this.schema = schema;
    this.version = version;
  }
}

export interface MigrateResult {
  /** schema version after the run */
  version: number;
  /** versions applied by this run (empty when up to date) */
  applied: number[];
}

/** A pool is checked out for the run; a client is used as is (it must not be inside a transaction). */
export type MigrationTarget = pg.Pool | pg.ClientBase;

async function withClient<T>(db: MigrationTarget, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  // Duck-typed rather than `instanceof`, so a Pool from another copy of pg still checks out a client.
  if (!('totalCount' in db)) return fn(db);
  const client = await db.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

async function inTransaction<T>(c: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await c.query('BEGIN');
  try {
    const r = await fn();
    await c.query('COMMIT');
    return r;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Both 32-bit advisory keys from text: one lock per (purpose, schema), per database. */
async function lockSchema(c: pg.ClientBase, schema: string): Promise<void> {
  await c.query(`SELECT pg_advisory_xact_lock(hashtext('simptu.migrate'), hashtext($1))`, [schema]);
}

async function applyPending(
  c: pg.ClientBase,
  schema: string,
  migrations: Migration[],
): Promise<MigrateResult> {
  const s = quoteIdent(schema, 'schema');
  await c.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  await c.query(
    `CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (
       version integer PRIMARY KEY,
       name text NOT NULL,
       checksum text NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
  const { rows } = await c.query<{ version: number; checksum: string }>(
    `SELECT version, checksum FROM ${s}.schema_migrations ORDER BY version`,
  );
  const done = new Map(rows.map((r) => [r.version, r.checksum]));
  for (const m of migrations) {
    const sum = done.get(m.version);
    if (sum !== undefined && sum !== m.checksum) throw new MigrationChecksumError(schema, m.version, m.name);
  }
  const newest = Math.max(0, ...done.keys());
  if (newest > migrations.length) {
    throw new SchemaTooNewError(schema, newest, migrations.length);
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    await c.query(m.sql);
    await c.query(`INSERT INTO ${s}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, [
      m.version,
      m.name,
      m.checksum,
    ]);
    applied.push(m.version);
  }
  return { version: Math.max(newest, ...applied), applied };
}

/** Brings the `platform` schema of the connected database to the latest version. */
export async function migratePlatform(
  db: MigrationTarget,
  migrations: Migration[] = PLATFORM_MIGRATIONS,
): Promise<MigrateResult> {
  return withClient(db, (c) =>
    inTransaction(c, async () => {
      await lockSchema(c, PLATFORM_SCHEMA);
      await c.query(`SET LOCAL search_path TO ${quoteIdent(PLATFORM_SCHEMA)}`);
      return applyPending(c, PLATFORM_SCHEMA, migrations);
    }),
  );
}

export interface TenantSchemaRef {
  schema: string;
  role: string;
}

/**
 * Brings one tenant schema to the latest version, then (re)grants the tenant role exactly the
 * privileges it needs (see `grantTenantPrivileges`). The schema is created if missing, owned
 * by the connected (migrator) role, never by the tenant role.
 */
export async function migrateTenantSchema(
  db: MigrationTarget,
  ref: TenantSchemaRef,
  migrations: Migration[] = TENANT_MIGRATIONS,
): Promise<MigrateResult> {
  return withClient(db, (c) =>
    inTransaction(c, async () => {
      await lockSchema(c, ref.schema);
      await c.query(`SET LOCAL search_path TO ${quoteIdent(ref.schema, 'schema')}`);
      const result = await applyPending(c, ref.schema, migrations);
      await grantStatements(c, ref);
      return result;
    }),
  );
}

/** The schema version recorded in `<schema>.schema_migrations`; 0 when the schema or table is missing. */
export async function tenantSchemaVersion(db: pg.Pool | pg.ClientBase, schema: string): Promise<number> {
  const { rows } = await db.query<{ exists: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS exists`, [
    `${quoteIdent(schema, 'schema')}.schema_migrations`,
  ]);
  if (!rows[0]?.exists) return 0;
  const r = await db.query<{ v: number }>(
    `SELECT coalesce(max(version), 0)::int AS v FROM ${quoteIdent(schema)}.schema_migrations`,
  );
  return r.rows[0]?.v ?? 0;
}

const TABLE_PRIVILEGES = ['DELETE', 'INSERT', 'SELECT', 'UPDATE'];
const SEQUENCE_PRIVILEGES = ['SELECT', 'USAGE'];
/** The migration ledger is readable (services may check the version) but not writable by tenants. */
const LEDGER_PRIVILEGES = ['SELECT'];

async function grantStatements(c: pg.ClientBase, ref: TenantSchemaRef): Promise<void> {
  const s = quoteIdent(ref.schema, 'schema');
  const r = quoteIdent(ref.role, 'role');
  // REVOKE ALL first, so the result is exactly the set below whatever was granted by hand.
  await c.query(`REVOKE ALL ON SCHEMA ${s} FROM ${r}`);
  await c.query(`GRANT USAGE ON SCHEMA ${s} TO ${r}`);
  await c.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${s} FROM ${r}`);
  await c.query(`GRANT ${TABLE_PRIVILEGES.join(', ')} ON ALL TABLES IN SCHEMA ${s} TO ${r}`);
  await c.query(`REVOKE ALL ON ${s}.schema_migrations FROM ${r}`);
  await c.query(`GRANT ${LEDGER_PRIVILEGES.join(', ')} ON ${s}.schema_migrations TO ${r}`);
  await c.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${s} FROM ${r}`);
  await c.query(`GRANT ${SEQUENCE_PRIVILEGES.join(', ')} ON ALL SEQUENCES IN SCHEMA ${s} TO ${r}`);
}

/**
 * Idempotently gives the tenant role exactly: USAGE on its schema; SELECT, INSERT, UPDATE,
 * DELETE on its tables (SELECT only on schema_migrations); USAGE, SELECT on its sequences.
 */
export async function grantTenantPrivileges(db: MigrationTarget, ref: TenantSchemaRef): Promise<void> {
  await withClient(db, (c) => inTransaction(c, () => grantStatements(c, ref)));
}

/**
 * Read-only check of the tenant role's privileges against the exact set above; returns a
 * human-readable list of differences (empty when all is as it should be). Lets a reconciler
 * write only when something drifted.
 */
export async function tenantPrivilegeDrift(
  db: pg.Pool | pg.ClientBase,
  ref: TenantSchemaRef,
): Promise<string[]> {
  const drift: string[] = [];
  const { rows: ns } = await db.query<{ privs: string[] }>(
    `SELECT coalesce(array_agg(a.privilege_type ORDER BY a.privilege_type) FILTER (WHERE a.grantee = r.oid), '{}') AS privs
       FROM pg_namespace n
       CROSS JOIN (SELECT oid FROM pg_roles WHERE rolname = $2) r
       LEFT JOIN LATERAL aclexplode(n.nspacl) a ON true
      WHERE n.nspname = $1
      GROUP BY n.oid`,
    [ref.schema, ref.role],
  );
  if (ns.length === 0) return [`schema ${ref.schema} or role ${ref.role} is missing`];
  const schemaPrivs = ns[0]!.privs.join(',');
  if (schemaPrivs !== 'USAGE') drift.push(`schema ${ref.schema}: has {${schemaPrivs}}, wants {USAGE}`);

  const { rows } = await db.query<{ relname: string; relkind: string; privs: string[] }>(
    `SELECT c.relname, c.relkind::text AS relkind,
            coalesce(array_agg(a.privilege_type ORDER BY a.privilege_type) FILTER (WHERE a.grantee = r.oid), '{}') AS privs
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN (SELECT oid FROM pg_roles WHERE rolname = $2) r
       LEFT JOIN LATERAL aclexplode(c.relacl) a ON true
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      GROUP BY c.relname, c.relkind`,
    [ref.schema, ref.role],
  );
  for (const row of rows) {
    const want =
      row.relkind === 'S'
        ? SEQUENCE_PRIVILEGES
        : row.relname === 'schema_migrations'
          ? LEDGER_PRIVILEGES
          : TABLE_PRIVILEGES;
    const have = row.privs.join(',');
    if (have !== want.join(','))
      drift.push(`${ref.schema}.${row.relname}: has {${have}}, wants {${want.join(',')}}`);
  }
  return drift;
}
