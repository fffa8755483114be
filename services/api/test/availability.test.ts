/**
 * GET /v1/availability against real Postgres, Redis and Kafka: slots in the tenant's zone with
 * offsets, across both Europe/Bucharest DST changes of 2027 (spring forward 2027-03-28, fall
 * back 2027-10-31), the Redis cache and its invalidation by bookings, roles, bad input, and
 * tenant isolation.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBooking, type Role } from '@simptu/common';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const tokens: Record<Role, string> = { owner: '', admin: '', staff: '', customer: '' };
let serviceId: string;
let chairId: string;
let otherResourceId: string;
let customerId: string;

async function req(method: string, url: string, token: string | undefined, payload?: unknown) {
  return t.app.inject({
    method: method as 'GET',
    url,
    headers: token ? t.auth(token) : {},
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
}

function issuePaths(res: { json(): unknown }): string[] {
  const body = res.json() as { error: { details?: { issues?: Array<{ path: string }> } } };
  return (body.error.details?.issues ?? []).map((i) => i.path);
}

const q = (params: Record<string, string | number | undefined>) =>
  '/v1/availability?' +
  new URLSearchParams(
    Object.entries(params)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();

const starts = (res: { json(): { slots: Array<{ start: string }> } }) => res.json().slots.map((s) => s.start);

beforeAll(async () => {
  t = await buildTestApp({
    tenants: [{ timezone: 'Europe/Bucharest' }, { timezone: 'Europe/Bucharest' }],
    waitForEvents: false,
  });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  for (const role of ['owner', 'admin', 'staff'] as const)
    tokens[role] = await t.tokenFor(a, { roles: [role] });
  customerId = (await t.createCustomer(a)).id;
  tokens.customer = await t.tokenFor(a, { sub: customerId, roles: ['customer'] });

  const owner = tokens.owner;
  serviceId = (
    await req('POST', '/v1/catalog/services', owner, {
      kind: 'treatment',
      name: 'Check-up',
      durationMinutes: 60,
      priceCents: 10000,
      currency: 'RON',
    })
  ).json().id;
  chairId = (await req('POST', '/v1/catalog/resources', owner, { kind: 'chair', name: 'Chair 1' })).json().id;
  otherResourceId = (
    await req('POST', '/v1/catalog/resources', owner, { kind: 'chair', name: 'Chair 2' })
  ).json().id;
  await req('PUT', `/v1/catalog/services/${serviceId}/resources`, owner, { resourceIds: [chairId] });
  await req('PUT', '/v1/catalog/opening-hours', owner, {
    hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '09:00', closes: '17:00' })),
  });
  // Open through the night of each DST change, so the change falls inside an opening window.
  for (const date of ['2027-03-28', '2027-10-31'])
    expect(
      (
        await req('POST', '/v1/catalog/opening-exceptions', owner, {
          date,
          closed: false,
          opens: '01:00',
          closes: '06:00',
        })
      ).statusCode,
    ).toBe(201);
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

describe('slots across DST changes (Europe/Bucharest)', () => {
  it('spring forward 2027-03-28: +02:00 before, +03:00 after, no slot in the missing hour', async () => {
    const res = await req(
      'GET',
      q({ serviceId, from: '2027-03-27T00:00:00+02:00', to: '2027-03-29T00:00:00+03:00', stepMinutes: 60 }),
      tokens.customer,
    );
    expect(res.statusCode).toBe(200);
    expect(res.json().timeZone).toBe('Europe/Bucharest');
    expect(starts(res)).toEqual([
      ...[9, 10, 11, 12, 13, 14, 15, 16].map((h) => `2027-03-27T${String(h).padStart(2, '0')}:00:00+02:00`),
      // the night window 01:00–06:00 holds four real hours: 03:00–04:00 doesn't exist
      '2027-03-28T01:00:00+02:00',
      '2027-03-28T02:00:00+02:00',
      '2027-03-28T04:00:00+03:00',
      '2027-03-28T05:00:00+03:00',
    ]);
    const slot = res.json().slots[9];
    // 02:00+02:00 lasts one real hour and ends at 04:00 wall clock
    expect(slot).toEqual({
      start: '2027-03-28T02:00:00+02:00',
      end: '2027-03-28T04:00:00+03:00',
      resourceIds: [chairId],
    });
  });

  it('the same wall-clock opening maps to different UTC instants either side of the change', async () => {
    const res = await req(
      'GET',
      q({ serviceId, from: '2027-03-26T09:00:00+02:00', to: '2027-03-29T09:30:00+03:00', stepMinutes: 60 }),
      tokens.staff,
    );
    const nine = starts(res).filter((s) => s.includes('T09:00'));
    expect(nine).toEqual([
      '2027-03-26T09:00:00+02:00',
      '2027-03-27T09:00:00+02:00',
      '2027-03-29T09:00:00+03:00',
    ]);
    const utc = nine.map((s) => new Date(s).toISOString());
    expect(utc).toEqual(['2027-03-26T07:00:00.000Z', '2027-03-27T07:00:00.000Z', '2027-03-29T06:00:00.000Z']);
  });

  it('fall back 2027-10-31: the repeated hour is offered twice, once per offset', async () => {
    const res = await req(
      'GET',
      q({ serviceId, from: '2027-10-31T00:00:00+03:00', to: '2027-10-31T08:00:00+02:00', stepMinutes: 60 }),
      tokens.staff,
    );
    expect(res.statusCode).toBe(200);
    expect(starts(res)).toEqual([
      '2027-10-31T01:00:00+03:00',
      '2027-10-31T02:00:00+03:00',
      '2027-10-31T03:00:00+03:00',
      '2027-10-31T03:00:00+02:00',
      '2027-10-31T04:00:00+02:00',
      '2027-10-31T05:00:00+02:00',
    ]);
    // the night window 01:00–06:00 holds six real hours that day
    expect(res.json().slots).toHaveLength(6);
  });
});

describe('cache and bookings', () => {
  it('a booking by another writer disappears once its domain event invalidates the cache; API bookings and cancels at once', async () => {
    const url = q({
      serviceId,
      from: '2027-04-06T00:00:00+03:00',
      to: '2027-04-07T00:00:00+03:00',
      stepMinutes: 60,
    });
    const first = await req('GET', url, tokens.staff);
    expect(starts(first)).toContain('2027-04-06T10:00:00+03:00');

    // A booking written by another writer (as the agent does) reaches this API only through its
    // domain event (outbox → Kafka → invalidation consumer); how soon is not something a test
    // may time, so wait until the cached page no longer offers the slot.
    await a.run((ctx) =>
      createBooking(ctx, {
        customerId,
        serviceId,
        start: new Date('2027-04-06T10:00:00+03:00'),
        source: 'phone',
      }),
    );
    for (let i = 0; ; i++) {
      if (!starts(await req('GET', url, tokens.staff)).includes('2027-04-06T10:00:00+03:00')) break;
      if (i > 300) throw new Error('the domain event never invalidated the cached availability');
      await new Promise((r) => setTimeout(r, 100));
    }

    // a booking through the API invalidates after its own commit: gone on the next read
    const booked = await req('POST', '/v1/bookings', tokens.customer, {
      serviceId,
      start: '2027-04-06T09:00:00+03:00',
    });
    expect(booked.statusCode).toBe(201);
    const after = starts(await req('GET', url, tokens.staff));
    expect(after).not.toContain('2027-04-06T09:00:00+03:00');
    expect(after).not.toContain('2027-04-06T10:00:00+03:00');
    expect(after).toContain('2027-04-06T11:00:00+03:00');

    expect((await req('POST', `/v1/bookings/${booked.json().id}/cancel`, tokens.customer)).statusCode).toBe(
      200,
    );
    expect(starts(await req('GET', url, tokens.staff))).toContain('2027-04-06T09:00:00+03:00');
  });

  it('shows a class occurrence with places left (spotsLeft) until it is full', async () => {
    const owner = tokens.owner;
    const yoga = (
      await req('POST', '/v1/catalog/services', owner, {
        kind: 'class',
        name: 'Yoga',
        durationMinutes: 60,
        priceCents: 4000,
        currency: 'RON',
        capacity: 2,
      })
    ).json().id as string;
    const studio = (
      await req('POST', '/v1/catalog/resources', owner, { kind: 'studio', name: 'Studio' })
    ).json().id as string;
    await req('PUT', `/v1/catalog/services/${yoga}/resources`, owner, { resourceIds: [studio] });
    const url = q({
      serviceId: yoga,
      from: '2027-04-09T09:00:00+03:00',
      to: '2027-04-09T12:00:00+03:00',
      stepMinutes: 30,
    });
    const slotAt = async (start: string) =>
      ((await req('GET', url, tokens.customer)).json().slots as Array<Record<string, unknown>>).find(
        (s) => s.start === start,
      );
    expect(await slotAt('2027-04-09T10:00:00+03:00')).toEqual({
      start: '2027-04-09T10:00:00+03:00',
      end: '2027-04-09T11:00:00+03:00',
      resourceIds: [studio],
      spotsLeft: 2,
    });
    const first = await req('POST', '/v1/bookings', tokens.customer, {
      serviceId: yoga,
      start: '2027-04-09T10:00:00+03:00',
    });
    expect(first.statusCode).toBe(201);
    // still offered, one place left; the overlapping 10:30 start is not
    expect(await slotAt('2027-04-09T10:00:00+03:00')).toMatchObject({ spotsLeft: 1 });
    expect(await slotAt('2027-04-09T10:30:00+03:00')).toBeUndefined();
    const other = await t.createCustomer(a);
    const second = await req('POST', '/v1/bookings', tokens.staff, {
      customerId: other.id,
      serviceId: yoga,
      start: '2027-04-09T10:00:00+03:00',
    });
    expect(second.statusCode).toBe(201);
    expect(await slotAt('2027-04-09T10:00:00+03:00')).toBeUndefined();
    // one-booking-per-resource services carry no spotsLeft
    const plain = await req(
      'GET',
      q({ serviceId, from: '2027-04-09T09:00:00+03:00', to: '2027-04-09T10:00:00+03:00' }),
      tokens.staff,
    );
    expect(plain.json().slots.length).toBeGreaterThan(0);
    for (const s of plain.json().slots) expect(s).not.toHaveProperty('spotsLeft');
  });

  it('filters by resource and shows nothing for an inactive service', async () => {
    const url = q({
      serviceId,
      resourceId: chairId,
      from: '2027-04-08T09:00:00+03:00',
      to: '2027-04-08T12:00:00+03:00',
    });
    const res = await req('GET', url, tokens.admin);
    expect(res.statusCode).toBe(200);
    // default step 15 minutes
    expect(starts(res).slice(0, 3)).toEqual([
      '2027-04-08T09:00:00+03:00',
      '2027-04-08T09:15:00+03:00',
      '2027-04-08T09:30:00+03:00',
    ]);
    const notCapable = await req(
      'GET',
      q({
        serviceId,
        resourceId: otherResourceId,
        from: '2027-04-08T09:00:00+03:00',
        to: '2027-04-08T12:00:00+03:00',
      }),
      tokens.admin,
    );
    expect(notCapable.statusCode).toBe(400);
    expect(issuePaths(notCapable)).toContain('resourceId');

    const s2 = (
      await req('POST', '/v1/catalog/services', tokens.owner, {
        kind: 'treatment',
        name: 'Retired',
        durationMinutes: 30,
        priceCents: 0,
        currency: 'RON',
        active: false,
      })
    ).json().id;
    await req('PUT', `/v1/catalog/services/${s2}/resources`, tokens.owner, { resourceIds: [chairId] });
    const none = await req(
      'GET',
      q({ serviceId: s2, from: '2027-04-08T09:00:00+03:00', to: '2027-04-08T12:00:00+03:00' }),
      tokens.staff,
    );
    expect(none.statusCode).toBe(200);
    expect(none.json().slots).toEqual([]);
  });
});

describe('roles and bad input', () => {
  const range = { from: '2027-04-09T09:00:00+03:00', to: '2027-04-09T10:00:00+03:00' };

  it('answers every role of the tenant; 401 without a token, 403 without a role', async () => {
    for (const role of ['owner', 'admin', 'staff', 'customer'] as const) {
      const res = await req('GET', q({ serviceId, ...range }), tokens[role]);
      expect(res.statusCode, role).toBe(200);
      expect(res.json().slots.length, role).toBeGreaterThan(0);
    }
    expect((await req('GET', q({ serviceId, ...range }), undefined)).statusCode).toBe(401);
    const none = await t.tokenFor(a, { roles: [] });
    expect((await req('GET', q({ serviceId, ...range }), none)).statusCode).toBe(403);
  });

  it('answers schema violations with 400 naming the field', async () => {
    const cases: Array<[Record<string, string | number>, string]> = [
      [{ ...range }, 'querystring.serviceId'],
      [{ serviceId: 'nope', ...range }, 'querystring.serviceId'],
      [{ serviceId, ...range, from: 'yesterday' }, 'querystring.from'],
      [{ serviceId, ...range, from: '2027-04-09T09:00:00' }, 'querystring.from'],
      [{ serviceId, ...range, to: '2027-02-30T10:00:00Z' }, 'querystring.to'],
      [{ serviceId, ...range, stepMinutes: 0 }, 'querystring.stepMinutes'],
      [{ serviceId, ...range, stepMinutes: 'x'.repeat(10_000) }, 'querystring.stepMinutes'],
      [{ serviceId, ...range, colour: 'red' }, 'querystring.colour'],
    ];
    for (const [params, path] of cases) {
      const res = await req('GET', q(params), tokens.staff);
      expect(res.statusCode, path).toBe(400);
      expect(issuePaths(res), path).toContain(path);
    }
  });

  it("answers the domain's checks with 400 and unknown services with 404", async () => {
    const backwards = await req('GET', q({ serviceId, from: range.to, to: range.from }), tokens.staff);
    expect(backwards.statusCode).toBe(400);
    expect(issuePaths(backwards)).toContain('to');
    const tooLong = await req(
      'GET',
      q({ serviceId, from: '2027-01-01T00:00:00Z', to: '2027-12-31T00:00:00Z' }),
      tokens.staff,
    );
    expect(tooLong.statusCode).toBe(400);
    expect(issuePaths(tooLong)).toContain('to');
    const unknown = await req('GET', q({ serviceId: randomUUID(), ...range }), tokens.staff);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('SIMPTU_ERR_NOT_FOUND');
  });

  it("answers 404 for another tenant's service and 400 for its resource", async () => {
    const bOwner = await t.tokenFor(b, { roles: ['owner'] });
    const bService = (
      await req('POST', '/v1/catalog/services', bOwner, {
        kind: 'treatment',
        name: 'B only',
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
      hours: [{ weekday: 5, opens: '09:00', closes: '17:00' }],
    });
    expect(
      (await req('GET', q({ serviceId: bService, ...range }), bOwner)).json().slots.length,
    ).toBeGreaterThan(0);
    expect((await req('GET', q({ serviceId: bService, ...range }), tokens.owner)).statusCode).toBe(404);
    expect((await req('GET', q({ serviceId, resourceId: bChair, ...range }), tokens.owner)).statusCode).toBe(
      400,
    );
  });
});
