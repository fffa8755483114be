import { randomBytes } from 'node:crypto';
import kafkajs, { type Admin, type Consumer, type Kafka, type Producer } from 'kafkajs';
import pg from 'pg';
import { createScratchDatabase, migratePlatform, PLATFORM_TOPIC, type ScratchDatabase } from '@simptu/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, KIND, type Tenant, type TenantStatus } from '../../src/api/types.ts';
import { fromKafkaRecord, type CloudEvent } from '@simptu/common';
import {
  createRegistryProducer,
  registryReconciler,
  type RegistryDeps,
} from '../../src/reconcile/registry.ts';
import { ensurePlatformTopic } from '../../src/reconcile/topics.ts';

function counter() {
  const counts: Record<string, number> = {};
  return { counts, inc: (b: string, n = 1) => void (counts[b] = (counts[b] ?? 0) + n) };
}

function tenant(deletionPolicy: 'Retain' | 'Delete'): Tenant {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: `rg-${randomBytes(5).toString('hex')}`, generation: 1 },
    spec: {
      displayName: 'Registry test',
      businessType: 'gym',
      locale: 'en-GB',
      timezone: 'Europe/London',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 1, retentionHours: 1 },
      encryption: { rotationDays: 90 },
      frontend: { origins: ['https://gym.example'], redirectURIs: ['https://gym.example/cb'] },
      deletionPolicy,
      deletionProtection: false,
      suspended: false,
    },
  };
}

const facts = (name: string, schemaVersion = 1): Partial<TenantStatus> => ({
  database: { name: 'simptu', schema: `t_${name.replace(/-/g, '_')}`, schemaVersion },
  encryption: { activeKeyVersion: 1, rotatedAt: new Date(0).toISOString() },
  topics: [`simptu.t.${name}.inbound`, `simptu.t.${name}.agent`, `simptu.t.${name}.domain`],
});

let db: ScratchDatabase;
let pool: pg.Pool;
let kafka: Kafka;
let admin: Admin;
let producer: Producer;
let consumer: Consumer;
const events: Array<{ key: string; event: CloudEvent; contentType: string }> = [];

beforeAll(async () => {
  db = await createScratchDatabase(process.env.DATABASE_URL ?? '', 'registry_test');
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  await migratePlatform(pool);
  kafka = new kafkajs.Kafka({
    clientId: 'registry-test',
    brokers: [process.env.KAFKA_BROKERS ?? ''],
    logLevel: kafkajs.logLevel.NOTHING,
  });
  admin = kafka.admin();
  await admin.connect();
  await ensurePlatformTopic(admin, { replicationFactor: 1 });
  producer = createRegistryProducer(kafka);
  await producer.connect();
  // A fresh group reading from the beginning; other tests' events are filtered out by key.
  consumer = kafka.consumer({ groupId: `registry-test-${randomBytes(6).toString('hex')}` });
  await consumer.connect();
  await consumer.subscribe({ topic: PLATFORM_TOPIC, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const decoded = fromKafkaRecord({
        value: message.value,
        headers: message.headers as Record<string, unknown>,
      });
      if (!decoded.ok) return;
      events.push({
        key: message.key?.toString() ?? '',
        event: decoded.event,
        contentType: String(message.headers?.['content-type']),
      });
    },
  });
}, 120_000);

afterAll(async () => {
  await consumer?.disconnect();
  await producer?.disconnect();
  await admin?.disconnect();
  await pool?.end();
  await db?.drop();
});

async function eventsFor(name: string, n: number, timeoutMs = 30_000): Promise<typeof events> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mine = events.filter((e) => e.key === name);
    if (mine.length >= n) return mine;
    if (Date.now() > deadline) throw new Error(`expected ${n} events for ${name}, got ${mine.length}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function row(name: string): Promise<Record<string, unknown> | undefined> {
  return (await pool.query<Record<string, unknown>>('SELECT * FROM platform.tenants WHERE name = $1', [name]))
    .rows[0];
}

describe('registry reconciler (real Postgres + Kafka)', () => {
  it('upserts the row, publishes provisioned once, then updated; republishes after a crash; archives on Retain', async () => {
    const t = tenant('Retain');
    const name = t.metadata.name;
    const writes = counter();
    const deps: RegistryDeps = { pg: pool, producer, writes, facts: facts(name) };

    expect(await registryReconciler.reconcile(t, { ...deps, facts: {} })).toMatchObject({
      kind: 'progressing',
      reason: 'WaitingForBackends',
    });

    expect(await registryReconciler.reconcile(t, deps)).toMatchObject({
      kind: 'ready',
      reason: 'Registered',
    });
    const r1 = await row(name);
    expect(r1).toMatchObject({
      tenant_id: `t_${name.replace(/-/g, '_')}`,
      display_name: 'Registry test',
      business_type: 'gym',
      locale: 'en-GB',
      timezone: 'Europe/London',
      database_name: 'simptu',
      schema_version: 1,
      active_key_version: 1,
      origins: ['https://gym.example'],
      redirect_uris: ['https://gym.example/cb'],
      state: 'active',
      agent: { replicas: 1, model: { provider: 'builtin' } },
    });
    expect(r1!.published_hash).toBe(r1!.spec_hash);
    expect(writes.counts).toEqual({ registry: 2, kafka: 1 });

    const [first] = await eventsFor(name, 1);
    expect(first!.contentType).toBe('application/cloudevents+json; charset=UTF-8');
    expect(first!.event).toMatchObject({
      specversion: '1.0',
      source: '/simptu/operator',
      type: 'io.simptu.tenant.provisioned',
      subject: name,
      tenant: name,
      datacontenttype: 'application/json',
      data: { name, businessType: 'gym', state: 'active', specHash: r1!.spec_hash },
    });

    // steady state: no write, no publication
    expect(await registryReconciler.reconcile(t, deps)).toMatchObject({
      kind: 'ready',
      reason: 'Registered',
    });
    expect(writes.counts).toEqual({ registry: 2, kafka: 1 });

    // a change (schema migrated) → row rewritten and `updated`
    await registryReconciler.reconcile(t, { ...deps, facts: facts(name, 2) });
    expect((await row(name))!.schema_version).toBe(2);
    const [, second] = await eventsFor(name, 2);
    expect(second!.event).toMatchObject({
      type: 'io.simptu.tenant.updated',
      data: { database: { schemaVersion: 2 } },
    });
    expect(second!.event.id).not.toBe(first!.event.id);

    // the process died after the upsert, before the publication: the next reconcile publishes
    await pool.query(`UPDATE platform.tenants SET published_hash = 'stale' WHERE name = $1`, [name]);
    const before = { ...writes.counts };
    await registryReconciler.reconcile(t, { ...deps, facts: facts(name, 2) });
    const [, , third] = await eventsFor(name, 3);
    expect(third!.event.type).toBe('io.simptu.tenant.updated');
    expect(third!.event.id).toBe(second!.event.id); // same content, same id: consumers dedupe
    expect(writes.counts.kafka).toBe(before.kafka! + 1);
    expect(writes.counts.registry).toBe(before.registry! + 1); // only published_hash

    // suspended
    await registryReconciler.reconcile(
      { ...t, spec: { ...t.spec, suspended: true } },
      { ...deps, facts: facts(name, 2) },
    );
    expect((await row(name))!.state).toBe('suspended');
    await eventsFor(name, 4);

    // Retain: archived, `deleted` with retained=true, once
    expect(await registryReconciler.finalize(t, deps)).toMatchObject({ kind: 'ready', reason: 'Archived' });
    expect((await row(name))!.state).toBe('archived');
    const [, , , , fifth] = await eventsFor(name, 5);
    expect(fifth!.event).toMatchObject({
      type: 'io.simptu.tenant.deleted',
      data: { retained: true, state: 'archived' },
    });
    const settled = { ...writes.counts };
    expect(await registryReconciler.finalize(t, deps)).toMatchObject({ kind: 'ready', reason: 'Archived' });
    expect(writes.counts).toEqual(settled);

    // a later publication proves nothing else was sent for this tenant meanwhile
    await new Promise((r) => setTimeout(r, 500));
    expect(events.filter((e) => e.key === name)).toHaveLength(5);
    await pool.query('DELETE FROM platform.tenants WHERE name = $1', [name]);
  });

  it('spec.agent.tools: arrives in the row, an edit rewrites and announces it, no edit writes nothing', async () => {
    const base = tenant('Delete');
    const name = base.metadata.name;
    const withTools = (tools: Tenant['spec']['agent']['tools'], generation: number): Tenant => ({
      ...base,
      metadata: { ...base.metadata, generation },
      spec: { ...base.spec, agent: { ...base.spec.agent, ...(tools ? { tools } : {}) } },
    });
    const writes = counter();
    const deps: RegistryDeps = { pg: pool, producer, writes, facts: facts(name) };

    await registryReconciler.reconcile(
      withTools({ deny: ['send_message', 'book_class'], untrustedAllow: ['identify_customer'] }, 1),
      deps,
    );
    const r1 = await row(name);
    expect(r1!.agent).toEqual({
      replicas: 1,
      model: { provider: 'builtin' },
      tools: { deny: ['book_class', 'send_message'], untrustedAllow: ['identify_customer'] },
    });
    const [provisioned] = await eventsFor(name, 1);
    expect(provisioned!.event.data).toMatchObject({
      agent: { tools: { deny: ['book_class', 'send_message'] } },
    });
    expect(writes.counts).toEqual({ registry: 2, kafka: 1 });

    // unchanged (the same sets in another order, a new generation): no write, no event
    await registryReconciler.reconcile(
      withTools({ untrustedAllow: ['identify_customer'], deny: ['book_class', 'send_message'] }, 2),
      deps,
    );
    expect(writes.counts).toEqual({ registry: 2, kafka: 1 });
    expect((await row(name))!.generation).toBe('1');

    // an edit: booking allowed again, only an allow-list → row rewritten, `updated` announced
    await registryReconciler.reconcile(withTools({ allow: ['search_faq', 'book_class'] }, 3), deps);
    const r3 = await row(name);
    expect((r3!.agent as { tools: unknown }).tools).toEqual({ allow: ['book_class', 'search_faq'] });
    expect(r3!.generation).toBe('3');
    expect(r3!.spec_hash).not.toBe(r1!.spec_hash);
    expect(r3!.published_hash).toBe(r3!.spec_hash);
    const [, updated] = await eventsFor(name, 2);
    expect(updated!.event).toMatchObject({
      type: 'io.simptu.tenant.updated',
      data: { agent: { tools: { allow: ['book_class', 'search_faq'] } }, generation: 3 },
    });
    expect(writes.counts).toEqual({ registry: 4, kafka: 2 });

    // the policy removed: no `tools` key left, announced again
    await registryReconciler.reconcile(withTools(undefined, 4), deps);
    expect((await row(name))!.agent).toEqual({ replicas: 1, model: { provider: 'builtin' } });
    await eventsFor(name, 3);
    expect(writes.counts).toEqual({ registry: 6, kafka: 3 });

    await registryReconciler.finalize(base, deps);
  });

  it('Delete: publishes deleted and removes the row; idempotent', async () => {
    const t = tenant('Delete');
    const name = t.metadata.name;
    const writes = counter();
    const deps: RegistryDeps = { pg: pool, producer, writes, facts: facts(name) };
    await registryReconciler.reconcile(t, deps);
    await eventsFor(name, 1);

    expect(await registryReconciler.finalize(t, deps)).toMatchObject({
      kind: 'ready',
      reason: 'Unregistered',
    });
    expect(await row(name)).toBeUndefined();
    const [, deleted] = await eventsFor(name, 2);
    expect(deleted!.event).toMatchObject({ type: 'io.simptu.tenant.deleted', data: { retained: false } });
    const settled = { ...writes.counts };
    expect(await registryReconciler.finalize(t, deps)).toMatchObject({
      kind: 'ready',
      reason: 'Unregistered',
    });
    expect(writes.counts).toEqual(settled);
  });
});
