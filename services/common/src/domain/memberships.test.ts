import { describe, expect, it } from 'vitest';
import { addLocalDays, addLocalMonths, allowanceWindow } from './memberships.ts';

const TZ = 'Europe/Bucharest';
const d = (s: string) => new Date(s);
const iso = (x: Date | null) => x?.toISOString() ?? null;

describe('local calendar arithmetic', () => {
  it('adds months on the wall clock, clamping to the month end', () => {
    expect(iso(addLocalMonths(d('2026-01-31T10:00:00+02:00'), 1, TZ))).toBe('2026-02-28T08:00:00.000Z');
    expect(iso(addLocalMonths(d('2026-01-31T10:00:00+02:00'), 2, TZ))).toBe('2026-03-31T07:00:00.000Z'); // DST: +03:00
    expect(iso(addLocalMonths(d('2026-11-15T00:30:00+02:00'), 14, TZ))).toBe('2028-01-14T22:30:00.000Z');
  });

  it('adds days on the wall clock across DST (a 23-hour day)', () => {
    const start = d('2026-03-28T10:00:00+02:00');
    expect(iso(addLocalDays(start, 1, TZ))).toBe('2026-03-29T07:00:00.000Z');
    expect(addLocalDays(start, 1, TZ).getTime() - start.getTime()).toBe(23 * 3600_000);
  });
});

describe('allowanceWindow', () => {
  const monthly = { startsAt: d('2026-01-15T09:00:00+02:00'), endsAt: null, period: 'month' as const };

  it('is the calendar month of the membership containing the instant', () => {
    const w = allowanceWindow(monthly, d('2027-06-01T10:00:00+03:00'), TZ);
    expect(iso(w.start)).toBe('2027-05-15T06:00:00.000Z');
    expect(iso(w.end)).toBe('2027-06-15T06:00:00.000Z');
    // the boundary belongs to the next period
    const b = allowanceWindow(monthly, d('2027-06-15T06:00:00.000Z'), TZ);
    expect(iso(b.start)).toBe('2027-06-15T06:00:00.000Z');
    // before the start: the first period
    expect(iso(allowanceWindow(monthly, d('2025-12-01T00:00:00Z'), TZ).start)).toBe(iso(monthly.startsAt));
  });

  it('years, a fixed end that cuts the last period, and passes', () => {
    const yearly = { startsAt: d('2024-02-29T12:00:00+02:00'), endsAt: null, period: 'year' as const };
    const y = allowanceWindow(yearly, d('2025-03-01T00:00:00+02:00'), TZ);
    expect(iso(y.start)).toBe('2025-02-28T10:00:00.000Z');
    expect(iso(y.end)).toBe('2026-02-28T10:00:00.000Z');
    const ends = d('2026-03-01T00:00:00+02:00');
    const cut = allowanceWindow({ ...monthly, endsAt: ends }, d('2026-02-20T00:00:00+02:00'), TZ);
    expect(iso(cut.start)).toBe('2026-02-15T07:00:00.000Z');
    expect(iso(cut.end)).toBe(iso(ends));
    const pass = {
      startsAt: d('2026-03-20T10:00:00+02:00'),
      endsAt: d('2026-03-30T10:00:00+03:00'),
      period: 'days' as const,
    };
    expect(allowanceWindow(pass, d('2026-03-25T00:00:00Z'), TZ)).toEqual({
      start: pass.startsAt,
      end: pass.endsAt,
    });
  });
});
