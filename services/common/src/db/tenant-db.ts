/**
 * The services' side of tenant isolation (DESIGN §5.3). The services log in as a NOINHERIT
 * role that is a member of every tenant role but holds none of their privileges by itself;
 * each unit of tenant work runs in a transaction that switched to the tenant's role and schema
 * with `SET LOCAL`, which COMMIT/ROLLBACK undo. A forgotten switch therefore fails closed
 * (permission denied), and a transaction can only ever see one tenant.
 * @see https://www.postgresql.org/docs/15/sql-set-role.html
 * @see https://www.postgresql.org/docs/15/role-membership.html
 */
import type pg from 'pg';
import { tenantId } from '../names.ts';
import { quoteIdent } from './identifiers.ts';

export interface TenantDbRef {
  /** tenant name, e.g. `smile-dental` */
  name: string;
  /** its schema, e.g. `t_smile_dental` */
  schema: string;
  /** its NOLOGIN role, e.g. `t_smile_dental` */
  role: string;
}

/** The schema and role names a tenant gets (DESIGN §3). */
export function tenantDbRef(name: string): TenantDbRef {
  const id = tenantId(name);
  return { name, schema: id, role: id };
}

/**
 * Runs `fn` in a transaction as the tenant's role with only its schema on the search_path;
 * commits when `fn` resolves, rolls back when it throws. The pool must be connected to the
 * database holding the tenant's schema (the platform database for shared isolation).
 * `current_setting('simptu.tenant')` holds the tenant name inside, for triggers and logs.
 */
export async function withTenant<T>(
  pool: pg.Pool,
  tenant: TenantDbRef,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const role = quoteIdent(tenant.role, 'role');
  const schema = quoteIdent(tenant.schema, 'schema');
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL ROLE ${role}`);
      await client.query(`SET LOCAL search_path TO ${schema}`);
      await client.query(`SELECT set_config('simptu.tenant', $1, true)`, [tenant.name]);
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection is in an unknown state: don't return it to the pool.
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      }
      throw err;
    }
  } finally {
    client.release(broken);
  }
}
