/**
 * DatabaseReady (DESIGN §5.3): the tenant's schema, role and privileges.
 *
 *   shared     schema t_<id> in the platform database
 *   dedicated  database t_<id> holding schema t_<id>; CONNECT revoked from PUBLIC, granted to the app role
 *
 * In both, role t_<id> is NOLOGIN, owns nothing (the schema and its tables belong to the
 * migrator, i.e. the operator's admin role) and holds exactly the privileges the tenant
 * migrations grant. The services' login role is NOINHERIT and a member of every tenant role: it
 * can `SET LOCAL ROLE t_<id>` per transaction and has no tenant privileges otherwise (fail
 * closed; see `withTenant` in @simptu/common). PostgreSQL 15 has no per-grant
 * `WITH INHERIT FALSE` (that is 16+), hence the role-level NOINHERIT.
 * @see https://www.postgresql.org/docs/15/role-membership.html
 *
 * Every reconcile observes with read-only catalog queries first and writes only what is
 * missing, so a steady state does zero writes and a revoked grant or a dropped membership comes
 * back on the next (periodic) reconcile.
 */
import {
  grantTenantPrivileges,
  LATEST_TENANT_SCHEMA_VERSION,
  migrateTenantSchema,
  MigrationChecksumError,
  quoteIdent,
  quoteLiteral,
  SchemaTooNewError,
  tenantId,
  tenantPrivilegeDrift,
  tenantSchemaVersion,
  withDatabase,
  PLATFORM_SCHEMA,
  type KmsProvider,
} from '@simptu/common';
import pg from 'pg';
import type { Tenant } from '../api/types.ts';
import type { BackendReconciler, StepResult, WriteCounter } from './types.ts';

export interface DatabaseDeps {
  /** admin (superuser or CREATEROLE+CREATEDB) connection to the platform database */
  pg: pg.Pool;
  /** the same credentials as a URL, to connect to dedicated databases */
  adminUrl: string;
  kms: KmsProvider;
  /** the services' NOINHERIT login role, e.g. 'simptu_app' (see ensureAppRole) */
  appRole: string;
  writes: WriteCounter;
  now?: () => Date;
}

type Db = pg.Pool | pg.ClientBase;

const DUPLICATE_OBJECT = '42710';
const DUPLICATE_DATABASE = '42P04';
const UNIQUE_VIOLATION = '23505';

function pgCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err
    ? String((err as { code: unknown }).code)
    : undefined;
}

/** CREATE of a cluster-global object raced with another operator: it exists now, which is all we wanted. */
async function createIgnoringDuplicate(db: Db, sql: string): Promise<boolean> {
  try {
    await db.query(sql);
    return true;
  } catch (err) {
    const code = pgCode(err);
    if (code === DUPLICATE_OBJECT || code === DUPLICATE_DATABASE || code === UNIQUE_VIOLATION) return false;
    throw err;
  }
}

interface RoleRow {
  rolcanlogin: boolean;
  rolinherit: boolean;
  rolsuper: boolean;
  rolcreatedb: boolean;
  rolcreaterole: boolean;
  rolreplication: boolean;
  rolbypassrls: boolean;
}

async function readRole(db: Db, role: string): Promise<RoleRow | undefined> {
  const { rows } = await db.query<RoleRow>(
    `SELECT rolcanlogin, rolinherit, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
       FROM pg_roles WHERE rolname = $1`,
    [role],
  );
  return rows[0];
}

async function isMember(db: Db, role: string, member: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `SELECT 1 FROM pg_auth_members m
       JOIN pg_roles r ON r.oid = m.roleid
       JOIN pg_roles u ON u.oid = m.member
      WHERE r.rolname = $1 AND u.rolname = $2`,
    [role, member],
  );
  return (rowCount ?? 0) > 0;
}

export interface EnsureAppRoleResult {
  created: boolean;
  changed: string[];
}

/**
 * For the operator's start-up (after `migratePlatform`): the services' login role exists, can
 * log in, does NOT inherit its memberships, is not privileged, and can read the platform
 * registry (USAGE on schema platform; SELECT on platform.tenants and platform.tenant_keys —
 * wrapped keys only, useless without the KMS). Throws on what it can't fix.
 */
export async function ensureAppRole(
  pool: pg.Pool,
  role: string,
  password?: string,
): Promise<EnsureAppRoleResult> {
  const r = quoteIdent(role, 'role');
  const changed: string[] = [];
  let created = false;
  const existing = await readRole(pool, role);
  if (!existing) {
    created = await createIgnoringDuplicate(
      pool,
      `CREATE ROLE ${r} LOGIN NOINHERIT${password ? ` PASSWORD ${quoteLiteral(password)}` : ''}`,
    );
    if (created) changed.push('created');
  }
  const now = (await readRole(pool, role))!;
  if (now.rolsuper || now.rolbypassrls) {
    throw new Error(
      `app role ${role} is SUPERUSER or BYPASSRLS: tenant isolation would be meaningless; use an unprivileged role`,
    );
  }
  if (!now.rolcanlogin || now.rolinherit) {
    await pool.query(`ALTER ROLE ${r} LOGIN NOINHERIT`);
    changed.push('LOGIN NOINHERIT');
  }
  if (password && !created) {
    await pool.query(`ALTER ROLE ${r} PASSWORD ${quoteLiteral(password)}`);
    changed.push('password');
  }
  const { rows } = await pool.query<{ usage: boolean; tenants: boolean; keys: boolean }>(
    `SELECT has_schema_privilege($1, $2, 'USAGE') AS usage,
            has_table_privilege($1, $2 || '.tenants', 'SELECT') AS tenants,
            has_table_privilege($1, $2 || '.tenant_keys', 'SELECT') AS keys`,
    [role, PLATFORM_SCHEMA],
  );
  const p = quoteIdent(PLATFORM_SCHEMA);
  if (!rows[0]?.usage) {
    await pool.query(`GRANT USAGE ON SCHEMA ${p} TO ${r}`);
    changed.push(`USAGE ON SCHEMA ${PLATFORM_SCHEMA}`);
  }
  if (!rows[0]?.tenants || !rows[0]?.keys) {
    await pool.query(`GRANT SELECT ON ${p}.tenants, ${p}.tenant_keys TO ${r}`);
    changed.push('SELECT ON registry');
  }
  return { created, changed };
}

/** What this reconciler wants for a tenant (pure). */
export interface DesiredDatabase {
  isolation: 'shared' | 'dedicated';
  id: string;
  schema: string;
  role: string;
  /** null: the platform database */
  database: string | null;
}

export function desiredDatabase(tenant: Tenant): DesiredDatabase {
  const id = tenantId(tenant.metadata.name);
  const isolation = tenant.spec.isolation.database;
  return { isolation, id, schema: id, role: id, database: isolation === 'dedicated' ? id : null };
}

async function ensureTenantRole(deps: DatabaseDeps, role: string): Promise<void> {
  const r = quoteIdent(role, 'role');
  const row = await readRole(deps.pg, role);
  if (!row) {
    if (await createIgnoringDuplicate(deps.pg, `CREATE ROLE ${r} NOLOGIN`)) deps.writes.inc('postgres');
    return;
  }
  if (
    row.rolcanlogin ||
    row.rolsuper ||
    row.rolcreatedb ||
    row.rolcreaterole ||
    row.rolreplication ||
    row.rolbypassrls
  ) {
    await deps.pg.query(
      `ALTER ROLE ${r} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS`,
    );
    deps.writes.inc('postgres');
  }
}

async function ensureMembership(deps: DatabaseDeps, role: string): Promise<void> {
  if (await isMember(deps.pg, role, deps.appRole)) return;
  await deps.pg.query(`GRANT ${quoteIdent(role, 'role')} TO ${quoteIdent(deps.appRole, 'role')}`);
  deps.writes.inc('postgres');
}

async function ensureDedicatedDatabase(deps: DatabaseDeps, database: string): Promise<void> {
  const d = quoteIdent(database, 'database');
  const exists = await deps.pg.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if ((exists.rowCount ?? 0) === 0) {
    // CREATE DATABASE can't run inside a transaction block; a single simple query is not one.
    if (await createIgnoringDuplicate(deps.pg, `CREATE DATABASE ${d}`)) deps.writes.inc('postgres');
  }
  const { rows } = await deps.pg.query<{ public_connect: boolean; app_connect: boolean }>(
    `SELECT
       EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') AS public_connect,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2) AND a.privilege_type = 'CONNECT') AS app_connect
       FROM pg_database d WHERE d.datname = $1`,
    [database, deps.appRole],
  );
  if (rows[0]?.public_connect) {
    await deps.pg.query(`REVOKE CONNECT ON DATABASE ${d} FROM PUBLIC`);
    deps.writes.inc('postgres');
  }
  if (!rows[0]?.app_connect) {
    await deps.pg.query(`GRANT CONNECT ON DATABASE ${d} TO ${quoteIdent(deps.appRole, 'role')}`);
    deps.writes.inc('postgres');
  }
}

async function schemaOwner(db: Db, schema: string): Promise<string | undefined> {
  const { rows } = await db.query<{ owner: string }>(
    'SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = $1',
    [schema],
  );
  return rows[0]?.owner;
}

/** Schema, migrations, privileges inside the database that holds the tenant. */
async function ensureSchema(deps: DatabaseDeps, db: Db, want: DesiredDatabase): Promise<number> {
  const ref = { schema: want.schema, role: want.role };
  const owner = await schemaOwner(db, want.schema);
  if (owner === want.role || owner === quoteIdent(want.role)) {
    // The tenant role must own nothing (it could GRANT itself anything on an owned schema).
    await db.query(`ALTER SCHEMA ${quoteIdent(want.schema)} OWNER TO CURRENT_USER`);
    deps.writes.inc('postgres');
  }
  const version = await tenantSchemaVersion(db, want.schema);
  if (version < LATEST_TENANT_SCHEMA_VERSION) {
    const r = await migrateTenantSchema(db, ref); // creates the schema if missing, re-grants
    deps.writes.inc('postgres');
    return r.version;
  }
  if ((await tenantPrivilegeDrift(db, ref)).length > 0) {
    await grantTenantPrivileges(db, ref);
    deps.writes.inc('postgres');
  }
  return version;
}

async function withTenantDatabase<T>(
  deps: DatabaseDeps,
  want: DesiredDatabase,
  fn: (db: Db) => Promise<T>,
): Promise<T> {
  if (want.database === null) return fn(deps.pg);
  const client = new pg.Client({ connectionString: withDatabase(deps.adminUrl, want.database) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function currentDatabase(db: Db): Promise<string> {
  const { rows } = await db.query<{ db: string }>('SELECT current_database() AS db');
  return rows[0]!.db;
}

async function reconcile(tenant: Tenant, deps: DatabaseDeps): Promise<StepResult> {
  const want = desiredDatabase(tenant);
  try {
    const app = await readRole(deps.pg, deps.appRole);
    if (!app || !app.rolcanlogin || app.rolinherit || app.rolsuper) {
      return {
        kind: 'blocked',
        reason: 'AppRoleMisconfigured',
        message: `the services' login role ${deps.appRole} must exist with LOGIN NOINHERIT NOSUPERUSER (the operator ensures it at start-up)`,
        requeueAfterMs: 60_000,
      };
    }
    if (want.isolation === 'dedicated' && (await schemaOwner(deps.pg, want.schema)) !== undefined) {
      return {
        kind: 'blocked',
        reason: 'IsolationChangeUnsupported',
        message: `schema ${want.schema} exists in the shared database; moving a tenant's data to a dedicated database is not automated — migrate it by hand, then drop the shared schema`,
        requeueAfterMs: 600_000,
      };
    }
    await ensureTenantRole(deps, want.role);
    await ensureMembership(deps, want.role);
    if (want.database !== null) await ensureDedicatedDatabase(deps, want.database);
    const { name, schemaVersion } = await withTenantDatabase(deps, want, async (db) => ({
      name: await currentDatabase(db),
      schemaVersion: await ensureSchema(deps, db, want),
    }));
    return {
      kind: 'ready',
      reason: 'SchemaMigrated',
      message: `schema ${want.schema} in database ${name} at version ${schemaVersion}`,
      status: { database: { name, schema: want.schema, schemaVersion } },
    };
  } catch (err) {
    if (err instanceof MigrationChecksumError) {
      return {
        kind: 'blocked',
        reason: 'MigrationChecksumMismatch',
        message: err.message,
        requeueAfterMs: 600_000,
      };
    }
    if (err instanceof SchemaTooNewError) {
      return {
        kind: 'blocked',
        reason: 'SchemaNewerThanOperator',
        message: err.message,
        requeueAfterMs: 600_000,
      };
    }
    return {
      kind: 'error',
      reason: 'DatabaseUnavailable',
      message: err instanceof Error ? err.message : String(err),
      error: err,
    };
  }
}

async function finalize(tenant: Tenant, deps: DatabaseDeps): Promise<StepResult> {
  const want = desiredDatabase(tenant);
  if (tenant.spec.deletionPolicy !== 'Delete') {
    return {
      kind: 'ready',
      reason: 'DataRetained',
      message: `deletionPolicy Retain: ${want.database ? `database ${want.database}` : `schema ${want.schema}`} and role ${want.role} kept`,
    };
  }
  try {
    if (want.database !== null) {
      const exists = await deps.pg.query('SELECT 1 FROM pg_database WHERE datname = $1', [want.database]);
      if ((exists.rowCount ?? 0) > 0) {
        // FORCE (PG 13+) ends the services' open connections instead of failing on them.
        await deps.pg.query(`DROP DATABASE IF EXISTS ${quoteIdent(want.database)} WITH (FORCE)`);
        deps.writes.inc('postgres');
      }
    }
    // Also in dedicated mode: a shared schema left over from before an isolation change.
    if ((await schemaOwner(deps.pg, want.schema)) !== undefined) {
      await deps.pg.query(`DROP SCHEMA IF EXISTS ${quoteIdent(want.schema)} CASCADE`);
      deps.writes.inc('postgres');
    }
    if (await readRole(deps.pg, want.role)) {
      const r = quoteIdent(want.role, 'role');
      if (await isMember(deps.pg, want.role, deps.appRole)) {
        await deps.pg.query(`REVOKE ${r} FROM ${quoteIdent(deps.appRole, 'role')}`);
      }
      // Drops any privilege it still holds in this database (it owns nothing), then the role.
      await deps.pg.query(`DROP OWNED BY ${r}`);
      await deps.pg.query(`DROP ROLE IF EXISTS ${r}`);
      deps.writes.inc('postgres');
    }
    return {
      kind: 'ready',
      reason: 'DataDeleted',
      message: `${want.database ? `database ${want.database}` : `schema ${want.schema}`} and role ${want.role} dropped`,
    };
  } catch (err) {
    return {
      kind: 'error',
      reason: 'DatabaseUnavailable',
      message: err instanceof Error ? err.message : String(err),
      error: err,
    };
  }
}

export const databaseReconciler: BackendReconciler<DatabaseDeps> = {
  name: 'database',
  condition: 'DatabaseReady',
  reconcile,
  finalize,
};
