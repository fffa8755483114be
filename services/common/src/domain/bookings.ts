/**
 * Bookings (DESIGN §6, §7): create, reschedule, cancel, get, list. One implementation for the
 * API and the agent's tools.
 *
 * Double booking is prevented by the database, not by the checks here: the checks give good
 * messages and choose a resource, the constraints (tenant migrations 0002, 0008) give
 * correctness under concurrency:
 *
 *  - two live bookings overlap on a resource only when they are the same CLASS OCCURRENCE (same
 *    class service, same start): `bookings_no_overlap` on (resource =, occurrence <>, time &&),
 *    where `occurrence` is derived from (service, start) for a class and is the booking's own id
 *    for anything else. So appointments, trainer sessions and rooms keep one live booking per
 *    resource and time, and a studio never holds two different things at once;
 *  - a class occurrence on a resource takes up to the service's `capacity` live bookings, one
 *    per customer (`bookings_class_once_per_customer`). The capacity is counted under a
 *    transaction-scoped advisory lock per occurrence — taken here before the studio is chosen,
 *    and again (re-entrantly) by the table's trigger, which refuses one booking too many
 *    (`bookings_class_capacity`) whoever writes.
 *
 * An exclusion violation (`23P01`) becomes BOOKING_CONFLICT (409), a full occurrence CLASS_FULL
 * (409), a second place of one customer CLASS_ALREADY_BOOKED (409). When no resource was named,
 * the capable resources are tried in order — for a class, a studio where the occurrence already
 * runs with room comes first — each attempt under a savepoint so the transaction survives a
 * violation.
 *
 * Every change writes its domain event (`io.simptu.booking.created|rescheduled|cancelled`) to
 * the tenant's outbox in the same transaction, encrypted with the tenant's DEK (events/outbox.ts).
 */
import type pg from 'pg';
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

/**
 * The resource is taken: an exclusion violation, or a deadlock between two inserts of
 * overlapping rows — each inserts its index entry, then finds and waits for the other's
 * (PostgreSQL's execIndexing.c documents this; the deadlock detector aborts one). Inside the
 * savepoint the loser's statement rolls back and the winner goes on, so it is the same lost race.
 */
function isOverlapViolation(err: unknown): boolean {
  const code = pgCode(err);
  return (code === '23P01' && pgConstraint(err) === 'bookings_no_overlap') || code === '40P01';
}

function isCapacityViolation(err: unknown): boolean {
  return pgCode(err) === '23514' && pgConstraint(err) === 'bookings_class_capacity';
}

function isOncePerCustomerViolation(err: unknown): boolean {
  return pgCode(err) === '23505' && pgConstraint(err) === 'bookings_class_once_per_customer';
}

function classFull(service: Service, start: Date, resourceId: string, cause?: unknown): Error {
  return new DomainErrors.CLASS_FULL({
    details: { serviceId: service.id, resourceId, start: start.toISOString(), capacity: service.capacity },
    ...(cause !== undefined ? { cause } : {}),
  });
}

function alreadyBooked(bookingId: string | null, service: Service, start: Date, cause?: unknown): Error {
  return new DomainErrors.CLASS_ALREADY_BOOKED({
    details: { bookingId, serviceId: service.id, start: start.toISOString() },
    ...(cause !== undefined ? { cause } : {}),
  });
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
 * Serializes every booking change into the class occurrence(s) of `serviceId` at `start` (all
 * its studios) until the transaction ends: the same key as the table's trigger
 * (`class_occurrence_lock_key`, tenant migration 0008). Counting the occurrence's bookings
 * after this is exact at READ COMMITTED: the previous holder has committed when we get the lock,
 * and our next statement's snapshot includes its rows.
 * @see https://www.postgresql.org/docs/15/explicit-locking.html#ADVISORY-LOCKS
 */
async function lockOccurrence(ctx: DomainContext, serviceId: string, start: Date): Promise<void> {
  await ctx.client.query('SELECT pg_advisory_xact_lock(class_occurrence_lock_key($1, $2))', [
    serviceId,
    start,
  ]);
}

/** The customer's live place in the class occurrence at `start`, if any (one per customer). */
async function placeOf(
  ctx: DomainContext,
  customerId: string,
  serviceId: string,
  start: Date,
  excludeBookingId: string | undefined,
): Promise<Booking | null> {
  const { rows } = await ctx.client.query<BookingRow>(
    `SELECT ${COLUMNS} FROM bookings
      WHERE customer_id = $1 AND occurrence = class_occurrence_id($2, $3) AND status = 'booked'
        AND service_kind = 'class' AND id IS DISTINCT FROM $4::uuid
      LIMIT 1`,
    [customerId, serviceId, start, excludeBookingId ?? null],
  );
  return rows[0] ? toBooking(rows[0]) : null;
}

/**
 * Checks shared by create and reschedule: the service is active, the slot is in the future and
 * inside opening hours, the named resource can deliver the service. Returns the resources to
 * try: the named one, or the service's active ones in catalog order.
 */
async function checkSlot(
  ctx: DomainContext,
  service: Service,
  start: Date,
  end: Date,
  resourceId: string | undefined,
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
  return capable;
}

/**
 * The order to try `resources` in for one-booking-per-resource services: the free ones (a
 * hint: the constraint decides), the preferred (current) resource first. A named resource is
 * left to the constraint.
 */
async function freeOrder(
  ctx: DomainContext,
  resources: string[],
  named: boolean,
  start: Date,
  end: Date,
  prefer: string | undefined,
  excludeBookingId: string | undefined,
): Promise<string[]> {
  if (named) return resources;
  const { rows } = await ctx.client.query<{ id: string }>(
    `SELECT r.id FROM unnest($1::uuid[]) WITH ORDINALITY AS r(id, n)
      WHERE NOT EXISTS (SELECT 1 FROM bookings b WHERE b.resource_id = r.id AND b.status = 'booked'
                          AND b.during && tstzrange($2, $3, '[)') AND b.id IS DISTINCT FROM $4::uuid)
      ORDER BY r.n`,
    [resources, start, end, excludeBookingId ?? null],
  );
  const free = rows.map((r) => r.id);
  if (free.length === 0) throw conflict({ start: start.toISOString(), end: end.toISOString() });
  return prefer && free.includes(prefer) ? [prefer, ...free.filter((f) => f !== prefer)] : free;
}

/**
 * The order to try `resources` in for a class, counted under the occurrence lock (so exact):
 * per studio, the places already taken in this occurrence and whether something else (another
 * class, another start, a trainer session) overlaps. Studios where the occurrence runs with
 * room come first (a class fills before a parallel one opens), then free ones; the preferred
 * (current) studio leads. None with room: CLASS_FULL when the occurrence is full somewhere,
 * else BOOKING_CONFLICT.
 */
async function classOrder(
  ctx: DomainContext,
  service: Service,
  resources: string[],
  start: Date,
  end: Date,
  prefer: string | undefined,
  excludeBookingId: string | undefined,
): Promise<string[]> {
  const { rows } = await ctx.client.query<{ id: string; taken: number; blocked: boolean }>(
    `SELECT r.id,
            (SELECT count(*)::int FROM bookings b
              WHERE b.resource_id = r.id AND b.status = 'booked' AND b.occurrence = o.id
                AND b.id IS DISTINCT FROM $5::uuid) AS taken,
            EXISTS (SELECT 1 FROM bookings b
                     WHERE b.resource_id = r.id AND b.status = 'booked'
                       AND b.during && tstzrange($3, $4, '[)') AND b.occurrence <> o.id
                       AND b.id IS DISTINCT FROM $5::uuid) AS blocked
       FROM unnest($1::uuid[]) WITH ORDINALITY AS r(id, n),
            (SELECT class_occurrence_id($2, $3) AS id) o
      ORDER BY r.n`,
    [resources, service.id, start, end, excludeBookingId ?? null],
  );
  const open = rows.filter((r) => !r.blocked && r.taken < service.capacity);
  if (open.length === 0) {
    const full = rows.find((r) => !r.blocked);
    if (full) throw classFull(service, start, full.id);
    throw conflict({ start: start.toISOString(), end: end.toISOString() });
  }
  const order = [...open.filter((r) => r.taken > 0), ...open.filter((r) => r.taken === 0)].map((r) => r.id);
  return prefer && order.includes(prefer) ? [prefer, ...order.filter((f) => f !== prefer)] : order;
}

/**
 * Where a booking of `service` at [start, end) may go, in the order to try. For a class, takes
 * the occurrence lock first and refuses a second place of the customer in it.
 */
async function placement(
  ctx: DomainContext,
  service: Service,
  customerId: string,
  start: Date,
  end: Date,
  resourceId: string | undefined,
  prefer: string | undefined,
  excludeBookingId?: string,
): Promise<string[]> {
  const resources = await checkSlot(ctx, service, start, end, resourceId);
  if (service.kind !== 'class')
    return freeOrder(ctx, resources, resourceId !== undefined, start, end, prefer, excludeBookingId);
  await lockOccurrence(ctx, service.id, start);
  const mine = await placeOf(ctx, customerId, service.id, start, excludeBookingId);
  if (mine) throw alreadyBooked(mine.id, service, start);
  return classOrder(ctx, service, resources, start, end, prefer, excludeBookingId);
}

/**
 * Runs `write` on each resource of `tryOrder` until one succeeds: a taken resource (exclusion
 * violation) or a full occurrence (the trigger) moves on to the next; the last such failure is
 * thrown as BOOKING_CONFLICT / CLASS_FULL. A second place of the customer is CLASS_ALREADY_BOOKED.
 * `replayOnError` may answer a failure with the booking an earlier request of the same
 * idempotency key made (returned as `replayed`).
 */
async function firstThatFits(
  ctx: DomainContext,
  service: Service,
  start: Date,
  end: Date,
  tryOrder: string[],
  write: (resourceId: string) => Promise<pg.QueryResult<BookingRow>>,
  replayOnError?: (err: unknown) => Promise<Booking | null>,
): Promise<{ booking: Booking; replayed: boolean }> {
  let last: { error: unknown; resourceId: string } | undefined;
  for (const rid of tryOrder) {
    const r = await attempt(ctx.client, () => write(rid));
    if (r.ok) return { booking: toBooking(r.value.rows[0]!), replayed: false };
    const earlier = replayOnError ? await replayOnError(r.error) : null;
    if (earlier) return { booking: earlier, replayed: true };
    if (isOncePerCustomerViolation(r.error)) throw alreadyBooked(null, service, start, r.error);
    if (!isOverlapViolation(r.error) && !isCapacityViolation(r.error)) throw r.error;
    last = { error: r.error, resourceId: rid };
  }
  if (last && isCapacityViolation(last.error)) throw classFull(service, start, last.resourceId, last.error);
  throw conflict({ start: start.toISOString(), end: end.toISOString() }, last?.error);
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
 * BOOKING_CONFLICT when the resource (or every capable resource) is taken; for a class,
 * CLASS_FULL when the occurrence has no place left (in the named studio, or in every capable
 * one that isn't taken by something else) and CLASS_ALREADY_BOOKED when the customer has a
 * place in it already; VALIDATION when the time is past or outside opening hours, or the
 * resource can't deliver the service; NOT_FOUND for an unknown customer or service;
 * IDEMPOTENCY_KEY_REUSED for a key reused with other parameters; for a class,
 * MEMBERSHIP_REQUIRED / CLASS_ALLOWANCE_EXHAUSTED when the tenant sells memberships and the
 * customer has none active or no classes left (memberships.ts).
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
  if (service.kind === 'class' && key !== undefined) {
    // A request with this key may have booked while we waited for the occurrence lock.
    await lockOccurrence(ctx, service.id, start);
    const existing = await selectByKey(ctx, key);
    if (existing) return replay(existing, input, customerId, serviceId);
  }
  const tryOrder = await placement(ctx, service, customerId, start, end, resourceId, undefined);
  // Classes may need an active membership with classes left (memberships.ts).
  await assertClassEntitlement(ctx, { customerId, service, start });

  const { booking, replayed } = await firstThatFits(
    ctx,
    service,
    start,
    end,
    tryOrder,
    (rid) =>
      ctx.client.query<BookingRow>(
        `INSERT INTO bookings (customer_id, service_id, resource_id, during, idempotency_key, source)
         VALUES ($1, $2, $3, tstzrange($4, $5, '[)'), $6, $7) RETURNING ${COLUMNS}`,
        [customerId, serviceId, rid, start, end, key ?? null, input.source],
      ),
    // A concurrent request with the same key committed first (it waited on it): replay that.
    async (err) => {
      if (key === undefined || !(pgCode(err) === '23505' || isOverlapViolation(err))) return null;
      const existing = await selectByKey(ctx, key);
      return existing ? replay(existing, input, customerId, serviceId).booking : null;
    },
  );
  if (replayed) return { booking, created: false };
  await emit(ctx, BOOKING_EVENT_TYPES.created, booking);
  return { booking, created: true };
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
 * by default, its own resource if free (for a class: if the occurrence there has room), else
 * another capable one. Same checks and conflict handling as create. Unchanged time and
 * resource → returned as is, no event.
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
  const tryOrder = await placement(
    ctx,
    service,
    current.customerId,
    start,
    end,
    resourceId,
    current.resourceId,
    current.id,
  );
  await assertClassEntitlement(ctx, {
    customerId: current.customerId,
    service,
    start,
    excludeBookingId: current.id,
  });
  const { booking } = await firstThatFits(ctx, service, start, end, tryOrder, (rid) =>
    ctx.client.query<BookingRow>(
      `UPDATE bookings SET resource_id = $2, during = tstzrange($3, $4, '[)'), updated_at = now()
        WHERE id = $1 RETURNING ${COLUMNS}`,
      [current.id, rid, start, end],
    ),
  );
  await emit(ctx, BOOKING_EVENT_TYPES.rescheduled, booking, current);
  return booking;
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
