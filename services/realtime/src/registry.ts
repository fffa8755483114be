/**
 * What the hub needs of the platform registry (`platform.tenants`, written by the operator's
 * registry reconciler, DESIGN §5.6): which tenants are active, where their schema lives, and
 * which browser Origins may connect. Cached and refreshed periodically; a miss (a tenant
 * provisioned since the last refresh) triggers a refresh, rate-limited so unknown tenants in
 * tokens can't hammer the database.
 */
import pg from 'pg';
import { withDatabase, type TenantDbRef } from '@simptu/common';

export interface TenantInfo {
  name: string;
  ref: TenantDbRef;
  /** database holding the schema (the platform database for shared isolation) */
  database: string;
  origins: string[];
  timeZone: string;
  state: 'active' | 'suspended' | 'archived';
}

interface Row {
  name: string;
  tenant_id: string;
  schema_name: string;
  database_name: string;
  origins: string[];
  timezone: string;
  state: TenantInfo['state'];
}

export interface TenantRegistryOptions {
  /** a pool on the platform database (login role; it has SELECT on platform.tenants) */
  pool: pg.Pool;
  refreshMs: number;
  /** minimum time between refreshes caused by misses; @default 1000 */
  missRefreshMs?: number;
}

export class TenantRegistry {
  readonly #pool: pg.Pool;
  readonly #refreshMs: number;
  readonly #missRefreshMs: number;
  #tenants = new Map<string, TenantInfo>();
  #loadedAt = 0;
  #inflight: Promise<void> | undefined;
  readonly #listeners = new Set<(tenants: TenantInfo[]) => void>();

  constructor(options: TenantRegistryOptions) {
    this.#pool = options.pool;
    this.#refreshMs = options.refreshMs;
    this.#missRefreshMs = options.missRefreshMs ?? 1000;
  }

  /** Reloads the table (concurrent callers share one query). */
  refresh(): Promise<void> {
    this.#inflight ??= this.#load().finally(() => (this.#inflight = undefined));
    return this.#inflight;
  }

  async #load(): Promise<void> {
    const { rows } = await this.#pool.query<Row>(
      `SELECT name, tenant_id, schema_name, database_name, origins, timezone, state FROM platform.tenants`,
    );
    const next = new Map<string, TenantInfo>();
    for (const r of rows) {
      next.set(r.name, {
        name: r.name,
        ref: { name: r.name, schema: r.schema_name, role: r.tenant_id },
        database: r.database_name,
        origins: r.origins,
        timeZone: r.timezone,
        state: r.state,
      });
    }
    this.#tenants = next;
    this.#loadedAt = Date.now();
    const active = this.active();
    for (const l of this.#listeners) l(active);
  }

  /** An active tenant, or undefined (unknown, suspended, archived). */
  async get(name: string): Promise<TenantInfo | undefined> {
    const age = Date.now() - this.#loadedAt;
    if (age > this.#refreshMs || (!this.#tenants.has(name) && age > this.#missRefreshMs))
      await this.refresh();
    const t = this.#tenants.get(name);
    return t?.state === 'active' ? t : undefined;
  }

  active(): TenantInfo[] {
    return [...this.#tenants.values()].filter((t) => t.state === 'active');
  }

  /** Called after every load with the active tenants. */
  onChange(listener: (tenants: TenantInfo[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/**
 * Whether a browser Origin may connect for a tenant. No Origin header: not a browser (a
 * server-side client), allowed — the token is what authenticates. Origins compare exactly
 * (scheme, host, port), after normalising through URL so `https://x.example:443` matches.
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-10.2
 */
export function originAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined || origin === '') return true;
  const norm = (o: string): string | undefined => {
    try {
      const u = new URL(o);
      return u.origin === 'null' ? undefined : u.origin;
    } catch {
      return undefined;
    }
  };
  const o = norm(origin);
  if (o === undefined) return false;
  return allowed.some((a) => norm(a) === o);
}

/** One pool per database: the platform database, plus one per dedicated tenant database. */
export class TenantPools {
  readonly #baseUrl: string;
  readonly #max: number;
  readonly #pools = new Map<string, pg.Pool>();
  readonly platform: pg.Pool;
  readonly #platformDb: string;

  constructor(baseUrl: string, max: number) {
    this.#baseUrl = baseUrl;
    this.#max = max;
    this.#platformDb = decodeURIComponent(new URL(baseUrl).pathname.slice(1));
    this.platform = this.#make(baseUrl);
    this.#pools.set(this.#platformDb, this.platform);
  }

  #make(url: string): pg.Pool {
    const pool = new pg.Pool({ connectionString: url, max: this.#max });
    // An idle client's error (server restart) must not crash the process; the next query reconnects.
    pool.on('error', () => undefined);
    return pool;
  }

  for(t: Pick<TenantInfo, 'database'>): pg.Pool {
    let p = this.#pools.get(t.database);
    if (!p) {
      p = this.#make(withDatabase(this.#baseUrl, t.database));
      this.#pools.set(t.database, p);
    }
    return p;
  }

  isPlatform(t: Pick<TenantInfo, 'database'>): boolean {
    return t.database === this.#platformDb;
  }

  async end(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.end().catch(() => undefined)));
  }
}
