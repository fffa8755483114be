/**
 * `EventConsumer` concurrency and liveness against the real Kafka and Postgres of the test
 * environment: partitions handled at the same time while each partition stays in offset order,
 * and heartbeats during a handler longer than the session timeout keep the member in its group
 * (no rebalance, the record handled once).
 */
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../src/db/scratch.ts';
import type { TenantDbRef } from '../src/db/tenant-db.ts';
import { newCloudEvent, toKafkaRecord } from '../src/events/cloudevents.ts';
import { EventConsumer, type EventConsumerOptions, type ProcessOutcome } from '../src/events/consumer.ts';
import { tenantTopics } from '../src/names.ts';
import { createTenantFixture, uniqueTenantName, type TenantFixture } from './tenant-fixture.ts';

const PARTITIONS = 3;
const PER_PARTITION = 4;
let fx: TenantFixture;
let T: TenantDbRef;

beforeAll(async () => {
  fx = await createTenantFixture([uniqueTenantName('cc')], { partitions: PARTITIONS });
  T = fx.tenants[0]!;
}, 120_000);

afterAll(async () => {
  await fx?.close();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Sends `n` records to each partition explicitly (data.n = 0…n-1 in offset order). */
async function produce(topic: string, perPartition: number, partitions: number): Promise<void> {
  const raw = fx.kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  await raw.connect();
  try {
    for (let n = 0; n < perPartition; n++)
      await raw.send({
        topic,
        messages: Array.from({ length: partitions }, (_, p) => ({
          ...toKafkaRecord(
            newCloudEvent({
              type: 'io.simptu.test.ordered',
              source: '/simptu/test',
              tenant: T.name,
              data: { n, p },
            }),
            `key-${p}`,
          ),
          partition: p,
        })),
      });
  } finally {
    await raw.disconnect();
  }
}

interface Handled {
  partition: number;
  offset: bigint;
  n: number;
  start: number;
  end: number;
}

class RecordingConsumer extends EventConsumer {
  readonly outcomes: Array<{ offset: string; outcome: ProcessOutcome }> = [];
  override async process(...args: Parameters<EventConsumer['process']>): Promise<ProcessOutcome> {
    const outcome = await super.process(...args);
    this.outcomes.push({ offset: args[2].offset, outcome });
    return outcome;
  }
}

/** Consumes one fresh topic, every handler taking `handlerMs`; returns what ran when. */
async function consumeOrdered(topic: string, opts: Partial<EventConsumerOptions>, handlerMs: number) {
  const handled: Handled[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const c = new RecordingConsumer({
    kafka: fx.kafka,
    groupId: uniqueName('cc'),
    topics: [topic],
    fromBeginning: true,
    pool: fx.app,
    handler: async (event, ctx) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const start = performance.now();
      // Inside the tenant transaction, like a real handler holding its connection.
      await ctx.client.query('SELECT pg_sleep($1)', [handlerMs / 1000]);
      handled.push({
        partition: ctx.partition,
        offset: BigInt(ctx.offset),
        n: (event.data as { n: number }).n,
        start,
        end: performance.now(),
      });
      inFlight--;
    },
    ...opts,
  });
  await c.start();
  try {
    await until('all records handled', () => handled.length >= PARTITIONS * PER_PARTITION);
  } finally {
    await c.stop();
  }
  return { handled, maxInFlight };
}

function expectPartitionOrder(handled: Handled[]): void {
  for (let p = 0; p < PARTITIONS; p++) {
    const mine = handled.filter((h) => h.partition === p);
    // every record of the partition, once, in offset order, never two at a time
    expect(mine.map((h) => h.n)).toEqual([...Array(PER_PARTITION).keys()]);
    for (let i = 1; i < mine.length; i++) {
      expect(mine[i]!.offset > mine[i - 1]!.offset).toBe(true);
      expect(mine[i]!.start).toBeGreaterThanOrEqual(mine[i - 1]!.end);
    }
  }
}

describe('EventConsumer partitionsConsumedConcurrently', () => {
  it('handles partitions at the same time and keeps offset order within each partition', async () => {
    const topic = tenantTopics(T.name).inbound;
    await produce(topic, PER_PARTITION, PARTITIONS);
    const { handled, maxInFlight } = await consumeOrdered(
      topic,
      { partitionsConsumedConcurrently: PARTITIONS },
      150,
    );
    expect(handled).toHaveLength(PARTITIONS * PER_PARTITION);
    expectPartitionOrder(handled);
    expect(maxInFlight).toBeGreaterThanOrEqual(2);
    expect(maxInFlight).toBeLessThanOrEqual(PARTITIONS);
  }, 120_000);

  it('by default handles one record at a time', async () => {
    const topic = tenantTopics(T.name).domain;
    await produce(topic, PER_PARTITION, PARTITIONS);
    const { handled, maxInFlight } = await consumeOrdered(topic, {}, 50);
    expectPartitionOrder(handled);
    expect(maxInFlight).toBe(1);
  }, 120_000);
});

describe('EventConsumer heartbeats during a long handler', () => {
  // The broker's minimum session timeout (group.min.session.timeout.ms) is 6 s.
  const SESSION_MS = 6000;
  const HANDLER_MS = 10_000;

  async function slowRun(heartbeatIntervalMs: number) {
    const topic = tenantTopics(T.name).agent;
    const groupId = uniqueName('hb');
    const admin = fx.kafka.admin();
    await admin.connect();
    // One record on a fresh offset: everything after the current end of partition 0.
    const before = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === 0)!.high;
    const raw = fx.kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
    await raw.connect();
    const event = newCloudEvent({
      type: 'io.simptu.test.slow',
      source: '/simptu/test',
      tenant: T.name,
      data: { n: 0 },
    });
    await raw.send({ topic, messages: [{ ...toKafkaRecord(event, 'slow'), partition: 0 }] });
    await raw.disconnect();

    let runs = 0;
    const c = new RecordingConsumer({
      kafka: fx.kafka,
      groupId,
      topics: [topic],
      fromBeginning: false,
      pool: fx.app,
      consumerConfig: { sessionTimeout: SESSION_MS, heartbeatInterval: 500, rebalanceTimeout: 20_000 },
      heartbeatIntervalMs,
      handler: async (e, ctx) => {
        if (e.id !== event.id) return;
        runs++;
        await ctx.client.query('SELECT pg_sleep($1)', [HANDLER_MS / 1000]);
      },
    });
    // A new group starting at the end: commit the start position first so the record is read.
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: before }] });
    await c.start();
    try {
      const target = (BigInt(before) + 1n).toString();
      await until(
        'offset committed past the slow record',
        async () => {
          const offs = await admin.fetchOffsets({ groupId, topics: [topic] });
          return offs[0]!.partitions.find((p) => p.partition === 0)!.offset === target;
        },
        90_000,
      );
      return { runs, outcomes: c.outcomes.filter((o) => o.offset === before).map((o) => o.outcome) };
    } finally {
      await c.stop();
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect();
    }
  }

  it('stays in the group through a handler longer than the session timeout: handled once', async () => {
    const r = await slowRun(500);
    expect(r.runs).toBe(1);
    expect(r.outcomes).toEqual(['applied']);
  }, 150_000);

  it('control: without heartbeats the member is evicted, rejoins instead of crashing, and the redelivery is skipped', async () => {
    const r = await slowRun(0);
    // The redelivery finds the processed marker: skipped, never applied twice.
    expect(r.runs).toBe(1);
    expect(r.outcomes).toEqual(['applied', 'duplicate']);
  }, 150_000);
});
