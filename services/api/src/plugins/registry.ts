/**
 * The tenant registry as the API sees it: rows of `platform.tenants` (written by the operator,
 * DESIGN §5.6; the login role has SELECT on it) mapped to `TenantInfo`, cached in memory for a
 * short TTL so a suspension takes effect within seconds without a query per request.
 * Unknown and archived tenants read as `undefined`; suspended ones are returned (with their
 * state) so `authenticate` can answer 403 TENANT_SUSPENDED rather than a misleading 401.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import type { TenantInfo, TenantRegistry } from '../types.ts';

interface Row {
  name: string;
  display_name: string;
  business_type: TenantInfo['businessType'];
  locale: string;
  timezone: string;
  database_name: string;
  schema_name: string;
  tenant_id: string;
  origins: string[];
  state: TenantInfo['state'];
}

const COLUMNS =
  'name, display_name, business_type, locale, timezone, database_name, schema_name, tenant_id, origins, state';

function toInfo(r: Row): TenantInfo {
  return {
    name: r.name,
    displayName: r.display_name,
    businessType: r.business_type,
    locale: r.locale,
    timezone: r.timezone,
    database: r.database_name,
    schema: r.schema_name,
    // The tenant's NOLOGIN role is named like its id (DESIGN §3: t_<name>).
    role: r.tenant_id,
    origins: r.origins ?? [],
    state: r.state,
  };
}

export class PgTenantRegistry implements TenantRegistry {
  readonly #db: pg.Pool;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { info: TenantInfo | undefined; at: number }>();
  readonly #inflight = new Map<string, Promise<TenantInfo | undefined>>();

  constructor(db: pg.Pool, ttlMs: number, now: () => number = Date.now) {
    this.#db = db;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  async get(name: string): Promise<TenantInfo | undefined> {
    const hit = this.#cache.get(name);
    if (hit && this.#now() - hit.at < this.#ttlMs) return hit.info;
    let p = this.#inflight.get(name);
    if (!p) {
      p = this.#load(name).finally(() => this.#inflight.delete(name));
      this.#inflight.set(name, p);
    }
    return p;
  }

  invalidate(name: string): void {
    this.#cache.delete(name);
  }

  /** Every active tenant (for the outbox relay and consumers); not cached. */
  async active(): Promise<TenantInfo[]> {
    const { rows } = await this.#db.query<Row>(
      `SELECT ${COLUMNS} FROM platform.tenants WHERE state = 'active' ORDER BY name`,
    );
    return rows.map(toInfo);
  }

  async #load(name: string): Promise<TenantInfo | undefined> {
    const { rows } = await this.#db.query<Row>(`SELECT ${COLUMNS} FROM platform.tenants WHERE name = $1`, [
      name,
    ]);
    const info = rows[0] && rows[0].state !== 'archived' ? toInfo(rows[0]) : undefined;
    // Bound the cache: tenant names come from verified tokens, but don't grow without limit.
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(name, { info, at: this.#now() });
    return info;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the registry with `active()` (plugins only; routes use `app.registry`) */
    tenantRegistry: PgTenantRegistry;
  }
}

export interface RegistryPluginOptions {
  ttlMs: number;
}

export default fp(
  async (app: FastifyInstance, opts: RegistryPluginOptions) => {
    const registry = new PgTenantRegistry(app.db, opts.ttlMs);
    app.decorate('registry', registry);
    app.decorate('tenantRegistry', registry);
  },
  { name: 'simptu-registry', fastify: '5.x', dependencies: ['simptu-db'] },
);
