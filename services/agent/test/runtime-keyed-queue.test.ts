/**
 * The pieces of per-conversation concurrency without Kafka: per-key FIFO, the run slots, and a
 * partition's commit watermark under out-of-order completion.
 */
import { describe, expect, it } from 'vitest';
import { KeyedQueue, OffsetTracker, Semaphore } from '../src/keyed-queue.ts';

function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const p = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { p, open, fail };
}

describe('KeyedQueue', () => {
  it('runs one key in order and different keys side by side', async () => {
    const q = new KeyedQueue();
    const log: string[] = [];
    const a1 = gate();
    const step = (name: string, wait?: Promise<void>) => async () => {
      log.push(`${name}:start`);
      await wait;
      log.push(`${name}:end`);
      return name;
    };
    const runs = [
      q.run('a', step('a1', a1.p)),
      q.run('b', step('b1')),
      q.run('a', step('a2')),
      q.run('b', step('b2')),
    ];
    await runs[3];
    // b finished entirely while a1 is still open; a2 has not started
    expect(log).toEqual(['a1:start', 'b1:start', 'b1:end', 'b2:start', 'b2:end']);
    await new Promise((r) => setImmediate(r));
    expect(q.size).toBe(1); // b's queue is gone once empty
    a1.open();
    expect(await Promise.all(runs)).toEqual(['a1', 'b1', 'a2', 'b2']);
    expect(log.slice(5)).toEqual(['a1:end', 'a2:start', 'a2:end']);
    await new Promise((r) => setImmediate(r));
    expect(q.size).toBe(0);
  });

  it('a failed task does not stop the ones queued behind it', async () => {
    const q = new KeyedQueue();
    const first = q.run('k', () => Promise.reject(new Error('boom')));
    const second = q.run('k', async () => 'ok');
    await expect(first).rejects.toThrow('boom');
    expect(await second).toBe('ok');
  });
});

describe('Semaphore', () => {
  it('lets N holders in and queues the rest first come, first served', async () => {
    const s = new Semaphore(2);
    const r1 = await s.acquire();
    const r2 = await s.acquire();
    expect(s.available).toBe(0);
    const order: number[] = [];
    const w3 = s.acquire().then((r) => (order.push(3), r));
    const w4 = s.acquire().then((r) => (order.push(4), r));
    r1();
    r1(); // a second call gives nothing back twice
    const r3 = await w3;
    expect(order).toEqual([3]);
    r2();
    const r4 = await w4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    expect(s.available).toBe(2);
  });
});

describe('OffsetTracker', () => {
  it('commits only up to the lowest offset not done, whatever order they complete in', () => {
    const t = new OffsetTracker();
    expect(t.committable).toBeUndefined();
    for (const o of ['10', '11', '12', '14']) expect(t.add(o)).toBe(true);
    expect(t.committable).toBe('10');
    expect(t.done('11')).toBe(false); // 10 still running
    expect(t.done('14')).toBe(false);
    expect(t.committable).toBe('10');
    expect(t.pending).toBe(2);
    expect(t.done('10')).toBe(true);
    expect(t.committable).toBe('12'); // 10 and 11 done, 12 not
    expect(t.done('12')).toBe(true);
    expect(t.committable).toBe('15'); // all done: one past the highest (13 was never delivered)
    expect(t.pending).toBe(0);
  });

  it('refuses offsets it already passed (a redelivery) and ignores unknown completions', () => {
    const t = new OffsetTracker();
    t.add('5');
    t.add('6');
    expect(t.add('6')).toBe(false);
    expect(t.add('3')).toBe(false);
    expect(t.done('4')).toBe(false);
    t.done('5');
    expect(t.committable).toBe('6');
    expect(t.add('7')).toBe(true);
    t.done('6');
    t.done('7');
    expect(t.committable).toBe('8');
  });

  it('stays correct over many out-of-order completions (compaction)', () => {
    const t = new OffsetTracker();
    const n = 5000;
    for (let i = 0; i < n; i++) t.add(String(i));
    // complete every odd offset first, then the even ones from the top down
    for (let i = 1; i < n; i += 2) t.done(String(i));
    expect(t.committable).toBe('0');
    for (let i = n - 2; i > 0; i -= 2) t.done(String(i));
    expect(t.committable).toBe('0');
    t.done('0');
    expect(t.committable).toBe(String(n));
    expect(t.pending).toBe(0);
  });
});
