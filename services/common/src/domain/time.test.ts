import { describe, expect, it } from 'vitest';
import {
  addDays,
  formatZoned,
  isValidTimeZone,
  isoWeekday,
  localDateMinutesToUtc,
  offsetMinutes,
  parseLocalDate,
  parseTimeOfDay,
  utcToZoned,
  zonedTimeToUtc,
  type LocalDateTime,
} from './time.ts';

const BUC = 'Europe/Bucharest';
const at = (date: string, hour: number, minute = 0, second = 0): LocalDateTime => {
  const p = parseLocalDate(date)!;
  return { ...p, hour, minute, second };
};
const iso = (d: Date | null) => d?.toISOString();

describe('utcToZoned / offsetMinutes', () => {
  it('reads the wall clock on both sides of the Bucharest spring-forward (2026-03-29 03:00 → 04:00)', () => {
    expect(utcToZoned(new Date('2026-03-29T00:59:59Z'), BUC)).toMatchObject({
      day: 29,
      hour: 2,
      minute: 59,
      second: 59,
      weekday: 7,
    });
    expect(utcToZoned(new Date('2026-03-29T01:00:00Z'), BUC)).toMatchObject({ day: 29, hour: 4, minute: 0 });
    expect(offsetMinutes(new Date('2026-03-29T00:59:59Z'), BUC)).toBe(120);
    expect(offsetMinutes(new Date('2026-03-29T01:00:00Z'), BUC)).toBe(180);
  });

  it('reads the repeated hour of the fall-back (2026-10-25 04:00 → 03:00)', () => {
    expect(utcToZoned(new Date('2026-10-25T00:30:00Z'), BUC)).toMatchObject({ hour: 3, minute: 30 });
    expect(utcToZoned(new Date('2026-10-25T01:30:00Z'), BUC)).toMatchObject({ hour: 3, minute: 30 });
    expect(offsetMinutes(new Date('2026-10-25T00:30:00Z'), BUC)).toBe(180);
    expect(offsetMinutes(new Date('2026-10-25T01:30:00Z'), BUC)).toBe(120);
  });

  it('handles midnight as hour 0 and negative offsets', () => {
    expect(utcToZoned(new Date('2026-01-01T05:00:00Z'), 'America/New_York')).toMatchObject({
      year: 2026,
      month: 1,
      day: 1,
      hour: 0,
    });
    expect(offsetMinutes(new Date('2026-01-01T05:00:00Z'), 'America/New_York')).toBe(-300);
    expect(offsetMinutes(new Date('2026-01-01T05:00:00Z'), 'Asia/Kolkata')).toBe(330);
  });
});

describe('zonedTimeToUtc', () => {
  it('converts ordinary wall times in winter and summer', () => {
    expect(iso(zonedTimeToUtc(at('2026-01-15', 9), BUC))).toBe('2026-01-15T07:00:00.000Z');
    expect(iso(zonedTimeToUtc(at('2026-06-01', 9), BUC))).toBe('2026-06-01T06:00:00.000Z');
    expect(iso(zonedTimeToUtc(at('2026-06-01', 9), 'UTC'))).toBe('2026-06-01T09:00:00.000Z');
  });

  it('resolves a wall time in the spring-forward gap like Temporal', () => {
    const gap = at('2026-03-29', 3, 30); // does not exist in Bucharest
    expect(iso(zonedTimeToUtc(gap, BUC))).toBe('2026-03-29T01:30:00.000Z'); // 04:30 EEST
    expect(iso(zonedTimeToUtc(gap, BUC, 'later'))).toBe('2026-03-29T01:30:00.000Z');
    expect(iso(zonedTimeToUtc(gap, BUC, 'earlier'))).toBe('2026-03-29T00:30:00.000Z'); // 02:30 EET
    expect(zonedTimeToUtc(gap, BUC, 'reject')).toBeNull();
    expect(iso(zonedTimeToUtc(at('2026-03-08', 2, 30), 'America/New_York'))).toBe('2026-03-08T07:30:00.000Z'); // 03:30 EDT
  });

  it('resolves a wall time in the fall-back overlap like Temporal', () => {
    const twice = at('2026-10-25', 3, 30);
    expect(iso(zonedTimeToUtc(twice, BUC))).toBe('2026-10-25T00:30:00.000Z');
    expect(iso(zonedTimeToUtc(twice, BUC, 'earlier'))).toBe('2026-10-25T00:30:00.000Z');
    expect(iso(zonedTimeToUtc(twice, BUC, 'later'))).toBe('2026-10-25T01:30:00.000Z');
    expect(zonedTimeToUtc(twice, BUC, 'reject')).toBeNull();
    // southern hemisphere: Sydney falls back on 2026-04-05 03:00 → 02:00
    expect(iso(zonedTimeToUtc(at('2026-04-05', 2, 30), 'Australia/Sydney', 'earlier'))).toBe(
      '2026-04-04T15:30:00.000Z',
    );
    expect(iso(zonedTimeToUtc(at('2026-04-05', 2, 30), 'Australia/Sydney', 'later'))).toBe(
      '2026-04-04T16:30:00.000Z',
    );
  });

  it('round-trips every instant of a year in several zones (one of earlier/later gives it back)', () => {
    const zones = [BUC, 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'UTC'];
    const start = Date.UTC(2026, 0, 1);
    const step = 97 * 60_000; // odd step: hits every minute-of-hour pattern
    for (const tz of zones) {
      for (let t = start; t < start + 366 * 86_400_000; t += step) {
        const local = utcToZoned(new Date(t), tz);
        const a = zonedTimeToUtc(local, tz, 'earlier')!.getTime();
        const b = zonedTimeToUtc(local, tz, 'later')!.getTime();
        if (a !== t && b !== t)
          throw new Error(
            `${tz} ${new Date(t).toISOString()} → ${new Date(a).toISOString()} / ${new Date(b).toISOString()}`,
          );
      }
    }
  });
});

describe('helpers', () => {
  it('parse and format dates and times', () => {
    expect(parseLocalDate('2026-02-28')).toEqual({ year: 2026, month: 2, day: 28 });
    expect(parseLocalDate('2026-02-29')).toBeNull();
    expect(parseLocalDate('2026-2-1')).toBeNull();
    expect(addDays('2026-02-28', 1)).toBe('2026-03-01');
    expect(addDays('2026-01-01', -1)).toBe('2025-12-31');
    expect(isoWeekday(2026, 3, 29)).toBe(7);
    expect(isoWeekday(2026, 3, 30)).toBe(1);
    expect(parseTimeOfDay('09:30')).toBe(570);
    expect(parseTimeOfDay('24:00')).toBe(1440);
    expect(parseTimeOfDay('24:00:00')).toBe(1440);
    expect(parseTimeOfDay('24:30')).toBeNull();
    expect(parseTimeOfDay('9:30')).toBeNull();
    expect(parseTimeOfDay('09:30:15')).toBeNull();
    expect(isValidTimeZone(BUC)).toBe(true);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
  });

  it('formats an instant with its offset and maps 24:00 to the next midnight', () => {
    expect(formatZoned(new Date('2026-03-29T06:00:00Z'), BUC)).toBe('2026-03-29T09:00:00+03:00');
    expect(formatZoned(new Date('2026-03-28T07:00:00Z'), BUC)).toBe('2026-03-28T09:00:00+02:00');
    expect(formatZoned(new Date('2026-01-01T05:00:00Z'), 'America/New_York')).toBe(
      '2026-01-01T00:00:00-05:00',
    );
    expect(iso(localDateMinutesToUtc('2026-03-28', 1440, BUC))).toBe('2026-03-28T22:00:00.000Z');
  });
});
