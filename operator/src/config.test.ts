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
    expect(() =>
      parseConfig(fromEnv({ SIMPTU_WORKERS: '0', SIMPTU_DEDICATED_AGENT_READINESS: 'soon' })),
    ).toThrow(ConfigError);
    try {
      parseConfig(fromEnv({ SIMPTU_WORKERS: '0' }));
    } catch (e) {
      expect(String(e)).toMatch(/\/databaseUrl/);
      expect(String(e)).toMatch(/\/workers/);
    }
  });

  it('reads booleans strictly', () => {
    const base = { DATABASE_URL: 'postgres://x', KAFKA_BROKERS: 'a:1' };
    expect(parseConfig(fromEnv({ ...base, SIMPTU_LEADER_ELECTION: 'False' })).leaderElection.enabled).toBe(
      false,
    );
    expect(parseConfig(fromEnv({ ...base, SIMPTU_LEADER_ELECTION: 'YES' })).leaderElection.enabled).toBe(
      true,
    );
    expect(() => parseConfig(fromEnv({ ...base, SIMPTU_LEADER_ELECTION: 'sure' }))).toThrow(
      /leaderElection\/enabled/,
    );
  });

  it('rejects unknown keys', () => {
    expect(() => parseConfig({ databaseUrl: 'x', kafkaBrokers: ['a:1'], typo: 1 })).toThrow(
      /typo|additional/i,
    );
  });

  it('dedicated agents: runtime Secrets, brokers and egress default sensibly and map from the environment', () => {
    const base = { DATABASE_URL: 'postgres://x', KAFKA_BROKERS: 'a:1' };
    const d = parseConfig(fromEnv(base));
    expect(d.agent.runtime).toEqual({
      databaseUrl: { name: 'simptu-database', key: 'app-url' },
      redisUrl: { name: 'simptu-redis', key: 'url' },
    });
    expect(d.agent.egress).toEqual({ cidrs: [], ports: [5432, 6379, 9092], smtpPorts: [587, 465] });

    const c = parseConfig(
      fromEnv({
        ...base,
        SIMPTU_DEDICATED_AGENT_DATABASE_URL_SECRET: 'agent-db',
        SIMPTU_DEDICATED_AGENT_DATABASE_URL_KEY: 'url',
        SIMPTU_DEDICATED_AGENT_REDIS_URL_SECRET: 'agent-redis',
        SIMPTU_DEDICATED_AGENT_KAFKA_BROKERS: 'k1:9094, k2:9094',
        SIMPTU_DEDICATED_AGENT_EGRESS_CIDRS: '10.20.0.0/16, 192.168.7.0/24',
        SIMPTU_DEDICATED_AGENT_EGRESS_PORTS: '5432,6380,9094',
        SIMPTU_DEDICATED_AGENT_SMTP_EGRESS_PORTS: '2525',
      }),
    );
    expect(c.agent.runtime).toEqual({
      databaseUrl: { name: 'agent-db', key: 'url' },
      redisUrl: { name: 'agent-redis', key: 'url' },
      kafkaBrokers: ['k1:9094', 'k2:9094'],
    });
    expect(c.agent.egress).toEqual({
      cidrs: ['10.20.0.0/16', '192.168.7.0/24'],
      ports: [5432, 6380, 9094],
      smtpPorts: [2525],
    });
    // an empty value opens no SMTP port
    expect(
      parseConfig(fromEnv({ ...base, SIMPTU_DEDICATED_AGENT_SMTP_EGRESS_PORTS: '' })).agent.egress.smtpPorts,
    ).toEqual([]);
    expect(() =>
      parseConfig(fromEnv({ ...base, SIMPTU_DEDICATED_AGENT_SMTP_EGRESS_PORTS: '587,x' })),
    ).toThrow(/egress\/smtpPorts/);
    // an empty chart value means no CIDRs
    expect(
      parseConfig(fromEnv({ ...base, SIMPTU_DEDICATED_AGENT_EGRESS_CIDRS: '' })).agent.egress.cidrs,
    ).toEqual([]);
    expect(() =>
      parseConfig(fromEnv({ ...base, SIMPTU_DEDICATED_AGENT_EGRESS_CIDRS: 'db.example.com' })),
    ).toThrow(/egress\/cidrs/);
    expect(() => parseConfig(fromEnv({ ...base, SIMPTU_DEDICATED_AGENT_EGRESS_PORTS: '5432,x' }))).toThrow(
      /egress\/ports/,
    );
    expect(() =>
      parseConfig(fromEnv({ ...base, SIMPTU_DEDICATED_AGENT_REDIS_URL_SECRET: 'Bad_Name' })),
    ).toThrow(/redisUrl\/name/);
  });
});
