/**
 * Redis read-through cache for hot tenant reads (catalog, availability), DESIGN §7.
 *
 * Keys are tenant-scoped: `<prefix>t:<tenant>:<area>:g<generation>:<sha256(key)>`, where
 * `<prefix>` is the Redis plugin's ioredis `keyPrefix` (`simptu:api:` by default, so
 * `simptu:api:t:smile-dental:catalog:g3:…`). Invalidation does not delete keys (that needs SCAN, and races with a reader that loaded before the write
 * committed and stores after it): it INCRs the area's generation
 * `<prefix>t:<tenant>:gen:<area>`, so every later read looks under a new name and stale entries
 * simply expire. A reader that read the old generation and stores a value computed before the
 * write stores it under the old generation, where nobody looks any more.
 *
 * Values are encrypted with the tenant's DEK (AAD bound to the exact Redis key), so a tenant's
 * data is ciphertext in Redis too and crypto-shredding the tenant's keys makes it unreadable
 * (DESIGN §5 deletion, §6). A value copied to another key or tenant fails to decrypt and is
 * treated as a miss.
 *
 * Redis is an optimisation: any Redis or decryption failure falls back to the loader (logged),
 * so the cache can never turn a good request into a 5xx.
 * @see https://redis.io/docs/latest/develop/use/client-side-caching/ (invalidation by versioned keys)
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FieldCipher } from '@simptu/common';

export const CACHE_AREAS = ['catalog', 'availability'] as const;
export type CacheArea = (typeof CACHE_AREAS)[number];

/**
 * Default seconds a cached value lives; writes invalidate earlier. The app uses the configured
 * `cache.catalogTtlSec` / `cache.availabilityTtlSec` (`configuredTtls`) — these are only the
 * fallback of `readThrough` callers that pass no TTLs.
 */
export const CACHE_TTL_SECONDS: Readonly<Record<CacheArea, number>> = {
  catalog: 300,
  // Short: slots also expire with the clock (a slot in the past is no slot), and bookings made
  // by other services reach us through events, not through this process.
  availability: 30,
};

/** A generation key outlives every value TTL by far, so an expired generation can't resurrect old values. */
const GENERATION_TTL_SECONDS = 7 * 86_400;

/** Relative to the client's `keyPrefix` (ioredis prepends it to every key). */
export const CACHE_KEY_PREFIX = 't:';

export function tenantKeyPrefix(tenant: string): string {
  return `${CACHE_KEY_PREFIX}${tenant}:`;
}

export function generationKey(tenant: string, area: CacheArea): string {
  return `${tenantKeyPrefix(tenant)}gen:${area}`;
}

export function valueKey(tenant: string, area: CacheArea, generation: string, key: string): string {
  const digest = createHash('sha256').update(key, 'utf8').digest('hex');
  return `${tenantKeyPrefix(tenant)}${area}:g${generation}:${digest}`;
}

interface CacheLogger {
  warn(obj: object, msg: string): void;
}

export interface CacheDeps {
  redis: Redis;
  cipherFor(tenant: string): Promise<FieldCipher>;
  log?: CacheLogger;
  /** per-area TTL overrides (config `cache.catalogTtlSec`, `cache.availabilityTtlSec`) */
  ttlSeconds?: Partial<Record<CacheArea, number>>;
}

/** The per-area TTLs of the configuration (`SIMPTU_API_CACHE_*_TTL_SEC`). */
export function configuredTtls(cache: {
  catalogTtlSec: number;
  availabilityTtlSec: number;
}): Record<CacheArea, number> {
  return { catalog: cache.catalogTtlSec, availability: cache.availabilityTtlSec };
}

function location(redisKey: string) {
  return { table: 'redis_cache', column: 'value', rowId: redisKey };
}

/**
 * The cached value of `key` in the tenant's `area`, or `load()`'s result (then cached for the
 * area's TTL). `load` must return JSON-serializable data (no Dates: convert to strings first,
 * so a hit and a miss return the same shape).
 */
export async function readThrough<T>(
  deps: CacheDeps,
  tenant: string,
  area: CacheArea,
  key: string,
  load: () => Promise<T>,
): Promise<T> {
  let redisKey: string | undefined;
  let cipher: FieldCipher | undefined;
  try {
    cipher = await deps.cipherFor(tenant);
    const generation = (await deps.redis.get(generationKey(tenant, area))) ?? '0';
    redisKey = valueKey(tenant, area, generation, key);
    const raw = await deps.redis.get(redisKey);
    if (raw !== null) return JSON.parse(cipher.decryptText(raw, location(redisKey))) as T;
  } catch (err) {
    deps.log?.warn({ err, tenant, area }, 'cache read failed; loading from the database');
  }
  const value = await load();
  if (redisKey !== undefined && cipher !== undefined) {
    try {
      const text = cipher.encryptText(JSON.stringify(value), location(redisKey));
      await deps.redis.set(redisKey, text, 'EX', deps.ttlSeconds?.[area] ?? CACHE_TTL_SECONDS[area]);
    } catch (err) {
      deps.log?.warn({ err, tenant, area }, 'cache write failed');
    }
  }
  return value;
}

/**
 * Makes every cached value of the tenant's `areas` unreachable. Call AFTER the write committed
 * (before, a concurrent reader could cache the old state under the new generation).
 */
export async function invalidate(
  deps: Pick<CacheDeps, 'redis' | 'log'>,
  tenant: string,
  ...areas: CacheArea[]
): Promise<void> {
  try {
    const multi = deps.redis.multi();
    for (const area of new Set(areas)) {
      const k = generationKey(tenant, area);
      multi.incr(k).expire(k, GENERATION_TTL_SECONDS);
    }
    await multi.exec();
  } catch (err) {
    // The TTLs bound the staleness when Redis is unreachable.
    deps.log?.warn({ err, tenant, areas }, 'cache invalidation failed');
  }
}

/**
 * What a domain event makes stale: bookings change availability; catalog changes change the
 * catalog and availability. For an event consumer (`io.simptu.booking.created`, …) so that
 * writes made by other services (the agent's booking tools) invalidate this cache too.
 */
export function areasForEvent(type: string): CacheArea[] {
  if (type.startsWith('io.simptu.booking.')) return ['availability'];
  if (type.startsWith('io.simptu.catalog.')) return ['catalog', 'availability'];
  return [];
}

/** Invalidates what `areasForEvent(type)` names; a no-op for other events. */
export async function invalidateForEvent(
  deps: Pick<CacheDeps, 'redis' | 'log'>,
  tenant: string,
  type: string,
): Promise<void> {
  const areas = areasForEvent(type);
  if (areas.length > 0) await invalidate(deps, tenant, ...areas);
}
