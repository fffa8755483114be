/**
 * Catalog routes against real Postgres, Redis and Kafka: services, resources, the
 * service-resource link, opening hours and exceptions — every role of the matrix, schema
 * violations, unknown ids, conflicts, tenant isolation, and the Redis cache (tenant-scoped,
 * encrypted, invalidated by writes).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBooking, createService, type Role } from '@simptu/common';
import { generationKey, valueKey } from '../src/cache.ts';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const tokens: Record<Role, string> = { owner: '', admin: '', staff: '', customer: '' };
let tokenB: string;

const service = (over: Record<string, unknown> = {}) => ({
  kind: 'treatment',
  name: `Cleaning ${randomUUID().slice(0, 6)}`,
  durationMinutes: 30,
  priceCents: 15000,
  currency: 'RON',
  ...over,
});

async function req(method: string, url: string, token: string, payload?: unknown) {
  return t.app.inject({
    method: method as 'GET',
    url,
    headers: t.auth(token),
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
}

function issuePaths(res: { json(): unknown }): string[] {
  const body = res.json() as { error: { details?: { issues?: Array<{ path: string }> } } };
  return (body.error.details?.issues ?? []).map((i) => i.path);
}

beforeAll(async () => {
  t = await buildTestApp({
    tenants: [{ timezone: 'Europe/Bucharest' }, { timezone: 'UTC' }],
    waitForEvents: false,
  });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  const customer = await t.createCustomer(a);
  for (const role of ['owner', 'admin', 'staff'] as const)
    tokens[role] = await t.tokenFor(a, { roles: [role] });
  tokens.customer = await t.tokenFor(a, { sub: customer.id, roles: ['customer'] });
  tokenB = await t.tokenFor(b, { roles: ['owner'] });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

describe('services', () => {
  it('lets admin and owner create (201 + Location) and refuses staff and customers (403)', async () => {
    for (const role of ['owner', 'admin'] as const) {
      const res = await req('POST', '/v1/catalog/services', tokens[role], service());
      expect(res.statusCode, role).toBe(201);
      expect(res.headers.location).toBe(`/v1/catalog/services/${res.json().id}`);
      expect(res.json()).toMatchObject({
        kind: 'treatment',
        durationMinutes: 30,
        priceCents: 15000,
        active: true,
      });
    }
    for (const role of ['staff', 'customer'] as const) {
      const res = await req('POST', '/v1/catalog/services', tokens[role], service());
      expect(res.statusCode, role).toBe(403);
      expect(res.json().error.code).toBe('SIMPTU_ERR_FORBIDDEN');
    }
    const anon = await t.app.inject({ method: 'POST', url: '/v1/catalog/services', payload: service() });
    expect(anon.statusCode).toBe(401);
  });

  it('lists for every role; customers see active services only', async () => {
    const active = (await req('POST', '/v1/catalog/services', tokens.admin, service())).json();
    const inactive = (
      await req('POST', '/v1/catalog/services', tokens.admin, service({ active: false }))
    ).json();
    for (const role of ['owner', 'admin', 'staff'] as const) {
      const res = await req('GET', '/v1/catalog/services', tokens[role]);
      expect(res.statusCode, role).toBe(200);
      const ids = res.json().items.map((s: { id: string }) => s.id);
      expect(ids).toEqual(expect.arrayContaining([active.id, inactive.id]));
    }
    const res = await req('GET', '/v1/catalog/services', tokens.customer);
    expect(res.statusCode).toBe(200);
    const ids = res.json().items.map((s: { id: string }) => s.id);
    expect(ids).toContain(active.id);
    expect(ids).not.toContain(inactive.id);
    const onlyActive = await req('GET', '/v1/catalog/services?active=true&kind=treatment', tokens.staff);
    expect(onlyActive.json().items.map((s: { id: string }) => s.id)).not.toContain(inactive.id);
  });

  it('gets, patches and deletes; unknown ids are 404, malformed ids 400', async () => {
    const s = (await req('POST', '/v1/catalog/services', tokens.owner, service())).json();
    expect((await req('GET', `/v1/catalog/services/${s.id}`, tokens.customer)).json().id).toBe(s.id);
    const patched = await req('PATCH', `/v1/catalog/services/${s.id}`, tokens.admin, { priceCents: 20000 });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().priceCents).toBe(20000);
    expect((await req('GET', `/v1/catalog/services/${s.id}`, tokens.staff)).json().priceCents).toBe(20000);
    expect(
      (await req('PATCH', `/v1/catalog/services/${s.id}`, tokens.staff, { priceCents: 1 })).statusCode,
    ).toBe(403);
    expect((await req('DELETE', `/v1/catalog/services/${s.id}`, tokens.staff)).statusCode).toBe(403);
    const del = await req('DELETE', `/v1/catalog/services/${s.id}`, tokens.admin);
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');
    const unknown = randomUUID();
    for (const [m, body] of [
      ['GET', undefined],
      ['PATCH', { name: 'x' }],
      ['DELETE', undefined],
    ] as const) {
      const res = await req(m, `/v1/catalog/services/${unknown}`, tokens.owner, body);
      expect(res.statusCode, m).toBe(404);
      expect(res.json().error.code).toBe('SIMPTU_ERR_NOT_FOUND');
    }
    const bad = await req('GET', '/v1/catalog/services/not-a-uuid', tokens.owner);
    expect(bad.statusCode).toBe(400);
    expect(issuePaths(bad)).toContain('params.id');
  });

  it('answers schema violations with 400 naming each field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ ...service(), name: undefined }, 'body.name'],
      [service({ durationMinutes: 3 }), 'body.durationMinutes'],
      [service({ kind: 'massage' }), 'body.kind'],
      [service({ currency: 'euro' }), 'body.currency'],
      [service({ priceCents: -1 }), 'body.priceCents'],
      [service({ name: 'x'.repeat(100_000) }), 'body.name'],
      [service({ colour: 'red' }), 'body.colour'],
    ];
    for (const [body, path] of cases) {
      const res = await req('POST', '/v1/catalog/services', tokens.owner, body);
      expect(res.statusCode, path).toBe(400);
      expect(res.json().error.code).toBe('SIMPTU_ERR_VALIDATION');
      expect(issuePaths(res), path).toContain(path);
    }
    // the domain's own checks come back in the same format
    const notIso = await req('POST', '/v1/catalog/services', tokens.owner, service({ currency: 'XYZ' }));
    expect(notIso.statusCode).toBe(400);
    expect(issuePaths(notIso)).toContain('currency');
    const capacity = await req('POST', '/v1/catalog/services', tokens.owner, service({ capacity: 5 }));
    expect(capacity.statusCode).toBe(400);
    expect(issuePaths(capacity)).toContain('capacity');
    const emptyPatch = await req('PATCH', `/v1/catalog/services/${randomUUID()}`, tokens.owner, {});
    expect(emptyPatch.statusCode).toBe(400);
    const badKind = await req('GET', '/v1/catalog/services?kind=spa', tokens.owner);
    expect(badKind.statusCode).toBe(400);
    expect(issuePaths(badKind)).toContain('querystring.kind');
  });

  it('refuses to delete a service or resource that bookings reference (409)', async () => {
    const s = (await req('POST', '/v1/catalog/services', tokens.owner, service())).json();
    const r = (
      await req('POST', '/v1/catalog/resources', tokens.owner, { kind: 'chair', name: 'Chair busy' })
    ).json();
    expect(
      (await req('PUT', `/v1/catalog/services/${s.id}/resources`, tokens.owner, { resourceIds: [r.id] }))
        .statusCode,
    ).toBe(200);
    await req('PUT', '/v1/catalog/opening-hours', tokens.owner, {
      hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '08:00', closes: '20:00' })),
    });
    const customer = await t.createCustomer(a);
    await a.run((ctx) =>
      createBooking(ctx, {
        customerId: customer.id,
        serviceId: s.id,
        start: new Date('2027-05-04T07:00:00Z'),
        source: 'staff',
      }),
    );
    const delS = await req('DELETE', `/v1/catalog/services/${s.id}`, tokens.owner);
    expect(delS.statusCode).toBe(409);
    expect(delS.json().error.code).toBe('SIMPTU_ERR_IN_USE');
    const delR = await req('DELETE', `/v1/catalog/resources/${r.id}`, tokens.owner);
    expect(delR.statusCode).toBe(409);
    // deactivating is the way out
    expect(
      (await req('PATCH', `/v1/catalog/services/${s.id}`, tokens.owner, { active: false })).json().active,
    ).toBe(false);
  });
});

describe('resources and the service-resource link', () => {
  it('creates, lists, patches, deletes by role', async () => {
    const res = await req('POST', '/v1/catalog/resources', tokens.admin, { kind: 'chair', name: 'Chair 1' });
    expect(res.statusCode).toBe(201);
    const r = res.json();
    expect(res.headers.location).toBe(`/v1/catalog/resources/${r.id}`);
    for (const role of ['staff', 'customer'] as const)
      expect(
        (await req('POST', '/v1/catalog/resources', tokens[role], { kind: 'chair', name: 'X' })).statusCode,
      ).toBe(403);
    for (const role of ['owner', 'admin', 'staff', 'customer'] as const) {
      const list = await req('GET', '/v1/catalog/resources', tokens[role]);
      expect(list.statusCode, role).toBe(200);
      expect(list.json().items.map((x: { id: string }) => x.id)).toContain(r.id);
      expect((await req('GET', `/v1/catalog/resources/${r.id}`, tokens[role])).statusCode, role).toBe(200);
    }
    const patched = await req('PATCH', `/v1/catalog/resources/${r.id}`, tokens.owner, {
      name: 'Chair One',
      active: false,
    });
    expect(patched.json()).toMatchObject({ name: 'Chair One', active: false });
    const custList = await req('GET', '/v1/catalog/resources', tokens.customer);
    expect(custList.json().items.map((x: { id: string }) => x.id)).not.toContain(r.id);
    expect(
      (await req('PATCH', `/v1/catalog/resources/${r.id}`, tokens.staff, { name: 'n' })).statusCode,
    ).toBe(403);
    const badKind = await req('POST', '/v1/catalog/resources', tokens.owner, { kind: 'sofa', name: 'S' });
    expect(badKind.statusCode).toBe(400);
    expect(issuePaths(badKind)).toContain('body.kind');
    expect((await req('DELETE', `/v1/catalog/resources/${r.id}`, tokens.owner)).statusCode).toBe(204);
    expect((await req('GET', `/v1/catalog/resources/${r.id}`, tokens.owner)).statusCode).toBe(404);
  });

  it('replaces the set of resources of a service (admin/owner) and lists it (any role)', async () => {
    const s = (await req('POST', '/v1/catalog/services', tokens.owner, service())).json();
    const r1 = (
      await req('POST', '/v1/catalog/resources', tokens.owner, { kind: 'chair', name: 'A chair' })
    ).json();
    const r2 = (
      await req('POST', '/v1/catalog/resources', tokens.owner, { kind: 'chair', name: 'B chair' })
    ).json();
    const put = await req('PUT', `/v1/catalog/services/${s.id}/resources`, tokens.admin, {
      resourceIds: [r1.id, r2.id],
    });
    expect(put.statusCode).toBe(200);
    expect(put.json().items.map((x: { id: string }) => x.id)).toEqual([r1.id, r2.id]);
    expect(
      (await req('PUT', `/v1/catalog/services/${s.id}/resources`, tokens.staff, { resourceIds: [] }))
        .statusCode,
    ).toBe(403);
    const got = await req('GET', `/v1/catalog/services/${s.id}/resources`, tokens.customer);
    expect(got.statusCode).toBe(200);
    expect(got.json().items).toHaveLength(2);
    await req('PUT', `/v1/catalog/services/${s.id}/resources`, tokens.owner, { resourceIds: [r2.id] });
    const after = await req('GET', `/v1/catalog/services/${s.id}/resources`, tokens.staff);
    expect(after.json().items.map((x: { id: string }) => x.id)).toEqual([r2.id]);
    const unknownRes = await req('PUT', `/v1/catalog/services/${s.id}/resources`, tokens.owner, {
      resourceIds: [randomUUID()],
    });
    expect(unknownRes.statusCode).toBe(400);
    expect(issuePaths(unknownRes)).toContain('resourceIds/0');
    const malformed = await req('PUT', `/v1/catalog/services/${s.id}/resources`, tokens.owner, {
      resourceIds: ['nope'],
    });
    expect(malformed.statusCode).toBe(400);
    expect(issuePaths(malformed)).toContain('body.resourceIds.0');
    expect(
      (await req('GET', `/v1/catalog/services/${randomUUID()}/resources`, tokens.owner)).statusCode,
    ).toBe(404);
    expect(
      (await req('PUT', `/v1/catalog/services/${randomUUID()}/resources`, tokens.owner, { resourceIds: [] }))
        .statusCode,
    ).toBe(404);
  });
});

describe('opening hours and exceptions', () => {
  it('replaces the week (admin/owner) and shows it with the tenant zone (any role)', async () => {
    const hours = [
      { weekday: 1, opens: '09:00', closes: '13:00' },
      { weekday: 1, opens: '14:00', closes: '18:00' },
      { weekday: 6, opens: '10:00', closes: '24:00' },
    ];
    const put = await req('PUT', '/v1/catalog/opening-hours', tokens.owner, { hours });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toEqual({ timeZone: 'Europe/Bucharest', hours });
    for (const role of ['owner', 'admin', 'staff', 'customer'] as const) {
      const got = await req('GET', '/v1/catalog/opening-hours', tokens[role]);
      expect(got.statusCode, role).toBe(200);
      expect(got.json().hours, role).toEqual(hours);
    }
    for (const role of ['staff', 'customer'] as const)
      expect((await req('PUT', '/v1/catalog/opening-hours', tokens[role], { hours: [] })).statusCode).toBe(
        403,
      );
    const badTime = await req('PUT', '/v1/catalog/opening-hours', tokens.owner, {
      hours: [{ weekday: 8, opens: '25:00', closes: '10:00' }],
    });
    expect(badTime.statusCode).toBe(400);
    expect(issuePaths(badTime)).toEqual(
      expect.arrayContaining(['body.hours.0.weekday', 'body.hours.0.opens']),
    );
    const overlap = await req('PUT', '/v1/catalog/opening-hours', tokens.owner, {
      hours: [
        { weekday: 2, opens: '09:00', closes: '12:00' },
        { weekday: 2, opens: '11:00', closes: '15:00' },
      ],
    });
    expect(overlap.statusCode).toBe(400);
    expect(issuePaths(overlap)).toContain('1/opens');
    // nothing changed by the refused writes
    expect((await req('GET', '/v1/catalog/opening-hours', tokens.staff)).json().hours).toEqual(hours);
  });

  it('adds, lists by date range and deletes exceptions', async () => {
    const closed = await req('POST', '/v1/catalog/opening-exceptions', tokens.admin, {
      date: '2027-12-25',
      closed: true,
      reason: 'Christmas',
    });
    expect(closed.statusCode).toBe(201);
    const special = await req('POST', '/v1/catalog/opening-exceptions', tokens.owner, {
      date: '2027-12-24',
      closed: false,
      opens: '09:00',
      closes: '12:00',
    });
    expect(special.statusCode).toBe(201);
    expect(special.json()).toMatchObject({
      date: '2027-12-24',
      closed: false,
      opens: '09:00',
      closes: '12:00',
      reason: null,
    });
    for (const role of ['staff', 'customer'] as const)
      expect(
        (
          await req('POST', '/v1/catalog/opening-exceptions', tokens[role], {
            date: '2027-12-26',
            closed: true,
          })
        ).statusCode,
      ).toBe(403);
    const list = await req(
      'GET',
      '/v1/catalog/opening-exceptions?from=2027-12-24&to=2027-12-24',
      tokens.customer,
    );
    expect(list.statusCode).toBe(200);
    expect(list.json().items.map((e: { id: string }) => e.id)).toEqual([special.json().id]);
    const both = await req(
      'GET',
      '/v1/catalog/opening-exceptions?from=2027-12-01&to=2027-12-31',
      tokens.staff,
    );
    expect(both.json().items.map((e: { date: string }) => e.date)).toEqual(['2027-12-24', '2027-12-25']);

    const contradictory = await req('POST', '/v1/catalog/opening-exceptions', tokens.owner, {
      date: '2027-12-26',
      closed: true,
      opens: '09:00',
      closes: '10:00',
    });
    expect(contradictory.statusCode).toBe(400);
    const badDate = await req('POST', '/v1/catalog/opening-exceptions', tokens.owner, {
      date: '2027-02-30',
      closed: true,
    });
    expect(badDate.statusCode).toBe(400);
    expect(issuePaths(badDate)).toContain('body.date');
    const badRange = await req('GET', '/v1/catalog/opening-exceptions?from=yesterday', tokens.owner);
    expect(badRange.statusCode).toBe(400);
    expect(issuePaths(badRange)).toContain('querystring.from');

    expect(
      (await req('DELETE', `/v1/catalog/opening-exceptions/${closed.json().id}`, tokens.staff)).statusCode,
    ).toBe(403);
    expect(
      (await req('DELETE', `/v1/catalog/opening-exceptions/${closed.json().id}`, tokens.admin)).statusCode,
    ).toBe(204);
    expect(
      (await req('DELETE', `/v1/catalog/opening-exceptions/${closed.json().id}`, tokens.admin)).statusCode,
    ).toBe(404);
    const after = await req(
      'GET',
      '/v1/catalog/opening-exceptions?from=2027-12-01&to=2027-12-31',
      tokens.staff,
    );
    expect(after.json().items.map((e: { date: string }) => e.date)).toEqual(['2027-12-24']);
  });
});

describe('cache', () => {
  it('serves reads from Redis (encrypted, tenant-scoped) until a write invalidates them', async () => {
    const first = await req('GET', '/v1/catalog/services?kind=class', tokens.staff);
    expect(first.statusCode).toBe(200);
    const before = first.json().items.length;

    // A row written behind the API's back is not seen while the cached list lives…
    const sneaky = await a.run((ctx) =>
      createService(ctx, {
        kind: 'class',
        name: 'Sneaky yoga',
        durationMinutes: 60,
        priceCents: 0,
        currency: 'EUR',
      }),
    );
    const cached = await req('GET', '/v1/catalog/services?kind=class', tokens.staff);
    expect(cached.json().items).toHaveLength(before);

    // …the cached value is ciphertext under the tenant's key, not the catalog in clear…
    const generation = (await t.app.redis.get(generationKey(a.name, 'catalog'))) ?? '0';
    const raw = await t.app.redis.get(valueKey(a.name, 'catalog', generation, 'services:list:class:false'));
    expect(raw).toMatch(/^v1\./);
    expect(raw).not.toContain('yoga');

    // …and any catalog write through the API makes it stale at once.
    await req('POST', '/v1/catalog/resources', tokens.owner, { kind: 'studio', name: 'Studio' });
    expect(Number(await t.app.redis.get(generationKey(a.name, 'catalog')))).toBeGreaterThan(
      Number(generation),
    );
    const fresh = await req('GET', '/v1/catalog/services?kind=class', tokens.staff);
    expect(fresh.json().items.map((s: { id: string }) => s.id)).toContain(sneaky.id);
  });

  it('keeps tenants apart in the cache', async () => {
    // B's list, read after A's was cached under the same logical key, is B's own.
    await req('GET', '/v1/catalog/services', tokens.staff);
    const bList = await req('GET', '/v1/catalog/services', tokenB);
    expect(bList.statusCode).toBe(200);
    expect(bList.json().items).toEqual([]);
  });
});

describe('tenant isolation', () => {
  it('answers 404 for every id of another tenant on every catalog route', async () => {
    const s = (await req('POST', '/v1/catalog/services', tokenB, service())).json();
    const r = (await req('POST', '/v1/catalog/resources', tokenB, { kind: 'room', name: 'B room' })).json();
    const e = (
      await req('POST', '/v1/catalog/opening-exceptions', tokenB, { date: '2027-01-01', closed: true })
    ).json();
    const own = await req('GET', `/v1/catalog/services/${s.id}`, tokenB);
    expect(own.statusCode).toBe(200);

    const calls: Array<[string, string, unknown?]> = [
      ['GET', `/v1/catalog/services/${s.id}`],
      ['PATCH', `/v1/catalog/services/${s.id}`, { name: 'stolen' }],
      ['DELETE', `/v1/catalog/services/${s.id}`],
      ['GET', `/v1/catalog/services/${s.id}/resources`],
      ['PUT', `/v1/catalog/services/${s.id}/resources`, { resourceIds: [] }],
      ['GET', `/v1/catalog/resources/${r.id}`],
      ['PATCH', `/v1/catalog/resources/${r.id}`, { name: 'stolen' }],
      ['DELETE', `/v1/catalog/resources/${r.id}`],
      ['DELETE', `/v1/catalog/opening-exceptions/${e.id}`],
    ];
    for (const [m, url, body] of calls) {
      const res = await req(m, url, tokens.owner, body);
      expect(res.statusCode, `${m} ${url}`).toBe(404);
    }
    // B's resource can't be linked to A's service either
    const aService = (await req('POST', '/v1/catalog/services', tokens.owner, service())).json();
    const link = await req('PUT', `/v1/catalog/services/${aService.id}/resources`, tokens.owner, {
      resourceIds: [r.id],
    });
    expect(link.statusCode).toBe(400);
    // and B's objects are untouched
    expect((await req('GET', `/v1/catalog/services/${s.id}`, tokenB)).json().name).toBe(s.name);
    expect((await req('GET', `/v1/catalog/resources/${r.id}`, tokenB)).statusCode).toBe(200);
    expect((await req('GET', '/v1/catalog/opening-exceptions', tokenB)).json().items).toHaveLength(1);
  });
});
