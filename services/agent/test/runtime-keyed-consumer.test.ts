/**
 * Per-conversation concurrency of the agent's inbound consumer (keyed-consumer.ts), against real
 * Kafka and PostgreSQL (processed markers in a provisioned tenant schema):
 *  - two conversations whose records share ONE partition are handled at the same time, while
 *    the messages of each conversation stay strictly in order;
 *  - with completions out of order, the committed offset is the lowest record not done;
 *  - after the consumer dies with a record of one conversation unfinished (its transaction
 *    rolled back) and later records of the other conversation finished, a new consumer of the
 *    group redelivers from that record: the unfinished one is applied, the finished ones are
 *    skipped by their processed markers — nothing lost, nothing applied twice, order kept.
 * No timed assertions: gates (promises) decide what runs when.
 */
import { randomBytes } from 'node:crypto';
import type kafkajs from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newCloudEvent, toKafkaRecord, type CloudEvent } from '@simptu/common';
import { KeyedEventConsumer } from '../src/keyed-consumer.ts';
import {
  createTestPlatform,
  kafkaClient,
  provisionTenant,
  uniqueTenantName,
  waitFor,
  type TestPlatform,
  type TestTenant,
} from './support.ts';

let platform: TestPlatform;
let pool: pg.Pool;
let kafka: kafkajs.Kafka;
let producer: kafkajs.Producer;
const tenants: TestTenant[] = [];

beforeAll(async () => {
  platform = await createTestPlatform();
  pool = new pg.Pool({ connectionString: platform.appUrl, max: 6 });
  pool.on('error', () => undefined);
  kafka = kafkaClient('agent-keyed-test');
  producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
}, 120_000);

afterAll(async () => {
  await producer?.disconnect();
  await pool?.end();
  for (const t of tenants) await t.deprovision().catch(() => undefined);
  await platform?.close();
}, 120_000);

function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const p = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { p, open, fail };
}

interface Step {
  name: string;
  conversation: string;
  offset: string;
}

/** Produces conversation steps, all to partition 0 of the tenant's inbound topic, in this order. */
async function produce(t: TestTenant, names: string[], sessions: Record<string, string>): Promise<Step[]> {
  const out: Step[] = [];
  for (const name of names) {
    const conversation = name[0]!;
    const event = newCloudEvent({
      type: 'io.simptu.message.received',
      source: '/test',
      tenant: t.name,
      subject: sessions[conversation]!,
      data: { step: name },
    });
    const [meta] = await producer.send({
      topic: t.topics.inbound,
      acks: -1,
      messages: [{ ...toKafkaRecord(event, sessions[conversation]!), partition: 0 }],
    });
    out.push({ name, conversation, offset: meta!.baseOffset! });
  }
  return out;
}

async function committed(groupId: string, topic: string): Promise<string | undefined> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [r] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const o = r?.partitions.find((p) => p.partition === 0)?.offset;
    return o === undefined || o === '-1' ? undefined : o;
  } finally {
    await admin.disconnect();
  }
}

function consumer(
  t: TestTenant,
  groupId: string,
  handler: (step: string, event: CloudEvent) => Promise<void>,
): KeyedEventConsumer {
  return new KeyedEventConsumer({
    kafka,
    groupId,
    topics: [t.topics.inbound],
    fromBeginning: true,
    pool,
    handler: (event) => handler((event.data as { step: string }).step, event),
    consumerConfig: { sessionTimeout: 10_000, heartbeatInterval: 1000 },
    maxConcurrent: 4,
    commitIntervalMs: 0,
    retryMinMs: 50,
  });
}

describe('KeyedEventConsumer: conversations sharing a partition', () => {
  it('runs two conversations of one partition at once, each in order; commits the watermark', async () => {
    const t = await provisionTenant(platform, uniqueTenantName('keyed'));
    tenants.push(t);
    const sessions = {
      A: `sess-a-${randomBytes(4).toString('hex')}`,
      B: `sess-b-${randomBytes(4).toString('hex')}`,
    };
    const groupId = `agent-keyed-${t.name}`;
    const log: string[] = [];
    const applied = new Map<string, number>();
    const holdA1 = gate();
    const c = consumer(t, groupId, async (step) => {
      log.push(`${step}:start`);
      if (step === 'A1') await holdA1.p;
      applied.set(step, (applied.get(step) ?? 0) + 1);
      log.push(`${step}:end`);
    });
    await c.start();
    try {
      const steps = await produce(t, ['A1', 'B1', 'A2', 'B2'], sessions);
      const offset = (name: string) => steps.find((s) => s.name === name)!.offset;

      // B's two messages are answered while A1 (earlier on the same partition) is still running
      await waitFor('B2 done', () => log.includes('B2:end'));
      expect(log).toContain('A1:start');
      expect(log).not.toContain('A1:end');
      // ... but A2 waits for A1: a conversation's messages never overtake each other
      expect(log).not.toContain('A2:start');
      expect(log.indexOf('B1:end')).toBeLessThan(log.indexOf('B2:start'));

      // B1 and B2 are done, A1 is not: the committed offset stays at A1
      await c.commitOffsets();
      expect(await committed(groupId, t.topics.inbound)).toBe(offset('A1'));

      holdA1.open();
      await waitFor('A2 done', () => log.includes('A2:end'));
      expect(log.indexOf('A1:end')).toBeLessThan(log.indexOf('A2:start'));
      await c.commitOffsets();
      expect(await committed(groupId, t.topics.inbound)).toBe(String(BigInt(offset('B2')) + 1n));
      expect(Object.fromEntries(applied)).toEqual({ A1: 1, B1: 1, A2: 1, B2: 1 });
    } finally {
      holdA1.open();
      await c.stop();
    }
  }, 120_000);

  it('after dying with A1 unfinished and later records done, the group resumes at A1: nothing lost or applied twice', async () => {
    const t = await provisionTenant(platform, uniqueTenantName('keyed'));
    tenants.push(t);
    const sessions = {
      A: `sess-a-${randomBytes(4).toString('hex')}`,
      B: `sess-b-${randomBytes(4).toString('hex')}`,
    };
    const groupId = `agent-keyed-${t.name}`;
    const applied: string[] = [];
    const started: string[] = [];
    const holdA1 = gate();

    // First life: A1 hangs, B1, B2 (after it on the partition) complete.
    const first = consumer(t, groupId, async (step) => {
      started.push(step);
      if (step === 'A1') await holdA1.p; // rejected below: the transaction rolls back
      applied.push(step);
    });
    await first.start();
    const steps = await produce(t, ['B0', 'A1', 'B1', 'A2', 'B2'], sessions);
    const offset = (name: string) => steps.find((s) => s.name === name)!.offset;
    await waitFor('B2 applied', () => applied.includes('B2'));
    expect(started).not.toContain('A2');
    // Dies: stops fetching, A1's run fails (rolled back, marker included) and is not retried.
    const stopped = first.stop();
    holdA1.fail(new Error('process died'));
    await stopped;
    expect(applied).toEqual(['B0', 'B1', 'B2']);
    // the records below A1 are done, A1 is not: the group resumes at A1, not after B2
    expect(await committed(groupId, t.topics.inbound)).toBe(offset('A1'));

    // Second life: a new consumer of the same group.
    const second = consumer(t, groupId, async (step) => {
      started.push(`2:${step}`);
      applied.push(step);
    });
    await second.start();
    try {
      await waitFor('A2 applied', () => applied.includes('A2'));
      await second.commitOffsets();
      expect(await committed(groupId, t.topics.inbound)).toBe(String(BigInt(offset('B2')) + 1n));
      // A1 and A2 applied once each, in order; B1/B2 were redelivered but skipped (processed markers)
      expect(applied).toEqual(['B0', 'B1', 'B2', 'A1', 'A2']);
      expect(started.filter((s) => s.startsWith('2:'))).toEqual(['2:A1', '2:A2']);
      const { rows } = await t.adminQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${t.table('processed_events')}`,
      );
      expect(rows[0]!.n).toBe(5);
    } finally {
      await second.stop();
    }
  }, 120_000);
});
