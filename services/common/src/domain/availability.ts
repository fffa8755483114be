/**
 * Free slots for a service (DESIGN §7 "availability"): one implementation for the API and the
 * agent's tools. `computeSlots` is pure; `findAvailableSlots` loads its inputs inside the
 * tenant's transaction.
 *
 * Time model: opening hours are local wall-clock times in the tenant's IANA zone. Each local
 * date's windows are turned into instants (see time.ts for DST gaps/overlaps), then slots step
 * through each window in ABSOLUTE time from its opening instant. So on a DST day a window that
 * spans the change yields every real instant once (no slot lost in the gap, none duplicated in
 * the repeated hour), and ordinary windows yield the same wall-clock times as any other day.
 *
 * Classes (services of kind `class`, tenant migration 0008): a slot of a studio where the same
 * class already starts at that very time is the class OCCURRENCE, open while it has fewer
 * bookings than the service's capacity; the slot then reports `spotsLeft`. Anything else
 * overlapping (another class, another start of this class, a trainer session) takes the studio.
 */
import type pg from 'pg';
import { getService, listServiceResources } from './catalog.ts';
import { assertUuid, nowOf, type DomainContext } from './context.ts';
import { Issues, invalid } from './errors.ts';
import {
  addDays,
  formatZoned,
  isValidTimeZone,
  isoWeekday,
  localDateMinutesToUtc,
  localDateOf,
  parseLocalDate,
  parseTimeOfDay,
} from './time.ts';

export interface WeeklyHours {
  /** ISO weekday, 1 = Monday … 7 = Sunday */
  weekday: number;
  /** local wall-clock `HH:MM` */
  opens: string;
  /** local wall-clock `HH:MM`, after `opens`; `24:00` closes at midnight */
  closes: string;
}

export interface OpeningExceptionRule {
  /** local date `YYYY-MM-DD` */
  date: string;
  /** true: closed all day; false: `opens`–`closes` replace the weekly hours of the date */
  closed: boolean;
  opens: string | null;
  closes: string | null;
}

export interface OpeningWindow {
  /** local date the window belongs to */
  date: string;
  start: Date;
  end: Date;
}

export interface BusyInterval {
  resourceId: string;
  start: Date;
  end: Date;
  /** the booked service (classes: bookings of one occurrence share the resource) */
  serviceId?: string;
}

/** A class: its bookings that start exactly at a slot's start share the resource, up to capacity. */
export interface ClassOccupancy {
  serviceId: string;
  capacity: number;
}

export interface ComputeSlotsInput {
  timeZone: string;
  /** slots START in [from, to) */
  from: Date;
  to: Date;
  durationMinutes: number;
  /** @default 15 */
  stepMinutes?: number;
  /** earliest start is `now + leadTimeMinutes`; @default 0 */
  leadTimeMinutes?: number;
  now: Date;
  weeklyHours: readonly WeeklyHours[];
  exceptions: readonly OpeningExceptionRule[];
  /** the resources that can deliver the service (active ones) */
  resourceIds: readonly string[];
  /** live bookings of those resources */
  busy: readonly BusyInterval[];
  /** the service is a class: report places left, let an occurrence with room through */
  occupancy?: ClassOccupancy;
}

export interface Slot {
  start: Date;
  end: Date;
  /** wall clock with offset in the tenant's zone, e.g. `2026-03-29T09:00:00+03:00` */
  localStart: string;
  localEnd: string;
  /** the capable resources free for the whole slot (non-empty); for a class, with places left */
  resourceIds: string[];
  /** classes only: places left at this start, summed over `resourceIds` */
  spotsLeft?: number;
}

export const DEFAULT_SLOT_STEP_MINUTES = 15;
const MINUTE = 60_000;

function minutesOf(time: string, path: string): number {
  const m = parseTimeOfDay(time);
  if (m === null) throw invalid(path, 'must be a time HH:MM (00:00–24:00)');
  return m;
}

/**
 * The opening windows of every local date from `fromDate` to `toDate` (inclusive), in order,
 * overlapping or touching windows of a date merged. A date with exception rows uses them
 * instead of its weekday's hours; one `closed` row closes the whole date.
 */
export function openingWindows(input: {
  timeZone: string;
  fromDate: string;
  toDate: string;
  weeklyHours: readonly WeeklyHours[];
  exceptions: readonly OpeningExceptionRule[];
}): OpeningWindow[] {
  const { timeZone } = input;
  const byDate = new Map<string, OpeningExceptionRule[]>();
  for (const e of input.exceptions) {
    const list = byDate.get(e.date) ?? [];
    list.push(e);
    byDate.set(e.date, list);
  }
  const out: OpeningWindow[] = [];
  for (let date = input.fromDate; date <= input.toDate; date = addDays(date, 1)) {
    const p = parseLocalDate(date)!;
    const exc = byDate.get(date);
    let ranges: Array<[number, number]>;
    if (exc) {
      if (exc.some((e) => e.closed)) continue;
      ranges = exc.map((e) => [minutesOf(e.opens ?? '', 'opens'), minutesOf(e.closes ?? '', 'closes')]);
    } else {
      const wd = isoWeekday(p.year, p.month, p.day);
      ranges = input.weeklyHours
        .filter((h) => h.weekday === wd)
        .map((h) => [minutesOf(h.opens, 'opens'), minutesOf(h.closes, 'closes')]);
    }
    ranges.sort((a, b) => a[0] - b[0]);
    const merged: Array<[number, number]> = [];
    for (const [o, c] of ranges) {
      if (c <= o) continue;
      const last = merged[merged.length - 1];
      if (last && o <= last[1]) last[1] = Math.max(last[1], c);
      else merged.push([o, c]);
    }
    for (const [o, c] of merged) {
      const start = localDateMinutesToUtc(date, o, timeZone);
      const end = localDateMinutesToUtc(date, c, timeZone);
      // A window entirely inside a DST gap has no real time in it.
      if (end.getTime() > start.getTime()) out.push({ date, start, end });
    }
  }
  return out;
}

/** True when [start, end) lies inside one opening window of the local date of `start`. */
export function isWithinOpeningHours(input: {
  timeZone: string;
  start: Date;
  end: Date;
  weeklyHours: readonly WeeklyHours[];
  exceptions: readonly OpeningExceptionRule[];
}): boolean {
  const date = localDateOf(input.start, input.timeZone);
  // The previous date too: its window may close at 24:00, i.e. on `date`.
  const windows = openingWindows({ ...input, fromDate: addDays(date, -1), toDate: date });
  return windows.some((w) => w.start <= input.start && input.end <= w.end);
}

function validateSlotsInput(input: ComputeSlotsInput): void {
  const issues = new Issues();
  if (!isValidTimeZone(input.timeZone)) issues.add('timeZone', 'is not an IANA time zone');
  if (!(input.from instanceof Date) || Number.isNaN(input.from.getTime()))
    issues.add('from', 'must be a date-time');
  if (!(input.to instanceof Date) || Number.isNaN(input.to.getTime()))
    issues.add('to', 'must be a date-time');
  else if (input.to <= input.from) issues.add('to', 'must be after from');
  if (!Number.isInteger(input.durationMinutes) || input.durationMinutes < 1)
    issues.add('durationMinutes', 'must be a positive integer');
  const step = input.stepMinutes ?? DEFAULT_SLOT_STEP_MINUTES;
  if (!Number.isInteger(step) || step < 1 || step > 1440)
    issues.add('stepMinutes', 'must be an integer 1..1440');
  const lead = input.leadTimeMinutes ?? 0;
  if (!Number.isInteger(lead) || lead < 0) issues.add('leadTimeMinutes', 'must be a non-negative integer');
  const cap = input.occupancy?.capacity;
  if (cap !== undefined && (!Number.isInteger(cap) || cap < 1))
    issues.add('occupancy.capacity', 'must be a positive integer');
  issues.throwIfAny();
}

/**
 * Every slot of `durationMinutes` that starts in [from, to), no earlier than now + lead time,
 * fits inside an opening window, and has at least one capable resource free for all of it —
 * for a class (`occupancy`), free or holding the class's occurrence at that start with places
 * left. Ordered by start. Pure.
 */
export function computeSlots(input: ComputeSlotsInput): Slot[] {
  validateSlotsInput(input);
  const { timeZone } = input;
  const step = (input.stepMinutes ?? DEFAULT_SLOT_STEP_MINUTES) * MINUTE;
  const duration = input.durationMinutes * MINUTE;
  const earliest = Math.max(
    input.from.getTime(),
    input.now.getTime() + (input.leadTimeMinutes ?? 0) * MINUTE,
  );
  const to = input.to.getTime();
  if (input.resourceIds.length === 0) return [];

  const busyBy = new Map<string, Array<{ s: number; e: number; service: string | undefined }>>();
  for (const id of input.resourceIds) busyBy.set(id, []);
  for (const b of input.busy)
    busyBy.get(b.resourceId)?.push({ s: b.start.getTime(), e: b.end.getTime(), service: b.serviceId });
  for (const list of busyBy.values()) list.sort((a, b) => a.s - b.s);
  const occ = input.occupancy;
  /** places left on resource `id` for [s, e): 0 = taken; one-per-resource services: 1 or 0 */
  const placesLeft = (id: string, s: number, e: number): number => {
    let taken = 0;
    for (const b of busyBy.get(id)!) {
      if (b.s >= e) break;
      if (b.e <= s) continue;
      if (!occ || b.service !== occ.serviceId || b.s !== s) return 0;
      taken++;
    }
    return occ ? Math.max(0, occ.capacity - taken) : 1;
  };

  const windows = openingWindows({
    timeZone,
    fromDate: addDays(localDateOf(input.from, timeZone), -1),
    toDate: localDateOf(input.to, timeZone),
    weeklyHours: input.weeklyHours,
    exceptions: input.exceptions,
  });
  const slots: Slot[] = [];
  for (const w of windows) {
    for (let s = w.start.getTime(); s + duration <= w.end.getTime(); s += step) {
      if (s < earliest) continue;
      if (s >= to) break;
      const e = s + duration;
      const free: string[] = [];
      let spots = 0;
      for (const id of input.resourceIds) {
        const left = placesLeft(id, s, e);
        if (left > 0) {
          free.push(id);
          spots += left;
        }
      }
      if (free.length === 0) continue;
      const start = new Date(s);
      const end = new Date(e);
      slots.push({
        start,
        end,
        localStart: formatZoned(start, timeZone),
        localEnd: formatZoned(end, timeZone),
        resourceIds: free,
        ...(occ ? { spotsLeft: spots } : {}),
      });
    }
  }
  return slots;
}

// ---------------------------------------------------------------------------------------------
// Repository

interface HoursRow {
  weekday: number;
  opens: string;
  closes: string;
}

interface ExceptionRow {
  date: string;
  closed: boolean;
  opens: string | null;
  closes: string | null;
}

const hhmm = (t: string) => t.slice(0, 5);

/** Weekly hours and the exceptions of local dates `fromDate`..`toDate`. */
export async function loadOpeningSchedule(
  client: pg.ClientBase,
  fromDate: string,
  toDate: string,
): Promise<{ weeklyHours: WeeklyHours[]; exceptions: OpeningExceptionRule[] }> {
  const hours = await client.query<HoursRow>(
    'SELECT weekday, opens::text AS opens, closes::text AS closes FROM opening_hours ORDER BY weekday, opens',
  );
  const exc = await client.query<ExceptionRow>(
    `SELECT date::text AS date, closed, opens::text AS opens, closes::text AS closes
       FROM opening_exceptions WHERE date BETWEEN $1::date AND $2::date ORDER BY date, opens`,
    [fromDate, toDate],
  );
  return {
    weeklyHours: hours.rows.map((r) => ({
      weekday: r.weekday,
      opens: hhmm(r.opens),
      closes: hhmm(r.closes),
    })),
    exceptions: exc.rows.map((r) => ({
      date: r.date,
      closed: r.closed,
      opens: r.opens === null ? null : hhmm(r.opens),
      closes: r.closes === null ? null : hhmm(r.closes),
    })),
  };
}

/** Live bookings of `resourceIds` overlapping [from, to). */
export async function loadBusy(
  client: pg.ClientBase,
  resourceIds: readonly string[],
  from: Date,
  to: Date,
): Promise<BusyInterval[]> {
  if (resourceIds.length === 0) return [];
  const { rows } = await client.query<{
    resource_id: string;
    service_id: string;
    start_at: Date;
    end_at: Date;
  }>(
    `SELECT resource_id, service_id, lower(during) AS start_at, upper(during) AS end_at FROM bookings
      WHERE status = 'booked' AND resource_id = ANY($1::uuid[]) AND during && tstzrange($2, $3, '[)')`,
    [resourceIds, from, to],
  );
  return rows.map((r) => ({
    resourceId: r.resource_id,
    serviceId: r.service_id,
    start: r.start_at,
    end: r.end_at,
  }));
}

export interface AvailabilityQuery {
  serviceId: string;
  from: Date;
  to: Date;
  /** only this resource (must be able to deliver the service) */
  resourceId?: string;
  /** @default 15 */
  stepMinutes?: number;
  /** @default 0 */
  leadTimeMinutes?: number;
}

/** At most this many days per query, so one request can't make the server compute a year. */
export const MAX_AVAILABILITY_DAYS = 62;

/**
 * Free slots of an active service, from the tenant's opening hours, resources and bookings; for
 * a class, with the places left (`spotsLeft`) of each start.
 */
export async function findAvailableSlots(ctx: DomainContext, q: AvailabilityQuery): Promise<Slot[]> {
  const serviceId = assertUuid(q.serviceId, 'serviceId');
  const issues = new Issues();
  if (!(q.from instanceof Date) || Number.isNaN(q.from.getTime())) issues.add('from', 'must be a date-time');
  if (!(q.to instanceof Date) || Number.isNaN(q.to.getTime())) issues.add('to', 'must be a date-time');
  issues.throwIfAny();
  if (q.to <= q.from) throw invalid('to', 'must be after from');
  if (q.to.getTime() - q.from.getTime() > MAX_AVAILABILITY_DAYS * 86_400_000)
    throw invalid('to', `the range may span at most ${MAX_AVAILABILITY_DAYS} days`);
  const service = await getService(ctx, serviceId);
  if (!service.active) return [];
  let resources = (await listServiceResources(ctx, serviceId)).filter((r) => r.active).map((r) => r.id);
  if (q.resourceId !== undefined) {
    const rid = assertUuid(q.resourceId, 'resourceId');
    if (!resources.includes(rid)) throw invalid('resourceId', 'this resource cannot deliver the service');
    resources = [rid];
  }
  if (!isValidTimeZone(ctx.timeZone)) throw invalid('timeZone', 'is not an IANA time zone');
  const fromDate = addDays(localDateOf(q.from, ctx.timeZone), -1);
  const toDate = localDateOf(q.to, ctx.timeZone);
  const schedule = await loadOpeningSchedule(ctx.client, fromDate, toDate);
  const busy = await loadBusy(
    ctx.client,
    resources,
    q.from,
    new Date(q.to.getTime() + service.durationMinutes * MINUTE),
  );
  return computeSlots({
    timeZone: ctx.timeZone,
    from: q.from,
    to: q.to,
    durationMinutes: service.durationMinutes,
    ...(q.stepMinutes !== undefined ? { stepMinutes: q.stepMinutes } : {}),
    ...(q.leadTimeMinutes !== undefined ? { leadTimeMinutes: q.leadTimeMinutes } : {}),
    now: nowOf(ctx),
    ...schedule,
    resourceIds: resources,
    busy,
    ...(service.kind === 'class' ? { occupancy: { serviceId: service.id, capacity: service.capacity } } : {}),
  });
}
