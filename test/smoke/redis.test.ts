import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { requireEnv } from '../support/testenv.ts';

describe('test environment: Redis', () => {
  const redis = new Redis(requireEnv('REDIS_URL'), { lazyConnect: false, maxRetriesPerRequest: 2 });
  const prefix = `smoke:${randomBytes(4).toString('hex')}`;

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('runs commands, expiry and pub/sub against a real server', async () => {
    await redis.set(`${prefix}:k`, 'v', 'EX', 60);
    expect(await redis.get(`${prefix}:k`)).toBe('v');
    expect(await redis.ttl(`${prefix}:k`)).toBeGreaterThan(0);
    await redis.xadd(`${prefix}:stream`, '*', 'n', '1');
    await redis.xadd(`${prefix}:stream`, '*', 'n', '2');
    const entries = await redis.xrange(`${prefix}:stream`, '-', '+');
    expect(entries.map(([, fields]) => fields[1])).toEqual(['1', '2']);

    const sub = redis.duplicate();
    try {
      const got = new Promise<string>((resolve) =>
        sub.on('message', (_channel, message) => resolve(message)),
      );
      await sub.subscribe(`${prefix}:chan`);
      await redis.publish(`${prefix}:chan`, 'hello');
      expect(await got).toBe('hello');
    } finally {
      sub.disconnect();
    }
  });
});
