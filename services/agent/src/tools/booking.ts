/**
 * Catalog and booking tools, one factory for every business type: the nouns differ (treatment,
 * class, room type), the domain calls are the API's own (`listServices`, `findAvailableSlots`,
 * `createBooking`, `rescheduleBooking`, `cancelBooking`, `listBookings`). Bookings are always
 * scoped to the conversation's customer (`BookingScope`), so a tool can never touch anyone
 * else's booking, whatever the model asks for.
 *
 * Classes (gym) take up to their capacity per occurrence: the schedule shows the places left
 * (`spots_left`), and a full class (`SIMPTU_ERR_CLASS_FULL`) comes back with the start times
 * that still have places — that day, or the next day that has any (`alternatives_date`).
 */
import {
  addDays,
  cancelBooking,
  createBooking,
  findAvailableSlots,
  formatZoned,
  getService,
  listBookings,
  listServices,
  localDateMinutesToUtc,
  localDateOf,
  parseLocalDate,
  parseTimeOfDay,
  rescheduleBooking,
  SimptuError,
  type Booking,
  type DomainContext,
  type Service,
  type ServiceKind,
} from '@simptu/common';
import { fold } from '../model/intents.ts';
import { str, toolError, type AgentTool, type ToolContext } from './types.ts';

export interface BookingNouns {
  kind: ServiceKind;
  /** tool name suffixes: list_<plural>, book_<singular> … */
  list: string;
  book: string;
  cancel: string;
  reschedule: string;
  availability: string;
  what: string;
}

export function money(cents: number, currency: string): string {
  return `${(cents / 100).toFixed(2)} ${currency}`;
}

/**
 * The entry (catalog service, membership plan, trainer) whose name best matches the words of
 * `hint` (diacritics-insensitive, stems by prefix), or its id. With `onlyAsFallback` (default)
 * a single entry is taken when nothing matches; a trainer asked for by name must match.
 */
export function matchService<T extends { id: string; name: string }>(
  services: readonly T[],
  hint: string | undefined,
  onlyAsFallback = true,
): T | undefined {
  if (services.length === 0) return undefined;
  const only = onlyAsFallback && services.length === 1 ? services[0] : undefined;
  if (!hint) return only;
  const h = fold(hint);
  const byId = services.find((s) => s.id === hint.trim().toLowerCase());
  if (byId) return byId;
  let best: { s: T; score: number } | undefined;
  for (const s of services) {
    const name = fold(s.name);
    if (h.includes(name)) return s;
    const words = name.split(/[^a-z0-9]+/).filter((w) => w.length >= 3);
    // Stems: "cleaning" matches "clean", "curatare" matches "curatarea".
    const score = words.filter((w) => h.includes(w.slice(0, Math.max(4, w.length - 3)))).length;
    if (score > 0 && (!best || score > best.score)) best = { s, score };
  }
  return best?.s ?? only;
}

export function localParts(d: Date, tz: string): { date: string; time: string } {
  const z = formatZoned(d, tz); // 2026-03-10T10:00:00+02:00
  return { date: z.slice(0, 10), time: z.slice(11, 16) };
}

export function describe(b: Booking, service: Service, tz: string): Record<string, unknown> {
  const s = localParts(b.start, tz);
  const e = localParts(b.end, tz);
  return {
    booking_id: b.id,
    reference: b.id.slice(0, 8),
    service: service.name,
    date: s.date,
    time: s.time,
    end_date: e.date,
    end_time: e.time,
    status: b.status,
  };
}

export function domainFailure(err: unknown): Record<string, unknown> {
  if (err instanceof SimptuError && err.statusCode < 500)
    return toolError(err.code, err.message, { details: err.details ?? null });
  throw err;
}

/** The availability step the tools offer: a start every duration, between 15 and 60 minutes. */
export function stepFor(service: Service): number {
  return Math.min(60, Math.max(15, service.durationMinutes));
}

/**
 * Free start times of `service` on a local date (a class: with places left, in `spots`), as
 * local `HH:MM`. `step` defaults to the slot default (15 minutes).
 */
export async function openTimes(
  ctx: DomainContext,
  service: Service,
  date: string,
  tz: string,
  step?: number,
): Promise<{ times: string[]; spots: Record<string, number> }> {
  const slots = await findAvailableSlots(ctx, {
    serviceId: service.id,
    from: localDateMinutesToUtc(date, 0, tz),
    to: localDateMinutesToUtc(addDays(date, 1), 0, tz),
    ...(step !== undefined ? { stepMinutes: step } : {}),
  });
  const spots: Record<string, number> = {};
  const times = slots.map((s) => {
    const time = localParts(s.start, tz).time;
    if (s.spotsLeft !== undefined) spots[time] = s.spotsLeft;
    return time;
  });
  return { times, spots };
}

/** How many days after a full class's date to look for one with places. */
const CLASS_LOOKAHEAD_DAYS = 7;

/**
 * What to offer instead of a full class: its start times with places left on `date`, else on
 * the first of the next days that has any. Adds `alternatives`, `alternatives_date` (compare
 * with the requested `date`) and `spots_left` to the tool error.
 */
export async function classAlternatives(
  ctx: DomainContext,
  service: Service,
  date: string,
  tz: string,
  f: Record<string, unknown>,
): Promise<void> {
  for (let i = 0; i <= CLASS_LOOKAHEAD_DAYS; i++) {
    const day = addDays(date, i);
    const open = await openTimes(ctx, service, day, tz, stepFor(service));
    if (open.times.length === 0) continue;
    const times = open.times.slice(0, 6);
    f.alternatives = times;
    f.alternatives_date = day;
    f.spots_left = Object.fromEntries(times.map((t) => [t, open.spots[t]]));
    return;
  }
  f.alternatives = [];
}

export function isService(x: Service | Record<string, unknown>): x is Service {
  return typeof x.durationMinutes === 'number' && typeof x.kind === 'string';
}

async function activeServices(ctx: DomainContext, kind: ServiceKind): Promise<Service[]> {
  return listServices(ctx, { kind, activeOnly: true });
}

async function resolveService(
  ctx: DomainContext,
  kind: ServiceKind,
  hint: string | undefined,
): Promise<Service | Record<string, unknown>> {
  const services = await activeServices(ctx, kind);
  const s = matchService(services, hint);
  if (s) return s;
  return toolError('SERVICE_UNCLEAR', 'which one?', { options: services.map((x) => x.name) });
}

export function startOf(
  date: string | undefined,
  time: string | undefined,
  tz: string,
): Date | Record<string, unknown> {
  if (!date || !parseLocalDate(date)) return toolError('DATE_MISSING', 'a date YYYY-MM-DD is needed');
  const minutes = time === undefined ? 0 : parseTimeOfDay(time);
  if (minutes === null) return toolError('TIME_MISSING', 'a time HH:MM is needed');
  return localDateMinutesToUtc(date, minutes, tz);
}

/** The customer's next live booking of this kind (what "cancel my appointment" means). */
export async function nextBooking(
  ctx: DomainContext,
  customerId: string,
  kind: ServiceKind,
  bookingId: string | undefined,
  now: Date,
): Promise<{ booking: Booking; service: Service } | undefined> {
  const page = await listBookings(ctx, { status: 'booked', from: now, limit: 50 }, { customerId });
  for (const b of page.items) {
    if (bookingId && !b.id.startsWith(bookingId.toLowerCase())) continue;
    const service = await getService(ctx, b.serviceId);
    if (service.kind === kind) return { booking: b, service };
  }
  return undefined;
}

export function needCustomer(t: ToolContext): Record<string, unknown> | undefined {
  if (t.session.customerId) return undefined;
  return toolError(
    'CUSTOMER_UNKNOWN',
    'the customer must identify first (identify_customer with a phone number)',
  );
}

/**
 * A refused booking, with what to offer instead so the conversation can continue: a full class
 * → its other start times with places (that day or the next day with any); a taken or invalid
 * time → what is free that day; a customer already in the class → the reference of their place.
 */
async function offerInstead(
  ctx: DomainContext,
  service: Service,
  start: Date,
  tz: string,
  f: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const date = localDateOf(start, tz);
  if (f.error === 'SIMPTU_ERR_CLASS_FULL') {
    f.date = date;
    await classAlternatives(ctx, service, date, tz, f).catch(() => {
      f.alternatives = [];
    });
  } else if (f.error === 'SIMPTU_ERR_BOOKING_CONFLICT' || f.error === 'SIMPTU_ERR_VALIDATION')
    f.alternatives = (
      await openTimes(ctx, service, date, tz, service.kind === 'class' ? stepFor(service) : undefined).catch(
        () => ({ times: [] as string[] }),
      )
    ).times.slice(0, 6);
  else if (f.error === 'SIMPTU_ERR_CLASS_ALREADY_BOOKED') {
    const id = (f.details as { bookingId?: unknown } | null)?.bookingId;
    if (typeof id === 'string') f.reference = id.slice(0, 8);
  }
  return f;
}

export function bookingTools(n: BookingNouns): AgentTool[] {
  const list: AgentTool = {
    name: `list_${n.list}`,
    description: `List the ${n.list.replace(/_/g, ' ')} offered, with prices and durations.`,
    schema: { type: 'object', properties: {}, additionalProperties: false },
    sideEffect: false,
    run: (_args, t) =>
      t.db(async (ctx) => ({
        [n.list]: (await activeServices(ctx, n.kind)).map((s) => ({
          name: s.name,
          price: money(s.priceCents, s.currency),
          duration_minutes: s.durationMinutes,
          ...(s.description ? { description: s.description } : {}),
        })),
      })),
  };

  const availability: AgentTool = {
    name: n.availability,
    description:
      n.kind === 'class'
        ? `Start times of a ${n.what} with places left on a local date (YYYY-MM-DD), and how many places each has.`
        : `Free start times of a ${n.what} on a local date (YYYY-MM-DD).`,
    schema: {
      type: 'object',
      properties: {
        service: { type: 'string', description: `name of the ${n.what} (or words naming it)` },
        date: { type: 'string', description: 'local date YYYY-MM-DD' },
      },
      required: ['date'],
    },
    sideEffect: false,
    run: (args, t) =>
      t.db(async (ctx) => {
        const service = await resolveService(ctx, n.kind, str(args.service));
        if (!isService(service)) return service;
        const date = str(args.date);
        if (!date || !parseLocalDate(date)) return toolError('DATE_MISSING', 'a date YYYY-MM-DD is needed');
        const tz = t.tenant.timeZone;
        try {
          const open = await openTimes(ctx, service, date, tz, stepFor(service));
          const slots = open.times.slice(0, 12);
          return {
            service: service.name,
            date,
            slots,
            // a class: places left at each start
            ...(service.kind === 'class'
              ? { spots_left: Object.fromEntries(slots.map((s) => [s, open.spots[s]])) }
              : {}),
            more: open.times.length > 12,
          };
        } catch (err) {
          return domainFailure(err);
        }
      }),
  };

  const book: AgentTool = {
    name: n.book,
    description:
      n.kind === 'class'
        ? `Book the customer a place in a ${n.what} at a local date and time. A full class answers with other start times that have places.`
        : `Book a ${n.what} for the customer at a local date and time.`,
    schema: {
      type: 'object',
      properties: {
        service: { type: 'string', description: `name of the ${n.what}` },
        date: { type: 'string', description: 'local date YYYY-MM-DD' },
        time: { type: 'string', description: 'local time HH:MM' },
      },
      required: ['date'],
    },
    sideEffect: true,
    run: (args, t) =>
      t.db(async (ctx) => {
        const missing = needCustomer(t);
        if (missing) return missing;
        const service = await resolveService(ctx, n.kind, str(args.service));
        if (!isService(service)) return service;
        const start = startOf(
          str(args.date),
          str(args.time) ?? (n.kind === 'room_type' ? '00:00' : undefined),
          t.tenant.timeZone,
        );
        if (!(start instanceof Date)) return start;
        try {
          const r = await createBooking(ctx, {
            customerId: t.session.customerId!,
            serviceId: service.id,
            start,
            idempotencyKey: t.idempotencyKey,
            source: t.session.channel,
          });
          return { booked: describe(r.booking, service, t.tenant.timeZone), replayed: !r.created };
        } catch (err) {
          return offerInstead(ctx, service, start, t.tenant.timeZone, domainFailure(err));
        }
      }),
  };

  const reschedule: AgentTool = {
    name: n.reschedule,
    description: `Move the customer's ${n.what} booking (their next one unless booking_id is given) to a new local date and time.`,
    schema: {
      type: 'object',
      properties: {
        booking_id: { type: 'string', description: 'booking id or its 8-character reference' },
        date: { type: 'string', description: 'new local date YYYY-MM-DD' },
        time: { type: 'string', description: 'new local time HH:MM' },
      },
      required: ['date'],
    },
    sideEffect: true,
    run: (args, t) =>
      t.db(async (ctx) => {
        const missing = needCustomer(t);
        if (missing) return missing;
        const found = await nextBooking(ctx, t.session.customerId!, n.kind, str(args.booking_id), t.now());
        if (!found) return toolError('NO_BOOKING', 'the customer has no upcoming booking');
        const start = startOf(
          str(args.date),
          str(args.time) ?? (n.kind === 'room_type' ? '00:00' : undefined),
          t.tenant.timeZone,
        );
        if (!(start instanceof Date)) return start;
        try {
          const b = await rescheduleBooking(
            ctx,
            found.booking.id,
            { start },
            { customerId: t.session.customerId! },
          );
          return {
            rescheduled: describe(b, found.service, t.tenant.timeZone),
            previous: describe(found.booking, found.service, t.tenant.timeZone),
          };
        } catch (err) {
          return offerInstead(ctx, found.service, start, t.tenant.timeZone, domainFailure(err));
        }
      }),
  };

  const cancel: AgentTool = {
    name: n.cancel,
    description: `Cancel the customer's ${n.what} booking (their next one unless booking_id is given). Only ONE booking, only the customer's own.`,
    schema: {
      type: 'object',
      properties: { booking_id: { type: 'string', description: 'booking id or its 8-character reference' } },
    },
    sideEffect: true,
    run: (args, t) =>
      t.db(async (ctx) => {
        const missing = needCustomer(t);
        if (missing) return missing;
        const found = await nextBooking(ctx, t.session.customerId!, n.kind, str(args.booking_id), t.now());
        if (!found) return toolError('NO_BOOKING', 'the customer has no upcoming booking');
        try {
          const b = await cancelBooking(ctx, found.booking.id, { customerId: t.session.customerId! });
          return { cancelled: describe(b, found.service, t.tenant.timeZone) };
        } catch (err) {
          return domainFailure(err);
        }
      }),
  };

  const mine: AgentTool = {
    name: 'list_my_bookings',
    description: "The customer's upcoming bookings.",
    schema: { type: 'object', properties: {} },
    sideEffect: false,
    run: (_args, t) =>
      t.db(async (ctx) => {
        const missing = needCustomer(t);
        if (missing) return missing;
        const page = await listBookings(
          ctx,
          { status: 'booked', from: t.now(), limit: 10 },
          { customerId: t.session.customerId! },
        );
        const out = [];
        for (const b of page.items)
          out.push(describe(b, await getService(ctx, b.serviceId), t.tenant.timeZone));
        return { bookings: out };
      }),
  };

  return [list, availability, book, reschedule, cancel, mine];
}

export const NOUNS: Record<'dental' | 'gym' | 'hotel', BookingNouns> = {
  dental: {
    kind: 'treatment',
    list: 'treatments',
    book: 'book_appointment',
    cancel: 'cancel_appointment',
    reschedule: 'reschedule_appointment',
    availability: 'check_availability',
    what: 'treatment',
  },
  gym: {
    kind: 'class',
    list: 'classes',
    book: 'book_class',
    cancel: 'cancel_class_booking',
    reschedule: 'reschedule_class_booking',
    availability: 'class_schedule',
    what: 'group class',
  },
  hotel: {
    kind: 'room_type',
    list: 'room_types',
    book: 'reserve_room',
    cancel: 'cancel_reservation',
    reschedule: 'change_reservation',
    availability: 'room_availability',
    what: 'room type (one night from 00:00 local, per reservation)',
  },
};
