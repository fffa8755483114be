import { describe, expect, it } from 'vitest';
import type { Tenant } from '../api/types.ts';
import { CONDITION_TYPES } from '../api/types.ts';
import { desiredStatus, sameStatus, type Outcomes } from './status.ts';

function tenant(over: Partial<Tenant> = {}): Tenant {
  return {
    apiVersion: 'simptu.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 'smile-dental', generation: 3 },
    spec: {
      displayName: 'Smile',
      businessType: 'dental',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Retain',
      deletionProtection: false,
      suspended: false,
    },
    ...over,
  };
}

const allReady = (): Outcomes =>
  Object.fromEntries(
    CONDITION_TYPES.map((t) => [t, { kind: 'ready', reason: 'Ok', message: 'fine' }]),
  ) as Outcomes;

describe('desiredStatus', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:05:00Z');

  it('rolls every backend into Ready with observedGeneration', () => {
    const s = desiredStatus(tenant(), allReady(), t0);
    expect(s.phase).toBe('Ready');
    expect(s.observedGeneration).toBe(3);
    const ready = s.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'True', reason: 'Provisioned', observedGeneration: 3 });
    expect(s.conditions).toHaveLength(CONDITION_TYPES.length + 1);
  });

  it('is Provisioning while a backend progresses and names it in Ready', () => {
    const o = allReady();
    o.TopicsReady = {
      kind: 'progressing',
      reason: 'CreatingTopics',
      message: 'creating 3 topics',
      requeueAfterMs: 1,
    };
    const s = desiredStatus(tenant(), o, t0);
    expect(s.phase).toBe('Provisioning');
    expect(s.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'CreatingTopics',
      message: 'TopicsReady: creating 3 topics',
    });
  });

  it('is Degraded when a Ready tenant loses a backend, or when a backend is blocked', () => {
    const ready = tenant({ status: desiredStatus(tenant(), allReady(), t0) });
    const o = allReady();
    o.DatabaseReady = { kind: 'error', reason: 'ConnectionRefused', message: 'db down' };
    const s = desiredStatus(ready, o, t1);
    expect(s.phase).toBe('Degraded');
    expect(s.conditions?.find((c) => c.type === 'DatabaseReady')?.status).toBe('Unknown');

    const o2 = allReady();
    o2.TopicsReady = { kind: 'blocked', reason: 'PartitionDecreaseRefused', message: 'no' };
    expect(desiredStatus(tenant(), o2, t0).phase).toBe('Degraded');
  });

  it('keeps lastTransitionTime for unchanged conditions, so an unchanged pass compares equal', () => {
    const first = desiredStatus(tenant(), allReady(), t0);
    const second = desiredStatus(tenant({ status: first }), allReady(), t1);
    expect(sameStatus(first, second)).toBe(true);
    const o = allReady();
    o.AgentReady = { kind: 'progressing', reason: 'RollingOut', message: '0/1', requeueAfterMs: 1 };
    const third = desiredStatus(tenant({ status: first }), o, t1);
    expect(sameStatus(first, third)).toBe(false);
    expect(third.conditions?.find((c) => c.type === 'AgentReady')?.lastTransitionTime).toBe(t1.toISOString());
    expect(third.conditions?.find((c) => c.type === 'DatabaseReady')?.lastTransitionTime).toBe(
      t0.toISOString(),
    );
  });

  it('merges the fields backends report and reports Suspended', () => {
    const o = allReady();
    o.DatabaseReady = {
      kind: 'ready',
      reason: 'Ok',
      message: 'x',
      status: { database: { name: 'simptu', schema: 't_x', schemaVersion: 2 } },
    };
    const t = tenant();
    t.spec.suspended = true;
    const s = desiredStatus(t, o, t0);
    expect(s.phase).toBe('Suspended');
    expect(s.database).toEqual({ name: 'simptu', schema: 't_x', schemaVersion: 2 });
  });
});
