import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { requireEnv } from '../support/testenv.ts';

describe('test environment: Kafka (KRaft)', () => {
  const kafka = new Kafka({
    clientId: 'smoke',
    brokers: requireEnv('KAFKA_BROKERS').split(','),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const topic = `smoke.${randomBytes(4).toString('hex')}`;

  afterAll(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('creates a topic, produces and consumes a message through kafkajs', async () => {
    await admin.connect();
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })).toBe(
      true,
    );
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(meta.topics[0]?.partitions).toHaveLength(3);

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic,
      messages: [{ key: 'conv-1', value: 'hello kafka', headers: { tenant: 'smoke' } }],
    });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `${topic}.g` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = await new Promise<{ key: string; value: string; tenant: string }>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) =>
          resolve({
            key: String(message.key),
            value: String(message.value),
            tenant: String(message.headers?.tenant),
          }),
      });
    });
    await consumer.disconnect();
    expect(received).toEqual({ key: 'conv-1', value: 'hello kafka', tenant: 'smoke' });
  });
});
