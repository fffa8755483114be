import { describe, expect, it } from 'vitest';
import { decideRecovery, type StoredEntry } from './streams.ts';

const e = (seq: number, ts = 1000): StoredEntry => ({ seq, ts, eventId: `e${seq}`, data: '' });

describe('decideRecovery', () => {
  const now = 10_000;
  it('recovers exactly the missed entries', () => {
    const r = decideRecovery({ epoch: 'a', seq: 5 }, [e(4), e(5)], { lastSeq: 3, epoch: 'a' }, now, 60_000);
    expect(r).toEqual({ recovered: true, epoch: 'a', seq: 5, entries: [e(4), e(5)] });
  });
  it('is recovered with nothing when nothing was missed', () => {
    expect(
      decideRecovery({ epoch: 'a', seq: 5 }, [], { lastSeq: 5, epoch: 'a' }, now, 60_000).recovered,
    ).toBe(true);
  });
  it('refuses another epoch, a client ahead of the stream, trimmed history and too old entries', () => {
    expect(decideRecovery({ epoch: 'b', seq: 5 }, [], { lastSeq: 5, epoch: 'a' }, now, 60_000)).toMatchObject(
      { recovered: false, why: 'epoch' },
    );
    expect(decideRecovery({ epoch: 'a', seq: 5 }, [], { lastSeq: 6, epoch: 'a' }, now, 60_000)).toMatchObject(
      { recovered: false, why: 'ahead' },
    );
    expect(
      decideRecovery({ epoch: 'a', seq: 5 }, [e(5)], { lastSeq: 3, epoch: 'a' }, now, 60_000),
    ).toMatchObject({ recovered: false, why: 'gone' });
    expect(
      decideRecovery({ epoch: 'a', seq: 5 }, [e(4), e(5)], { lastSeq: 3, epoch: 'a' }, now, 5_000),
    ).toMatchObject({ recovered: false, why: 'too_old' });
  });
});
