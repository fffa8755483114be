import { describe, expect, it } from 'vitest';
import { ConfigError } from '@simptu/common';
import { loadRealtimeConfig } from './config.ts';

const base = {
  SIMPTU_REALTIME_DATABASE_URL: 'postgres://u:p@localhost/simptu',
  SIMPTU_REALTIME_REDIS_URL: 'redis://localhost:6379',
  SIMPTU_REALTIME_KAFKA_BROKERS: 'a:9092,b:9092',
  SIMPTU_REALTIME_AUTH_ISSUER: 'https://auth.simptu.io',
  SIMPTU_REALTIME_AUTH_JWKS_URI: 'https://auth.simptu.io/jwks',
  SIMPTU_REALTIME_KEK_BASE64: Buffer.alloc(32, 1).toString('base64'),
};

describe('loadRealtimeConfig', () => {
  it('fills defaults', () => {
    const c = loadRealtimeConfig(base);
    expect(c).toMatchObject({
      port: 4000,
      kafkaBrokers: ['a:9092', 'b:9092'],
      auth: { audience: ['simptu-api'] },
      limits: { maxFrameBytes: 65536, idleTimeoutMs: 60000 },
      history: { maxCount: 200, maxAgeMs: 600000 },
      kafkaPartitionsConcurrency: 8,
      kafkaCommitIntervalMs: 5000,
    });
  });
  it('reads the Kafka consumer settings', () => {
    expect(
      loadRealtimeConfig({
        ...base,
        SIMPTU_REALTIME_KAFKA_PARTITIONS_CONCURRENCY: '2',
        SIMPTU_REALTIME_KAFKA_COMMIT_INTERVAL_MS: '1000',
      }),
    ).toMatchObject({ kafkaPartitionsConcurrency: 2, kafkaCommitIntervalMs: 1000 });
    expect(() => loadRealtimeConfig({ ...base, SIMPTU_REALTIME_KAFKA_PARTITIONS_CONCURRENCY: '0' })).toThrow(
      ConfigError,
    );
  });
  it('converts numbers and reports every problem, typos included', () => {
    expect(loadRealtimeConfig({ ...base, SIMPTU_REALTIME_HISTORY_MAX_COUNT: '50' }).history.maxCount).toBe(
      50,
    );
    let err: unknown;
    try {
      loadRealtimeConfig({ SIMPTU_REALTIME_PORT: 'x', SIMPTU_REALTIME_HISTROY_MAX_COUNT: '1' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const envs = (err as ConfigError).issues.map((i) => i.env);
    expect(envs).toEqual(
      expect.arrayContaining([
        'SIMPTU_REALTIME_HISTROY_MAX_COUNT',
        'SIMPTU_REALTIME_PORT',
        'SIMPTU_REALTIME_DATABASE_URL',
        'SIMPTU_REALTIME_AUTH_ISSUER',
      ]),
    );
  });
});
