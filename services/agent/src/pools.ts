/**
 * What the agent runtime and the staff relay (staff-relay.ts) share about their tenants:
 *
 *  - `DatabasePools`: one `pg.Pool` per database the agent's tenants live in. Tenants of the
 *    platform database (every `shared` tenant) use the login role's pool; a tenant with a
 *    dedicated database gets a pool of its own on that database (same login, `withDatabase`),
 *    opened on first use and kept until `close()`. One instance per process, passed to both,
 *    so the runtime and the relay use the same connections; closed once, by its owner.
 *  - `TenantSet`: the registry-driven set of tenants (pool mode: every agent-shared tenant;
 *    dedicated: the one — registry.ts), re-read every `refreshMs`, with one consumer group per
 *    database: a database's group is reopened when its topic set changes and stopped when its
 *    last tenant leaves. Refreshes are serialized.
 */
import pg from 'pg';
import { withDatabase, type Logger, type TenantDbRef } from '@simptu/common';
import { loadAgentTenants, type AgentTenant } from './registry.ts';

export type TenantSelect = { mode: 'pool' } | { mode: 'dedicated'; tenant: string };

export interface DatabasePoolsOptions {
  /** the platform database URL of the login role */
  databaseUrl: string;
  /**
   * The login role's pool on the platform database (registry reads, shared tenants). Borrowed:
   * `close()` leaves it open. Without it, one is opened (`max`) and closed by `close()`.
   */
  shared?: pg.Pool;
  /** connections of each pool this opens; @default 10 */
  max?: number;
  logger?: Logger;
}

export class DatabasePools {
  readonly shared: pg.Pool;
  readonly #o: DatabasePoolsOptions;
  readonly #platformDb: string;
  readonly #ownsShared: boolean;
  readonly #dedicated = new Map<string, pg.Pool>();
  #closed: Promise<void> | undefined;

  constructor(options: DatabasePoolsOptions) {
    this.#o = options;
    this.#platformDb = decodeURIComponent(new URL(options.databaseUrl).pathname.slice(1));
    this.#ownsShared = !options.shared;
    this.shared = options.shared ?? this.#open(options.databaseUrl, this.#platformDb);
  }

  #open(connectionString: string, database: string): pg.Pool {
    // Idle connections are kept (min = max): a new one costs a backend fork and a SCRAM
    // exchange — tens of ms on a busy database — that a burst of turns would wait for.
    const max = this.#o.max ?? 10;
    const p = new pg.Pool({ connectionString, max, min: max });
    p.on('error', (err) => this.#o.logger?.warn({ err, database }, 'idle connection failed'));
    return p;
  }

  /**
   * Opens the pool of `database` up to `connections` (at most its size) now, so that the first
   * burst of turns does not wait for new backends (they are kept: see #open). Failures are
   * logged, not thrown: connections are then opened on demand as before.
   */
  async warm(database: string, connections = this.#o.max ?? 10): Promise<void> {
    const pool = this.for(database);
    const n = Math.min(connections, pool.options.max ?? 10) - pool.totalCount;
    if (n <= 0) return;
    const clients = await Promise.allSettled(Array.from({ length: n }, () => pool.connect()));
    for (const c of clients)
      if (c.status === 'fulfilled') c.value.release();
      else this.#o.logger?.warn({ err: c.reason, database }, 'could not open a database connection ahead');
  }

  /** The pool of a database (the platform database's is `shared`). */
  for(database: string): pg.Pool {
    if (this.#closed) throw new Error('database pools are closed');
    if (database === this.#platformDb) return this.shared;
    let p = this.#dedicated.get(database);
    if (!p) {
      p = this.#open(withDatabase(this.#o.databaseUrl, database), database);
      this.#dedicated.set(database, p);
    }
    return p;
  }

  /** The pool of a registry entry's database. */
  forTenant(t: Pick<AgentTenant, 'database'>): pg.Pool {
    return this.for(t.database);
  }

  /** Databases with a pool of their own (tests, metrics). */
  get dedicatedDatabases(): string[] {
    return [...this.#dedicated.keys()];
  }

  /** Ends the pools this opened (the shared one only when it opened it); once, later calls wait. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const pools = [...this.#dedicated.values(), ...(this.#ownsShared ? [this.shared] : [])];
      this.#dedicated.clear();
      await Promise.all(pools.map((p) => p.end()));
    })();
    return this.#closed;
  }
}

/**
 * The pools a component (the runtime, the staff relay) works on: the process's `DatabasePools`
 * when it was given one (borrowed: its owner closes it), else its own over the login pool
 * (`owned`: the component closes it on stop).
 */
export function componentPools(o: {
  pools?: DatabasePools | undefined;
  pool: pg.Pool;
  databaseUrl: string;
  max: number;
  logger?: Logger | undefined;
}): { pools: DatabasePools; owned: boolean } {
  if (o.pools) return { pools: o.pools, owned: false };
  const pools = new DatabasePools({
    shared: o.pool,
    databaseUrl: o.databaseUrl,
    max: o.max,
    ...(o.logger ? { logger: o.logger } : {}),
  });
  return { pools, owned: true };
}

/** A database's consumer group (and whatever runs with it), as opened by `TenantSet`. */
export interface TenantGroup {
  stop(): Promise<void>;
}

export interface TenantSetOptions<G extends TenantGroup> {
  /** registry reads (`platform.tenants`) */
  registry: pg.Pool;
  select: TenantSelect;
  /** @default 15000 */
  refreshMs?: number;
  /** the topic of a tenant the groups consume */
  topic: (t: AgentTenant) => string;
  /** opens the group of one database for these topics (sorted) */
  open: (database: string, topics: string[]) => Promise<G>;
  /** after each periodic refresh */
  afterRefresh?: () => Promise<void>;
  logger?: Logger;
  /** what a failed periodic refresh is logged as */
  failureMessage?: string;
}

export class TenantSet<G extends TenantGroup> {
  readonly #o: TenantSetOptions<G>;
  /** the current tenants by name; the same Map throughout, refilled by each refresh */
  readonly byName = new Map<string, AgentTenant>();
  readonly #groups = new Map<string, { group: G; topics: string }>();
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: TenantSetOptions<G>) {
    this.#o = options;
  }

  get tenants(): AgentTenant[] {
    return [...this.byName.values()];
  }

  /** The tenant's schema reference when `name` is served here AND lives in `database`. */
  resolve(database: string, name: string): TenantDbRef | undefined {
    const t = this.byName.get(name);
    return t && t.database === database ? t.ref : undefined;
  }

  /** The served tenants of one database. */
  inDatabase(database: string): AgentTenant[] {
    return this.tenants.filter((t) => t.database === database);
  }

  /** Reads the registry, opens the groups, then refreshes every `refreshMs`. */
  async start(): Promise<void> {
    await this.refresh();
    const every = this.#o.refreshMs ?? 15_000;
    const tick = () => {
      this.#timer = setTimeout(() => {
        this.refresh()
          .then(() => this.#o.afterRefresh?.())
          .catch((err: unknown) =>
            this.#o.logger?.warn({ err }, this.#o.failureMessage ?? 'registry refresh failed'),
          )
          .finally(() => !this.#stopped && tick());
      }, every);
      this.#timer.unref();
    };
    tick();
  }

  /** Re-reads the registry and (re)opens groups. Serialized. */
  refresh(): Promise<void> {
    const run = this.#chain.then(() => this.#refresh());
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Stops refreshing (waiting for a refresh in progress) and stops every group. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#chain;
    for (const g of this.#groups.values()) await g.group.stop();
    this.#groups.clear();
  }

  async #refresh(): Promise<void> {
    if (this.#stopped) return;
    const list = await loadAgentTenants(this.#o.registry, this.#o.select);
    this.byName.clear();
    for (const t of list) this.byName.set(t.name, t);
    const byDb = new Map<string, AgentTenant[]>();
    for (const t of list) byDb.set(t.database, [...(byDb.get(t.database) ?? []), t]);
    for (const [db, g] of this.#groups)
      if (!byDb.has(db)) {
        this.#groups.delete(db);
        await g.group.stop();
      }
    for (const [db, tenants] of byDb) {
      const topics = tenants.map(this.#o.topic).sort();
      const key = topics.join(',');
      const existing = this.#groups.get(db);
      if (existing?.topics === key) continue;
      if (existing) {
        this.#groups.delete(db);
        await existing.group.stop();
      }
      this.#groups.set(db, { group: await this.#o.open(db, topics), topics: key });
    }
  }
}
