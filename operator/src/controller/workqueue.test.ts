import { describe, it, expect } from 'vitest';
import { FakeClock } from './clock.ts';
import {
  BucketRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  WorkQueue,
  defaultControllerRateLimiter,
  type InProgressStats,
  type WorkQueueMetrics,
} from './workqueue.ts';

/** Resolves whether `p` settled within the current macrotask turn. */
async function settled<T>(p: Promise<T>): Promise<{ done: boolean; value?: T }> {
  let out: { done: boolean; value?: T } = { done: false };
  void p.then((value) => (out = { done: true, value }));
  await new Promise((r) => setImmediate(r));
  return out;
}

describe('rate limiters', () => {
  it('exponential per item, capped, reset by forget', () => {
    const rl = new ItemExponentialFailureRateLimiter(5, 1000);
    expect([1, 2, 3, 4, 5].map(() => rl.when('a'))).toEqual([5, 10, 20, 40, 80]);
    expect(rl.when('b')).toBe(5); // independent per item
    expect(rl.numRequeues('a')).toBe(5);
    for (let i = 0; i < 50; i++) rl.when('a');
    expect(rl.when('a')).toBe(1000);
    rl.forget('a');
    expect(rl.numRequeues('a')).toBe(0);
    expect(rl.when('a')).toBe(5);
  });

  it('token bucket allows a burst then spaces at 1/qps, refilling with time', () => {
    const clock = new FakeClock();
    const rl = new BucketRateLimiter(10, 3, clock);
    expect([rl.when(), rl.when(), rl.when()]).toEqual([0, 0, 0]);
    expect(rl.when()).toBe(100); // 4th token is 100 ms away
    expect(rl.when()).toBe(200);
    clock.advance(1000); // the 2 owed tokens are repaid and the bucket refills, capped at burst 3
    expect([rl.when(), rl.when(), rl.when()]).toEqual([0, 0, 0]);
    expect(rl.when()).toBe(100);
    clock.advance(50);
    expect(rl.when()).toBe(150); // half a token accrued towards the one owed
  });

  it('max-of takes the longest delay and feeds every limiter', () => {
    const clock = new FakeClock();
    const rl = new MaxOfRateLimiter(
      new ItemExponentialFailureRateLimiter(5, 1000),
      new BucketRateLimiter(1, 1, clock),
    );
    expect(rl.when('a')).toBe(5); // bucket has its one token
    expect(rl.when('a')).toBe(1000); // bucket: next token in 1 s > 10 ms
    expect(rl.numRequeues('a')).toBe(2);
    rl.forget('a');
    expect(rl.numRequeues('a')).toBe(0);
  });

  it('default limiter matches controller-runtime (5 ms base)', () => {
    const rl = defaultControllerRateLimiter({ clock: new FakeClock() });
    expect(rl.when('x')).toBe(5);
    expect(rl.when('x')).toBe(10);
  });
});

describe('WorkQueue', () => {
  it('de-duplicates keys and keeps FIFO order', async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.len()).toBe(0);
  });

  it('never hands a processing key to a second worker; re-adds run after done', async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add('a');
    const k = await q.get();
    expect(k).toBe('a');
    q.add('a'); // changed while processing
    q.add('a');
    expect(q.len()).toBe(0);
    const second = q.get();
    expect((await settled(second)).done).toBe(false);
    q.done('a');
    expect(await second).toBe('a');
    q.done('a');
    expect(q.len()).toBe(0);
    expect(q.processingCount()).toBe(0);
  });

  it('wakes a blocked worker on add', async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    const p = q.get();
    expect((await settled(p)).done).toBe(false);
    q.add('x');
    expect(await p).toBe('x');
  });

  it('addAfter delays, and the earliest requested time wins', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter('a', 1000);
    q.addAfter('a', 300);
    q.addAfter('a', 5000);
    expect(q.len()).toBe(0);
    expect(q.waitingCount()).toBe(1);
    clock.advance(299);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);
    clock.advance(10_000);
    expect(q.len()).toBe(1); // the later timers were replaced, not added
    expect(await q.get()).toBe('a');
  });

  it('addRateLimited backs off exponentially per key until forget', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, rateLimiter: defaultControllerRateLimiter({ clock }) });
    q.addRateLimited('a');
    expect(q.numRequeues('a')).toBe(1);
    clock.advance(4);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);
    void q.get();
    q.done('a');
    q.addRateLimited('a'); // 10 ms now
    clock.advance(9);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);
    q.forget('a');
    expect(q.numRequeues('a')).toBe(0);
  });

  it('holds no per-key state once its keys succeeded, however many it has seen', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, rateLimiter: defaultControllerRateLimiter({ clock }) });
    const keys = Array.from({ length: 1000 }, (_, i) => `tenant-${i}`);
    for (const k of keys) q.add(k);
    expect(q.tracked()).toEqual({ dirty: 1000, processing: 0, waiting: 0, failing: 0 });
    // Every other key fails once (retried with backoff), then everything succeeds, like a controller does.
    for (const k of keys) {
      expect(await q.get()).toBe(k);
      if (Number(k.split('-')[1]) % 2 === 0) q.addRateLimited(k);
      else q.forget(k);
      q.done(k);
    }
    expect(q.tracked()).toMatchObject({ dirty: 0, processing: 0, waiting: 500, failing: 500 });
    clock.advance(60_000);
    while (q.len() > 0) {
      const k = (await q.get())!;
      q.forget(k);
      q.done(k);
    }
    expect(q.tracked()).toEqual({ dirty: 0, processing: 0, waiting: 0, failing: 0 });
  });

  it('the token bucket throttles a failure storm across keys', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({
      clock,
      rateLimiter: defaultControllerRateLimiter({ clock, qps: 10, burst: 2, baseDelayMs: 1 }),
    });
    for (const k of ['a', 'b', 'c', 'd']) q.addRateLimited(k);
    clock.advance(1);
    expect(q.len()).toBe(2); // burst
    clock.advance(99);
    expect(q.len()).toBe(3);
    clock.advance(100);
    expect(q.len()).toBe(4);
  });

  it('shutDown wakes blocked workers with undefined, drops delayed adds and refuses new ones', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    const w1 = q.get();
    const w2 = q.get();
    q.addAfter('later', 100);
    q.shutDown();
    expect(await w1).toBeUndefined();
    expect(await w2).toBeUndefined();
    expect(clock.pending()).toBe(0);
    q.add('x');
    expect(q.len()).toBe(0);
    expect(await q.get()).toBeUndefined();
  });

  it('still hands out keys that were queued before shutDown', async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add('a');
    q.shutDown();
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBeUndefined();
  });

  it('reports metrics through the hooks', async () => {
    const clock = new FakeClock();
    const seen = {
      depth: [] as number[],
      adds: 0,
      queued: [] as number[],
      worked: [] as number[],
      retries: 0,
    };
    let probe: (() => InProgressStats) | undefined;
    const metrics: WorkQueueMetrics = {
      setDepth: (d) => seen.depth.push(d),
      incAdds: () => seen.adds++,
      observeQueueDuration: (s) => seen.queued.push(s),
      observeWorkDuration: (s) => seen.worked.push(s),
      incRetries: () => seen.retries++,
      bindInProgress: (p) => (probe = p),
    };
    const q = new WorkQueue({ clock, metrics });
    q.add('a');
    q.add('a'); // deduplicated: not an add
    q.add('b');
    clock.advance(2000);
    await q.get();
    clock.advance(500);
    expect(probe?.()).toEqual({ unfinishedWorkSeconds: 0.5, longestRunningProcessorSeconds: 0.5 });
    q.done('a');
    q.addRateLimited('c');
    expect(seen.adds).toBe(2);
    expect(seen.depth).toEqual([1, 2, 1]);
    expect(seen.queued).toEqual([2]);
    expect(seen.worked).toEqual([0.5]);
    expect(seen.retries).toBe(1);
  });
});
