/**
 * The history cache (docs/api.md "History cache"): per process, in memory, the SERIALIZED
 * response of `GET /v1/sessions/:id/messages` (already decrypted: it never leaves the process,
 * and nothing of it is written to Redis), keyed by tenant + session + page query, together with
 * the session's owner (so the role check runs on a hit too) and the session VERSION it was read
 * under.
 *
 * Validation, on every request: each writer of a session (API, agent, realtime hub — every
 * function of the session domain that changes a session or its messages) gives the session a new
 * random version in Redis AFTER its transaction committed (`trackSessionVersions` in
 * @simptu/common). A request reads the current version in the rate limiter's Redis round trip
 * BEFORE it would query the database, and an entry is used only when its version is that one. A
 * page is stored under the version read before its query, so it reflects at least every commit
 * whose bump came before — a writer's commit + bump can never leave a stale page under the NEW
 * version; at worst an up-to-date page sits under an old version nobody asks for any more.
 * Several API instances each keep their own memory and all validate against the one Redis:
 * no in-process invalidation is relied on.
 *
 * Bounded by bytes (`cache.historyMaxBytes`, least recently used first out) and by age
 * (`cache.historyTtlSec`). When Redis can't be asked, a request does not use the cache at all
 * (database path), and when this instance's Redis connection comes back its whole cache is
 * dropped (plugins/history.ts): writes during the outage may not have bumped their versions. A
 * writer that could not reach Redis retries the bump until it can; what that can't cover — a
 * writer cut off from Redis while this instance is not, that dies before its retry succeeds — is
 * bounded by the age limit.
 *
 * Concurrent misses of one page under one version share one database read (single flight).
 * @see https://github.com/isaacs/node-lru-cache
 */
import { LRUCache } from 'lru-cache';

export interface CachedPage {
  /** the session version this page was read under */
  version: string;
  /** the session's customer (null: anonymous session) */
  owner: string | null;
  /** the serialized 200 response body */
  body: Buffer;
}

/** A page as the loader reads it; null when the session does not exist (not cached). */
export type LoadedPage = Omit<CachedPage, 'version'> | null;

export interface HistoryCacheOptions {
  /** 0 disables the cache */
  maxBytes: number;
  ttlMs: number;
}

/** Per-entry bookkeeping beyond the body (key, object, LRU node), a rough constant. */
const ENTRY_OVERHEAD_BYTES = 256;

export function historyCacheKey(tenant: string, sessionId: string, limit: number, position: string): string {
  return `${tenant}\u0000${sessionId.toLowerCase()}\u0000${limit}\u0000${position}`;
}

export class HistoryCache {
  readonly #lru: LRUCache<string, CachedPage> | undefined;
  readonly #inflight = new Map<string, Promise<CachedPage | null>>();

  constructor(opts: HistoryCacheOptions) {
    this.#lru =
      opts.maxBytes > 0
        ? new LRUCache<string, CachedPage>({
            maxSize: opts.maxBytes,
            sizeCalculation: (v, k) => v.body.length + k.length * 2 + ENTRY_OVERHEAD_BYTES,
            ttl: opts.ttlMs,
            // Expired entries are dropped when met (or pushed out by size), no timers.
            ttlAutopurge: false,
            updateAgeOnGet: false,
          })
        : undefined;
  }

  get enabled(): boolean {
    return this.#lru !== undefined;
  }

  /** bytes held (bodies + overhead) */
  get bytes(): number {
    return this.#lru?.calculatedSize ?? 0;
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }

  /** The entry of `key` if it was read under `version`. */
  get(key: string, version: string): CachedPage | undefined {
    const e = this.#lru?.get(key);
    return e !== undefined && e.version === version ? e : undefined;
  }

  /**
   * Loads the page of `key` under `version` (one `load` for concurrent callers), caches it, and
   * returns it; null (not cached) when `load` says the session does not exist.
   */
  load(key: string, version: string, load: () => Promise<LoadedPage>): Promise<CachedPage | null> {
    const flight = `${key}\u0000${version}`;
    let p = this.#inflight.get(flight);
    if (!p) {
      p = load()
        .then((page) => {
          if (page === null) return null;
          const entry: CachedPage = { version, owner: page.owner, body: page.body };
          this.#lru?.set(key, entry);
          return entry;
        })
        .finally(() => this.#inflight.delete(flight));
      this.#inflight.set(flight, p);
    }
    return p;
  }

  clear(): void {
    this.#lru?.clear();
  }
}
