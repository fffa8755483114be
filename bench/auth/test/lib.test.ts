import { describe, expect, it } from 'vitest';
import { basicAuth, compare, interleave, measureRate, median } from '../lib.ts';

describe('median', () => {
  it('takes the middle value, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe('compare', () => {
  it('pairs rounds and takes the median of their ratios', () => {
    const c = compare([90, 45, 100], [100, 50, 50]);
    expect(c.roundRatios).toEqual([0.9, 0.9, 2]);
    expect(c.ratio).toBe(0.9); // the outlier round does not move it
    expect(c.subjectMedian).toBe(90);
    expect(c.baselineMedian).toBe(50);
  });

  it('refuses unpaired rounds', () => {
    expect(() => compare([1, 2], [1])).toThrow(RangeError);
    expect(() => compare([], [])).toThrow(RangeError);
  });
});

describe('interleave', () => {
  it('runs every side once per round and rotates which goes first', async () => {
    const order: string[] = [];
    const side = (k: string, rate: number) => [k, async () => (order.push(k), rate)] as const;
    const rounds: Array<Record<string, number>> = [];
    const out = await interleave(3, [side('a', 1), side('b', 2)], (_r, rates) => rounds.push(rates));
    expect(order).toEqual(['a', 'b', 'b', 'a', 'a', 'b']);
    expect(out).toEqual({ a: [1, 1, 1], b: [2, 2, 2] });
    expect(rounds).toHaveLength(3);
  });
});

describe('measureRate', () => {
  it('counts completed operations across concurrent loops within the window', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const r = await measureRate(
      async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((res) => setTimeout(res, 10));
        inFlight--;
      },
      { concurrency: 4, durationMs: 200 },
    );
    expect(maxInFlight).toBe(4);
    expect(r.ops).toBeGreaterThan(20); // ~4 × 200/10, with timer slack
    expect(r.ops).toBeLessThanOrEqual(4 * Math.ceil((r.seconds * 1000) / 10));
    expect(r.perSecond).toBeCloseTo(r.ops / r.seconds);
  });

  it('fails on the first failing operation', async () => {
    await expect(
      measureRate(() => Promise.reject(new Error('boom')), { concurrency: 2, durationMs: 100 }),
    ).rejects.toThrow('boom');
  });
});

describe('basicAuth', () => {
  it('form-urlencodes id and secret before base64 (RFC 6749 §2.3.1)', () => {
    const h = basicAuth('svc a', 'p:w/d+');
    expect(Buffer.from(h.replace(/^Basic /, ''), 'base64').toString()).toBe('svc+a:p%3Aw%2Fd%2B');
  });
});
