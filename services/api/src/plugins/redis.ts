/**
 * The Redis client (rate limits, hot-read cache). Every key gets the configured prefix
 * (ioredis `keyPrefix`), so deployments and test runs sharing a Redis don't collide; callers
 * add the tenant to their keys (`<tenant>:catalog:…`). Commands fail fast when Redis is down
 * (a cache miss or a skipped rate limit beats a hung request).
 * @see https://github.com/redis/ioredis#transparent-key-prefixing
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';

export interface RedisPluginOptions {
  url: string;
  prefix: string;
}

export default fp(
  async (app: FastifyInstance, opts: RedisPluginOptions) => {
    const redis = new Redis(opts.url, {
      keyPrefix: opts.prefix,
      maxRetriesPerRequest: 2,
      connectTimeout: 3000,
      lazyConnect: true,
    });
    redis.on('error', (err) => app.log.warn({ err }, 'redis connection error'));
    await redis.connect().catch((err: unknown) => app.log.warn({ err }, 'redis not reachable at start-up'));
    app.decorate('redis', redis);
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
  },
  { name: 'simptu-redis', fastify: '5.x' },
);
