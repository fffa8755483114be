/**
 * Wall-clock time in an IANA time zone, built on `Intl.DateTimeFormat` (Node 22 ships full
 * ICU), so no time-zone library is needed. Instants are `Date`s; local times are plain fields.
 *
 * `zonedTimeToUtc` resolves the two DST edge cases like Temporal's `disambiguation`:
 * - a wall time that does not exist (spring-forward gap, e.g. 03:30 in Europe/Bucharest on
 *   2026-03-29) → `compatible`/`later` move it forward by the gap (04:30), `earlier` back;
 * - a wall time that happens twice (fall-back overlap, 03:30 on 2026-10-25) → `compatible`/
 *   `earlier` take the first, `later` the second.
 * `reject` returns null for both.
 * @see https://tc39.es/proposal-temporal/docs/zoneddatetime.html#ambiguity-due-to-dst-or-other-time-zone-offset-changes
 */

export interface LocalDateTime {
  year: number;
  month: number; // 1..12
  day: number;
  hour: number; // 0..23
  minute: number;
  second: number;
}

export interface ZonedParts extends LocalDateTime {
  /** ISO weekday, 1 = Monday … 7 = Sunday */
  weekday: number;
}

export type Disambiguation = 'compatible' | 'earlier' | 'later' | 'reject';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True for a zone name ICU knows (`Europe/Bucharest`, `UTC`). */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone === '') return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock fields of `instant` in `timeZone`. */
export function utcToZoned(instant: Date, timeZone: string): ZonedParts {
  const t = instant.getTime();
  if (!Number.isFinite(t)) throw new RangeError('invalid date');
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(instant)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  const local: LocalDateTime = {
    year: parts.year!,
    month: parts.month!,
    day: parts.day!,
    hour: parts.hour! % 24,
    minute: parts.minute!,
    second: parts.second!,
  };
  return { ...local, weekday: isoWeekday(local.year, local.month, local.day) };
}

/** Minutes to add to UTC to get the wall clock of `timeZone` at `instant` (Bucharest summer: 180). */
export function offsetMinutes(instant: Date, timeZone: string): number {
  return offsetOf(instant, utcToZoned(instant, timeZone));
}

/** The offset of `local`, the wall clock (utcToZoned) at `instant`. */
function offsetOf(instant: Date, l: LocalDateTime): number {
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second);
  return Math.round((asUtc - Math.floor(instant.getTime() / 1000) * 1000) / 60_000);
}

function sameWallClock(a: LocalDateTime, b: LocalDateTime): boolean {
  return (
    a.year === b.year &&
    a.month === b.month &&
    a.day === b.day &&
    a.hour === b.hour &&
    a.minute === b.minute &&
    a.second === b.second
  );
}

/**
 * The instant at which the wall clock of `timeZone` shows `local`. Returns null only for
 * `reject` on a gap or overlap. Assumes at most one offset change within ±1 day (true of
 * every zone in the tz database).
 */
export function zonedTimeToUtc(
  local: LocalDateTime,
  timeZone: string,
  disambiguation: Disambiguation = 'compatible',
): Date | null {
  const asUtc = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, local.second);
  if (!Number.isFinite(asUtc)) throw new RangeError('invalid local time');
  const day = 86_400_000;
  const before = offsetMinutes(new Date(asUtc - day), timeZone);
  const after = offsetMinutes(new Date(asUtc + day), timeZone);
  const candidates = [...new Set([before, after])]
    .map((off) => asUtc - off * 60_000)
    .filter((t) => sameWallClock(utcToZoned(new Date(t), timeZone), local))
    .sort((a, b) => a - b);
  if (candidates.length === 1) return new Date(candidates[0]!);
  if (candidates.length > 1) {
    // Overlap: the same wall time under both offsets.
    if (disambiguation === 'reject') return null;
    return new Date(disambiguation === 'later' ? candidates[candidates.length - 1]! : candidates[0]!);
  }
  // Gap: read the wall time with the offset in force before the change (→ later wall time) or after it.
  if (disambiguation === 'reject') return null;
  return new Date(disambiguation === 'earlier' ? asUtc - after * 60_000 : asUtc - before * 60_000);
}

/** ISO weekday of a calendar date, 1 = Monday … 7 = Sunday. */
export function isoWeekday(year: number, month: number, day: number): number {
  const d = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
  return d === 0 ? 7 : d;
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** `YYYY-MM-DD` → fields; null when malformed or not a real date (2026-02-30). */
export function parseLocalDate(date: string): { year: number; month: number; day: number } | null {
  const m = DATE_RE.exec(date);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const d = new Date(Date.UTC(year, month - 1, day));
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day) return null;
  return { year, month, day };
}

export function formatLocalDate(d: { year: number; month: number; day: number }): string {
  return `${String(d.year).padStart(4, '0')}-${pad2(d.month)}-${pad2(d.day)}`;
}

/** Calendar arithmetic on `YYYY-MM-DD` (no zone involved). */
export function addDays(date: string, days: number): string {
  const p = parseLocalDate(date);
  if (!p) throw new RangeError(`invalid date ${JSON.stringify(date)}`);
  const d = new Date(Date.UTC(p.year, p.month - 1, p.day + days));
  return formatLocalDate({ year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() });
}

/** The local calendar date of `instant` in `timeZone`, `YYYY-MM-DD`. */
export function localDateOf(instant: Date, timeZone: string): string {
  return formatLocalDate(utcToZoned(instant, timeZone));
}

const TIME_RE = /^([01]\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?$/;

/** `HH:MM` or `HH:MM:SS` (as Postgres returns `time`) → minutes after midnight; `24:00` → 1440. Null when invalid. */
export function parseTimeOfDay(time: string): number | null {
  const m = TIME_RE.exec(time);
  if (!m) return null;
  const h = Number(m[1]);
  const min = Number(m[2]);
  const s = m[3] === undefined ? 0 : Number(m[3]);
  if (s !== 0) return null; // opening hours are whole minutes
  if (h === 24 && min !== 0) return null;
  return h * 60 + min;
}

/** Minutes after midnight → `HH:MM`. */
export function formatTimeOfDay(minutes: number): string {
  return `${pad2(Math.floor(minutes / 60))}:${pad2(minutes % 60)}`;
}

/**
 * The instant of `minutes` after the start of local `date` on the wall clock (1440 → next
 * midnight), with `compatible` disambiguation.
 */
export function localDateMinutesToUtc(date: string, minutes: number, timeZone: string): Date {
  const d = minutes >= 1440 ? addDays(date, Math.floor(minutes / 1440)) : date;
  const m = minutes % 1440;
  const p = parseLocalDate(d);
  if (!p) throw new RangeError(`invalid date ${JSON.stringify(date)}`);
  return zonedTimeToUtc({ ...p, hour: Math.floor(m / 60), minute: m % 60, second: 0 }, timeZone)!;
}

/** `2026-03-29T09:00:00+03:00`: the wall clock of `instant` in `timeZone`, with its offset. */
export function formatZoned(instant: Date, timeZone: string): string {
  const l = utcToZoned(instant, timeZone);
  const off = offsetOf(instant, l);
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(off);
  return (
    `${formatLocalDate(l)}T${pad2(l.hour)}:${pad2(l.minute)}:${pad2(l.second)}` +
    `${sign}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`
  );
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}
