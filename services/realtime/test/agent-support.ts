/**
 * The REAL agent runtime (services/agent, builtin scripted model) in-process next to the hub,
 * on the same scratch platform (`support.ts`'s `createPlatform`: its registry rows are what the
 * agent's pool mode serves — `agent_isolation` shared, no model configured → builtin). Built
 * the way services/agent/test/support.ts builds it, from the package's public exports.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  createKafka,
  createResource,
  createService,
  EventProducer,
  KeyringCache,
  setOpeningHours,
  setServiceResources,
  withTenant,
} from '@simptu/common';
import { AgentRuntime, ModelCache, OutboundSender, secretSource } from '@simptu/agent';
import { env, type Platform } from './support.ts';

export interface RunningAgent {
  runtime: AgentRuntime;
  stop(): Promise<void>;
}

export async function startAgent(p: Platform): Promise<RunningAgent> {
  const pool = new pg.Pool({ connectionString: p.appUrl, max: 8 });
  pool.on('error', () => undefined);
  const redis = new Redis(env('REDIS_URL'));
  const kafka = createKafka({
    clientId: 'simptu-realtime-test-agent',
    brokers: env('KAFKA_BROKERS').split(','),
  });
  const producer = new EventProducer({ kafka });
  await producer.connect();
  const secrets = secretSource({});
  const outbound = new OutboundSender({
    redis,
    redisPrefix: `test:rt-agent:${randomBytes(4).toString('hex')}:`,
    secrets,
    // web sessions only: no SMS / WhatsApp provider is ever called
    twilioBaseUrl: 'http://127.0.0.1:9',
    metaBaseUrl: 'http://127.0.0.1:9',
    metaApiVersion: 'v21.0',
    ratePerMinute: 100,
  });
  const runtime = new AgentRuntime({
    kafka,
    producer,
    pool,
    databaseUrl: p.appUrl,
    keyrings: new KeyringCache({ db: pool, kms: p.kms }),
    redis,
    models: new ModelCache(secrets),
    outbound,
    select: { mode: 'pool' },
    groupId: `rt-agent-test-${p.db.name}`,
    registryRefreshMs: 1000,
    // one token event per word the builtin model streams: many deltas to put together
    tokenWindowMs: 0,
    relayPollMs: 200,
  });
  await runtime.start();
  return {
    runtime,
    async stop() {
      await runtime.stop();
      outbound.close();
      await producer.disconnect();
      redis.disconnect();
      await pool.end();
    },
  };
}

/** A dental catalog (one chair, open every day 08:00–20:00), so availability questions use a tool. */
export async function seedDentalCatalog(p: Platform, tenant: string): Promise<void> {
  const ref = p.tenants.find((t) => t.name === tenant)!;
  const cipher = await p.keyrings.cipher(tenant);
  const pool = new pg.Pool({ connectionString: p.appUrl, max: 1 });
  pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  try {
    await withTenant(pool, ref, async (client) => {
      const ctx = { client, cipher, timeZone: 'UTC' };
      const chair = await createResource(ctx, { kind: 'chair', name: 'Chair 1' });
      const cleaning = await createService(ctx, {
        kind: 'treatment',
        name: 'Cleaning',
        durationMinutes: 30,
        priceCents: 20000,
        currency: 'RON',
      });
      await setServiceResources(ctx, cleaning.id, [chair.id]);
      await setOpeningHours(
        ctx,
        [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '08:00', closes: '20:00' })),
      );
    });
  } finally {
    await pool.end();
  }
}
