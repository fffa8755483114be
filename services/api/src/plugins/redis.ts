/**
 * The Redis clients (rate limits, hot-read caches, session versions).
 *   - `app.redis`: every key gets the configured prefix (ioredis `keyPrefix`), so deployments
 *     and test runs sharing a Redis don't collide; callers add the tenant to their keys
 *     (`t:<tenant>:catalog:…`).
 *   - `app.sharedRedis`: the same server WITHOUT the prefix, for keys other services write too
 *     (the session versions of the history cache, `sessionVersionKey` in @simptu/common) and for
 *     the per-request rate-limit script (plugins/rate-limit.ts), which prefixes its own keys. It
 *     has no offline queue: while it is disconnected a command fails AT ONCE, so a request goes
 *     to the database (and skips the limits) instead of waiting for reconnection attempts.
 * Commands fail fast when Redis is down (a cache miss or a skipped rate limit beats a hung
 * request).
 * @see https://github.com/redis/ioredis#transparent-key-prefixing
 * @see https://github.com/redis/ioredis#offline-queue
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';

export interface RedisPluginOptions {
  url: string;
  prefix: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the Redis server without the key prefix (keys shared with other services) */
    sharedRedis: Redis;
    /** this deployment's key prefix (`redisPrefix`), for code that uses `sharedRedis` */
    redisPrefix: string;
  }
}

export default fp(
  async (app: FastifyInstance, opts: RedisPluginOptions) => {
    const common = { maxRetriesPerRequest: 2, connectTimeout: 3000, lazyConnect: true } as const;
    const redis = new Redis(opts.url, { ...common, keyPrefix: opts.prefix });
    const shared = new Redis(opts.url, { ...common, enableOfflineQueue: false });
    redis.on('error', (err) => app.log.warn({ err }, 'redis connection error'));
    shared.on('error', (err) => app.log.warn({ err }, 'redis connection error (shared client)'));
    await Promise.all(
      [redis, shared].map((r) =>
        r.connect().catch((err: unknown) => app.log.warn({ err }, 'redis not reachable at start-up')),
      ),
    );
    app.decorate('redis', redis);
    app.decorate('sharedRedis', shared);
    app.decorate('redisPrefix', opts.prefix);
    app.addHook('onClose', async () => {
      await Promise.all([redis, shared].map((r) => r.quit().catch(() => r.disconnect())));
    });
  },
  { name: 'simptu-redis', fastify: '5.x' },
);
