import { describe, expect, it } from 'vitest';
import { ConfigError, fromEnv, parseConfig } from './config.ts';

describe('operator config', () => {
  it('applies defaults from the environment mapping', () => {
    const c = parseConfig(fromEnv({ DATABASE_URL: 'postgres://x', KAFKA_BROKERS: 'a:1, b:2' }));
    expect(c.kafkaBrokers).toEqual(['a:1', 'b:2']);
    expect(c.workers).toBe(4);
    expect(c.leaderElection.enabled).toBe(true);
    expect(c.kms).toEqual({ provider: 'local', secretName: 'simptu-kek', createIfMissing: false });
    expect(c.metricsPort).toBe(8080);
  });

  it('fails fast naming every bad field', () => {
    expect(() => parseConfig(fromEnv({ SIMPTU_WORKERS: '0', SIMPTU_DEDICATED_AGENT_READINESS: 'soon' }))).toThrow(ConfigError);
    try {
      parseConfig(fromEnv({ SIMPTU_WORKERS: '0' }));
    } catch (e) {
      expect(String(e)).toMatch(/\/databaseUrl/);
      expect(String(e)).toMatch(/\/workers/);
    }
  });

  it('reads booleans strictly', () => {
    const base = { DATABASE_URL: 'postgres://x', KAFKA_BROKERS: 'a:1' };
    expect(parseConfig(fromEnv({ ...base, SIMPTU_LEADER_ELECTION: 'False' })).leaderElection.enabled).toBe(false);
    expect(parseConfig(fromEnv({ ...base, SIMPTU_LEADER_ELECTION: 'YES' })).leaderElection.enabled).toBe(true);
    expect(() => parseConfig(fromEnv({ ...base, SIMPTU_LEADER_ELECTION: 'sure' }))).toThrow(/leaderElection\/enabled/);
  });

  it('rejects unknown keys', () => {
    expect(() => parseConfig({ databaseUrl: 'x', kafkaBrokers: ['a:1'], typo: 1 })).toThrow(/typo|additional/i);
  });
});
