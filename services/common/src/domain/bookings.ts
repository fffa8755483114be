/**
 * Bookings (DESIGN §6, §7): create, reschedule, cancel, get, list. One implementation for the
 * API and the agent's tools.
 *
 * Double booking is prevented by the database (`bookings_no_overlap`, an exclusion constraint
 * on resource and time range), not by the checks here: the checks give good messages, the
 * constraint gives correctness under concurrency. A `23P01` exclusion violation becomes
 * BOOKING_CONFLICT (409); when no resource was named, the next free capable resource is tried
 * first, each attempt under a savepoint so the transaction survives the violation.
 *
 * Every change writes its domain event (`io.simptu.booking.created|rescheduled|cancelled`) to
 * the tenant's outbox in the same transaction, encrypted with the tenant's DEK (events/outbox.ts).
 */
import { enqueue } from '../events/outbox.ts';
import { isWithinOpeningHours, loadOpeningSchedule } from './availability.ts';
import { getService, listServiceResources, type Service } from './catalog.ts';
import {
  assertUuid,
  attempt,
  CHANNELS,
  clampLimit,
  decodeCursor,
  DEFAULT_EVENT_SOURCE,
  encodeCursor,
  nowOf,
  type Channel,
  type DomainContext,
} from './context.ts';
import { getCustomer } from './customers.ts';
import { assertClassEntitlement } from './memberships.ts';
import { DomainErrors, Issues, invalid, notFound, pgCode, pgConstraint } from './errors.ts';
import { addDays, isValidTimeZone, localDateOf } from './time.ts';

export type BookingStatus = 'booked' | 'cancelled';

export interface Booking {
  id: string;
  customerId: string;
  serviceId: string;
  resourceId: string;
  start: Date;
  end: Date;
  status: BookingStatus;
  source: Channel;
  idempotencyKey: string | null;
  cancelledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Who is asking: a customer sees and changes only their own bookings (others → 404). */
export interface BookingScope {
  customerId?: string;
}

export interface CreateBookingInput {
  customerId: string;
  serviceId: string;
  start: Date;
  /** @default the first free resource that can deliver the service */
  resourceId?: string;
  /** the same key returns the same booking (and writes nothing) */
  idempotencyKey?: string;
  source: Channel;
}

export interface CreateBookingResult {
  booking: Booking;
  /** false when an earlier request with the same idempotency key made it */
  created: boolean;
}

export interface RescheduleInput {
  start: Date;
  /** @default the booking's resource if free, else another free capable resource */
  resourceId?: string;
}

export const BOOKING_EVENT_TYPES = {
  created: 'io.simptu.booking.created',
  rescheduled: 'io.simptu.booking.rescheduled',
  cancelled: 'io.simptu.booking.cancelled',
} as const;

/** The event `data`: ids and times only, no personal data (the payload is encrypted anyway). */
export interface BookingEventData {
  bookingId: string;
  customerId: string;
  serviceId: string;
  resourceId: string;
  start: string;
  end: string;
  status: BookingStatus;
  source: Channel;
  previous?: { start: string; end: string; resourceId: string };
}

interface BookingRow {
  id: string;
  customer_id: string;
  service_id: string;
  resource_id: string;
  start_at: Date;
  end_at: Date;
  status: BookingStatus;
  source: Channel;
  idempotency_key: string | null;
  cancelled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `id, customer_id, service_id, resource_id, lower(during) AS start_at, upper(during) AS end_at,
  status, source, idempotency_key, cancelled_at, created_at, updated_at`;

function toBooking(r: BookingRow): Booking {
  return {
    id: r.id,
    customerId: r.customer_id,
    serviceId: r.service_id,
    resourceId: r.resource_id,
    start: r.start_at,
    end: r.end_at,
    status: r.status,
    source: r.source,
    idempotencyKey: r.idempotency_key,
    cancelledAt: r.cancelled_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const MINUTE = 60_000;

function isDate(d: unknown): d is Date {
  return d instanceof Date && !Number.isNaN(d.getTime());
}

function conflict(details: Record<string, unknown>, cause?: unknown): Error {
  return new DomainErrors.BOOKING_CONFLICT({ details, ...(cause !== undefined ? { cause } : {}) });
}

function isOverlapViolation(err: unknown): boolean {
  return pgCode(err) === '23P01' && pgConstraint(err) === 'bookings_no_overlap';
}

async function selectByKey(ctx: DomainContext, key: string): Promise<Booking | null> {
  const { rows } = await ctx.client.query<BookingRow>(
    `SELECT ${COLUMNS} FROM bookings WHERE idempotency_key = $1`,
    [key],
  );
  return rows[0] ? toBooking(rows[0]) : null;
}

/** The same key must mean the same request; a different one under it is a client bug (409). */
function replay(
  existing: Booking,
  input: CreateBookingInput,
  customerId: string,
  serviceId: string,
): CreateBookingResult {
  const same =
    existing.customerId === customerId &&
    existing.serviceId === serviceId &&
    existing.start.getTime() === input.start.getTime() &&
    (input.resourceId === undefined || existing.resourceId === input.resourceId.toLowerCase());
  if (!same)
    throw new DomainErrors.IDEMPOTENCY_KEY_REUSED({ details: { idempotencyKey: existing.idempotencyKey } });
  return { booking: existing, created: false };
}

/**
 * Checks shared by create and reschedule: the service is active, the slot is in the future and
 * inside opening hours, the named resource can deliver the service. Returns the candidate
 * resources in the order to try.
 */
async function candidates(
  ctx: DomainContext,
  service: Service,
  start: Date,
  end: Date,
  resourceId: string | undefined,
  prefer: string | undefined,
  excludeBookingId?: string,
): Promise<string[]> {
  if (!service.active) throw invalid('serviceId', 'the service is not offered any more');
  if (!isValidTimeZone(ctx.timeZone)) throw invalid('timeZone', 'is not an IANA time zone');
  if (start.getTime() <= nowOf(ctx).getTime()) throw invalid('start', 'must be in the future');
  const date = localDateOf(start, ctx.timeZone);
  const schedule = await loadOpeningSchedule(ctx.client, addDays(date, -1), date);
  if (!isWithinOpeningHours({ timeZone: ctx.timeZone, start, end, ...schedule }))
    throw invalid('start', 'the business is not open for the whole of this time');
  const capable = (await listServiceResources(ctx, service.id)).filter((r) => r.active).map((r) => r.id);
  if (resourceId !== undefined) {
    if (!capable.includes(resourceId))
      throw invalid('resourceId', 'this resource cannot deliver the service');
    return [resourceId];
  }
  if (capable.length === 0) throw conflict({ reason: 'no resource can deliver this service' });
  // Free ones first (a hint: the constraint decides); the preferred (current) resource leads.
  const { rows } = await ctx.client.query<{ id: string }>(
    `SELECT r.id FROM unnest($1::uuid[]) WITH ORDINALITY AS r(id, n)
      WHERE NOT EXISTS (SELECT 1 FROM bookings b WHERE b.resource_id = r.id AND b.status = 'booked'
                          AND b.during && tstzrange($2, $3, '[)') AND b.id IS DISTINCT FROM $4::uuid)
      ORDER BY r.n`,
    [capable, start, end, excludeBookingId ?? null],
  );
  const free = rows.map((r) => r.id);
  if (free.length === 0) throw conflict({ start: start.toISOString(), end: end.toISOString() });
  return prefer && free.includes(prefer) ? [prefer, ...free.filter((f) => f !== prefer)] : free;
}

function eventData(b: Booking, previous?: Booking): BookingEventData {
  return {
    bookingId: b.id,
    customerId: b.customerId,
    serviceId: b.serviceId,
    resourceId: b.resourceId,
    start: b.start.toISOString(),
    end: b.end.toISOString(),
    status: b.status,
    source: b.source,
    ...(previous
      ? {
          previous: {
            start: previous.start.toISOString(),
            end: previous.end.toISOString(),
            resourceId: previous.resourceId,
          },
        }
      : {}),
  };
}

async function emit(ctx: DomainContext, type: string, b: Booking, previous?: Booking): Promise<void> {
  await enqueue(ctx.client, ctx.cipher, {
    type,
    source: ctx.source ?? DEFAULT_EVENT_SOURCE,
    aggregateType: 'booking',
    aggregateId: b.id,
    subject: `bookings/${b.id}`,
    data: eventData(b, previous),
  });
}

/**
 * Books `serviceId` for `customerId` at `start` (end = start + the service's duration).
 * BOOKING_CONFLICT when the resource (or every capable resource) is taken; VALIDATION when the
 * time is past or outside opening hours, or the resource can't deliver the service;
 * NOT_FOUND for an unknown customer or service; IDEMPOTENCY_KEY_REUSED for a key reused with
 * other parameters; for a class, MEMBERSHIP_REQUIRED / CLASS_ALLOWANCE_EXHAUSTED when the
 * tenant sells memberships and the customer has none active or no classes left (memberships.ts).
 */
export async function createBooking(
  ctx: DomainContext,
  input: CreateBookingInput,
): Promise<CreateBookingResult> {
  const issues = new Issues();
  if (!isDate(input.start)) issues.add('start', 'must be a date-time');
  if (!CHANNELS.includes(input.source)) issues.add('source', `must be one of ${CHANNELS.join(', ')}`);
  const key = input.idempotencyKey;
  if (key !== undefined && (typeof key !== 'string' || key.length < 1 || key.length > 200))
    issues.add('idempotencyKey', 'must be 1..200 characters');
  issues.throwIfAny();
  const customerId = assertUuid(input.customerId, 'customerId');
  const serviceId = assertUuid(input.serviceId, 'serviceId');
  const resourceId = input.resourceId === undefined ? undefined : assertUuid(input.resourceId, 'resourceId');

  if (key !== undefined) {
    const existing = await selectByKey(ctx, key);
    if (existing) return replay(existing, input, customerId, serviceId);
  }
  const service = await getService(ctx, serviceId);
  await getCustomer(ctx, customerId);
  const start = input.start;
  const end = new Date(start.getTime() + service.durationMinutes * MINUTE);
  const tryOrder = await candidates(ctx, service, start, end, resourceId, undefined);
  // Classes may need an active membership with classes left (memberships.ts).
  await assertClassEntitlement(ctx, { customerId, service, start });

  let lastError: unknown;
  for (const rid of tryOrder) {
    const r = await attempt(ctx.client, () =>
      ctx.client.query<BookingRow>(
        `INSERT INTO bookings (customer_id, service_id, resource_id, during, idempotency_key, source)
         VALUES ($1, $2, $3, tstzrange($4, $5, '[)'), $6, $7) RETURNING ${COLUMNS}`,
        [customerId, serviceId, rid, start, end, key ?? null, input.source],
      ),
    );
    if (r.ok) {
      const booking = toBooking(r.value.rows[0]!);
      await emit(ctx, BOOKING_EVENT_TYPES.created, booking);
      return { booking, created: true };
    }
    // A concurrent request with the same key committed first (it waited on it): replay that.
    const keyRace = key !== undefined && (pgCode(r.error) === '23505' || isOverlapViolation(r.error));
    if (keyRace) {
      const existing = await selectByKey(ctx, key);
      if (existing) return replay(existing, input, customerId, serviceId);
    }
    if (!isOverlapViolation(r.error)) throw r.error;
    lastError = r.error;
  }
  throw conflict({ start: start.toISOString(), end: end.toISOString() }, lastError);
}

async function lockBooking(ctx: DomainContext, id: string, scope: BookingScope): Promise<Booking> {
  const { rows } = await ctx.client.query<BookingRow>(
    `SELECT ${COLUMNS} FROM bookings WHERE id = $1 FOR UPDATE`,
    [assertUuid(id, 'bookingId')],
  );
  const b = rows[0] ? toBooking(rows[0]) : null;
  if (!b || (scope.customerId !== undefined && b.customerId !== scope.customerId.toLowerCase()))
    throw notFound('booking', id);
  return b;
}

/**
 * Moves a live booking to `start` (same service, so same duration), on the named resource or,
 * by default, its own resource if free, else another free capable resource. Same checks and
 * conflict handling as create. Unchanged time and resource → returned as is, no event.
 */
export async function rescheduleBooking(
  ctx: DomainContext,
  id: string,
  input: RescheduleInput,
  scope: BookingScope = {},
): Promise<Booking> {
  if (!isDate(input.start)) throw invalid('start', 'must be a date-time');
  const resourceId = input.resourceId === undefined ? undefined : assertUuid(input.resourceId, 'resourceId');
  const current = await lockBooking(ctx, id, scope);
  if (current.status !== 'booked')
    throw new DomainErrors.BOOKING_NOT_ACTIVE({ details: { bookingId: current.id } });
  const service = await getService(ctx, current.serviceId);
  const start = input.start;
  const end = new Date(start.getTime() + service.durationMinutes * MINUTE);
  if (
    start.getTime() === current.start.getTime() &&
    (resourceId ?? current.resourceId) === current.resourceId
  )
    return current;
  // The booking itself doesn't count against its new time (it may overlap its old one).
  const tryOrder = await candidates(ctx, service, start, end, resourceId, current.resourceId, current.id);
  await assertClassEntitlement(ctx, {
    customerId: current.customerId,
    service,
    start,
    excludeBookingId: current.id,
  });

  let lastError: unknown;
  for (const rid of tryOrder) {
    const r = await attempt(ctx.client, () =>
      ctx.client.query<BookingRow>(
        `UPDATE bookings SET resource_id = $2, during = tstzrange($3, $4, '[)'), updated_at = now()
          WHERE id = $1 RETURNING ${COLUMNS}`,
        [current.id, rid, start, end],
      ),
    );
    if (r.ok) {
      const booking = toBooking(r.value.rows[0]!);
      await emit(ctx, BOOKING_EVENT_TYPES.rescheduled, booking, current);
      return booking;
    }
    if (!isOverlapViolation(r.error)) throw r.error;
    lastError = r.error;
  }
  throw conflict({ start: start.toISOString(), end: end.toISOString() }, lastError);
}

/** Cancels a live booking (frees its time); cancelling a cancelled booking returns it unchanged. */
export async function cancelBooking(
  ctx: DomainContext,
  id: string,
  scope: BookingScope = {},
): Promise<Booking> {
  const current = await lockBooking(ctx, id, scope);
  if (current.status === 'cancelled') return current;
  const { rows } = await ctx.client.query<BookingRow>(
    `UPDATE bookings SET status = 'cancelled', cancelled_at = now(), updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
    [current.id],
  );
  const booking = toBooking(rows[0]!);
  await emit(ctx, BOOKING_EVENT_TYPES.cancelled, booking);
  return booking;
}

export async function getBooking(ctx: DomainContext, id: string, scope: BookingScope = {}): Promise<Booking> {
  const { rows } = await ctx.client.query<BookingRow>(`SELECT ${COLUMNS} FROM bookings WHERE id = $1`, [
    assertUuid(id, 'bookingId'),
  ]);
  const b = rows[0] ? toBooking(rows[0]) : null;
  if (!b || (scope.customerId !== undefined && b.customerId !== scope.customerId.toLowerCase()))
    throw notFound('booking', id);
  return b;
}

export interface ListBookingsQuery {
  customerId?: string;
  serviceId?: string;
  resourceId?: string;
  status?: BookingStatus;
  /** bookings ending after `from` */
  from?: Date;
  /** bookings starting before `to` */
  to?: Date;
  /** @default 50, at most 200 */
  limit?: number;
  /** `nextCursor` of the previous page */
  cursor?: string;
}

export interface BookingPage {
  items: Booking[];
  /** pass as `cursor` for the next page; null on the last page */
  nextCursor: string | null;
}

/** Bookings by start time, keyset-paginated. A scoped (customer) caller sees only their own. */
export async function listBookings(
  ctx: DomainContext,
  q: ListBookingsQuery = {},
  scope: BookingScope = {},
): Promise<BookingPage> {
  const limit = clampLimit(q.limit);
  const issues = new Issues();
  if (q.status !== undefined && q.status !== 'booked' && q.status !== 'cancelled')
    issues.add('status', 'must be booked or cancelled');
  if (q.from !== undefined && !isDate(q.from)) issues.add('from', 'must be a date-time');
  if (q.to !== undefined && !isDate(q.to)) issues.add('to', 'must be a date-time');
  issues.throwIfAny();
  let customerId = q.customerId === undefined ? null : assertUuid(q.customerId, 'customerId');
  if (scope.customerId !== undefined) {
    const own = assertUuid(scope.customerId, 'customerId');
    if (customerId !== null && customerId !== own) return { items: [], nextCursor: null };
    customerId = own;
  }
  const after = q.cursor
    ? decodeCursor(q.cursor, (v): v is { s: string; i: string } => {
        const o = v as { s?: unknown; i?: unknown } | null;
        return (
          typeof o?.s === 'string' &&
          isDate(new Date(o.s)) &&
          typeof o.i === 'string' &&
          /^[0-9a-f-]{36}$/.test(o.i)
        );
      })
    : null;
  const { rows } = await ctx.client.query<BookingRow>(
    `SELECT ${COLUMNS} FROM bookings
      WHERE ($1::uuid IS NULL OR customer_id = $1)
        AND ($2::uuid IS NULL OR service_id = $2)
        AND ($3::uuid IS NULL OR resource_id = $3)
        AND ($4::text IS NULL OR status = $4)
        AND ($5::timestamptz IS NULL OR upper(during) > $5)
        AND ($6::timestamptz IS NULL OR lower(during) < $6)
        AND ($7::timestamptz IS NULL OR (lower(during), id) > ($7, $8::uuid))
      ORDER BY lower(during), id
      LIMIT $9`,
    [
      customerId,
      q.serviceId === undefined ? null : assertUuid(q.serviceId, 'serviceId'),
      q.resourceId === undefined ? null : assertUuid(q.resourceId, 'resourceId'),
      q.status ?? null,
      q.from ?? null,
      q.to ?? null,
      after ? new Date(after.s) : null,
      after ? after.i : null,
      limit + 1,
    ],
  );
  const items = rows.slice(0, limit).map(toBooking);
  const last = items[items.length - 1];
  return {
    items,
    nextCursor:
      rows.length > limit && last ? encodeCursor({ s: last.start.toISOString(), i: last.id }) : null,
  };
}
