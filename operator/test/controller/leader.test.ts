import { afterEach, describe, expect, it } from 'vitest';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { LeaderElector } from '../../src/controller/leader.ts';
import { isNotFound } from '../../src/controller/errors.ts';
import { NS, eventually, kubeConfig, suffix } from './support.ts';

// Short durations so the test runs in seconds; the ordering leaseDuration > renewDeadline >
// retryPeriod is what matters.
const TIMING = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 200 };

describe('LeaderElector (real kube-apiserver)', () => {
  const kc = kubeConfig();
  const coord = kc.makeApiClient(CoordinationV1Api);
  const electors: LeaderElector[] = [];
  const leases: string[] = [];

  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.stop()));
    for (const name of leases.splice(0)) {
      await coord.deleteNamespacedLease({ name, namespace: NS }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
  });

  /** Two candidates for one lease, recording who leads; asserts they never lead at once. */
  function candidates() {
    const name = `leader-test-${suffix()}`;
    leases.push(name);
    const state = {
      leading: new Set<string>(),
      maxConcurrent: 0,
      started: [] as string[],
      stopped: [] as string[],
      signals: new Map<string, AbortSignal>(),
    };
    const make = (id: string) => {
      const e = new LeaderElector(kc, {
        name,
        namespace: NS,
        identity: id,
        ...TIMING,
        onStartedLeading: (signal) => {
          state.leading.add(id);
          state.maxConcurrent = Math.max(state.maxConcurrent, state.leading.size);
          state.started.push(id);
          state.signals.set(id, signal);
        },
        onStoppedLeading: () => {
          state.leading.delete(id);
          state.stopped.push(id);
        },
      });
      electors.push(e);
      return e;
    };
    return { name, state, a: make(`a-${suffix()}`), b: make(`b-${suffix()}`) };
  }

  async function holder(name: string): Promise<string | undefined> {
    const lease = await coord.readNamespacedLease({ name, namespace: NS });
    return lease.spec?.holderIdentity;
  }

  it('elects exactly one leader; a graceful stop releases the lease and the other takes over', async () => {
    const { name, state, a, b } = candidates();
    a.start();
    b.start();
    await eventually(() => a.isLeader() || b.isLeader(), 10_000, 'a leader');
    const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
    // The follower keeps campaigning for several renew periods without ever leading.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(follower.isLeader()).toBe(false);
    expect(leader.isLeader()).toBe(true);
    expect(await holder(name)).toBe(leader.identity);

    await leader.stop(); // releases
    expect(state.signals.get(leader.identity)?.aborted).toBe(true);
    expect(state.stopped).toEqual([leader.identity]);
    await eventually(() => follower.isLeader(), 10_000, 'takeover');
    expect(await holder(name)).toBe(follower.identity);
    expect(state.maxConcurrent).toBe(1);
    const lease = await coord.readNamespacedLease({ name, namespace: NS });
    expect(lease.spec?.leaseTransitions).toBe(1);
  });

  it('a leader that vanishes without releasing is replaced once its lease expires', async () => {
    const { name, state, a, b } = candidates();
    a.start();
    await eventually(() => a.isLeader(), 10_000, 'a leads');
    b.start();
    await a.stop({ release: false }); // like a crash: the lease still names a
    expect(await holder(name)).toBe(a.identity);
    expect(b.isLeader()).toBe(false);
    await eventually(() => b.isLeader(), 10_000, 'b takes over after expiry');
    expect(await holder(name)).toBe(b.identity);
    expect(state.started).toEqual([a.identity, b.identity]);
  });
});
