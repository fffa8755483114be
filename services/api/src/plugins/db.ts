/**
 * PostgreSQL pools of the services' NOINHERIT login role (DESIGN §5.3): `app.db` on the platform
 * database (the registry, wrapped keys and every shared tenant's schema), `app.dbFor(tenant)`
 * for the database holding a tenant — the platform pool for shared tenants, one lazily created
 * pool per dedicated database (same credentials, database name swapped). All end on close.
 *
 * Fail closed at start-up: tenant isolation rests on the login role being able to see NOTHING of
 * a tenant until a transaction switches to the tenant's role (`SET LOCAL ROLE`). A database URL
 * whose role is a superuser, has BYPASSRLS, or inherits the privileges of any other role (a
 * tenant's role above all — an INHERIT login role, or a grant WITH INHERIT TRUE) would make a
 * forgotten switch read across tenants, so the API refuses to start with it (`LoginRoleError`,
 * listing every problem). Predefined `pg_*` roles (e.g. `pg_monitor`) are allowed.
 * @see https://www.postgresql.org/docs/15/role-membership.html
 * @see https://node-postgres.com/apis/pool
 */
import fp from 'fastify-plugin';
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { platformDatabaseName, tenantDatabaseUrl, type ApiConfig } from '../config.ts';
import type { TenantInfo } from '../types.ts';

export interface DbPluginOptions {
  config: Pick<ApiConfig, 'databaseUrl' | 'databasePoolMax'>;
}

/** The API's database role may not be used: it could see tenant data without `SET ROLE`. */
export class LoginRoleError extends Error {
  readonly role: string;
  readonly problems: readonly string[];
  constructor(role: string, problems: readonly string[]) {
    super(
      `refusing to start: the database role ${JSON.stringify(role)} must not be used by the API: ${problems.join('; ')}. ` +
        "Use the services' NOINHERIT login role (the one the operator grants tenant roles to), not a superuser.",
    );
    this.name = 'LoginRoleError';
    this.role = role;
    this.problems = problems;
  }
}

/**
 * What is wrong with the connection's role for serving tenants (empty when nothing): superuser,
 * BYPASSRLS, or roles whose privileges it holds without `SET ROLE` (`pg_has_role(…, 'USAGE')`,
 * which honours NOINHERIT on PostgreSQL ≤ 15 and per-grant INHERIT on 16+).
 */
export async function loginRoleProblems(
  db: pg.Pool | pg.Client,
): Promise<{ role: string; problems: string[] }> {
  const { rows } = await db.query<{
    role: string;
    rolsuper: boolean;
    rolbypassrls: boolean;
    inherited: string[];
  }>(
    `SELECT r.rolname AS role, r.rolsuper, r.rolbypassrls,
            ARRAY(SELECT o.rolname::text FROM pg_roles o
                   WHERE o.oid <> r.oid AND o.rolname NOT LIKE 'pg\\_%'
                     AND pg_has_role(r.oid, o.oid, 'USAGE')
                   ORDER BY o.rolname) AS inherited
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const r = rows[0];
  if (!r) return { role: '?', problems: ['current_user is not in pg_roles'] };
  const problems: string[] = [];
  if (r.rolsuper) problems.push('it is a superuser');
  if (r.rolbypassrls) problems.push('it has BYPASSRLS');
  if (r.inherited.length > 0) {
    const shown =
      r.inherited.slice(0, 5).join(', ') + (r.inherited.length > 5 ? `, … (${r.inherited.length})` : '');
    problems.push(`it inherits the privileges of ${shown} (make it NOINHERIT, or grant WITH INHERIT FALSE)`);
  }
  return { role: r.role, problems };
}

export default fp(
  async (app: FastifyInstance, opts: DbPluginOptions) => {
    const { config } = opts;
    const platformDb = platformDatabaseName(config);
    const onError = (err: Error) => app.log.warn({ err }, 'idle database connection failed');
    const make = (url: string) => {
      const pool = new pg.Pool({
        connectionString: url,
        max: config.databasePoolMax,
        application_name: 'simptu-api',
      });
      // An idle client's error (server restart) must not crash the process; the pool replaces it.
      pool.on('error', onError);
      return pool;
    };
    const db = make(config.databaseUrl);
    const dedicated = new Map<string, pg.Pool>();

    try {
      const check = await loginRoleProblems(db);
      if (check.problems.length > 0) throw new LoginRoleError(check.role, check.problems);
    } catch (err) {
      await db.end();
      throw err;
    }

    app.decorate('db', db);
    app.decorate('dbFor', (tenant: TenantInfo): pg.Pool => {
      if (tenant.database === platformDb) return db;
      let pool = dedicated.get(tenant.database);
      if (!pool) {
        pool = make(tenantDatabaseUrl(config, tenant.database));
        dedicated.set(tenant.database, pool);
      }
      return pool;
    });
    app.addHook('onClose', async () => {
      await Promise.all([db.end(), ...[...dedicated.values()].map((p) => p.end())]);
    });
  },
  { name: 'simptu-db', fastify: '5.x' },
);
