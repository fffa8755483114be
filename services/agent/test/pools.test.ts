/**
 * pools.ts against real Postgres: the database pools the runtime and the staff relay share
 * (platform database → the login pool, another database → a pool of its own, one per database,
 * closed once) and the registry-driven tenant set (one group per database, reopened when its
 * topics change, stopped when its last tenant leaves).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, tenantTopics, type ScratchDatabase } from '@simptu/common';
import { DatabasePools, TenantSet } from '../src/pools.ts';
import { AgentRuntime } from '../src/runtime.ts';
import { StaffRelay } from '../src/staff-relay.ts';
import type { AgentTenant } from '../src/registry.ts';
import { OutboundSender } from '../src/channels/outbound.ts';
import { ModelCache } from '../src/model/providers.ts';
import { secretSource } from '../src/secrets.ts';
import {
  createTestPlatform,
  env,
  kafkaClient,
  provisionTenant,
  type TestPlatform,
  type TestTenant,
} from './support.ts';
import { Redis } from 'ioredis';
import { EventProducer, KeyringCache } from '@simptu/common';

let platform: TestPlatform;
let other: ScratchDatabase;
let login: pg.Pool;
let A: TestTenant;
let B: TestTenant;

beforeAll(async () => {
  platform = await createTestPlatform();
  other = await createScratchDatabase(env('DATABASE_URL'), 'simptu_agent_dedicated');
  login = new pg.Pool({ connectionString: platform.appUrl, max: 4 });
  login.on('error', () => undefined);
  A = await provisionTenant(platform);
  B = await provisionTenant(platform);
}, 120_000);

afterAll(async () => {
  await login?.end();
  await A?.deprovision();
  await B?.deprovision();
  await other?.drop();
  await platform?.close();
}, 60_000);

const currentDb = async (p: pg.Pool) =>
  (await p.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;

describe('DatabasePools', () => {
  it('routes the platform database to the login pool and another database to one pool of its own', async () => {
    const pools = new DatabasePools({ databaseUrl: platform.appUrl, shared: login, max: 2 });
    expect(pools.for(platform.db.name)).toBe(login);
    expect(pools.forTenant({ database: platform.db.name })).toBe(login);
    const dedicated = pools.for(other.name);
    expect(dedicated).not.toBe(login);
    expect(pools.for(other.name)).toBe(dedicated);
    expect(await currentDb(dedicated)).toBe(other.name);
    expect(pools.dedicatedDatabases).toEqual([other.name]);

    await Promise.all([pools.close(), pools.close()]);
    expect(dedicated.ended).toBe(true);
    // borrowed: still the caller's to close
    expect(login.ended).toBe(false);
    expect(await currentDb(login)).toBe(platform.db.name);
    expect(() => pools.for(other.name)).toThrow(/closed/);
  });

  it('opens a pool to its size ahead (warm) and keeps idle connections (min = max)', async () => {
    const pools = new DatabasePools({ databaseUrl: platform.appUrl, max: 3 });
    try {
      const backends = async () => {
        const { rows } = await platform.admin.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND usename = $2`,
          [other.name, new URL(platform.appUrl).username],
        );
        return rows[0]!.n;
      };
      expect(await backends()).toBe(0);
      await pools.warm(other.name);
      const pool = pools.for(other.name);
      expect([pool.totalCount, pool.idleCount]).toEqual([3, 3]);
      expect(await backends()).toBe(3);
      expect(pool.options.min).toBe(3); // pg-pool reaps idle clients only above min
      await pools.warm(other.name); // already open: nothing more
      expect(pool.totalCount).toBe(3);
    } finally {
      await pools.close();
    }
  });

  it('closes the login pool it opened itself', async () => {
    const pools = new DatabasePools({ databaseUrl: platform.appUrl, max: 1 });
    expect(await currentDb(pools.shared)).toBe(platform.db.name);
    await pools.close();
    expect(pools.shared.ended).toBe(true);
  });
});

describe('TenantSet', () => {
  it('one group per database, reopened when its topics change, stopped when its last tenant leaves', async () => {
    const opened: Array<{ db: string; topics: string[]; stopped: boolean }> = [];
    const set = new TenantSet({
      registry: login,
      select: { mode: 'pool' },
      refreshMs: 3_600_000,
      topic: (t: AgentTenant) => tenantTopics(t.name).inbound,
      open: async (db, topics) => {
        const g = { db, topics, stopped: false };
        opened.push(g);
        return {
          stop: async () => {
            g.stopped = true;
          },
        };
      },
    });
    await set.start();
    try {
      expect(set.tenants.map((t) => t.name).sort()).toEqual([A.name, B.name].sort());
      expect(opened).toEqual([
        {
          db: platform.db.name,
          topics: [A.topics.inbound, B.topics.inbound].sort(),
          stopped: false,
        },
      ]);
      expect(set.resolve(platform.db.name, A.name)).toEqual(A.ref);
      // a tenant is resolved only in its own database
      expect(set.resolve(other.name, A.name)).toBeUndefined();
      expect(set.resolve(platform.db.name, 'nobody')).toBeUndefined();

      // an unchanged registry changes nothing
      await set.refresh();
      expect(opened).toHaveLength(1);

      // A moves to a dedicated database (as the operator's migration would): two groups
      await platform.admin.query('UPDATE platform.tenants SET database_name = $2 WHERE name = $1', [
        A.name,
        other.name,
      ]);
      await set.refresh();
      // the old group stopped; one group per database opened (in the registry's order)
      expect(opened).toHaveLength(3);
      expect(opened[0]).toEqual({
        db: platform.db.name,
        topics: [A.topics.inbound, B.topics.inbound].sort(),
        stopped: true,
      });
      const byDb = (db: string) => opened.slice(1).find((g) => g.db === db);
      expect(byDb(platform.db.name)).toEqual({
        db: platform.db.name,
        topics: [B.topics.inbound],
        stopped: false,
      });
      expect(byDb(other.name)).toEqual({ db: other.name, topics: [A.topics.inbound], stopped: false });
      expect(set.inDatabase(other.name).map((t) => t.name)).toEqual([A.name]);
      expect(set.resolve(platform.db.name, A.name)).toBeUndefined();

      // A leaves the pool: its database's group stops
      await platform.admin.query(
        "UPDATE platform.tenants SET agent_isolation = 'dedicated' WHERE name = $1",
        [A.name],
      );
      await set.refresh();
      expect(byDb(other.name)!.stopped).toBe(true);
      expect(byDb(platform.db.name)!.stopped).toBe(false);
      expect(opened).toHaveLength(3);
      expect(set.tenants.map((t) => t.name)).toEqual([B.name]);
    } finally {
      await set.stop();
      await platform.admin.query(
        "UPDATE platform.tenants SET agent_isolation = 'shared', database_name = $2 WHERE name = $1",
        [A.name, platform.db.name],
      );
    }
    expect(opened.every((g) => g.stopped)).toBe(true);
  }, 60_000);
});

describe('runtime and staff relay on one DatabasePools', () => {
  it('both use it; neither closes it on stop (its owner does, once)', async () => {
    const pools = new DatabasePools({ databaseUrl: platform.appUrl, shared: login, max: 2 });
    const redis = new Redis(env('REDIS_URL'));
    const kafka = kafkaClient();
    const producer = new EventProducer({ kafka });
    await producer.connect();
    const keyrings = new KeyringCache({ db: login, kms: platform.kms });
    const secrets = secretSource({});
    const outbound = new OutboundSender({
      redis,
      redisPrefix: `test:pools:${randomBytes(4).toString('hex')}:`,
      secrets,
      twilioBaseUrl: 'http://127.0.0.1:9',
      metaBaseUrl: 'http://127.0.0.1:9',
      metaApiVersion: 'v21.0',
      ratePerMinute: 10,
    });
    const groupId = `agent-test-pools-${randomBytes(4).toString('hex')}`;
    const common = {
      kafka,
      pool: login,
      databaseUrl: platform.appUrl,
      pools,
      keyrings,
      outbound,
      select: { mode: 'pool' as const },
      groupId,
      registryRefreshMs: 3_600_000,
    };
    const runtime = new AgentRuntime({ ...common, producer, redis, models: new ModelCache(secrets) });
    const relay = new StaffRelay(common);
    try {
      await runtime.start();
      await relay.start();
      expect(runtime.tenants.map((t) => t.name).sort()).toEqual([A.name, B.name].sort());
      expect(relay.tenants.map((t) => t.name).sort()).toEqual([A.name, B.name].sort());
      // the runtime's outbound delivery goes through the shared pools
      expect(await runtime.deliverOutbound(A.name)).toBe(0);
    } finally {
      await runtime.stop();
      await relay.stop();
    }
    expect(login.ended).toBe(false);
    expect(pools.for(platform.db.name)).toBe(login);
    await pools.close();
    await producer.disconnect();
    redis.disconnect();
  }, 120_000);
});
