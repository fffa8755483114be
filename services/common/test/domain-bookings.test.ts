/**
 * The booking domain against a real PostgreSQL: migrations, catalog, availability, bookings,
 * outbox events, all through `withTenant` as the tenant role via a NOINHERIT login role.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LATEST_TENANT_SCHEMA_VERSION,
  loadMigrations,
  tenantPrivilegeDrift,
  tenantSchemaVersion,
} from '../src/db/migrations.ts';
import { findAvailableSlots } from '../src/domain/availability.ts';
import {
  BOOKING_EVENT_TYPES,
  cancelBooking,
  createBooking,
  getBooking,
  listBookings,
  rescheduleBooking,
  type Booking,
  type BookingEventData,
} from '../src/domain/bookings.ts';
import {
  addOpeningException,
  createResource,
  createService,
  deleteOpeningException,
  deleteResource,
  deleteService,
  getOpeningHours,
  listOpeningExceptions,
  listServiceResources,
  listServices,
  setOpeningHours,
  setServiceResources,
  updateService,
  type Resource,
  type Service,
} from '../src/domain/catalog.ts';
import type { DomainContext } from '../src/domain/context.ts';
import { createCustomer } from '../src/domain/customers.ts';
import { DomainErrors } from '../src/domain/errors.ts';
import { NotFoundError, SimptuError, ValidationError } from '../src/errors.ts';
import { outboxPayloadLocation } from '../src/events/outbox.ts';
import { createTestTenant, type TestTenant } from './support/tenant.ts';

const TZ = 'Europe/Bucharest';
const NOW = new Date('2027-01-04T08:00:00Z');
let t: TestTenant;
let service: Service;
let chairs: Resource[];
let customers: string[];

const ctxOf = (client: pg.ClientBase, over: Partial<DomainContext> = {}): DomainContext => ({
  client,
  cipher: t.cipher,
  timeZone: TZ,
  now: () => NOW,
  source: '/simptu/test',
  ...over,
});
const inTenant = <T>(fn: (ctx: DomainContext) => Promise<T>, over: Partial<DomainContext> = {}) =>
  t.run((c) => fn(ctxOf(c, over)));

/** The rejection of `p` (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<SimptuError> {
  try {
    await p;
  } catch (err) {
    return err as SimptuError;
  }
  throw new Error('expected a rejection');
}

// Monday 2027-06-07, 10:00 Bucharest (EEST, +03:00)
const MON_10 = new Date('2027-06-07T07:00:00Z');
const plus = (d: Date, minutes: number) => new Date(d.getTime() + minutes * 60_000);

beforeAll(async () => {
  t = await createTestTenant({ poolSize: 20 });
  ({ service, chairs, customers } = await inTenant(async (ctx) => {
    const service = await createService(ctx, {
      kind: 'treatment',
      name: 'Cleaning',
      durationMinutes: 30,
      priceCents: 25000,
      currency: 'RON',
    });
    const chairs = [
      await createResource(ctx, { kind: 'chair', name: 'Chair 1' }),
      await createResource(ctx, { kind: 'chair', name: 'Chair 2' }),
    ];
    await setServiceResources(
      ctx,
      service.id,
      chairs.map((c) => c.id),
    );
    // Mon–Fri 09:00–13:00 and 14:00–18:00; Saturday 10:00–14:00; Sunday every hour (for DST).
    await setOpeningHours(ctx, [
      ...[1, 2, 3, 4, 5].flatMap((weekday) => [
        { weekday, opens: '09:00', closes: '13:00' },
        { weekday, opens: '14:00', closes: '18:00' },
      ]),
      { weekday: 6, opens: '10:00', closes: '14:00' },
      { weekday: 7, opens: '00:00', closes: '24:00' },
    ]);
    const customers: string[] = [];
    for (let i = 0; i < 3; i++)
      customers.push((await createCustomer(ctx, { displayName: `Customer ${i}` })).id);
    return { service, chairs, customers };
  }));
});

afterAll(async () => {
  await t?.close();
});

describe('tenant migrations', () => {
  it('apply on top of 0001 and leave the tenant role exactly its privileges', async () => {
    expect(
      loadMigrations('tenant')
        .map((m) => m.name)
        .slice(0, 3),
    ).toEqual(['outbox', 'catalog_customers_bookings', 'sessions_invitations_ratings_codes']);
    expect(await tenantSchemaVersion(t.admin, t.ref.schema)).toBe(LATEST_TENANT_SCHEMA_VERSION);
    expect(await tenantPrivilegeDrift(t.admin, t.ref)).toEqual([]);
    const { rows } = await t.admin.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
      [t.ref.schema],
    );
    expect(rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining([
        'access_codes',
        'bookings',
        'customers',
        'idempotency_keys',
        'invitations',
        'messages',
        'opening_exceptions',
        'opening_hours',
        'outbox',
        'ratings',
        'resources',
        'service_resources',
        'services',
        'sessions',
      ]),
    );
  });

  it('make overlapping live bookings of one resource impossible in SQL itself', async () => {
    const err = await rejection(
      t.run(async (c) => {
        const ins = `INSERT INTO bookings (customer_id, service_id, resource_id, during, source)
                     VALUES ($1, $2, $3, tstzrange($4, $5), 'api')`;
        await c.query(ins, [
          customers[0],
          service.id,
          chairs[0]!.id,
          '2030-01-01T10:00Z',
          '2030-01-01T11:00Z',
        ]);
        await c.query(ins, [
          customers[1],
          service.id,
          chairs[0]!.id,
          '2030-01-01T10:30Z',
          '2030-01-01T11:30Z',
        ]);
      }),
    );
    expect((err as unknown as { code: string }).code).toBe('23P01');
  });
});

describe('catalog', () => {
  it('validates services, hours and exceptions with field-level issues', async () => {
    const bad = await rejection(
      inTenant((ctx) =>
        createService(ctx, {
          kind: 'treatment',
          name: ' ',
          durationMinutes: 3,
          priceCents: -1,
          currency: 'EURO',
          capacity: 4,
        }),
      ),
    );
    expect(bad).toBeInstanceOf(ValidationError);
    expect((bad as ValidationError).issues.map((i) => i.path).sort()).toEqual(
      ['capacity', 'currency', 'durationMinutes', 'name', 'priceCents'].sort(),
    );
    const hours = await rejection(
      inTenant((ctx) =>
        setOpeningHours(ctx, [
          { weekday: 1, opens: '09:00', closes: '12:00' },
          { weekday: 1, opens: '11:00', closes: '13:00' },
          { weekday: 8, opens: '10:00', closes: '09:00' },
        ]),
      ),
    );
    expect((hours as ValidationError).issues.map((i) => i.path)).toEqual([
      '2/weekday',
      '2/closes',
      '1/opens',
    ]);
    const exc = await rejection(
      inTenant((ctx) => addOpeningException(ctx, { date: '2027-02-30', closed: false, opens: '10:00' })),
    );
    expect((exc as ValidationError).issues.map((i) => i.path)).toEqual(['date', 'closes']);
    // the failed replace left the schedule as it was
    expect(await inTenant((ctx) => getOpeningHours(ctx))).toHaveLength(12);
  });

  it('creates, updates, lists and deletes; a referenced item is IN_USE', async () => {
    await inTenant(async (ctx) => {
      const yoga = await createService(ctx, {
        kind: 'class',
        name: 'Yoga',
        durationMinutes: 60,
        priceCents: 5000,
        currency: 'EUR',
        capacity: 12,
      });
      expect(yoga.capacity).toBe(12);
      const updated = await updateService(ctx, yoga.id, { priceCents: 5500, active: false });
      expect(updated).toMatchObject({ priceCents: 5500, active: false, capacity: 12, name: 'Yoga' });
      expect((await listServices(ctx, { activeOnly: true })).map((s) => s.id)).not.toContain(yoga.id);
      expect((await listServices(ctx, { kind: 'class' })).map((s) => s.id)).toEqual([yoga.id]);
      await deleteService(ctx, yoga.id);
      expect(await rejection(deleteService(ctx, yoga.id))).toBeInstanceOf(NotFoundError);
      const studio = await createResource(ctx, { kind: 'studio', name: 'Studio A' });
      await deleteResource(ctx, studio.id);
      expect((await listServiceResources(ctx, service.id)).map((r) => r.name)).toEqual([
        'Chair 1',
        'Chair 2',
      ]);
    });
    const booked = await inTenant((ctx) =>
      createBooking(ctx, {
        customerId: customers[0]!,
        serviceId: service.id,
        start: plus(MON_10, 7 * 24 * 60),
        source: 'web',
      }),
    );
    const inUse = await rejection(inTenant((ctx) => deleteService(ctx, service.id)));
    expect(inUse.code).toBe(DomainErrors.IN_USE.code);
    expect(inUse.statusCode).toBe(409);
    await inTenant((ctx) => cancelBooking(ctx, booked.booking.id));
  });
});

describe('bookings', () => {
  it('20 concurrent creations of the same slot on one resource: exactly one wins, 19 get BOOKING_CONFLICT', async () => {
    const start = plus(MON_10, 60); // 11:00
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        inTenant((ctx) =>
          createBooking(ctx, {
            customerId: customers[i % customers.length]!,
            serviceId: service.id,
            resourceId: chairs[0]!.id,
            start,
            source: 'api',
          }),
        ),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(19);
    for (const f of failed) {
      expect(f.reason).toBeInstanceOf(SimptuError);
      expect((f.reason as SimptuError).code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
      expect((f.reason as SimptuError).statusCode).toBe(409);
    }
    const { rows } = await t.admin.query(
      `SELECT count(*)::int AS n FROM ${t.table('bookings')} WHERE resource_id = $1 AND lower(during) = $2`,
      [chairs[0]!.id, start],
    );
    expect(rows[0].n).toBe(1);
  });

  it('without a resource, picks a free one; when every capable resource is taken → conflict', async () => {
    const start = plus(MON_10, 2 * 60); // 12:00
    const make = (i: number) =>
      inTenant((ctx) =>
        createBooking(ctx, { customerId: customers[i]!, serviceId: service.id, start, source: 'sms' }),
      );
    const [a, b] = await Promise.all([make(0), make(1)]);
    expect(new Set([a.booking.resourceId, b.booking.resourceId])).toEqual(new Set(chairs.map((c) => c.id)));
    expect(a.booking.end.toISOString()).toBe(plus(start, 30).toISOString());
    expect((await rejection(make(2))).code).toBe(DomainErrors.BOOKING_CONFLICT.code);
  });

  it('returns the same booking for the same idempotency key, even concurrently, and refuses a reused key', async () => {
    const key = `idem-${Math.random()}`;
    const start = plus(MON_10, 24 * 60); // Tuesday 10:00
    const req = {
      customerId: customers[0]!,
      serviceId: service.id,
      start,
      idempotencyKey: key,
      source: 'web' as const,
    };
    const all = await Promise.all(
      Array.from({ length: 5 }, () => inTenant((ctx) => createBooking(ctx, req))),
    );
    expect(new Set(all.map((r) => r.booking.id)).size).toBe(1);
    expect(all.filter((r) => r.created)).toHaveLength(1);
    const again = await inTenant((ctx) => createBooking(ctx, req));
    expect(again).toEqual({ booking: all[0]!.booking, created: false });
    const reused = await rejection(inTenant((ctx) => createBooking(ctx, { ...req, start: plus(start, 60) })));
    expect(reused.code).toBe(DomainErrors.IDEMPOTENCY_KEY_REUSED.code);
    const { rows } = await t.admin.query(
      `SELECT count(*)::int AS n FROM ${t.table('outbox')} WHERE aggregate_id = $1`,
      [all[0]!.booking.id],
    );
    expect(rows[0].n).toBe(1); // one event, not five
  });

  it('refuses times outside opening hours, in the past, and resources that cannot deliver the service', async () => {
    const cases: Array<[Date, string]> = [
      [plus(MON_10, 165), 'start'], // 12:45–13:15 runs into the lunch break
      [plus(MON_10, -90), 'start'], // 08:30: before opening
      [new Date('2027-01-04T07:00:00Z'), 'start'], // Monday 09:00, but before NOW
    ];
    for (const [start, path] of cases) {
      const err = await rejection(
        inTenant((ctx) =>
          createBooking(ctx, { customerId: customers[0]!, serviceId: service.id, start, source: 'web' }),
        ),
      );
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).issues[0]!.path).toBe(path);
    }
    const other = await inTenant((ctx) => createResource(ctx, { kind: 'trainer', name: 'Trainer' }));
    const err = await rejection(
      inTenant((ctx) =>
        createBooking(ctx, {
          customerId: customers[0]!,
          serviceId: service.id,
          resourceId: other.id,
          start: MON_10,
          source: 'web',
        }),
      ),
    );
    expect((err as ValidationError).issues[0]!.path).toBe('resourceId');
    const missing = await rejection(
      inTenant((ctx) =>
        createBooking(ctx, {
          customerId: '00000000-0000-4000-8000-00000000dead',
          serviceId: service.id,
          start: MON_10,
          source: 'web',
        }),
      ),
    );
    expect(missing).toBeInstanceOf(NotFoundError);
    const malformed = await rejection(
      inTenant((ctx) =>
        createBooking(ctx, { customerId: 'x', serviceId: service.id, start: MON_10, source: 'web' }),
      ),
    );
    expect(malformed).toBeInstanceOf(ValidationError);
  });

  it('reschedules into a free slot, refuses a taken one, and frees the old time', async () => {
    const wed10 = plus(MON_10, 2 * 24 * 60);
    const [mine, theirs] = await inTenant(async (ctx) => [
      (
        await createBooking(ctx, {
          customerId: customers[0]!,
          serviceId: service.id,
          resourceId: chairs[0]!.id,
          start: wed10,
          source: 'web',
        })
      ).booking,
      (
        await createBooking(ctx, {
          customerId: customers[1]!,
          serviceId: service.id,
          resourceId: chairs[0]!.id,
          start: plus(wed10, 60),
          source: 'web',
        })
      ).booking,
    ]);
    const taken = await rejection(
      inTenant((ctx) =>
        rescheduleBooking(ctx, mine.id, { start: plus(wed10, 60), resourceId: chairs[0]!.id }),
      ),
    );
    expect(taken.code).toBe(DomainErrors.BOOKING_CONFLICT.code);
    // by 15 minutes: overlaps its own old time, which must not count against it
    const moved = await inTenant((ctx) => rescheduleBooking(ctx, mine.id, { start: plus(wed10, 15) }));
    expect(moved).toMatchObject({ id: mine.id, resourceId: chairs[0]!.id, status: 'booked' });
    expect(moved.start.toISOString()).toBe(plus(wed10, 15).toISOString());
    // without a resource: its own chair is taken at 11:00, so it moves to the other chair
    const other = await inTenant((ctx) => rescheduleBooking(ctx, mine.id, { start: plus(wed10, 60) }));
    expect(other.resourceId).toBe(chairs[1]!.id);
    // the old 10:15 time on chair 1 is free again
    const reuse = await inTenant((ctx) =>
      createBooking(ctx, {
        customerId: customers[2]!,
        serviceId: service.id,
        resourceId: chairs[0]!.id,
        start: plus(wed10, 15),
        source: 'web',
      }),
    );
    expect(reuse.created).toBe(true);
    // a customer cannot touch another customer's booking: 404
    const foreign = await rejection(
      inTenant((ctx) =>
        rescheduleBooking(ctx, theirs.id, { start: plus(wed10, 120) }, { customerId: customers[0]! }),
      ),
    );
    expect(foreign).toBeInstanceOf(NotFoundError);
  });

  it('cancel frees the slot, is idempotent, and a cancelled booking cannot be rescheduled', async () => {
    const thu10 = plus(MON_10, 3 * 24 * 60);
    const b = (
      await inTenant((ctx) =>
        createBooking(ctx, {
          customerId: customers[0]!,
          serviceId: service.id,
          resourceId: chairs[0]!.id,
          start: thu10,
          source: 'web',
        }),
      )
    ).booking;
    const cancelled = await inTenant((ctx) => cancelBooking(ctx, b.id, { customerId: customers[0]! }));
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.cancelledAt).toBeInstanceOf(Date);
    expect(await inTenant((ctx) => cancelBooking(ctx, b.id))).toEqual(cancelled);
    const again = await inTenant((ctx) =>
      createBooking(ctx, {
        customerId: customers[1]!,
        serviceId: service.id,
        resourceId: chairs[0]!.id,
        start: thu10,
        source: 'web',
      }),
    );
    expect(again.created).toBe(true);
    expect(
      (await rejection(inTenant((ctx) => rescheduleBooking(ctx, b.id, { start: plus(thu10, 60) })))).code,
    ).toBe(DomainErrors.BOOKING_NOT_ACTIVE.code);
  });

  it('writes one encrypted outbox event per change, in order, bound to its row', async () => {
    const fri10 = plus(MON_10, 4 * 24 * 60);
    const b = await inTenant(async (ctx) => {
      const { booking } = await createBooking(ctx, {
        customerId: customers[0]!,
        serviceId: service.id,
        start: fri10,
        source: 'whatsapp',
      });
      await rescheduleBooking(ctx, booking.id, { start: plus(fri10, 30) });
      return cancelBooking(ctx, booking.id);
    });
    const { rows } = await t.admin.query<{
      id: string;
      event_type: string;
      aggregate_type: string;
      payload: Buffer;
    }>(
      `SELECT id, event_type, aggregate_type, payload FROM ${t.table('outbox')} WHERE aggregate_id = $1 ORDER BY seq`,
      [b.id],
    );
    expect(rows.map((r) => r.event_type)).toEqual([
      BOOKING_EVENT_TYPES.created,
      BOOKING_EVENT_TYPES.rescheduled,
      BOOKING_EVENT_TYPES.cancelled,
    ]);
    expect(rows[0]!.payload.includes(Buffer.from(b.id))).toBe(false); // ciphertext, not JSON
    const events = rows.map((r) =>
      JSON.parse(t.cipher.decryptString(r.payload, outboxPayloadLocation(r.id))),
    );
    expect(events[0]).toMatchObject({
      id: rows[0]!.id,
      type: BOOKING_EVENT_TYPES.created,
      tenant: t.ref.name,
      source: '/simptu/test',
    });
    const moved = events[1].data as BookingEventData;
    expect(moved.previous).toEqual({
      start: fri10.toISOString(),
      end: plus(fri10, 30).toISOString(),
      resourceId: b.resourceId,
    });
    expect(moved.start).toBe(plus(fri10, 30).toISOString());
    expect((events[2].data as BookingEventData).status).toBe('cancelled');
    // a failed booking leaves no event behind (same transaction)
    await rejection(
      inTenant(async (ctx) => {
        await createBooking(ctx, {
          customerId: customers[0]!,
          serviceId: service.id,
          start: plus(fri10, 120),
          source: 'web',
        });
        throw new Error('caller fails after booking');
      }),
    );
    const { rows: after } = await t.admin.query(
      `SELECT count(*)::int AS n FROM ${t.table('bookings')} WHERE lower(during) = $1`,
      [plus(fri10, 120)],
    );
    expect(after[0].n).toBe(0);
  });

  it('lists by start time with a cursor; a customer sees only their own', async () => {
    const from = MON_10;
    const to = plus(MON_10, 7 * 24 * 60);
    const all: Booking[] = [];
    let cursor: string | undefined;
    do {
      const page = await inTenant((ctx) =>
        listBookings(ctx, { from, to, limit: 2, ...(cursor ? { cursor } : {}) }),
      );
      all.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    const direct = await t.admin.query<{ id: string }>(
      `SELECT id FROM ${t.table('bookings')} WHERE upper(during) > $1 AND lower(during) < $2 ORDER BY lower(during), id`,
      [from, to],
    );
    expect(all.map((b) => b.id)).toEqual(direct.rows.map((r) => r.id));
    const own = await inTenant((ctx) => listBookings(ctx, { limit: 200 }, { customerId: customers[1]! }));
    expect(own.items.length).toBeGreaterThan(0);
    expect(own.items.every((b) => b.customerId === customers[1])).toBe(true);
    const peek = await inTenant((ctx) =>
      listBookings(ctx, { customerId: customers[0]! }, { customerId: customers[1]! }),
    );
    expect(peek.items).toEqual([]);
    const foreign = all.find((b) => b.customerId !== customers[1])!;
    expect(
      await rejection(inTenant((ctx) => getBooking(ctx, foreign.id, { customerId: customers[1]! }))),
    ).toBeInstanceOf(NotFoundError);
    expect(await inTenant((ctx) => getBooking(ctx, foreign.id))).toEqual(foreign);
    expect(await rejection(inTenant((ctx) => listBookings(ctx, { cursor: 'garbage' })))).toBeInstanceOf(
      ValidationError,
    );
  });
});

describe('availability from the database', () => {
  it('subtracts bookings per resource and opens lunch-break-aware slots', async () => {
    const day = new Date('2027-06-14T00:00:00Z'); // a Monday
    const slots = await inTenant((ctx) =>
      findAvailableSlots(ctx, { serviceId: service.id, from: day, to: plus(day, 24 * 60), stepMinutes: 30 }),
    );
    const local = slots.map((s) => s.localStart.slice(11, 16));
    expect(local).toEqual([
      '09:00',
      '09:30',
      '10:00',
      '10:30',
      '11:00',
      '11:30',
      '12:00',
      '12:30',
      '14:00',
      '14:30',
      '15:00',
      '15:30',
      '16:00',
      '16:30',
      '17:00',
      '17:30',
    ]);
    const at10 = plus(day, 7 * 60); // 10:00 local
    await inTenant((ctx) =>
      createBooking(ctx, {
        customerId: customers[0]!,
        serviceId: service.id,
        resourceId: chairs[0]!.id,
        start: at10,
        source: 'web',
      }),
    );
    const after = await inTenant((ctx) =>
      findAvailableSlots(ctx, { serviceId: service.id, from: day, to: plus(day, 24 * 60), stepMinutes: 30 }),
    );
    expect(after.find((s) => s.start.getTime() === at10.getTime())!.resourceIds).toEqual([chairs[1]!.id]);
    const onlyChair1 = await inTenant((ctx) =>
      findAvailableSlots(ctx, {
        serviceId: service.id,
        resourceId: chairs[0]!.id,
        from: day,
        to: plus(day, 24 * 60),
        stepMinutes: 30,
      }),
    );
    expect(onlyChair1.map((s) => s.localStart.slice(11, 16))).not.toContain('10:00');
    expect(onlyChair1).toHaveLength(15);
    for (const bad of [
      { from: new Date('nope'), to: day },
      { from: day, to: day },
      { from: day, to: plus(day, 63 * 24 * 60) },
    ]) {
      const err = await rejection(
        inTenant((ctx) => findAvailableSlots(ctx, { serviceId: service.id, ...bad })),
      );
      expect(err).toBeInstanceOf(ValidationError);
    }
  });

  it('an exception closes a day; deleting it reopens the day', async () => {
    const day = new Date('2027-06-15T00:00:00Z'); // Tuesday
    const q = { serviceId: service.id, from: day, to: plus(day, 24 * 60) };
    const exc = await inTenant((ctx) =>
      addOpeningException(ctx, { date: '2027-06-15', closed: true, reason: 'Holiday' }),
    );
    expect(await inTenant((ctx) => findAvailableSlots(ctx, q))).toEqual([]);
    const closedBooking = await rejection(
      inTenant((ctx) =>
        createBooking(ctx, {
          customerId: customers[0]!,
          serviceId: service.id,
          start: plus(day, 7 * 60),
          source: 'web',
        }),
      ),
    );
    expect(closedBooking).toBeInstanceOf(ValidationError);
    expect(
      await inTenant((ctx) => listOpeningExceptions(ctx, { from: '2027-06-01', to: '2027-06-30' })),
    ).toEqual([exc]);
    await inTenant((ctx) => deleteOpeningException(ctx, exc.id));
    expect((await inTenant((ctx) => findAvailableSlots(ctx, q))).length).toBeGreaterThan(0);
  });

  it('is right across both DST changes (Bucharest 2027-03-28 and 2027-10-31, open all Sunday)', async () => {
    const hourly = (from: string, to: string) =>
      inTenant((ctx) =>
        findAvailableSlots(ctx, {
          serviceId: service.id,
          from: new Date(from),
          to: new Date(to),
          stepMinutes: 60,
        }),
      );
    const hours = (from: number, to: number, off: string) =>
      Array.from({ length: to - from }, (_, i) => `${String(from + i).padStart(2, '0')}:00:00${off}`);
    // local midnight to local midnight
    const spring = await hourly('2027-03-27T22:00:00Z', '2027-03-28T21:00:00Z');
    expect(spring.map((s) => s.localStart.slice(11))).toEqual([
      ...hours(0, 3, '+02:00'),
      ...hours(4, 24, '+03:00'),
    ]);
    const fall = await hourly('2027-10-30T21:00:00Z', '2027-10-31T22:00:00Z');
    expect(fall.map((s) => s.localStart.slice(11))).toEqual([
      ...hours(0, 4, '+03:00'),
      ...hours(3, 24, '+02:00'),
    ]);
    for (const list of [spring, fall]) {
      const starts = list.map((s) => s.start.getTime());
      starts.slice(1).forEach((v, i) => expect(v - starts[i]!).toBe(3_600_000)); // every real hour, once
      expect(list.every((s) => s.resourceIds.length === 2)).toBe(true);
    }
    // a booking in the repeated hour takes exactly that instant, not its twin
    const second3am = fall.find((s) => s.localStart.endsWith('03:00:00+02:00'))!;
    await inTenant((ctx) =>
      createBooking(ctx, {
        customerId: customers[0]!,
        serviceId: service.id,
        resourceId: chairs[0]!.id,
        start: second3am.start,
        source: 'web',
      }),
    );
    const again = await hourly('2027-10-30T21:00:00Z', '2027-10-31T22:00:00Z');
    const by = new Map(again.map((s) => [s.localStart, s.resourceIds.length]));
    expect(by.get('2027-10-31T03:00:00+03:00')).toBe(2);
    expect(by.get('2027-10-31T03:00:00+02:00')).toBe(1);
  });
});
