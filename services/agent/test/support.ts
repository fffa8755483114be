/**
 * Integration-test support for the agent: tenants provisioned by the operator's real code path
 * (fixture.ts: what the operator's encryption, database, topics and registry reconcilers make), the
 * agent runtime in-process against real Postgres, Kafka and Redis, and helpers to talk to it the
 * way the API does (an encrypted user message + `io.simptu.message.received` on the inbound
 * topic) and to watch what comes out (agent and domain topics, decrypted).
 */
import { randomBytes } from 'node:crypto';
import kafkajs, { type Consumer } from 'kafkajs';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  appendMessage,
  createCustomer,
  createResource,
  createService,
  createSession,
  createLogger,
  EventProducer,
  fromKafkaRecord,
  KeyringCache,
  messageBodyLocation,
  newCloudEvent,
  setOpeningHours,
  setServiceResources,
  tenantTopics,
  type CloudEvent,
  type DomainContext,
  type ServiceKind,
} from '@simptu/common';
import {
  createTestPlatform,
  provisionTenant,
  uniqueTenantName,
  type ProvisionOptions,
  type TestPlatform,
  type TestTenant,
} from './fixture.ts';
import { OutboundSender } from '../src/channels/outbound.ts';
import { ModelCache } from '../src/model/providers.ts';
import { AgentRuntime, streamLocation, type AgentRuntimeOptions } from '../src/runtime.ts';
import { secretSource } from '../src/secrets.ts';

export { createTestPlatform, provisionTenant, uniqueTenantName, type TestPlatform, type TestTenant };

export function env(name: 'DATABASE_URL' | 'REDIS_URL' | 'KAFKA_BROKERS'): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: source .testenv/env`);
  return v;
}

export function kafkaClient(clientId = 'simptu-agent-test'): kafkajs.Kafka {
  return new kafkajs.Kafka({
    clientId,
    brokers: env('KAFKA_BROKERS').split(','),
    logLevel: kafkajs.logLevel.NOTHING,
  });
}

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 45_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface SeedOptions {
  kind: ServiceKind;
  services: Array<{ name: string; durationMinutes: number; priceCents: number }>;
  resource: { kind: 'chair' | 'trainer' | 'room' | 'studio'; name: string };
  hours?: { opens: string; closes: string };
}

/** Catalog, opening hours (every day), one resource delivering every service. */
export async function seedCatalog(t: TestTenant, o: SeedOptions): Promise<string[]> {
  return t.run(async (ctx) => {
    const r = await createResource(ctx, o.resource);
    const ids: string[] = [];
    for (const s of o.services) {
      const svc = await createService(ctx, { kind: o.kind, currency: 'RON', ...s });
      await setServiceResources(ctx, svc.id, [r.id]);
      ids.push(svc.id);
    }
    const h = o.hours ?? { opens: '08:00', closes: '20:00' };
    await setOpeningHours(
      ctx,
      [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, ...h })),
    );
    return ids;
  });
}

/** Watches a set of topics from the beginning and keeps every decoded event. */
export class TopicWatcher {
  readonly events: Array<CloudEvent & { topic: string; key: string | undefined }> = [];
  #consumer: Consumer | undefined;

  async start(kafka: kafkajs.Kafka, topics: string[]): Promise<void> {
    const c = kafka.consumer({ groupId: `agent-test-watch-${randomBytes(6).toString('hex')}` });
    this.#consumer = c;
    await c.connect();
    await c.subscribe({ topics, fromBeginning: true });
    await c.run({
      eachMessage: async ({ topic, message }) => {
        const d = fromKafkaRecord(message);
        if (d.ok) this.events.push({ ...d.event, topic, key: d.key });
      },
    });
  }

  ofType(type: string, pred: (e: CloudEvent) => boolean = () => true): CloudEvent[] {
    return this.events.filter((e) => e.type === type && pred(e));
  }

  async stop(): Promise<void> {
    await this.#consumer?.disconnect();
  }
}

export interface AgentHarness {
  platform: TestPlatform;
  pool: pg.Pool;
  redis: Redis;
  producer: EventProducer;
  keyrings: KeyringCache;
  kafka: kafkajs.Kafka;
  runtime: AgentRuntime;
  watcher: TopicWatcher;
  tenants: TestTenant[];
  /** a customer + web session in the tenant */
  newConversation(
    t: TestTenant,
    channel?: 'web' | 'sms' | 'email',
    phone?: string,
  ): Promise<{ sessionId: string; customerId: string }>;
  /** stores the user message and publishes it like the API's sessions route */
  say(t: TestTenant, sessionId: string, text: string): Promise<string>;
  /** the decrypted reply to an inbound message id */
  reply(t: TestTenant, inboundId: string, timeoutMs?: number): Promise<string>;
  /** the decrypted token deltas of a run */
  tokens(t: TestTenant, inboundId: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function startAgentHarness(
  tenantOpts: Array<ProvisionOptions & { name?: string }>,
  runtimeOpts: Partial<AgentRuntimeOptions> & {
    secretsJson?: string;
    twilioBaseUrl?: string;
    metaBaseUrl?: string;
  } = {},
): Promise<AgentHarness> {
  const platform = await createTestPlatform();
  const tenants: TestTenant[] = [];
  for (const o of tenantOpts)
    tenants.push(await provisionTenant(platform, o.name ?? uniqueTenantName('ag'), o));
  const pool = new pg.Pool({ connectionString: platform.appUrl, max: 8 });
  pool.on('error', () => undefined);
  const redis = new Redis(env('REDIS_URL'));
  const kafka = kafkaClient();
  const producer = new EventProducer({ kafka });
  await producer.connect();
  const keyrings = new KeyringCache({ db: pool, kms: platform.kms });
  const secrets = secretSource({ json: runtimeOpts.secretsJson });
  const runtime = new AgentRuntime({
    kafka,
    producer,
    pool,
    databaseUrl: platform.appUrl,
    keyrings,
    redis,
    models: new ModelCache(secrets),
    outbound: new OutboundSender({
      redis,
      redisPrefix: `test:agent:${randomBytes(4).toString('hex')}:`,
      secrets,
      twilioBaseUrl: runtimeOpts.twilioBaseUrl ?? 'http://127.0.0.1:9',
      metaBaseUrl: runtimeOpts.metaBaseUrl ?? 'http://127.0.0.1:9',
      metaApiVersion: 'v21.0',
      ratePerMinute: 100,
    }),
    select: { mode: 'pool' },
    groupId: `agent-test-${platform.db.name}`,
    registryRefreshMs: 1000,
    tokenWindowMs: 20,
    relayPollMs: 200,
    ...(process.env.SIMPTU_TEST_LOG_LEVEL
      ? {
          logger: createLogger({
            service: 'agent-test',
            level: process.env.SIMPTU_TEST_LOG_LEVEL,
            destination: { write: (s: string) => void process.stderr.write(s) },
          }),
        }
      : {}),
    ...runtimeOpts,
  });
  await runtime.start();
  const watcher = new TopicWatcher();
  await watcher.start(
    kafka,
    tenants.flatMap((t) => [tenantTopics(t.name).agent, tenantTopics(t.name).domain]),
  );

  const run = async <T>(t: TestTenant, fn: (ctx: DomainContext) => Promise<T>) => t.run(fn);
  return {
    platform,
    pool,
    redis,
    producer,
    keyrings,
    kafka,
    runtime,
    watcher,
    tenants,
    async newConversation(t, channel = 'web', phone) {
      return run(t, async (ctx) => {
        const c = await createCustomer(ctx, {
          displayName: 'Ana Pop',
          phone: phone ?? `+4072${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`,
        });
        const s = await createSession(ctx, { customerId: c.id, channel });
        return { sessionId: s.id, customerId: c.id };
      });
    },
    async say(t, sessionId, text) {
      const { event } = await run(t, async (ctx) => {
        const m = await appendMessage(ctx, sessionId, { role: 'user', body: text });
        const ev = newCloudEvent({
          type: 'io.simptu.message.received',
          source: '/simptu/api',
          tenant: t.name,
          subject: sessionId,
          data: {
            session_id: sessionId,
            message_id: m.id,
            seq: m.seq,
            role: 'user',
            channel: 'web',
            body_enc: ctx.cipher.encryptText(text, messageBodyLocation(m.id)),
          },
        });
        return { event: ev };
      });
      await producer.forTenant(t.name).send(tenantTopics(t.name).inbound, event, sessionId);
      return (event.data as { message_id: string }).message_id;
    },
    async reply(t, inboundId, timeoutMs = 45_000) {
      const e = await waitFor(
        `reply to ${inboundId}`,
        () =>
          watcher.ofType(
            'io.simptu.agent.message',
            (x) => (x.data as { in_reply_to?: string }).in_reply_to === inboundId && x.tenant === t.name,
          )[0],
        timeoutMs,
      );
      const d = e.data as { message_id: string; body_enc: string };
      const cipher = await keyrings.cipher(t.name);
      return cipher.decryptText(d.body_enc, messageBodyLocation(d.message_id));
    },
    async tokens(t, inboundId) {
      const cipher = await keyrings.cipher(t.name);
      return watcher
        .ofType('io.simptu.agent.token', (x) => (x.data as { run_id?: string }).run_id === inboundId)
        .sort((a, b) => (a.data as { seq: number }).seq - (b.data as { seq: number }).seq)
        .map(
          (x) =>
            (
              JSON.parse(
                cipher.decryptText((x.data as { payload_enc: string }).payload_enc, streamLocation(x.id)),
              ) as { text: string }
            ).text,
        );
    },
    async close() {
      await runtime.stop();
      await watcher.stop();
      await producer.disconnect();
      redis.disconnect();
      await pool.end();
      const results = await Promise.allSettled(tenants.map((t) => t.deprovision()));
      await platform.close();
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}
