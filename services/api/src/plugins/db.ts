/**
 * PostgreSQL pools of the services' NOINHERIT login role (DESIGN §5.3): `app.db` on the platform
 * database (the registry, wrapped keys and every shared tenant's schema), `app.dbFor(tenant)`
 * for the database holding a tenant — the platform pool for shared tenants, one lazily created
 * pool per dedicated database (same credentials, database name swapped). All end on close.
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

export default fp(
  async (app: FastifyInstance, opts: DbPluginOptions) => {
    const { config } = opts;
    const platformDb = platformDatabaseName(config);
    const onError = (err: Error) => app.log.warn({ err }, 'idle database connection failed');
    const make = (url: string) => {
      const pool = new pg.Pool({ connectionString: url, max: config.databasePoolMax, application_name: 'simptu-api' });
      // An idle client's error (server restart) must not crash the process; the pool replaces it.
      pool.on('error', onError);
      return pool;
    };
    const db = make(config.databaseUrl);
    const dedicated = new Map<string, pg.Pool>();

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
