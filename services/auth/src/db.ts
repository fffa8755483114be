/**
 * The `auth` schema's migrations (`services/auth/migrations/NNNN_name.sql`), applied the way
 * `@simptu/common` applies the platform and tenant ones: one transaction, a transaction-scoped
 * advisory lock (concurrent replicas serialize), a ledger with SHA-256 checksums, and a refusal
 * to run when an applied file changed or the schema is newer than this code.
 * @see ../../common/src/db/migrations.ts
 */
import { join } from 'node:path';
import type pg from 'pg';
import { loadMigrations, MigrationChecksumError, SchemaTooNewError, type Migration } from '@simptu/common';

export const AUTH_SCHEMA = 'auth';
export const AUTH_MIGRATIONS_DIR = join(import.meta.dirname, '..', 'migrations');

export function authMigrations(): Migration[] {
  // `loadMigrations` only uses the set name in its messages; the folder is ours.
  return loadMigrations('platform', AUTH_MIGRATIONS_DIR);
}

export interface AuthMigrateResult {
  version: number;
  applied: number[];
}

export async function migrateAuth(pool: pg.Pool, migrations = authMigrations()): Promise<AuthMigrateResult> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    try {
      await c.query(`SELECT pg_advisory_xact_lock(hashtext('simptu.migrate'), hashtext($1))`, [AUTH_SCHEMA]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${AUTH_SCHEMA}`);
      await c.query(`SET LOCAL search_path TO ${AUTH_SCHEMA}`);
      await c.query(
        `CREATE TABLE IF NOT EXISTS ${AUTH_SCHEMA}.schema_migrations (
           version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const { rows } = await c.query<{ version: number; checksum: string }>(
        `SELECT version, checksum FROM ${AUTH_SCHEMA}.schema_migrations`,
      );
      const done = new Map(rows.map((r) => [r.version, r.checksum]));
      for (const m of migrations) {
        const sum = done.get(m.version);
        if (sum !== undefined && sum !== m.checksum)
          throw new MigrationChecksumError(AUTH_SCHEMA, m.version, m.name);
      }
      const newest = Math.max(0, ...done.keys());
      if (newest > migrations.length) throw new SchemaTooNewError(AUTH_SCHEMA, newest, migrations.length);
      const applied: number[] = [];
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        await c.query(m.sql);
        await c.query(
          `INSERT INTO ${AUTH_SCHEMA}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
          [m.version, m.name, m.checksum],
        );
        applied.push(m.version);
      }
      await c.query('COMMIT');
      return { version: Math.max(newest, ...applied), applied };
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  } finally {
    c.release();
  }
}

export interface AuditEvent {
  event: string;
  tenant?: string | null;
  subject?: string | null;
  clientId?: string | null;
  ip?: string | null;
  details?: Record<string, unknown>;
}

/** Appends one row to `auth.audit_log`. */
export async function audit(db: Pick<pg.Pool, 'query'>, e: AuditEvent): Promise<void> {
  await db.query(
    `INSERT INTO auth.audit_log (event, tenant, subject, client_id, ip, details) VALUES ($1, $2, $3, $4, $5, $6)`,
    [e.event, e.tenant ?? null, e.subject ?? null, e.clientId ?? null, e.ip ?? null, e.details ?? {}],
  );
}
