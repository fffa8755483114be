/**
 * `node bench/realtime/floor.ts` — the Kafka floor of the token-latency figure, alone: the
 * producer of `run.ts` (200 conversations × 20 tokens/s, one `sendBatch` per tick, `sent_at` in
 * the payload) and bare kafkajs consumers in child processes (`floor-consumer.ts`), one settings
 * variant at a time, each for `BENCH_FLOOR_SECONDS`. No hub, no sockets, no Redis: what is left
 * is the producer, the broker and kafkajs' consumer loop.
 *
 * Environment: KAFKA_BROKERS; BENCH_FLOOR_VARIANTS (comma-separated names, default all),
 * BENCH_FLOOR_SECONDS (default 10), BENCH_FLOOR_ROUNDS (default 2; the variants take turns each
 * round), BENCH_CONVERSATIONS, BENCH_TOKENS_PER_SECOND, BENCH_PARTITIONS.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKafka, EventProducer, newCloudEvent, tenantTopics } from '@simptu/common';
import { fmt, percentile, readCpuSeconds } from '../operator/lib.ts';
import type { FloorSettings } from './floor-consumer.ts';
import { Child, now, sleep } from './rpc.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const brokers = (env.KAFKA_BROKERS ?? '').split(',').filter(Boolean);
if (brokers.length === 0) {
  console.error("KAFKA_BROKERS is not set: 'set -a; source .testenv/env; set +a' first");
  process.exit(2);
}
const CONVERSATIONS = Number(env.BENCH_CONVERSATIONS ?? 200);
const TOKENS_PER_SECOND = Number(env.BENCH_TOKENS_PER_SECOND ?? 20);
const SECONDS = Number(env.BENCH_FLOOR_SECONDS ?? 10);
const PARTITIONS = Number(env.BENCH_PARTITIONS ?? 3);
/** every variant runs once per round, the rounds interleaved (load swings hit all alike) */
const ROUNDS = Number(env.BENCH_FLOOR_ROUNDS ?? 2);

export const FLOOR_VARIANTS: Record<string, FloorSettings> = {
  /** what run.ts's floor used to be: kafkajs defaults, one commit after every partition batch */
  'eachMessage-commit-per-batch': { mode: 'eachMessage', autoCommit: true },
  'eachBatch-commit-per-batch': { mode: 'eachBatch', autoCommit: true },
  /** the same, the commits made (and timed) by hand: what one OffsetCommit round trip costs */
  'eachBatch-commit-per-batch-timed': { mode: 'eachBatch', autoCommit: false, timeCommits: true },
  'eachBatch-commit-5s': { mode: 'eachBatch', autoCommit: false, commitIntervalMs: 5000 },
  /** the hub's ingest settings (services/realtime/src/kafka.ts, config defaults) */
  'eachBatch-commit-5s-concurrent': {
    mode: 'eachBatch',
    autoCommit: false,
    commitIntervalMs: 5000,
    partitionsConsumedConcurrently: PARTITIONS,
  },
  /** the same with TCP_NODELAY on the broker connections (kafkajs leaves Nagle on) */
  'eachBatch-commit-5s-concurrent-nodelay': {
    mode: 'eachBatch',
    autoCommit: false,
    commitIntervalMs: 5000,
    partitionsConsumedConcurrently: PARTITIONS,
    noDelay: true,
  },
};

const tenant = `bflo-${randomBytes(4).toString('hex')}`;
const topic = tenantTopics(tenant).agent;
const kafka = createKafka({ clientId: 'bench-rt-floor-producer', brokers });
const producer = new EventProducer({ kafka });
const admin = kafka.admin();
await admin.connect();
await admin.createTopics({
  waitForLeaders: true,
  topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
});
await producer.connect();
const sessions = Array.from({ length: CONVERSATIONS }, () => randomUUID());

/** Produces like run.ts until `until`: every conversation a token per period, one sendBatch per tick. */
async function produce(until: number): Promise<number> {
  const period = 1000 / TOKENS_PER_SECOND;
  const start = now();
  const due = sessions.map((_, i) => start + (i / sessions.length) * period);
  let n = 0;
  while (now() < until) {
    const t = now();
    const batch = [];
    for (let i = 0; i < sessions.length; i++) {
      if (due[i]! > t) continue;
      due[i]! += period;
      batch.push({
        topic,
        key: sessions[i]!,
        event: newCloudEvent({
          type: 'io.simptu.agent.token',
          source: '/simptu/agent',
          tenant,
          data: { session_id: sessions[i], seq: n, delta: 'lorem ', sent_at: now() },
        }),
      });
    }
    if (batch.length === 0) {
      await sleep(1);
      continue;
    }
    await producer.sendBatch(batch);
    n += batch.length;
  }
  return n;
}

const wanted = (env.BENCH_FLOOR_VARIANTS ?? Object.keys(FLOOR_VARIANTS).join(',')).split(',');
for (const name of wanted) if (!FLOOR_VARIANTS[name]) throw new Error(`unknown variant ${name}`);
const groups: string[] = [];
const results = new Map<string, number[]>(wanted.map((n) => [n, []]));
const loads: number[] = [];
try {
  console.log(
    `floor: ${CONVERSATIONS} conversations × ${TOKENS_PER_SECOND}/s on ${PARTITIONS} partitions, ` +
      `${SECONDS} s per variant × ${ROUNDS} rounds; load ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of wanted) {
      const groupId = `bench-rt-floor-${randomBytes(3).toString('hex')}`;
      groups.push(groupId);
      const c = new Child(`floor-${name}`, join(HERE, 'floor-consumer.ts'), {});
      await c.ready;
      await c.call('start', { brokers, topic, groupId, settings: FLOOR_VARIANTS[name] });
      await produce(now() + 2000); // warm-up
      await c.call('latencyStart');
      const cpu0 = readCpuSeconds(c.pid) ?? NaN;
      const n = await produce(now() + SECONDS * 1000);
      await sleep(1000);
      const cpu = (readCpuSeconds(c.pid) ?? NaN) - cpu0;
      const { values, commitMs } = await c.call<{ values: Float64Array; commitMs: Float64Array }>(
        'latencyStop',
      );
      await c.stop(10_000);
      results.get(name)!.push(...values);
      loads.push(os.loadavg()[0]!);
      const s = Array.from(values).sort((a, b) => a - b);
      console.log(
        `round ${round + 1} ${name.padEnd(40)} n=${s.length}/${n}  p50 ${fmt(percentile(s, 50), 1)}  ` +
          `p90 ${fmt(percentile(s, 90), 1)}  p99 ${fmt(percentile(s, 99), 1)}  max ${fmt(s.at(-1), 1)} ms  ` +
          `consumer CPU ${fmt((cpu * 1e6) / Math.max(1, n), 0)} µs/record  (load ${os.loadavg()[0]!.toFixed(2)})` +
          (commitMs.length
            ? `; OffsetCommit round trip p50 ${fmt(
                percentile(
                  [...commitMs].sort((a, b) => a - b),
                  50,
                ),
                2,
              )} ms`
            : ''),
      );
    }
  }
  console.log(`\nall rounds (1-min load ${fmt(Math.min(...loads), 2)}–${fmt(Math.max(...loads), 2)}):`);
  for (const [name, v] of results) {
    const s = v.sort((a, b) => a - b);
    console.log(
      `${name.padEnd(40)} n=${s.length}  p50 ${fmt(percentile(s, 50), 1)}  p90 ${fmt(percentile(s, 90), 1)}  ` +
        `p99 ${fmt(percentile(s, 99), 1)}  p99.9 ${fmt(percentile(s, 99.9), 1)} ms`,
    );
  }
} finally {
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  const existing = new Set((await admin.listGroups()).groups.map((g) => g.groupId));
  const del = groups.filter((g) => existing.has(g));
  if (del.length) await admin.deleteGroups(del).catch(() => undefined);
  await admin.disconnect();
}
process.exit(0);
