import { describe, it, expect } from 'vitest';
import type { Tenant } from '../api/types.ts';
import { desiredTopics, planTopics, type ObservedTopic } from './topics.ts';

function tenant(partitions = 3, retentionHours = 168): Tenant {
  return {
    apiVersion: 'simptu.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 'smile-dental' },
    spec: {
      displayName: 'S',
      businessType: 'dental',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions, retentionHours },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: false,
    },
  };
}

const ok = { 'cleanup.policy': 'delete', 'retention.ms': String(168 * 3_600_000) };
const observed = (entries: ObservedTopic[]) => new Map(entries.map((e) => [e.topic, e]));
const names = [
  'simptu.t.smile-dental.inbound',
  'simptu.t.smile-dental.agent',
  'simptu.t.smile-dental.domain',
];

describe('desiredTopics', () => {
  it('derives the three topics with partitions, retention and cleanup policy', () => {
    expect(desiredTopics(tenant(6, 24))).toEqual(
      names.map((topic) => ({
        topic,
        numPartitions: 6,
        configs: { 'cleanup.policy': 'delete', 'retention.ms': '86400000' },
      })),
    );
  });
});

describe('planTopics', () => {
  it('creates what is missing', () => {
    const plan = planTopics(desiredTopics(tenant()), observed(names.map((topic) => ({ topic }))));
    expect(plan.actions.map((a) => a.kind)).toEqual(['create', 'create', 'create']);
  });

  it('does nothing in a steady state', () => {
    const plan = planTopics(
      desiredTopics(tenant()),
      observed(names.map((topic) => ({ topic, partitions: 3, overrides: { ...ok } }))),
    );
    expect(plan).toEqual({ actions: [], refusedShrinks: [] });
  });

  it('reverts drifted, missing and foreign overrides', () => {
    const plan = planTopics(
      desiredTopics(tenant()),
      observed([
        { topic: names[0]!, partitions: 3, overrides: { ...ok, 'retention.ms': '1000' } },
        { topic: names[1]!, partitions: 3, overrides: { 'cleanup.policy': 'delete' } },
        { topic: names[2]!, partitions: 3, overrides: { ...ok, 'max.message.bytes': '10' } },
      ]),
    );
    expect(plan.actions).toHaveLength(3);
    expect(plan.actions.every((a) => a.kind === 'alterConfigs')).toBe(true);
    expect(plan.actions.map((a) => (a.kind === 'alterConfigs' ? a.drift[0] : ''))).toEqual([
      'retention.ms=1000, want 604800000',
      'retention.ms=(default), want 604800000',
      'max.message.bytes=10, want (default)',
    ]);
  });

  it('grows partitions and refuses to shrink them', () => {
    const grow = planTopics(
      desiredTopics(tenant(5)),
      observed(names.map((topic) => ({ topic, partitions: 3, overrides: { ...ok } }))),
    );
    expect(grow.actions).toEqual(names.map((topic) => ({ kind: 'createPartitions', topic, from: 3, to: 5 })));
    const shrink = planTopics(
      desiredTopics(tenant(2)),
      observed(names.map((topic) => ({ topic, partitions: 3, overrides: { ...ok } }))),
    );
    expect(shrink.actions).toEqual([]);
    expect(shrink.refusedShrinks).toEqual(names.map((topic) => ({ topic, have: 3, want: 2 })));
  });
});
