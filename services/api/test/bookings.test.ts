/**
 * Booking routes against real Postgres, Redis and Kafka: create (customers for themselves,
 * staff for anyone, Idempotency-Key), list with filters and cursor pages, get, reschedule,
 * cancel; the exclusion constraint under 20 concurrent requests for one slot; domain events in
 * the outbox; the role matrix, bad input, unknown ids and tenant isolation.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import kafkajs, { type Consumer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromKafkaRecord, type CloudEvent, type Role } from '@simptu/common';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const tokens: Record<Exclude<Role, 'customer'>, string> = { owner: '', admin: '', staff: '' };
/** two customers of tenant A with their tokens */
let ana: { id: string; token: string };
let bob: { id: string; token: string };
/** a 30-minute service deliverable by one chair only (so a slot is one resource) */
let soloService: string;
let soloChair: string;
/** a 30-minute service deliverable by two chairs */
let duoService: string;
let duoChairs: string[];

async function req(method: string, url: string, token: string | undefined, payload?: unknown, headers = {}) {
  return t.app.inject({
    method: method as 'GET',
    url,
    headers: { ...(token ? t.auth(token) : {}), ...headers },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
}

function issuePaths(res: { json(): unknown }): string[] {
  const body = res.json() as { error: { details?: { issues?: Array<{ path: string }> } } };
  return (body.error.details?.issues ?? []).map((i) => i.path);
}

/** A distinct future slot per call: 2027-06-01 + n half-hours inside 08:00–20:00 Bucharest. */
let slotN = 0;
function nextSlot(): string {
  const n = slotN++;
  const day = Math.floor(n / 24);
  const minutes = 8 * 60 + (n % 24) * 30;
  const date = new Date(Date.UTC(2027, 5, 1 + day));
  const d = date.toISOString().slice(0, 10);
  return `${d}T${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}:00+03:00`;
}

async function outboxEvents(bookingId: string) {
  const { rows } = await a.adminQuery<{ event_type: string }>(
    `SELECT event_type FROM ${a.table('outbox')} WHERE aggregate_id = $1 ORDER BY seq`,
    [bookingId],
  );
  return rows.map((r) => r.event_type);
}

beforeAll(async () => {
  t = await buildTestApp({
    tenants: [{ timezone: 'Europe/Bucharest' }, { timezone: 'Europe/Bucharest' }],
    // enough connections for the concurrency tests
    config: { databasePoolMax: 25 },
    waitForEvents: false,
  });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  for (const role of ['owner', 'admin', 'staff'] as const)
    tokens[role] = await t.tokenFor(a, { roles: [role] });
  const c1 = await t.createCustomer(a, { displayName: 'Ana' });
  const c2 = await t.createCustomer(a, { displayName: 'Bob' });
  ana = { id: c1.id, token: await t.tokenFor(a, { sub: c1.id, roles: ['customer'] }) };
  bob = { id: c2.id, token: await t.tokenFor(a, { sub: c2.id, roles: ['customer'] }) };

  const owner = tokens.owner;
  const mkService = async (name: string) =>
    (
      await req('POST', '/v1/catalog/services', owner, {
        kind: 'treatment',
        name,
        durationMinutes: 30,
        priceCents: 5000,
        currency: 'RON',
      })
    ).json().id as string;
  const mkChair = async (name: string) =>
    (await req('POST', '/v1/catalog/resources', owner, { kind: 'chair', name })).json().id as string;
  soloService = await mkService('Solo');
  duoService = await mkService('Duo');
  soloChair = await mkChair('Solo chair');
  duoChairs = [await mkChair('Duo chair 1'), await mkChair('Duo chair 2')];
  await req('PUT', `/v1/catalog/services/${soloService}/resources`, owner, { resourceIds: [soloChair] });
  await req('PUT', `/v1/catalog/services/${duoService}/resources`, owner, { resourceIds: duoChairs });
  const hours = await req('PUT', '/v1/catalog/opening-hours', owner, {
    hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '08:00', closes: '20:00' })),
  });
  expect(hours.statusCode).toBe(200);
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

describe('POST /v1/bookings', () => {
  it('lets a customer book for themself (201 + Location, times in the tenant zone, one event)', async () => {
    const start = nextSlot();
    const res = await req('POST', '/v1/bookings', ana.token, { serviceId: soloService, start });
    expect(res.statusCode).toBe(201);
    const bk = res.json();
    expect(res.headers.location).toBe(`/v1/bookings/${bk.id}`);
    expect(bk).toMatchObject({
      customerId: ana.id,
      serviceId: soloService,
      resourceId: soloChair,
      start,
      status: 'booked',
      source: 'api',
      cancelledAt: null,
    });
    expect(new Date(bk.end).getTime() - new Date(bk.start).getTime()).toBe(30 * 60_000);
    expect(await outboxEvents(bk.id)).toEqual(['io.simptu.booking.created']);
    // naming themself is fine; naming someone else is not
    const self = await req('POST', '/v1/bookings', ana.token, {
      customerId: ana.id,
      serviceId: soloService,
      start: nextSlot(),
    });
    expect(self.statusCode).toBe(201);
    const other = await req('POST', '/v1/bookings', ana.token, {
      customerId: bob.id,
      serviceId: soloService,
      start: nextSlot(),
    });
    expect(other.statusCode).toBe(403);
    const staffChannel = await req('POST', '/v1/bookings', ana.token, {
      serviceId: soloService,
      start: nextSlot(),
      source: 'staff',
    });
    expect(staffChannel.statusCode).toBe(400);
  });

  it('lets staff, admin and owner book for any customer; they must name one', async () => {
    for (const role of ['staff', 'admin', 'owner'] as const) {
      const res = await req('POST', '/v1/bookings', tokens[role], {
        customerId: bob.id,
        serviceId: duoService,
        start: nextSlot(),
        source: 'phone',
      });
      expect(res.statusCode, role).toBe(201);
      expect(res.json()).toMatchObject({ customerId: bob.id, source: 'phone' });
    }
    const noCustomer = await req('POST', '/v1/bookings', tokens.staff, {
      serviceId: duoService,
      start: nextSlot(),
    });
    expect(noCustomer.statusCode).toBe(400);
    expect(issuePaths(noCustomer)).toContain('customerId');
    const unknownCustomer = await req('POST', '/v1/bookings', tokens.staff, {
      customerId: randomUUID(),
      serviceId: duoService,
      start: nextSlot(),
    });
    expect(unknownCustomer.statusCode).toBe(404);
    expect(
      (await req('POST', '/v1/bookings', undefined, { serviceId: duoService, start: nextSlot() })).statusCode,
    ).toBe(401);
    const roleless = await t.tokenFor(a, { sub: ana.id, roles: [] });
    expect(
      (await req('POST', '/v1/bookings', roleless, { serviceId: duoService, start: nextSlot() })).statusCode,
    ).toBe(403);
  });

  it('takes the next free resource, then answers 409 when every capable one is taken', async () => {
    const start = nextSlot();
    const first = await req('POST', '/v1/bookings', tokens.staff, {
      customerId: ana.id,
      serviceId: duoService,
      start,
    });
    const second = await req('POST', '/v1/bookings', tokens.staff, {
      customerId: bob.id,
      serviceId: duoService,
      start,
    });
    expect([first.statusCode, second.statusCode]).toEqual([201, 201]);
    expect(new Set([first.json().resourceId, second.json().resourceId])).toEqual(new Set(duoChairs));
    const third = await req('POST', '/v1/bookings', tokens.staff, {
      customerId: bob.id,
      serviceId: duoService,
      start,
    });
    expect(third.statusCode).toBe(409);
    expect(third.json().error.code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    // an overlapping (not identical) time on a named, taken resource conflicts too
    const overlap = new Date(new Date(start).getTime() + 15 * 60_000).toISOString();
    const named = await req('POST', '/v1/bookings', tokens.staff, {
      customerId: bob.id,
      serviceId: duoService,
      start: overlap,
      resourceId: first.json().resourceId,
    });
    expect(named.statusCode).toBe(409);
  });

  it('books one of 20 concurrent requests for the same slot; the other 19 get 409', async () => {
    const start = nextSlot();
    const customers = await Promise.all(Array.from({ length: 4 }, () => t.createCustomer(a)));
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        req('POST', '/v1/bookings', tokens.staff, {
          customerId: customers[i % customers.length]!.id,
          serviceId: soloService,
          start,
        }),
      ),
    );
    const codes = results.map((r) => r.statusCode).sort();
    expect(codes.filter((c) => c === 201)).toHaveLength(1);
    expect(codes.filter((c) => c === 409)).toHaveLength(19);
    for (const r of results.filter((x) => x.statusCode === 409))
      expect(r.json().error.code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    const { rows } = await a.adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${a.table('bookings')} WHERE lower(during) = $1 AND status = 'booked'`,
      [new Date(start)],
    );
    expect(rows[0]!.n).toBe(1);
  });

  it('answers bad input with 400 naming the field, never 5xx', async () => {
    const base = { customerId: ana.id, serviceId: soloService, start: nextSlot() };
    const cases: Array<[unknown, string]> = [
      [{ ...base, start: 'tomorrow at noon' }, 'body.start'],
      [{ ...base, start: '2027-06-31T10:00:00+03:00' }, 'body.start'],
      [{ ...base, start: undefined }, 'body.start'],
      [{ ...base, serviceId: 'svc-1' }, 'body.serviceId'],
      [{ ...base, customerId: '1'.repeat(36) }, 'body.customerId'],
      [{ ...base, resourceId: 'x'.repeat(100_000) }, 'body.resourceId'],
      [{ ...base, source: 'pigeon' }, 'body.source'],
      [{ ...base, price: 0 }, 'body.price'],
    ];
    for (const [body, path] of cases) {
      const res = await req('POST', '/v1/bookings', tokens.staff, body);
      expect(res.statusCode, path).toBe(400);
      expect(issuePaths(res), path).toContain(path);
    }
    const past = await req('POST', '/v1/bookings', tokens.staff, { ...base, start: '2020-01-01T10:00:00Z' });
    expect(past.statusCode).toBe(400);
    expect(issuePaths(past)).toContain('start');
    const closed = await req('POST', '/v1/bookings', tokens.staff, {
      ...base,
      start: '2027-06-01T22:00:00+03:00',
    });
    expect(closed.statusCode).toBe(400);
    expect(issuePaths(closed)).toContain('start');
    const wrongResource = await req('POST', '/v1/bookings', tokens.staff, {
      ...base,
      resourceId: duoChairs[0],
    });
    expect(wrongResource.statusCode).toBe(400);
    expect(issuePaths(wrongResource)).toContain('resourceId');
    const unknownService = await req('POST', '/v1/bookings', tokens.staff, {
      ...base,
      serviceId: randomUUID(),
    });
    expect(unknownService.statusCode).toBe(404);
  });
});

describe('Idempotency-Key on POST /v1/bookings', () => {
  it('replays the same booking for the same key: one row, one event', async () => {
    const key = randomUUID();
    const body = { serviceId: soloService, start: nextSlot() };
    const first = await req('POST', '/v1/bookings', ana.token, body, { 'idempotency-key': key });
    expect(first.statusCode).toBe(201);
    const again = await req('POST', '/v1/bookings', ana.token, body, { 'idempotency-key': key });
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.json()).toEqual(first.json());
    const { rows } = await a.adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${a.table('bookings')} WHERE lower(during) = $1`,
      [new Date(body.start)],
    );
    expect(rows[0]!.n).toBe(1);
    expect(await outboxEvents(first.json().id)).toEqual(['io.simptu.booking.created']);
  });

  it('gives concurrent requests with one key one booking, all answered with it', async () => {
    const key = randomUUID();
    const body = { serviceId: duoService, start: nextSlot() };
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        req('POST', '/v1/bookings', bob.token, body, { 'idempotency-key': key }),
      ),
    );
    expect(results.map((r) => r.statusCode)).toEqual(Array(8).fill(201));
    const ids = new Set(results.map((r) => r.json().id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(7);
    const { rows } = await a.adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${a.table('bookings')} WHERE lower(during) = $1`,
      [new Date(body.start)],
    );
    expect(rows[0]!.n).toBe(1);
    expect(await outboxEvents([...ids][0]!)).toHaveLength(1);
  });

  it('refuses the key with another body (409) and keeps keys apart per principal', async () => {
    const key = randomUUID();
    const start = nextSlot();
    expect(
      (
        await req(
          'POST',
          '/v1/bookings',
          ana.token,
          { serviceId: duoService, start },
          { 'idempotency-key': key },
        )
      ).statusCode,
    ).toBe(201);
    const changed = await req(
      'POST',
      '/v1/bookings',
      ana.token,
      { serviceId: duoService, start: nextSlot() },
      { 'idempotency-key': key },
    );
    expect(changed.statusCode).toBe(409);
    expect(changed.json().error.code).toBe('SIMPTU_ERR_IDEMPOTENCY_KEY_REUSED');
    // Bob's identical key is his own: he gets his own booking (the second chair)
    const bobs = await req(
      'POST',
      '/v1/bookings',
      bob.token,
      { serviceId: duoService, start },
      { 'idempotency-key': key },
    );
    expect(bobs.statusCode).toBe(201);
    expect(bobs.json().customerId).toBe(bob.id);
    expect(bobs.headers['idempotent-replayed']).toBeUndefined();
  });

  it('does not keep a failed attempt: a retry after a conflict runs again', async () => {
    const start = nextSlot();
    const taken = await req('POST', '/v1/bookings', bob.token, { serviceId: soloService, start });
    expect(taken.statusCode).toBe(201);
    const key = randomUUID();
    const body = { serviceId: soloService, start };
    expect((await req('POST', '/v1/bookings', ana.token, body, { 'idempotency-key': key })).statusCode).toBe(
      409,
    );
    expect((await req('POST', `/v1/bookings/${taken.json().id}/cancel`, bob.token)).statusCode).toBe(200);
    const retry = await req('POST', '/v1/bookings', ana.token, body, { 'idempotency-key': key });
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
  });
});

describe('domain events on Kafka', () => {
  let consumer: Consumer | undefined;
  afterAll(async () => {
    await consumer?.disconnect();
  });

  it('publishes booking.created on simptu.t.<name>.domain once, however often the key is replayed', async () => {
    await t.app.events.refresh();
    const kafka = new kafkajs.Kafka({
      clientId: 'api-bookings-test',
      brokers: process.env.KAFKA_BROKERS!.split(','),
      logLevel: kafkajs.logLevel.NOTHING,
    });
    consumer = kafka.consumer({ groupId: `api-bookings-test-${randomBytes(6).toString('hex')}` });
    const seen: Array<{ event: CloudEvent; key: string | undefined }> = [];
    await consumer.connect();
    await consumer.subscribe({ topic: a.topics.domain, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const d = fromKafkaRecord({
          value: message.value,
          key: message.key,
          headers: message.headers as Record<string, unknown>,
        });
        if (d.ok) seen.push({ event: d.event, key: d.key });
      },
    });
    const key = randomUUID();
    const body = { serviceId: duoService, start: nextSlot() };
    const first = await req('POST', '/v1/bookings', ana.token, body, { 'idempotency-key': key });
    const replay = await req('POST', '/v1/bookings', ana.token, body, { 'idempotency-key': key });
    expect(replay.json().id).toBe(first.json().id);
    const id = first.json().id as string;
    const mine = () => seen.filter((x) => (x.event.data as { bookingId?: string }).bookingId === id);
    await expect.poll(() => mine().length, { timeout: 30_000, interval: 250 }).toBeGreaterThan(0);
    // give a duplicate the time to show up if there were one
    await new Promise((r) => setTimeout(r, 1500));
    expect(mine()).toHaveLength(1);
    const got = mine()[0]!;
    expect(got.key).toBe(id);
    expect(got.event).toMatchObject({
      type: 'io.simptu.booking.created',
      tenant: a.name,
      source: '/simptu/api',
    });
    expect(got.event.data).toMatchObject({
      bookingId: id,
      customerId: ana.id,
      serviceId: duoService,
      status: 'booked',
    });
  });
});

describe('GET /v1/bookings and /v1/bookings/:id', () => {
  it('shows a customer only their own bookings; another customer gets 404', async () => {
    const mine = (
      await req('POST', '/v1/bookings', ana.token, { serviceId: duoService, start: nextSlot() })
    ).json();
    const theirs = (
      await req('POST', '/v1/bookings', bob.token, { serviceId: duoService, start: nextSlot() })
    ).json();
    expect((await req('GET', `/v1/bookings/${mine.id}`, ana.token)).json().id).toBe(mine.id);
    const peek = await req('GET', `/v1/bookings/${theirs.id}`, ana.token);
    expect(peek.statusCode).toBe(404);
    for (const role of ['staff', 'admin', 'owner'] as const)
      expect((await req('GET', `/v1/bookings/${theirs.id}`, tokens[role])).statusCode, role).toBe(200);

    const list = await req('GET', '/v1/bookings?limit=100', ana.token);
    expect(list.statusCode).toBe(200);
    const customers = new Set(list.json().items.map((x: { customerId: string }) => x.customerId));
    expect([...customers]).toEqual([ana.id]);
    // asking for someone else's explicitly gives nothing, not their bookings
    const sneaky = await req('GET', `/v1/bookings?customerId=${bob.id}`, ana.token);
    expect(sneaky.json().items).toEqual([]);
    const staff = await req('GET', `/v1/bookings?customerId=${bob.id}&limit=100`, tokens.staff);
    expect(staff.json().items.map((x: { id: string }) => x.id)).toContain(theirs.id);
  });

  it('filters and pages with an opaque cursor, in start order, without repeats', async () => {
    const c = await t.createCustomer(a);
    const made: string[] = [];
    for (let i = 0; i < 5; i++)
      made.push(
        (
          await req('POST', '/v1/bookings', tokens.staff, {
            customerId: c.id,
            serviceId: duoService,
            start: nextSlot(),
          })
        ).json().id,
      );
    await req('POST', `/v1/bookings/${made[1]}/cancel`, tokens.staff);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/v1/bookings?customerId=${c.id}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await req('GET', url, tokens.admin);
      expect(page.statusCode).toBe(200);
      seen.push(...page.json().items.map((x: { id: string }) => x.id));
      cursor = page.json().nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(made);
    expect(pages).toBe(3);
    const cancelled = await req('GET', `/v1/bookings?customerId=${c.id}&status=cancelled`, tokens.staff);
    expect(cancelled.json().items.map((x: { id: string }) => x.id)).toEqual([made[1]]);
    const first = await req('GET', `/v1/bookings/${made[0]}`, tokens.staff);
    const window = await req(
      'GET',
      `/v1/bookings?customerId=${c.id}&from=${encodeURIComponent(first.json().end)}&to=${encodeURIComponent('2100-01-01T00:00:00Z')}`,
      tokens.staff,
    );
    expect(window.json().items.map((x: { id: string }) => x.id)).toEqual(made.slice(1));
    const byService = await req(
      'GET',
      `/v1/bookings?serviceId=${soloService}&customerId=${c.id}`,
      tokens.staff,
    );
    expect(byService.json().items).toEqual([]);
  });

  it('answers bad input with 400 and unknown ids with 404', async () => {
    for (const [url, path] of [
      ['/v1/bookings?limit=0', 'querystring.limit'],
      ['/v1/bookings?limit=1000', 'querystring.limit'],
      ['/v1/bookings?status=maybe', 'querystring.status'],
      ['/v1/bookings?from=last-week', 'querystring.from'],
      ['/v1/bookings?serviceId=abc', 'querystring.serviceId'],
      ['/v1/bookings?sort=desc', 'querystring.sort'],
      ['/v1/bookings/not-a-uuid', 'params.id'],
    ] as const) {
      const res = await req('GET', url, tokens.staff);
      expect(res.statusCode, url).toBe(400);
      expect(issuePaths(res), url).toContain(path);
    }
    const badCursor = await req('GET', '/v1/bookings?cursor=bm90LWEtY3Vyc29y', tokens.staff);
    expect(badCursor.statusCode).toBe(400);
    expect(issuePaths(badCursor)).toContain('cursor');
    expect((await req('GET', `/v1/bookings/${randomUUID()}`, tokens.staff)).statusCode).toBe(404);
    expect((await req('GET', '/v1/bookings', undefined)).statusCode).toBe(401);
  });
});

describe('reschedule and cancel', () => {
  it('moves a booking (customer: own only), refuses taken times (409), emits rescheduled', async () => {
    const bk = (
      await req('POST', '/v1/bookings', ana.token, { serviceId: soloService, start: nextSlot() })
    ).json();
    const blocker = (
      await req('POST', '/v1/bookings', bob.token, { serviceId: soloService, start: nextSlot() })
    ).json();
    const target = nextSlot();
    const moved = await req('POST', `/v1/bookings/${bk.id}/reschedule`, ana.token, { start: target });
    expect(moved.statusCode).toBe(200);
    expect(moved.json()).toMatchObject({ id: bk.id, start: target, status: 'booked' });
    const onto = await req('POST', `/v1/bookings/${bk.id}/reschedule`, ana.token, { start: blocker.start });
    expect(onto.statusCode).toBe(409);
    expect(onto.json().error.code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    expect(
      (await req('POST', `/v1/bookings/${blocker.id}/reschedule`, ana.token, { start: nextSlot() }))
        .statusCode,
    ).toBe(404);
    for (const role of ['staff', 'admin', 'owner'] as const) {
      const res = await req('POST', `/v1/bookings/${bk.id}/reschedule`, tokens[role], { start: nextSlot() });
      expect(res.statusCode, role).toBe(200);
    }
    expect(await outboxEvents(bk.id)).toEqual([
      'io.simptu.booking.created',
      'io.simptu.booking.rescheduled',
      'io.simptu.booking.rescheduled',
      'io.simptu.booking.rescheduled',
      'io.simptu.booking.rescheduled',
    ]);
    const bad = await req('POST', `/v1/bookings/${bk.id}/reschedule`, ana.token, { start: 'soon' });
    expect(bad.statusCode).toBe(400);
    expect(issuePaths(bad)).toContain('body.start');
    const missing = await req('POST', `/v1/bookings/${bk.id}/reschedule`, ana.token, {});
    expect(missing.statusCode).toBe(400);
    expect(issuePaths(missing)).toContain('body.start');
    expect(
      (await req('POST', `/v1/bookings/${randomUUID()}/reschedule`, tokens.staff, { start: nextSlot() }))
        .statusCode,
    ).toBe(404);
  });

  it('cancels (customer: own only), idempotently, and a cancelled booking cannot move (409)', async () => {
    const bk = (
      await req('POST', '/v1/bookings', ana.token, { serviceId: duoService, start: nextSlot() })
    ).json();
    expect((await req('POST', `/v1/bookings/${bk.id}/cancel`, bob.token)).statusCode).toBe(404);
    const cancelled = await req('POST', `/v1/bookings/${bk.id}/cancel`, ana.token);
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json().status).toBe('cancelled');
    expect(cancelled.json().cancelledAt).not.toBeNull();
    const again = await req('POST', `/v1/bookings/${bk.id}/cancel`, tokens.staff);
    expect(again.statusCode).toBe(200);
    expect(again.json().cancelledAt).toBe(cancelled.json().cancelledAt);
    expect(await outboxEvents(bk.id)).toEqual(['io.simptu.booking.created', 'io.simptu.booking.cancelled']);
    const move = await req('POST', `/v1/bookings/${bk.id}/reschedule`, tokens.staff, { start: nextSlot() });
    expect(move.statusCode).toBe(409);
    expect(move.json().error.code).toBe('SIMPTU_ERR_BOOKING_NOT_ACTIVE');
    for (const role of ['admin', 'owner'] as const) {
      const other = (
        await req('POST', '/v1/bookings', tokens.staff, {
          customerId: bob.id,
          serviceId: duoService,
          start: nextSlot(),
        })
      ).json();
      expect((await req('POST', `/v1/bookings/${other.id}/cancel`, tokens[role])).statusCode, role).toBe(200);
    }
    expect((await req('POST', `/v1/bookings/${randomUUID()}/cancel`, tokens.staff)).statusCode).toBe(404);
    expect((await req('POST', '/v1/bookings/123/cancel', tokens.staff)).statusCode).toBe(400);
  });
});

describe('group classes (capacity per occurrence)', () => {
  /** a 30-minute class of `capacity` in its own studio (plus the studio, for other services) */
  async function mkClass(name: string, capacity: number, studio?: string) {
    const owner = tokens.owner;
    const service = (
      await req('POST', '/v1/catalog/services', owner, {
        kind: 'class',
        name,
        durationMinutes: 30,
        priceCents: 3000,
        currency: 'RON',
        capacity,
      })
    ).json().id as string;
    const room =
      studio ??
      ((await req('POST', '/v1/catalog/resources', owner, { kind: 'studio', name: `${name} studio` })).json()
        .id as string);
    await req('PUT', `/v1/catalog/services/${service}/resources`, owner, { resourceIds: [room] });
    return { service, studio: room };
  }
  const liveAt = async (start: string) =>
    (
      await a.adminQuery<{ service_id: string; customer_id: string }>(
        `SELECT service_id, customer_id FROM ${a.table('bookings')} WHERE lower(during) = $1 AND status = 'booked'`,
        [new Date(start)],
      )
    ).rows;

  it('books up to capacity into one occurrence, then 409 SIMPTU_ERR_CLASS_FULL', async () => {
    const yoga = await mkClass('API Yoga', 3);
    const start = nextSlot();
    const members = await Promise.all(Array.from({ length: 4 }, () => t.createCustomer(a)));
    for (const m of members.slice(0, 3)) {
      const res = await req('POST', '/v1/bookings', tokens.staff, {
        customerId: m.id,
        serviceId: yoga.service,
        start,
      });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({ resourceId: yoga.studio, start, status: 'booked' });
    }
    const full = await req('POST', '/v1/bookings', tokens.staff, {
      customerId: members[3]!.id,
      serviceId: yoga.service,
      start,
    });
    expect(full.statusCode).toBe(409);
    expect(full.json().error).toMatchObject({
      code: 'SIMPTU_ERR_CLASS_FULL',
      message: 'The class is full',
      details: { serviceId: yoga.service, resourceId: yoga.studio, capacity: 3 },
    });
    expect(await liveAt(start)).toHaveLength(3);
  });

  it('20 concurrent bookings of a class of capacity 5: exactly five 201, fifteen 409 CLASS_FULL', async () => {
    const pilates = await mkClass('API Pilates', 5);
    const start = nextSlot();
    const members = await Promise.all(Array.from({ length: 20 }, () => t.createCustomer(a)));
    const results = await Promise.all(
      members.map((m) =>
        req('POST', '/v1/bookings', tokens.staff, { customerId: m.id, serviceId: pilates.service, start }),
      ),
    );
    const codes = results.map((r) => r.statusCode);
    expect(codes.filter((c) => c === 201)).toHaveLength(5);
    expect(codes.filter((c) => c === 409)).toHaveLength(15);
    for (const r of results.filter((x) => x.statusCode === 409))
      expect(r.json().error.code).toBe('SIMPTU_ERR_CLASS_FULL');
    const rows = await liveAt(start);
    expect(rows).toHaveLength(5);
    expect(new Set(rows.map((r) => r.customer_id)).size).toBe(5);
  });

  it('refuses the same customer twice in one occurrence (409 SIMPTU_ERR_CLASS_ALREADY_BOOKED)', async () => {
    const spin = await mkClass('API Spin', 10);
    const start = nextSlot();
    const first = await req('POST', '/v1/bookings', ana.token, { serviceId: spin.service, start });
    expect(first.statusCode).toBe(201);
    const again = await req('POST', '/v1/bookings', ana.token, { serviceId: spin.service, start });
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatchObject({
      code: 'SIMPTU_ERR_CLASS_ALREADY_BOOKED',
      details: { bookingId: first.json().id },
    });
    // staff booking her in again: the same answer; Bob still gets a place
    const staff = await req('POST', '/v1/bookings', tokens.staff, {
      customerId: ana.id,
      serviceId: spin.service,
      start,
    });
    expect(staff.json().error.code).toBe('SIMPTU_ERR_CLASS_ALREADY_BOOKED');
    expect(
      (await req('POST', '/v1/bookings', bob.token, { serviceId: spin.service, start })).statusCode,
    ).toBe(201);
    // an Idempotency-Key retry of her first request is still a replay, not a refusal
    const key = `class-${randomUUID()}`;
    const later = nextSlot();
    const k1 = await req(
      'POST',
      '/v1/bookings',
      ana.token,
      { serviceId: spin.service, start: later },
      {
        'idempotency-key': key,
      },
    );
    const k2 = await req(
      'POST',
      '/v1/bookings',
      ana.token,
      { serviceId: spin.service, start: later },
      {
        'idempotency-key': key,
      },
    );
    expect([k1.statusCode, k2.statusCode]).toEqual([201, 201]);
    expect(k2.json().id).toBe(k1.json().id);
    expect(await liveAt(start)).toHaveLength(2);
  });

  it('keeps the studio to one thing: a different class or a trainer session at an overlapping time is 409', async () => {
    const boxing = await mkClass('API Boxing', 8);
    const zumba = await mkClass('API Zumba', 8, boxing.studio);
    const pt = (
      await req('POST', '/v1/catalog/services', tokens.owner, {
        kind: 'personal_training',
        name: 'API PT',
        durationMinutes: 30,
        priceCents: 9000,
        currency: 'RON',
      })
    ).json().id as string;
    await req('PUT', `/v1/catalog/services/${pt}/resources`, tokens.owner, { resourceIds: [boxing.studio] });
    const start = nextSlot();
    expect(
      (await req('POST', '/v1/bookings', ana.token, { serviceId: boxing.service, start })).statusCode,
    ).toBe(201);
    const overlapping = new Date(new Date(start).getTime() + 15 * 60_000).toISOString();
    for (const [serviceId, at] of [
      [zumba.service, start],
      [zumba.service, overlapping],
      [boxing.service, overlapping],
      [pt, start],
    ] as const) {
      const res = await req('POST', '/v1/bookings', bob.token, { serviceId, start: at });
      expect(res.statusCode, `${serviceId} ${at}`).toBe(409);
      expect(res.json().error.code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    }
    // trainer sessions keep one booking per resource and time
    const ptStart = nextSlot();
    expect((await req('POST', '/v1/bookings', ana.token, { serviceId: pt, start: ptStart })).statusCode).toBe(
      201,
    );
    const second = await req('POST', '/v1/bookings', bob.token, { serviceId: pt, start: ptStart });
    expect(second.json().error.code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    expect((await liveAt(start)).map((r) => r.service_id)).toEqual([boxing.service]);
  });
});

describe('tenant isolation', () => {
  it("answers 404 with tenant A's token for tenant B's ids on every booking route", async () => {
    const bOwner = await t.tokenFor(b, { roles: ['owner'] });
    const bCustomer = await t.createCustomer(b);
    const bService = (
      await req('POST', '/v1/catalog/services', bOwner, {
        kind: 'treatment',
        name: 'B',
        durationMinutes: 30,
        priceCents: 0,
        currency: 'RON',
      })
    ).json().id;
    const bChair = (
      await req('POST', '/v1/catalog/resources', bOwner, { kind: 'chair', name: 'B chair' })
    ).json().id;
    await req('PUT', `/v1/catalog/services/${bService}/resources`, bOwner, { resourceIds: [bChair] });
    await req('PUT', '/v1/catalog/opening-hours', bOwner, {
      hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '08:00', closes: '20:00' })),
    });
    const start = nextSlot();
    const bBooking = await req('POST', '/v1/bookings', bOwner, {
      customerId: bCustomer.id,
      serviceId: bService,
      start,
    });
    expect(bBooking.statusCode).toBe(201);
    const id = bBooking.json().id;

    for (const token of [tokens.owner, ana.token]) {
      expect((await req('GET', `/v1/bookings/${id}`, token)).statusCode).toBe(404);
      expect(
        (await req('POST', `/v1/bookings/${id}/reschedule`, token, { start: nextSlot() })).statusCode,
      ).toBe(404);
      expect((await req('POST', `/v1/bookings/${id}/cancel`, token)).statusCode).toBe(404);
    }
    expect((await req('GET', `/v1/bookings?customerId=${bCustomer.id}`, tokens.owner)).json().items).toEqual(
      [],
    );
    // creating in A with B's service or B's customer: not found in A
    const withService = await req('POST', '/v1/bookings', tokens.owner, {
      customerId: ana.id,
      serviceId: bService,
      start: nextSlot(),
    });
    expect(withService.statusCode).toBe(404);
    const withCustomer = await req('POST', '/v1/bookings', tokens.owner, {
      customerId: bCustomer.id,
      serviceId: duoService,
      start: nextSlot(),
    });
    expect(withCustomer.statusCode).toBe(404);
    // B's customer id as the subject of an A token is no customer in A
    const forged = await t.tokenFor(a, { sub: bCustomer.id, roles: ['customer'] });
    expect(
      (await req('POST', '/v1/bookings', forged, { serviceId: duoService, start: nextSlot() })).statusCode,
    ).toBe(404);
    // B's booking is untouched
    const still = await req('GET', `/v1/bookings/${id}`, bOwner);
    expect(still.json()).toMatchObject({ status: 'booked', start });
  });
});
