/**
 * A run's stream events against the real broker (runtime.ts `RunStream`, stream-sender.ts): the
 * events a quick tool produces (tool call, tool result) and the run's first token leave in ONE
 * produce request — before, the first token waited for the tool events' acknowledgements, one
 * request after another — while a slow tool still shows its call within one window; every
 * event keeps its `seq` order and the payloads decrypt only with the tenant's key.
 */
import { randomUUID } from 'node:crypto';
import {
  EventProducer,
  FieldCipher,
  fromKafkaRecord,
  generateDek,
  TenantKeyring,
  tenantTopics,
} from '@simptu/common';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunStream, streamLocation } from '../src/runtime.ts';
import { StreamSender } from '../src/stream-sender.ts';
import { kafkaClient, uniqueTenantName, waitFor } from './support.ts';

const tenant = uniqueTenantName('stream');
const topic = tenantTopics(tenant).agent;
const cipher = new FieldCipher(new TenantKeyring(tenant, [[1, generateDek()]]));
let kafka: Kafka;
let producer: EventProducer;
let sender: StreamSender;
/** Produce requests the stream's producer sent (kafkajs instrumentation) */
let produceRequests = 0;

beforeAll(async () => {
  const base = kafkaClient('run-stream-test');
  const admin = base.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();
  // The real kafkajs producer, its requests counted.
  kafka = new Proxy(base, {
    get(target, prop, receiver) {
      if (prop !== 'producer') return Reflect.get(target, prop, receiver) as unknown;
      return (...args: Parameters<Kafka['producer']>) => {
        const p = target.producer(...args);
        p.on(p.events.REQUEST, (e) => {
          if (e.payload.apiName === 'Produce') produceRequests++;
        });
        return p;
      };
    },
  });
  producer = new EventProducer({ kafka });
  await producer.connect();
  sender = new StreamSender({ producer });
}, 60_000);

afterAll(async () => {
  await producer?.disconnect();
  const admin = kafkaClient('run-stream-test').admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});

async function readRun(runId: string, count: number) {
  const consumer = kafkaClient('run-stream-reader').consumer({ groupId: `run-stream-${randomUUID()}` });
  const seen: Array<{ type: string; seq: number; payload: unknown }> = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const d = fromKafkaRecord(message);
      if (!d.ok) return;
      const data = d.event.data as { run_id: string; seq: number; payload_enc: string };
      if (data.run_id !== runId) return;
      const payload: unknown = JSON.parse(cipher.decryptText(data.payload_enc, streamLocation(d.event.id)));
      seen.push({ type: d.event.type.replace('io.simptu.agent.', ''), seq: data.seq, payload });
    },
  });
  try {
    await waitFor(`${count} events of run ${runId}`, () => (seen.length >= count ? true : undefined), 30_000);
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

const newStream = (runId: string, windowMs: number) =>
  new RunStream({ sender, cipher, sessionId: randomUUID(), runId, windowMs });

describe('RunStream', () => {
  it('a quick tool: tool call, result and the first token leave in one produce request', async () => {
    const runId = randomUUID();
    // (a long window: only its end would send the tool events on their own)
    const s = newStream(runId, 5000);
    const before = produceRequests;
    const meanwhile = () => new Promise((r) => setTimeout(r, 5));
    // What the graph does for a quick tool: call, (the tool's query), result, (the model), its
    // first delta, then more deltas while that request is out.
    s.toolCall('call-1', 'list_treatments', {});
    await meanwhile();
    s.toolResult('call-1', 'list_treatments', true, [{ name: 'Cleaning' }]);
    await meanwhile();
    s.token('We ');
    await meanwhile();
    s.token('offer ');
    s.token('cleanings.');
    await s.close();
    // tool call + result + "We " in the first request, the coalesced rest at close (sent at
    // once, the tool call alone would have been one request, the result and first token a second)
    expect(produceRequests - before).toBe(2);
    expect(s.sent).toBe(4);
    expect(await readRun(runId, 4)).toEqual([
      { type: 'tool_call', seq: 1, payload: { args: {} } },
      { type: 'tool_result', seq: 2, payload: { result: [{ name: 'Cleaning' }] } },
      { type: 'token', seq: 3, payload: { text: 'We ' } },
      { type: 'token', seq: 4, payload: { text: 'offer cleanings.' } },
    ]);
  });

  it('a slow tool still shows its call within one window', async () => {
    const runId = randomUUID();
    const s = newStream(runId, 20);
    const before = produceRequests;
    s.toolCall('call-1', 'check_availability', { day: 'tomorrow' });
    // the tool is still running: its call went out on its own once the window ended
    await waitFor('the tool call sent', () => (s.sent === 1 ? true : undefined), 10_000);
    expect(produceRequests - before).toBe(1);
    s.toolResult('call-1', 'check_availability', true, []);
    s.token('Nothing free tomorrow.');
    await s.close();
    expect(produceRequests - before).toBe(2);
    expect((await readRun(runId, 3)).map((e) => [e.type, e.seq])).toEqual([
      ['tool_call', 1],
      ['tool_result', 2],
      ['token', 3],
    ]);
  });
});
