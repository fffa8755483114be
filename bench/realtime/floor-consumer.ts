/**
 * A bare kafkajs consumer in its own process (`node bench/realtime/floor-consumer.ts`, started by
 * `floor.ts` and `run.ts`): records receive time − the payload's `sent_at` of every record of one
 * topic, with the consumer settings it is given — the Kafka floor under the hub.
 *
 * Commands: `start` ({brokers, topic, groupId, settings}), `latencyStart` / `latencyStop`, `stop`.
 */
import net from 'node:net';
import type { Consumer } from 'kafkajs';
import { createKafka } from '@simptu/common';
import { now, serve } from './rpc.ts';

export interface FloorSettings {
  /** `eachMessage` (kafkajs' default loop) or `eachBatch` */
  mode: 'eachMessage' | 'eachBatch';
  /** kafkajs commits after EVERY batch when true (default); false: every `commitIntervalMs` */
  autoCommit: boolean;
  commitIntervalMs?: number;
  partitionsConsumedConcurrently?: number;
  maxWaitTimeInMs?: number;
  noDelay?: boolean;
  /** with autoCommit off: commit after every batch by hand and time each round trip */
  timeCommits?: boolean;
}

let consumer: Consumer | undefined;
let values: number[] | undefined;
let commitMs: number[] = [];

async function start(a: { brokers: string[]; topic: string; groupId: string; settings: FloorSettings }) {
  const s = a.settings;
  const kafka = createKafka({
    clientId: 'bench-rt-floor',
    brokers: a.brokers,
    ...(s.noDelay ? { config: { socketFactory: noDelaySocketFactory } } : {}),
  });
  const c = kafka.consumer({
    groupId: a.groupId,
    allowAutoTopicCreation: false,
    ...(s.maxWaitTimeInMs !== undefined ? { maxWaitTimeInMs: s.maxWaitTimeInMs } : {}),
  });
  let joined!: () => void;
  const ready = new Promise<void>((r) => (joined = r));
  c.on(c.events.GROUP_JOIN, () => joined());
  await c.connect();
  await c.subscribe({ topics: [a.topic], fromBeginning: false });
  const record = (value: Buffer | null) => {
    if (!values || !value) return;
    const t = now();
    const e = JSON.parse(value.toString('utf8')) as { data?: { sent_at?: number } };
    if (typeof e.data?.sent_at === 'number') values.push(t - e.data.sent_at);
  };
  await c.run({
    autoCommit: s.autoCommit,
    // as the hub's ingest: with autoCommit off, commitOffsetsIfNecessary commits at this interval
    ...(s.autoCommit ? {} : { autoCommitInterval: s.commitIntervalMs ?? 5000 }),
    ...(s.partitionsConsumedConcurrently
      ? { partitionsConsumedConcurrently: s.partitionsConsumedConcurrently }
      : {}),
    ...(s.mode === 'eachMessage'
      ? { eachMessage: async ({ message }) => record(message.value) }
      : {
          eachBatch: async ({ batch, commitOffsetsIfNecessary, uncommittedOffsets }) => {
            for (const m of batch.messages) record(m.value);
            if (s.timeCommits) {
              const t0 = now();
              await commitOffsetsIfNecessary(uncommittedOffsets());
              if (values) commitMs.push(now() - t0);
            } else if (!s.autoCommit) await commitOffsetsIfNecessary();
          },
        }),
  });
  await ready;
  consumer = c;
  return null;
}

/** kafkajs' default socket factory (plain TCP) with Nagle's algorithm off. */
const noDelaySocketFactory = ({
  host,
  port,
  onConnect,
}: {
  host: string;
  port: number;
  onConnect: () => void;
}) => {
  const socket = net.connect({ host, port, noDelay: true }, onConnect);
  socket.setKeepAlive(true, 60_000);
  return socket;
};

serve({
  start: (a: Parameters<typeof start>[0]) => start(a),
  latencyStart() {
    values = [];
    commitMs = [];
    return null;
  },
  latencyStop() {
    const v = values ?? [];
    values = undefined;
    return { values: Float64Array.from(v), commitMs: Float64Array.from(commitMs) };
  },
  async stop() {
    await consumer?.disconnect().catch(() => undefined);
    setImmediate(() => process.exit(0));
    return null;
  },
});
