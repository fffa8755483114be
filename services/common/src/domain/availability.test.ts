import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors.ts';
import {
  computeSlots,
  isWithinOpeningHours,
  openingWindows,
  type ComputeSlotsInput,
  type WeeklyHours,
} from './availability.ts';

const BUC = 'Europe/Bucharest';
const R1 = '00000000-0000-4000-8000-000000000001';
const R2 = '00000000-0000-4000-8000-000000000002';
const everyDay = (opens: string, closes: string): WeeklyHours[] =>
  [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens, closes }));

function input(over: Partial<ComputeSlotsInput>): ComputeSlotsInput {
  return {
    timeZone: BUC,
    from: new Date('2026-06-01T00:00:00Z'),
    to: new Date('2026-06-02T00:00:00Z'),
    durationMinutes: 30,
    now: new Date('2026-01-01T00:00:00Z'),
    weeklyHours: everyDay('09:00', '17:00'),
    exceptions: [],
    resourceIds: [R1],
    busy: [],
    ...over,
  };
}
const locals = (slots: { localStart: string }[]) => slots.map((s) => s.localStart);

describe('computeSlots', () => {
  it('steps through the opening hours of a day; the last slot ends at closing', () => {
    const slots = computeSlots(input({}));
    expect(slots).toHaveLength(31); // 09:00 … 16:30 every 15 minutes
    expect(slots[0]!.localStart).toBe('2026-06-01T09:00:00+03:00');
    expect(slots[0]!.start.toISOString()).toBe('2026-06-01T06:00:00.000Z');
    expect(slots.at(-1)!.localEnd).toBe('2026-06-01T17:00:00+03:00');
    expect(slots.every((s) => s.end.getTime() - s.start.getTime() === 30 * 60_000)).toBe(true);
    expect(computeSlots(input({ stepMinutes: 60 }))).toHaveLength(8);
  });

  it('keeps wall-clock times across the spring-forward day (Bucharest 2026-03-29)', () => {
    const slots = computeSlots(
      input({
        from: new Date('2026-03-28T00:00:00Z'),
        to: new Date('2026-03-31T00:00:00Z'),
        weeklyHours: everyDay('09:00', '11:00'),
        durationMinutes: 60,
        stepMinutes: 60,
      }),
    );
    expect(locals(slots)).toEqual([
      '2026-03-28T09:00:00+02:00',
      '2026-03-28T10:00:00+02:00',
      '2026-03-29T09:00:00+03:00',
      '2026-03-29T10:00:00+03:00',
      '2026-03-30T09:00:00+03:00',
      '2026-03-30T10:00:00+03:00',
    ]);
    expect(slots[0]!.start.toISOString()).toBe('2026-03-28T07:00:00.000Z');
    expect(slots[2]!.start.toISOString()).toBe('2026-03-29T06:00:00.000Z');
  });

  it('keeps wall-clock times across the fall-back day (Bucharest 2026-10-25)', () => {
    const slots = computeSlots(
      input({
        from: new Date('2026-10-24T00:00:00Z'),
        to: new Date('2026-10-27T00:00:00Z'),
        weeklyHours: everyDay('09:00', '10:00'),
        durationMinutes: 30,
        stepMinutes: 30,
      }),
    );
    expect(locals(slots)).toEqual([
      '2026-10-24T09:00:00+03:00',
      '2026-10-24T09:30:00+03:00',
      '2026-10-25T09:00:00+02:00',
      '2026-10-25T09:30:00+02:00',
      '2026-10-26T09:00:00+02:00',
      '2026-10-26T09:30:00+02:00',
    ]);
  });

  it('loses and duplicates no real time when open through the change (24h on DST days)', () => {
    const allDay = everyDay('00:00', '24:00');
    const spring = computeSlots(
      input({
        from: new Date('2026-03-28T22:00:00Z'), // 00:00 local on the 29th
        to: new Date('2026-03-29T21:00:00Z'), // 00:00 local on the 30th
        weeklyHours: allDay,
        durationMinutes: 60,
        stepMinutes: 60,
      }),
    );
    expect(spring).toHaveLength(23); // the day has 23 hours
    expect(locals(spring).slice(0, 4)).toEqual([
      '2026-03-29T00:00:00+02:00',
      '2026-03-29T01:00:00+02:00',
      '2026-03-29T02:00:00+02:00',
      '2026-03-29T04:00:00+03:00', // 03:00 does not exist
    ]);
    const fall = computeSlots(
      input({
        from: new Date('2026-10-24T21:00:00Z'),
        to: new Date('2026-10-25T22:00:00Z'),
        weeklyHours: allDay,
        durationMinutes: 60,
        stepMinutes: 60,
      }),
    );
    expect(fall).toHaveLength(25); // the day has 25 hours
    expect(locals(fall).slice(2, 6)).toEqual([
      '2026-10-25T02:00:00+03:00',
      '2026-10-25T03:00:00+03:00',
      '2026-10-25T03:00:00+02:00', // the repeated hour, a different instant
      '2026-10-25T04:00:00+02:00',
    ]);
    for (const list of [spring, fall]) {
      const starts = list.map((s) => s.start.getTime());
      expect(new Set(starts).size).toBe(starts.length);
      starts.slice(1).forEach((t, i) => expect(t - starts[i]!).toBe(3_600_000));
    }
  });

  it('applies exceptions: a closed date has no slots, special hours replace the weekly ones', () => {
    const range = {
      from: new Date('2026-06-01T00:00:00Z'),
      to: new Date('2026-06-04T00:00:00Z'),
      stepMinutes: 60,
      durationMinutes: 60,
    };
    const slots = computeSlots(
      input({
        ...range,
        exceptions: [
          { date: '2026-06-01', closed: true, opens: null, closes: null },
          { date: '2026-06-02', closed: false, opens: '12:00', closes: '14:00' },
        ],
      }),
    );
    expect(locals(slots)).toEqual([
      '2026-06-02T12:00:00+03:00',
      '2026-06-02T13:00:00+03:00',
      ...[9, 10, 11, 12, 13, 14, 15, 16].map((h) => `2026-06-03T${String(h).padStart(2, '0')}:00:00+03:00`),
    ]);
  });

  it('offers a slot while one capable resource is free, and names the free ones', () => {
    const busy = [
      { resourceId: R1, start: new Date('2026-06-01T07:00:00Z'), end: new Date('2026-06-01T08:00:00Z') }, // 10:00–11:00
      { resourceId: R2, start: new Date('2026-06-01T07:30:00Z'), end: new Date('2026-06-01T08:00:00Z') }, // 10:30–11:00
    ];
    const slots = computeSlots(
      input({ resourceIds: [R1, R2], busy, weeklyHours: everyDay('09:00', '12:00') }),
    );
    const by = new Map(slots.map((s) => [s.localStart.slice(11, 16), s.resourceIds]));
    expect(by.get('09:30')).toEqual([R1, R2]);
    expect(by.get('09:45')).toEqual([R2]); // R1 busy from 10:00
    expect(by.get('10:00')).toEqual([R2]);
    expect(by.has('10:15')).toBe(false); // both busy during 10:30–10:45
    expect(by.has('10:30')).toBe(false);
    expect(by.get('11:00')).toEqual([R1, R2]); // a booking ending at 11:00 doesn't block 11:00
    expect(computeSlots(input({ resourceIds: [] }))).toEqual([]);
  });

  it('for a class: an occurrence with places left stays open with spotsLeft; anything else takes the resource', () => {
    const YOGA = 'yoga';
    const at = (hhmm: string) => new Date(`2026-06-01T${hhmm}:00+03:00`);
    const yoga = (r: string, start: string, n: number) =>
      Array.from({ length: n }, () => ({
        resourceId: r,
        serviceId: YOGA,
        start: at(start),
        end: new Date(at(start).getTime() + 3_600_000),
      }));
    const busy = [
      ...yoga(R1, '10:00', 2), // 2 of 3 places
      ...yoga(R2, '10:00', 3), // full
      ...yoga(R1, '12:00', 3), // full
      { resourceId: R2, serviceId: 'pilates', start: at('12:00'), end: at('13:00') },
    ];
    const slots = computeSlots(
      input({
        resourceIds: [R1, R2],
        busy,
        durationMinutes: 60,
        stepMinutes: 30,
        occupancy: { serviceId: YOGA, capacity: 3 },
      }),
    );
    const by = new Map(slots.map((s) => [s.localStart.slice(11, 16), s]));
    expect(by.get('09:00')).toMatchObject({ resourceIds: [R1, R2], spotsLeft: 6 });
    expect(by.get('10:00')).toMatchObject({ resourceIds: [R1], spotsLeft: 1 }); // the occurrence
    expect(by.has('09:30')).toBe(false); // overlaps the 10:00 class in both studios
    expect(by.has('10:30')).toBe(false); // another start of the class
    expect(by.has('12:00')).toBe(false); // full in R1, another class in R2
    expect(by.get('13:00')).toMatchObject({ resourceIds: [R1, R2], spotsLeft: 6 });
    // the same bookings for a one-per-resource service: every overlap takes the resource
    const plain = computeSlots(input({ resourceIds: [R1, R2], busy, durationMinutes: 60, stepMinutes: 30 }));
    expect(plain.map((s) => s.localStart.slice(11, 16))).not.toContain('10:00');
    expect(plain.every((s) => s.spotsLeft === undefined)).toBe(true);
    expect(() => computeSlots(input({ occupancy: { serviceId: YOGA, capacity: 0 } }))).toThrow(
      ValidationError,
    );
  });

  it('honours now, lead time and the [from, to) bounds', () => {
    const now = new Date('2026-06-01T08:10:00Z'); // 11:10 local
    const slots = computeSlots(input({ now, leadTimeMinutes: 60 }));
    expect(slots[0]!.localStart).toBe('2026-06-01T12:15:00+03:00');
    const bounded = computeSlots(
      input({ from: new Date('2026-06-01T07:00:00Z'), to: new Date('2026-06-01T07:30:00Z') }),
    );
    expect(locals(bounded)).toEqual(['2026-06-01T10:00:00+03:00', '2026-06-01T10:15:00+03:00']);
  });

  it('refuses bad input with a ValidationError', () => {
    expect(() => computeSlots(input({ timeZone: 'Nowhere/Special' }))).toThrow(ValidationError);
    expect(() => computeSlots(input({ durationMinutes: 0 }))).toThrow(ValidationError);
    expect(() => computeSlots(input({ stepMinutes: 2.5 }))).toThrow(ValidationError);
    expect(() => computeSlots(input({ to: new Date('2026-05-01T00:00:00Z') }))).toThrow(ValidationError);
  });
});

describe('openingWindows / isWithinOpeningHours', () => {
  const hours: WeeklyHours[] = [
    { weekday: 1, opens: '09:00', closes: '12:00' },
    { weekday: 1, opens: '12:00', closes: '13:00' }, // touches: merged
    { weekday: 1, opens: '14:00', closes: '18:00' },
  ];
  it('merges touching ranges of a day and keeps gaps', () => {
    const w = openingWindows({
      timeZone: BUC,
      fromDate: '2026-06-01',
      toDate: '2026-06-02',
      weeklyHours: hours,
      exceptions: [],
    });
    expect(w.map((x) => [x.date, x.start.toISOString(), x.end.toISOString()])).toEqual([
      ['2026-06-01', '2026-06-01T06:00:00.000Z', '2026-06-01T10:00:00.000Z'],
      ['2026-06-01', '2026-06-01T11:00:00.000Z', '2026-06-01T15:00:00.000Z'],
    ]);
  });
  it('accepts a booking inside one window only', () => {
    const check = (s: string, e: string) =>
      isWithinOpeningHours({
        timeZone: BUC,
        start: new Date(s),
        end: new Date(e),
        weeklyHours: hours,
        exceptions: [],
      });
    expect(check('2026-06-01T08:30:00Z', '2026-06-01T09:30:00Z')).toBe(true); // 11:30–12:30 across the merge
    expect(check('2026-06-01T09:30:00Z', '2026-06-01T10:30:00Z')).toBe(false); // into the lunch break
    expect(check('2026-06-01T05:30:00Z', '2026-06-01T06:30:00Z')).toBe(false); // before opening
    expect(check('2026-06-02T08:00:00Z', '2026-06-02T09:00:00Z')).toBe(false); // Tuesday: closed
  });
});
