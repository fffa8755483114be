import { randomBytes } from 'node:crypto';
import kafkajs, { type Admin } from 'kafkajs';
import { PLATFORM_TOPIC, tenantTopics } from '@simptu/common';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { API_VERSION, KIND, type Tenant } from '../../src/api/types.ts';
import {
  ensurePlatformTopic,
  existingTopics,
  observeTopics,
  topicsReconciler,
  type TopicsDeps,
} from '../../src/reconcile/topics.ts';

function counter() {
  const counts: Record<string, number> = {};
  return { counts, inc: (b: string, n = 1) => void (counts[b] = (counts[b] ?? 0) + n) };
}

function tenant(
  partitions: number,
  retentionHours: number,
  deletionPolicy: 'Retain' | 'Delete' = 'Delete',
): Tenant {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: `tp-${randomBytes(5).toString('hex')}`, generation: 1 },
    spec: {
      displayName: 'Topics test',
      businessType: 'dental',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions, retentionHours },
      encryption: { rotationDays: 90 },
      deletionPolicy,
      deletionProtection: false,
      suspended: false,
    },
  };
}

const withSpec = (
  t: Tenant,
  kafka: Partial<Tenant['spec']['kafka']>,
  policy?: 'Retain' | 'Delete',
): Tenant => ({
  ...t,
  spec: { ...t.spec, kafka: { ...t.spec.kafka, ...kafka }, ...(policy ? { deletionPolicy: policy } : {}) },
});

let admin: Admin;
const made: string[] = [];

beforeAll(async () => {
  const kafka = new kafkajs.Kafka({
    clientId: 'topics-test',
    brokers: [process.env.KAFKA_BROKERS ?? ''],
    logLevel: kafkajs.logLevel.NOTHING,
  });
  admin = kafka.admin();
  await admin.connect();
});

afterAll(async () => {
  const existing = new Set(await admin.listTopics());
  const left = made.filter((t) => existing.has(t));
  if (left.length > 0) await admin.deleteTopics({ topics: left }).catch(() => undefined);
  await admin.disconnect();
});

async function waitFor(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('topics reconciler (real Kafka)', () => {
  it('creates, keeps steady, reverts drift, grows and refuses to shrink partitions', async () => {
    const t = tenant(2, 24);
    const names = Object.values(tenantTopics(t.metadata.name));
    made.push(...names);
    const writes = counter();
    const deps: TopicsDeps = { admin, writes, replicationFactor: 1 };

    const created = await topicsReconciler.reconcile(t, deps);
    expect(created).toMatchObject({ kind: 'ready', reason: 'TopicsReady', status: { topics: names } });
    expect(writes.counts.kafka).toBe(3);
    let observed = await observeTopics(admin, names);
    for (const n of names) {
      expect(observed.get(n)).toEqual({
        topic: n,
        partitions: 2,
        overrides: { 'cleanup.policy': 'delete', 'retention.ms': '86400000' },
      });
    }

    expect(await topicsReconciler.reconcile(t, deps)).toMatchObject({
      kind: 'ready',
      reason: 'TopicsReady',
    });
    expect(writes.counts.kafka).toBe(3);

    // someone changes retention behind the operator's back
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: kafkajs.ConfigResourceTypes.TOPIC,
          name: names[0]!,
          configEntries: [
            { name: 'retention.ms', value: '1000' },
            { name: 'cleanup.policy', value: 'delete' },
            { name: 'max.message.bytes', value: '2048' },
          ],
        },
      ],
    });
    const reverted = await topicsReconciler.reconcile(t, deps);
    expect(reverted).toMatchObject({ kind: 'ready', reason: 'TopicsReady' });
    expect(writes.counts.kafka).toBe(4);
    observed = await observeTopics(admin, names);
    expect(observed.get(names[0]!)!.overrides).toEqual({
      'cleanup.policy': 'delete',
      'retention.ms': '86400000',
    });

    // retention changed in the spec
    await topicsReconciler.reconcile(withSpec(t, { retentionHours: 48 }), deps);
    expect(writes.counts.kafka).toBe(7);
    observed = await observeTopics(admin, names);
    for (const n of names) expect(observed.get(n)!.overrides!['retention.ms']).toBe(String(48 * 3_600_000));

    // partitions grow
    const grown = withSpec(t, { partitions: 4, retentionHours: 48 });
    expect(await topicsReconciler.reconcile(grown, deps)).toMatchObject({
      kind: 'ready',
      reason: 'TopicsReady',
    });
    expect(writes.counts.kafka).toBe(10);
    await waitFor(
      async () => [...(await observeTopics(admin, names)).values()].every((o) => o.partitions === 4),
      10_000,
      'partitions to grow',
    );
    expect(await topicsReconciler.reconcile(grown, deps)).toMatchObject({
      kind: 'ready',
      reason: 'TopicsReady',
    });
    expect(writes.counts.kafka).toBe(10);

    // ...and never shrink
    const shrunk = await topicsReconciler.reconcile(withSpec(t, { partitions: 3, retentionHours: 48 }), deps);
    expect(shrunk).toMatchObject({
      kind: 'blocked',
      reason: 'PartitionDecreaseRefused',
      status: { topics: names },
    });
    expect(shrunk.kind === 'blocked' && shrunk.message).toMatch(/cannot remove partitions.*at least 4/);
    expect(writes.counts.kafka).toBe(10);
    observed = await observeTopics(admin, names);
    for (const n of names) expect(observed.get(n)!.partitions).toBe(4);
  });

  it('once created, asks for its own topics only (no listing of the cluster); recreates a deleted one', async () => {
    const fresh = tenant(1, 1);
    const names = Object.values(tenantTopics(fresh.metadata.name));
    made.push(...names);
    const writes = counter();
    const deps: TopicsDeps = { admin, writes, replicationFactor: 1 };
    const created = await topicsReconciler.reconcile(fresh, deps);
    expect(created).toMatchObject({ kind: 'ready', status: { topics: names } });
    // what the operator's next pass sees: the status the first one wrote
    const t: Tenant = { ...fresh, status: { topics: names } };
    expect([...(await existingTopics(admin, names)).keys()].sort()).toEqual([...names].sort());

    await admin.deleteTopics({ topics: [names[1]!] });
    await waitFor(async () => !(await existingTopics(admin, names)).has(names[1]!), 15_000, 'the delete');
    expect([...(await existingTopics(admin, names)).keys()].sort()).toEqual([names[0], names[2]].sort());
    const listed = vi.spyOn(admin, 'listTopics');
    try {
      expect(await topicsReconciler.reconcile(t, deps)).toMatchObject({ kind: 'ready' });
      expect(writes.counts.kafka).toBe(4); // only the missing one was created
      expect(listed).not.toHaveBeenCalled();
    } finally {
      listed.mockRestore();
    }
    await waitFor(async () => (await existingTopics(admin, names)).size === 3, 15_000, 'the re-create');
  });

  it('finalize: Retain keeps the topics, Delete deletes them (idempotently)', async () => {
    const t = tenant(1, 1, 'Retain');
    const names = Object.values(tenantTopics(t.metadata.name));
    made.push(...names);
    const writes = counter();
    const deps: TopicsDeps = { admin, writes, replicationFactor: 1 };
    expect((await topicsReconciler.reconcile(t, deps)).kind).toBe('ready');

    expect(await topicsReconciler.finalize(t, deps)).toMatchObject({
      kind: 'ready',
      reason: 'TopicsRetained',
    });
    expect((await admin.listTopics()).filter((n) => names.includes(n)).sort()).toEqual([...names].sort());

    const del = withSpec(t, {}, 'Delete');
    expect(await topicsReconciler.finalize(del, deps)).toMatchObject({
      kind: 'ready',
      reason: 'TopicsDeleted',
    });
    expect((await topicsReconciler.finalize(del, deps)).kind).toBe('ready');
    await waitFor(
      async () => (await admin.listTopics()).every((n) => !names.includes(n)),
      20_000,
      'topics to be deleted',
    );
  });

  it('ensurePlatformTopic is idempotent', async () => {
    await ensurePlatformTopic(admin, { replicationFactor: 1 });
    expect(await ensurePlatformTopic(admin, { replicationFactor: 1 })).toBe(false);
    expect(await admin.listTopics()).toContain(PLATFORM_TOPIC);
  });
});
