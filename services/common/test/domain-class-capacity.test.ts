/**
 * Group classes against a real PostgreSQL (tenant migration 0008): a class occurrence (service,
 * studio, start) takes up to the service's capacity, one place per customer, exactly even under
 * concurrency; the studio still never holds two different things at overlapping times (another
 * class, another start of the class, a trainer session), in SQL itself too; one-booking-per-
 * resource services are unchanged; availability shows the places left; the membership class
 * allowance still counts each customer's own bookings.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAvailableSlots } from '../src/domain/availability.ts';
import { cancelBooking, createBooking, rescheduleBooking } from '../src/domain/bookings.ts';
import {
  createResource,
  createService,
  setOpeningHours,
  setServiceResources,
  type Resource,
  type Service,
} from '../src/domain/catalog.ts';
import type { DomainContext } from '../src/domain/context.ts';
import { createCustomer } from '../src/domain/customers.ts';
import { DomainErrors } from '../src/domain/errors.ts';
import {
  createMembership,
  createMembershipPlan,
  membershipUsage,
  MembershipErrors,
} from '../src/domain/memberships.ts';
import type { SimptuError } from '../src/errors.ts';
import { createTestTenant, type TestTenant } from './support/tenant.ts';

const TZ = 'Europe/Bucharest';
const NOW = new Date('2027-01-04T08:00:00Z');
// Monday 2027-06-07 00:00 Bucharest (EEST, +03:00); the gym is open 06:00–22:00 every day.
const MON = new Date('2027-06-06T21:00:00Z');
const at = (day: number, hh: number, mm = 0) =>
  new Date(MON.getTime() + ((day * 24 + hh) * 60 + mm) * 60_000);

let t: TestTenant;
let studio1: Resource;
let studio2: Resource;
/** class, 60 min, capacity 3, studio 1 */
let yoga: Service;
/** class, 60 min, capacity 5, studio 1 */
let pilates: Service;
/** class, 45 min, capacity 2, studios 1 and 2 */
let spin: Service;
/** personal training, 60 min, deliverable in studio 1 */
let pt: Service;
let customers: string[];

const ctxOf = (client: pg.ClientBase): DomainContext => ({
  client,
  cipher: t.cipher,
  timeZone: TZ,
  now: () => NOW,
  source: '/simptu/test',
});
const inTenant = <T>(fn: (ctx: DomainContext) => Promise<T>) => t.run((c) => fn(ctxOf(c)));

async function rejection(p: Promise<unknown>): Promise<SimptuError> {
  try {
    await p;
  } catch (err) {
    return err as SimptuError;
  }
  throw new Error('expected a rejection');
}

const book = (customer: number, service: Service, start: Date, resourceId?: string) =>
  inTenant((ctx) =>
    createBooking(ctx, {
      customerId: customers[customer]!,
      serviceId: service.id,
      start,
      source: 'api',
      ...(resourceId ? { resourceId } : {}),
    }),
  );

async function liveAt(start: Date): Promise<Array<{ service_id: string; resource_id: string }>> {
  const { rows } = await t.admin.query(
    `SELECT service_id, resource_id FROM ${t.table('bookings')} WHERE lower(during) = $1 AND status = 'booked'`,
    [start],
  );
  return rows;
}

beforeAll(async () => {
  t = await createTestTenant({ poolSize: 20 });
  ({ studio1, studio2, yoga, pilates, spin, pt, customers } = await inTenant(async (ctx) => {
    const studio1 = await createResource(ctx, { kind: 'studio', name: 'Studio 1' });
    const studio2 = await createResource(ctx, { kind: 'studio', name: 'Studio 2' });
    const klass = (name: string, durationMinutes: number, capacity: number) =>
      createService(ctx, { kind: 'class', name, durationMinutes, priceCents: 0, currency: 'RON', capacity });
    const yoga = await klass('Yoga', 60, 3);
    const pilates = await klass('Pilates', 60, 5);
    const spin = await klass('Spin', 45, 2);
    const pt = await createService(ctx, {
      kind: 'personal_training',
      name: 'Personal training',
      durationMinutes: 60,
      priceCents: 15000,
      currency: 'RON',
    });
    await setServiceResources(ctx, yoga.id, [studio1.id]);
    await setServiceResources(ctx, pilates.id, [studio1.id]);
    await setServiceResources(ctx, spin.id, [studio1.id, studio2.id]);
    await setServiceResources(ctx, pt.id, [studio1.id]);
    await setOpeningHours(
      ctx,
      [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '06:00', closes: '22:00' })),
    );
    const customers: string[] = [];
    for (let i = 0; i < 24; i++)
      customers.push((await createCustomer(ctx, { displayName: `Member ${i}` })).id);
    return { studio1, studio2, yoga, pilates, spin, pt, customers };
  }));
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe('class capacity', () => {
  it('takes up to capacity bookings of one occurrence, then CLASS_FULL; a cancellation frees a place', async () => {
    const start = at(0, 10);
    const made = [await book(0, yoga, start), await book(1, yoga, start), await book(2, yoga, start)];
    expect(made.map((r) => r.booking.resourceId)).toEqual([studio1.id, studio1.id, studio1.id]);
    expect(made.every((r) => r.created)).toBe(true);
    const full = await rejection(book(3, yoga, start));
    expect(full.code).toBe('SIMPTU_ERR_CLASS_FULL');
    expect(full.statusCode).toBe(409);
    expect(full.details).toMatchObject({ serviceId: yoga.id, resourceId: studio1.id, capacity: 3 });
    // naming the studio: the same answer
    expect((await rejection(book(3, yoga, start, studio1.id))).code).toBe(DomainErrors.CLASS_FULL.code);

    await inTenant((ctx) => cancelBooking(ctx, made[1]!.booking.id));
    expect((await book(3, yoga, start)).booking.resourceId).toBe(studio1.id);
    expect(await liveAt(start)).toHaveLength(3);
  });

  it('refuses a second place of the same customer in one occurrence (CLASS_ALREADY_BOOKED)', async () => {
    const start = at(0, 12);
    const first = await book(0, yoga, start);
    const again = await rejection(book(0, yoga, start));
    expect(again.code).toBe('SIMPTU_ERR_CLASS_ALREADY_BOOKED');
    expect(again.statusCode).toBe(409);
    expect(again.details).toMatchObject({ bookingId: first.booking.id });
    // another customer still fits
    expect((await book(1, yoga, start)).created).toBe(true);
  });

  it('20 concurrent bookings of a class of capacity 5: exactly 5 created, 15 CLASS_FULL', async () => {
    const start = at(1, 9);
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => book(i, pilates, start)));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(5);
    expect(failed).toHaveLength(15);
    for (const f of failed) expect((f.reason as SimptuError).code).toBe('SIMPTU_ERR_CLASS_FULL');
    expect(await liveAt(start)).toHaveLength(5);
  });

  it('two classes racing for one studio at one time: only one of them gets it, within its capacity', async () => {
    const start = at(1, 14);
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) => book(i, i % 2 === 0 ? yoga : pilates, start)),
    );
    const rows = await liveAt(start);
    const services = new Set(rows.map((r) => r.service_id));
    expect(services.size).toBe(1);
    const winner = [...services][0] === yoga.id ? yoga : pilates;
    // (a loser's insert may deadlock with a winner's — PostgreSQL aborts one of the two — so
    // the winning class is not always filled here; it is never over capacity)
    expect(rows.length).toBeLessThanOrEqual(winner.capacity);
    for (const r of results)
      if (r.status === 'rejected')
        expect(['SIMPTU_ERR_CLASS_FULL', 'SIMPTU_ERR_BOOKING_CONFLICT']).toContain(
          (r.reason as SimptuError).code,
        );
  });

  it('keeps the studio to one thing at a time: another class, another start, a trainer session', async () => {
    const start = at(2, 10);
    await book(0, yoga, start);
    const conflicts = [
      () => book(1, pilates, start), // another class, same time
      () => book(1, pilates, at(2, 10, 30)), // another class, overlapping
      () => book(1, yoga, at(2, 10, 30)), // the same class at another, overlapping start
      () => book(1, pt, at(2, 10, 30)), // a trainer session in the studio
    ];
    for (const p of conflicts) expect((await rejection(p())).code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    // back to back is fine
    expect((await book(1, pilates, at(2, 11))).created).toBe(true);
    // and the other way round: a trainer session first, then no class over it
    await book(2, pt, at(2, 14));
    expect((await rejection(book(3, yoga, at(2, 14, 15)))).code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    expect((await rejection(book(3, yoga, at(2, 14)))).code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    // personal training keeps one booking per resource and time
    expect((await rejection(book(4, pt, at(2, 14)))).code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    expect(await liveAt(at(2, 14))).toHaveLength(1);
  });

  it('fills the occurrence already running before opening a parallel one in another studio', async () => {
    const start = at(3, 18);
    const placed = [];
    for (let i = 0; i < 4; i++) placed.push((await book(i, spin, start)).booking.resourceId);
    expect(placed).toEqual([studio1.id, studio1.id, studio2.id, studio2.id]);
    expect((await rejection(book(4, spin, start))).code).toBe('SIMPTU_ERR_CLASS_FULL');
  });

  it('reschedules into an occurrence with room, not into a full one or one the customer is in', async () => {
    const from = at(4, 9);
    const to = at(4, 11);
    const mine = await book(0, yoga, from);
    await book(1, yoga, to);
    await book(2, yoga, to);
    const moved = await inTenant((ctx) => rescheduleBooking(ctx, mine.booking.id, { start: to }));
    expect(moved.start.toISOString()).toBe(to.toISOString());
    // now 3 of 3 at 11:00
    const other = await book(3, yoga, from);
    const full = await rejection(inTenant((ctx) => rescheduleBooking(ctx, other.booking.id, { start: to })));
    expect(full.code).toBe('SIMPTU_ERR_CLASS_FULL');
    // customer 1 at 11:00 already; give them a 09:00 booking too and try to move it to 11:00
    const second = await book(1, yoga, from);
    const dup = await rejection(inTenant((ctx) => rescheduleBooking(ctx, second.booking.id, { start: to })));
    expect(dup.code).toBe('SIMPTU_ERR_CLASS_ALREADY_BOOKED');
  });

  it('enforces capacity, one place per customer and one thing per studio in SQL itself', async () => {
    const start = at(5, 10);
    const end = at(5, 11);
    const ins = (customer: number, service: Service) =>
      t.run((c) =>
        c.query(
          `INSERT INTO bookings (customer_id, service_id, resource_id, during, source)
           VALUES ($1, $2, $3, tstzrange($4, $5), 'api') RETURNING service_kind`,
          [customers[customer], service.id, studio1.id, start, end],
        ),
      );
    const first = await ins(0, yoga);
    expect(first.rows[0].service_kind).toBe('class'); // filled in by the trigger
    const dup = (await rejection(ins(0, yoga))) as unknown as { code: string; constraint: string };
    expect([dup.code, dup.constraint]).toEqual(['23505', 'bookings_class_once_per_customer']);
    await ins(1, yoga);
    await ins(2, yoga);
    const over = (await rejection(ins(3, yoga))) as unknown as { code: string; constraint: string };
    expect([over.code, over.constraint]).toEqual(['23514', 'bookings_class_capacity']);
    const other = (await rejection(ins(3, pilates))) as unknown as { code: string; constraint: string };
    expect([other.code, other.constraint]).toEqual(['23P01', 'bookings_no_overlap']);
    const trainer = (await rejection(ins(3, pt))) as unknown as { code: string; constraint: string };
    expect([trainer.code, trainer.constraint]).toEqual(['23P01', 'bookings_no_overlap']);
    const { rows } = await t.admin.query(
      `SELECT count(DISTINCT occurrence)::int AS n, bool_and(occurrence <> id) AS derived
         FROM ${t.table('bookings')} WHERE lower(during) = $1`,
      [start],
    );
    expect(rows[0]).toEqual({ n: 1, derived: true }); // one occurrence, not the rows' own ids
  });
});

describe('class availability', () => {
  it('offers an occurrence with places left (spotsLeft), hides it when full and overlapping starts', async () => {
    const day = 6;
    const slotsOf = (service: Service) =>
      inTenant((ctx) =>
        findAvailableSlots(ctx, {
          serviceId: service.id,
          from: at(day, 9),
          to: at(day, 12),
          stepMinutes: 30,
        }),
      );
    const starts = (slots: Array<{ start: Date }>) => slots.map((s) => s.start.toISOString());
    const before = await slotsOf(yoga);
    expect(before.find((s) => s.start.getTime() === at(day, 10).getTime())).toMatchObject({
      spotsLeft: 3,
      resourceIds: [studio1.id],
    });
    await book(0, yoga, at(day, 10));
    const one = await slotsOf(yoga);
    expect(one.find((s) => s.start.getTime() === at(day, 10).getTime())).toMatchObject({ spotsLeft: 2 });
    // 09:30 and 10:30 would overlap the 10:00 class in the only studio
    expect(starts(one)).not.toContain(at(day, 9, 30).toISOString());
    expect(starts(one)).not.toContain(at(day, 10, 30).toISOString());
    // another class can't have the studio at 10:00
    expect(starts(await slotsOf(pilates))).not.toContain(at(day, 10).toISOString());
    await book(1, yoga, at(day, 10));
    await book(2, yoga, at(day, 10));
    expect(starts(await slotsOf(yoga))).not.toContain(at(day, 10).toISOString());
    // two studios: the places of both are summed
    await book(3, spin, at(day, 11));
    const spinSlots = await slotsOf(spin);
    expect(spinSlots.find((s) => s.start.getTime() === at(day, 11).getTime())).toMatchObject({
      spotsLeft: 3,
      resourceIds: [studio1.id, studio2.id],
    });
    // one-booking-per-resource services carry no spotsLeft
    const ptSlots = await slotsOf(pt);
    expect(ptSlots.length).toBeGreaterThan(0);
    expect(ptSlots.every((s) => s.spotsLeft === undefined)).toBe(true);
  });
});

describe('membership class allowance (the tenant sells memberships from here on)', () => {
  it("counts each customer's own class bookings, not the other places of the occurrence", async () => {
    const m = await inTenant(async (ctx) => {
      const plan = await createMembershipPlan(ctx, {
        name: 'Two classes',
        priceCents: 10000,
        currency: 'RON',
        period: 'month',
        classAllowance: 2,
      });
      return (
        await createMembership(
          ctx,
          { customerId: customers[23]!, planId: plan.id, startsAt: at(-200, 0) },
          { sub: 'desk' },
        )
      ).membership;
    });
    await book(23, yoga, at(7, 10));
    await book(23, pilates, at(7, 12));
    const used = await inTenant((ctx) => membershipUsage(ctx, m, at(7, 13)));
    expect(used).toMatchObject({ used: 2, allowance: 2, remaining: 0 });
    expect((await rejection(book(23, yoga, at(7, 16)))).code).toBe(
      MembershipErrors.CLASS_ALLOWANCE_EXHAUSTED.code,
    );
    // others without a membership can't book classes now; the one with one is not blocked by them
    expect((await rejection(book(22, yoga, at(7, 10)))).code).toBe(MembershipErrors.MEMBERSHIP_REQUIRED.code);
  });
});
