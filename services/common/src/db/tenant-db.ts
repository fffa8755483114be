/**
 * The services' side of tenant isolation (DESIGN §5.3). The services log in as a NOINHERIT
 * role that is a member of every tenant role but holds none of their privileges by itself;
 * each unit of tenant work runs in a transaction that switched to the tenant's role and schema
 * with `SET LOCAL`, which COMMIT/ROLLBACK undo. A forgotten switch therefore fails closed
 * (permission denied), and a transaction can only ever see one tenant.
 *
 * The preamble (BEGIN, SET LOCAL ROLE, SET LOCAL search_path, the `simptu.tenant` setting) is
 * ONE simple-protocol query of four statements: one round trip instead of four. Postgres runs a
 * multi-statement query in order and stops at the first error; as the string starts with BEGIN,
 * a failing SET ROLE (not a member, unknown role) leaves an aborted transaction that the ROLLBACK
 * below ends, and `fn` never runs — fail-closed as before. The names in it are validated and
 * quoted identifiers (`quoteIdent`), the tenant name a quoted literal (`quoteLiteral`).
 *
 * After-commit hooks: code running inside the transaction can register work to do once it has
 * COMMITTED (`afterCommit(client, fn)`), e.g. invalidating a cache of what the transaction
 * changed — before the commit a concurrent reader could re-cache the old state. `withTenant`
 * runs them after COMMIT and before it resolves (so an HTTP reply leaves after them), never on
 * rollback. A hook must not throw (the data is committed whatever it does); one that does is
 * reported with `process.emitWarning` and does not affect the result.
 * @see https://www.postgresql.org/docs/15/sql-set-role.html
 * @see https://www.postgresql.org/docs/15/role-membership.html
 * @see https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-MULTI-STATEMENT
 */
import type pg from 'pg';
import { tenantId } from '../names.ts';
import { quoteIdent, quoteLiteral } from './identifiers.ts';

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

/** The `withTenant` transaction a client is in (see `tenantTransaction`). */
export interface TenantTransaction {
  readonly tenant: TenantDbRef;
  /** the pool the transaction's connection came from */
  readonly pool: pg.Pool;
  /** per-transaction scratch space for after-commit bookkeeping (keyed by a module's symbol) */
  readonly data: Map<symbol, unknown>;
  /**
   * queues `fn` to run after COMMIT (not after ROLLBACK); it gets the results of the round trip
   * that carried COMMIT (the `withCommit` statements', then COMMIT's; with `deferBegin` and
   * nothing sent before, the preamble's first) — empty when COMMIT went on its own
   */
  afterCommit(fn: (commitResults: readonly pg.QueryResult[]) => unknown): void;
  /**
   * Only with `deferBegin`: the preamble's statements (BEGIN, SET LOCAL …) for the caller to send
   * as the start of its first simple-protocol query, `'…; '` — or `''` once it was taken (it is
   * marked sent when taken: send it, or fail the transaction).
   */
  takeBegin(): string;
  /** Sends the preamble on its own unless it was taken already (`deferBegin`); else a no-op. */
  ensureBegun(): Promise<void>;
  /**
   * Queues a statement without parameters (values inlined as quoted literals) to send together
   * with COMMIT, in ONE round trip, after the function resolved: for a last write whose result
   * nobody reads. If it fails, the transaction rolls back and `withTenant` rejects with its error.
   */
  withCommit(sql: string): void;
}

const transactions = new WeakMap<pg.ClientBase, TenantTransaction>();

/** The `withTenant` transaction `client` is in, or undefined outside one. */
export function tenantTransaction(client: pg.ClientBase): TenantTransaction | undefined {
  return transactions.get(client);
}

/**
 * Queues `fn` to run once the `withTenant` transaction of `client` has committed. Returns false
 * (and queues nothing) when `client` is not inside `withTenant`.
 */
export function afterCommit(
  client: pg.ClientBase,
  fn: (commitResults: readonly pg.QueryResult[]) => unknown,
): boolean {
  const tx = transactions.get(client);
  if (!tx) return false;
  tx.afterCommit(fn);
  return true;
}

/** Results the preamble's statements add to a multi-statement query it starts (`takeBegin`). */
export const TENANT_PREAMBLE_RESULTS = 4;

/** The preamble: one simple-protocol query (no parameters), hence one round trip. */
function preamble(tenant: TenantDbRef): string {
  return (
    `BEGIN; SET LOCAL ROLE ${quoteIdent(tenant.role, 'role')}; ` +
    `SET LOCAL search_path TO ${quoteIdent(tenant.schema, 'schema')}; ` +
    `SELECT set_config('simptu.tenant', ${quoteLiteral(tenant.name)}, true)`
  );
}

export interface WithTenantOptions {
  /**
   * Don't send the preamble before `fn`: `fn` sends it itself as the start of its first query —
   * `tenantTransaction(client).takeBegin()` prepended to a simple-protocol multi-statement query,
   * or `ensureBegun()` before anything else — saving one round trip. Until it was sent nothing
   * runs as the tenant (the login role has no privileges of its own: a query sent first fails
   * closed), and a function that never sends it leaves nothing to commit.
   * @default false
   */
  deferBegin?: boolean;
}

/**
 * Runs `fn` in a transaction as the tenant's role with only its schema on the search_path;
 * commits when `fn` resolves, rolls back when it throws. The pool must be connected to the
 * database holding the tenant's schema (the platform database for shared isolation).
 * `current_setting('simptu.tenant')` holds the tenant name inside, for triggers and logs.
 * Hooks queued with `afterCommit` run after COMMIT, before this resolves.
 */
export async function withTenant<T>(
  pool: pg.Pool,
  tenant: TenantDbRef,
  fn: (client: pg.PoolClient) => Promise<T>,
  options: WithTenantOptions = {},
): Promise<T> {
  // Built (and the names validated) before a connection is taken.
  const begin = preamble(tenant);
  const client = await pool.connect();
  let broken: Error | undefined;
  const hooks: Array<(commitResults: readonly pg.QueryResult[]) => unknown> = [];
  let commitResults: readonly pg.QueryResult[] = [];
  const final: string[] = [];
  /** the preamble was sent (or handed to `fn` to send): a transaction is open */
  let begun = !options.deferBegin;
  let result: T;
  try {
    try {
      if (begun) await client.query(begin);
      transactions.set(client, {
        tenant,
        pool,
        data: new Map(),
        afterCommit: (f) => void hooks.push(f),
        takeBegin: () => {
          if (begun) return '';
          begun = true;
          return `${begin};\n`;
        },
        ensureBegun: async () => {
          if (begun) return;
          begun = true;
          await client.query(begin);
        },
        withCommit: (sql) => void final.push(sql),
      });
      result = await fn(client);
      transactions.delete(client);
      if (final.length > 0) {
        // The preamble, when nothing sent it yet, goes in the same round trip.
        const head = begun ? '' : `${begin};\n`;
        begun = true;
        const r = (await client.query(`${head}${final.join(';\n')};\nCOMMIT`)) as unknown as
          pg.QueryResult | pg.QueryResult[];
        commitResults = Array.isArray(r) ? r : [r];
      } else if (begun) await client.query('COMMIT');
    } catch (err) {
      transactions.delete(client);
      if (begun) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // The connection is in an unknown state: don't return it to the pool.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        }
      }
      throw err;
    }
  } finally {
    client.release(broken);
  }
  for (const hook of hooks) {
    try {
      await hook(commitResults);
    } catch (err) {
      process.emitWarning(
        `withTenant: an after-commit hook failed: ${err instanceof Error ? err.message : String(err)}`,
        'SimptuAfterCommitWarning',
      );
    }
  }
  return result;
}
