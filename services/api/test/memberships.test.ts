/**
 * /v1/membership-plans and /v1/memberships against real Postgres, Redis and Kafka: plan CRUD
 * (admin/owner), memberships sold by staff (Idempotency-Key, overlap 409, encrypted note hidden
 * from customers), freeze / activate / cancel with their events, the customer's own view, the
 * class-booking rule (membership required, class allowance per period), the role matrix, 400 /
 * 404 / 409 and tenant isolation.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const tok = {} as Record<'owner' | 'admin' | 'staff' | 'ownerB' | 'staffB', string>;
type Person = { id: string; token: string };
let ana: Person;
let bob: Person;
let cara: Person;
let dan: Person;
let bCustomer: string;
let bPlan: string;
let bMembership: string;

async function req(method: string, url: string, token: string | undefined, payload?: unknown, headers = {}) {
  const res = await t.app.inject({
    method: method as 'GET',
    url,
    headers: { ...(token ? t.auth(token) : {}), ...headers },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
  let body: any = null; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    body = res.json();
  } catch {
    // 204
  }
  return { status: res.statusCode, body, headers: res.headers };
}

function issuePaths(body: { error: { details?: { issues?: Array<{ path: string }> } } }): string[] {
  return (body.error.details?.issues ?? []).map((i) => i.path);
}

async function outbox(t0: TestTenant, aggregateId: string): Promise<string[]> {
  const { rows } = await t0.adminQuery<{ event_type: string }>(
    `SELECT event_type FROM ${t0.table('outbox')} WHERE aggregate_id = $1 ORDER BY seq`,
    [aggregateId],
  );
  return rows.map((r) => r.event_type);
}

const monthly = {
  name: 'Monthly Unlimited',
  priceCents: 20000,
  currency: 'RON',
  period: 'month',
  description: 'All classes, every day',
};

async function plan(token: string, body: Record<string, unknown>) {
  const r = await req('POST', '/v1/membership-plans', token, body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id as string;
}

beforeAll(async () => {
  t = await buildTestApp({
    tenants: [
      { businessType: 'gym', timezone: 'Europe/Bucharest' },
      { businessType: 'gym', timezone: 'Europe/Bucharest' },
    ],
    waitForEvents: false,
  });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  tok.owner = await t.tokenFor(a, { roles: ['owner'] });
  tok.admin = await t.tokenFor(a, { roles: ['admin'] });
  tok.staff = await t.tokenFor(a, { roles: ['staff'], sub: 'desk-1' });
  const person = async (name: string): Promise<Person> => {
    const c = await t.createCustomer(a, { displayName: name });
    return { id: c.id, token: await t.tokenFor(a, { sub: c.id, roles: ['customer'] }) };
  };
  ana = await person('Ana');
  bob = await person('Bob');
  cara = await person('Cara');
  dan = await person('Dan');
  tok.ownerB = await t.tokenFor(b, { roles: ['owner'] });
  tok.staffB = await t.tokenFor(b, { roles: ['staff'] });
  bCustomer = (await t.createCustomer(b, { displayName: 'B member' })).id;
  bPlan = await plan(tok.ownerB, { ...monthly, name: 'B plan' });
  const m = await req('POST', '/v1/memberships', tok.staffB, { customerId: bCustomer, planId: bPlan });
  expect(m.status).toBe(201);
  bMembership = m.body.id;
}, 120_000);

afterAll(async () => {
  await t?.cleanup();
}, 60_000);

describe('membership plans', () => {
  it('admin and owner create, change and delete plans; staff and customers only read', async () => {
    const id = await plan(tok.admin, { ...monthly, name: 'Plan A', classAllowance: 8 });
    const got = await req('GET', `/v1/membership-plans/${id}`, ana.token);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({
      id,
      name: 'Plan A',
      priceCents: 20000,
      currency: 'RON',
      period: 'month',
      durationDays: null,
      classAllowance: 8,
      active: true,
    });
    const patched = await req('PATCH', `/v1/membership-plans/${id}`, tok.owner, {
      period: 'days',
      durationDays: 30,
      classAllowance: null,
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ period: 'days', durationDays: 30, classAllowance: null });
    const back = await req('PATCH', `/v1/membership-plans/${id}`, tok.owner, { period: 'year' });
    expect(back.body).toMatchObject({ period: 'year', durationDays: null });

    for (const who of ['staff'] as const) {
      expect((await req('POST', '/v1/membership-plans', tok[who], monthly)).status).toBe(403);
      expect((await req('PATCH', `/v1/membership-plans/${id}`, tok[who], { priceCents: 1 })).status).toBe(
        403,
      );
      expect((await req('DELETE', `/v1/membership-plans/${id}`, tok[who])).status).toBe(403);
    }
    expect((await req('POST', '/v1/membership-plans', ana.token, monthly)).status).toBe(403);
    expect((await req('PATCH', `/v1/membership-plans/${id}`, ana.token, { priceCents: 1 })).status).toBe(403);
    expect((await req('DELETE', `/v1/membership-plans/${id}`, ana.token)).status).toBe(403);
    expect((await req('GET', '/v1/membership-plans', undefined)).status).toBe(401);

    const del = await req('DELETE', `/v1/membership-plans/${id}`, tok.admin);
    expect(del.status).toBe(204);
    expect((await req('GET', `/v1/membership-plans/${id}`, tok.admin)).status).toBe(404);
    expect((await req('DELETE', `/v1/membership-plans/${id}`, tok.admin)).status).toBe(404);
  });

  it('customers see active plans only; staff see all, or ?active=true', async () => {
    const on = await plan(tok.owner, { ...monthly, name: 'Visible', priceCents: 100 });
    const off = await plan(tok.owner, { ...monthly, name: 'Retired', active: false });
    const mine = await req('GET', '/v1/membership-plans', ana.token);
    expect(mine.status).toBe(200);
    const names = mine.body.items.map((p: { name: string }) => p.name);
    expect(names).toContain('Visible');
    expect(names).not.toContain('Retired');
    // even asking for everything
    expect(
      (await req('GET', '/v1/membership-plans?active=false', ana.token)).body.items.some(
        (p: { id: string }) => p.id === off,
      ),
    ).toBe(false);
    const all = await req('GET', '/v1/membership-plans', tok.staff);
    expect(all.body.items.map((p: { id: string }) => p.id)).toEqual(expect.arrayContaining([on, off]));
    const active = await req('GET', '/v1/membership-plans?active=true', tok.staff);
    expect(active.body.items.some((p: { id: string }) => p.id === off)).toBe(false);
    // cheapest first
    const prices = all.body.items.map((p: { priceCents: number }) => p.priceCents);
    expect(prices).toEqual([...prices].sort((x, y) => x - y));
    expect((await req('GET', `/v1/membership-plans/${off}`, ana.token)).status).toBe(404);
    expect((await req('GET', `/v1/membership-plans/${off}`, tok.staff)).status).toBe(200);
  });

  it('400 with every issue, 404, 409 for a duplicate name', async () => {
    const bad = await req('POST', '/v1/membership-plans', tok.owner, {
      name: '',
      priceCents: '10',
      currency: 'eur',
      period: 'week',
      extra: 1,
    });
    expect(bad.status).toBe(400);
    expect(issuePaths(bad.body)).toEqual(
      expect.arrayContaining(['body.name', 'body.priceCents', 'body.currency', 'body.period']),
    );
    const daysWithout = await req('POST', '/v1/membership-plans', tok.owner, {
      ...monthly,
      name: 'Pass',
      period: 'days',
    });
    expect(daysWithout.status).toBe(400);
    expect(issuePaths(daysWithout.body)).toEqual(['durationDays']);
    const monthWith = await req('POST', '/v1/membership-plans', tok.owner, {
      ...monthly,
      name: 'Odd',
      durationDays: 10,
    });
    expect(monthWith.status).toBe(400);
    expect(issuePaths(monthWith.body)).toEqual(['durationDays']);
    const xxx = await req('POST', '/v1/membership-plans', tok.owner, {
      ...monthly,
      name: 'X',
      currency: 'XYZ',
    });
    expect(xxx.status).toBe(400);
    expect(
      (await req('POST', '/v1/membership-plans', tok.owner, { ...monthly, classAllowance: -1 })).status,
    ).toBe(400);

    await plan(tok.owner, { ...monthly, name: 'Gold' });
    const dup = await req('POST', '/v1/membership-plans', tok.owner, { ...monthly, name: '  gold ' });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('SIMPTU_ERR_MEMBERSHIP_PLAN_EXISTS');
    const silver = await plan(tok.owner, { ...monthly, name: 'Silver' });
    const rename = await req('PATCH', `/v1/membership-plans/${silver}`, tok.owner, { name: 'GOLD' });
    expect(rename.status).toBe(409);

    expect((await req('PATCH', `/v1/membership-plans/${silver}`, tok.owner, {})).status).toBe(400);
    expect(
      (await req('PATCH', `/v1/membership-plans/${randomUUID()}`, tok.owner, { priceCents: 1 })).status,
    ).toBe(404);
    expect((await req('GET', '/v1/membership-plans/nope', tok.owner)).status).toBe(400);
    expect((await req('GET', `/v1/membership-plans/${randomUUID()}`, tok.owner)).status).toBe(404);
  });
});

describe('memberships', () => {
  let gold: string;
  let pass: string;

  beforeAll(async () => {
    gold = await plan(tok.owner, { ...monthly, name: 'Gold Monthly', classAllowance: 12 });
    pass = await plan(tok.owner, {
      ...monthly,
      name: '10-day pass',
      period: 'days',
      durationDays: 10,
      priceCents: 9000,
    });
  });

  it('staff sell a membership: 201, terms copied, event, note encrypted and hidden from the customer', async () => {
    const res = await req('POST', '/v1/memberships', tok.staff, {
      customerId: ana.id,
      planId: pass,
      startsAt: '2026-03-20T10:00:00+02:00',
      note: 'knee injury, no jumping',
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const m = res.body;
    expect(res.headers.location).toBe(`/v1/memberships/${m.id}`);
    expect(m).toMatchObject({
      customerId: ana.id,
      planId: pass,
      planName: '10-day pass',
      status: 'active',
      startsAt: '2026-03-20T10:00:00+02:00',
      // 10 local calendar days later, across the DST change of 2026-03-29 (+02:00 → +03:00)
      endsAt: '2026-03-30T10:00:00+03:00',
      priceCents: 9000,
      currency: 'RON',
      period: 'days',
      classAllowance: null,
      note: 'knee injury, no jumping',
      source: 'staff',
      createdBy: 'desk-1',
      updatedBy: 'desk-1',
      frozenAt: null,
      cancelledAt: null,
    });
    expect(await outbox(a, m.id)).toEqual(['io.simptu.membership.created']);
    const { rows } = await a.adminQuery<{ note: Buffer }>(
      `SELECT note FROM ${a.table('memberships')} WHERE id = $1`,
      [m.id],
    );
    expect(rows[0]!.note.toString('latin1')).not.toContain('knee');
    const own = await req('GET', `/v1/memberships/${m.id}`, ana.token);
    expect(own.status).toBe(200);
    expect(own.body.note).toBeNull();
    expect((await req('GET', `/v1/memberships/${m.id}`, bob.token)).status).toBe(404);
    // a later plan change does not touch what was sold
    await req('PATCH', `/v1/membership-plans/${pass}`, tok.owner, { priceCents: 9900 });
    expect((await req('GET', `/v1/memberships/${m.id}`, tok.staff)).body.priceCents).toBe(9000);
  });

  it('one live membership per customer at a time: 409 with the existing one; back to back is fine', async () => {
    const first = await req('POST', '/v1/memberships', tok.staff, {
      customerId: bob.id,
      planId: gold,
      startsAt: '2026-01-01T00:00:00+02:00',
      endsAt: '2026-07-01T00:00:00+03:00',
    });
    expect(first.status).toBe(201);
    const clash = await req('POST', '/v1/memberships', tok.admin, {
      customerId: bob.id,
      planId: pass,
      startsAt: '2026-06-25T00:00:00+03:00',
    });
    expect(clash.status).toBe(409);
    expect(clash.body.error).toMatchObject({
      code: 'SIMPTU_ERR_MEMBERSHIP_OVERLAP',
      details: { membershipId: first.body.id, status: 'active' },
    });
    const next = await req('POST', '/v1/memberships', tok.admin, {
      customerId: bob.id,
      planId: pass,
      startsAt: '2026-07-01T00:00:00+03:00',
    });
    expect(next.status).toBe(201);
    // a cancelled one no longer counts
    await req('POST', `/v1/memberships/${next.body.id}/cancel`, tok.staff);
    const again = await req('POST', '/v1/memberships', tok.admin, {
      customerId: bob.id,
      planId: pass,
      startsAt: '2026-07-02T00:00:00+03:00',
    });
    expect(again.status).toBe(201);
  });

  it('Idempotency-Key: the same request replays (one row, one event); another body → 409', async () => {
    const key = randomUUID();
    const body = {
      customerId: cara.id,
      planId: gold,
      startsAt: '2025-01-01T00:00:00+02:00',
      endsAt: '2025-02-01T00:00:00+02:00',
    };
    const r1 = await req('POST', '/v1/memberships', tok.staff, body, { 'idempotency-key': key });
    const r2 = await req('POST', '/v1/memberships', tok.staff, body, { 'idempotency-key': key });
    expect(r1.status).toBe(201);
    expect(r2.status).toBe(201);
    expect(r2.headers['idempotent-replayed']).toBe('true');
    expect(r2.body.id).toBe(r1.body.id);
    const { rows } = await a.adminQuery(`SELECT id FROM ${a.table('memberships')} WHERE customer_id = $1`, [
      cara.id,
    ]);
    expect(rows).toHaveLength(1);
    expect(await outbox(a, r1.body.id)).toEqual(['io.simptu.membership.created']);
    const other = await req(
      'POST',
      '/v1/memberships',
      tok.staff,
      { ...body, planId: pass },
      { 'idempotency-key': key },
    );
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('SIMPTU_ERR_IDEMPOTENCY_KEY_REUSED');
  });

  it('400, 404 and 403 on create', async () => {
    const bad = await req('POST', '/v1/memberships', tok.staff, {
      customerId: 'x',
      planId: gold,
      status: 'frozen',
      startsAt: 'soon',
    });
    expect(bad.status).toBe(400);
    expect(issuePaths(bad.body)).toEqual(
      expect.arrayContaining(['body.customerId', 'body.status', 'body.startsAt']),
    );
    const backwards = await req('POST', '/v1/memberships', tok.staff, {
      customerId: dan.id,
      planId: gold,
      startsAt: '2026-05-01T00:00:00Z',
      endsAt: '2026-04-01T00:00:00Z',
    });
    expect(backwards.status).toBe(400);
    expect(issuePaths(backwards.body)).toEqual(['endsAt']);
    const openPass = await req('POST', '/v1/memberships', tok.staff, {
      customerId: dan.id,
      planId: pass,
      endsAt: null,
    });
    expect(openPass.status).toBe(400);
    const retired = await plan(tok.owner, { ...monthly, name: 'Old plan', active: false });
    const inactive = await req('POST', '/v1/memberships', tok.staff, { customerId: dan.id, planId: retired });
    expect(inactive.status).toBe(400);
    expect(issuePaths(inactive.body)).toEqual(['planId']);
    expect(
      (await req('POST', '/v1/memberships', tok.staff, { customerId: randomUUID(), planId: gold })).status,
    ).toBe(404);
    expect(
      (await req('POST', '/v1/memberships', tok.staff, { customerId: dan.id, planId: randomUUID() })).status,
    ).toBe(404);
    expect(
      (await req('POST', '/v1/memberships', dan.token, { customerId: dan.id, planId: gold })).status,
    ).toBe(403);
    expect(
      (await req('POST', '/v1/memberships', undefined, { customerId: dan.id, planId: gold })).status,
    ).toBe(401);
  });

  it('pending → active → frozen → active (end moves) → cancelled, with events; 409 for forbidden moves', async () => {
    const created = await req('POST', '/v1/memberships', tok.staff, {
      customerId: dan.id,
      planId: gold,
      status: 'pending',
      startsAt: '2024-01-01T00:00:00+02:00',
      endsAt: '2024-12-31T00:00:00+02:00',
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(created.body).toMatchObject({ status: 'pending', activatedAt: null });
    const frozenPending = await req('POST', `/v1/memberships/${id}/freeze`, tok.staff);
    expect(frozenPending.status).toBe(409);
    expect(frozenPending.body.error).toMatchObject({
      code: 'SIMPTU_ERR_MEMBERSHIP_STATE_CONFLICT',
      details: { from: 'pending', to: 'frozen' },
    });
    const act = await req('POST', `/v1/memberships/${id}/activate`, tok.staff);
    expect(act.status).toBe(200);
    expect(act.body.status).toBe('active');
    expect(act.body.activatedAt).not.toBeNull();
    const again = await req('POST', `/v1/memberships/${id}/activate`, tok.admin);
    expect(again.body.updatedAt).toBe(act.body.updatedAt);
    const frz = await req('POST', `/v1/memberships/${id}/freeze`, tok.admin, { note: 'travelling' });
    expect(frz.status).toBe(200);
    expect(frz.body).toMatchObject({ status: 'frozen', note: 'travelling' });
    expect(frz.body.frozenAt).not.toBeNull();
    // pretend it was frozen for 10 days
    await a.adminQuery(
      `UPDATE ${a.table('memberships')} SET frozen_at = frozen_at - interval '10 days' WHERE id = $1`,
      [id],
    );
    const thaw = await req('POST', `/v1/memberships/${id}/activate`, tok.owner);
    expect(thaw.status).toBe(200);
    expect(thaw.body.status).toBe('active');
    const moved = Date.parse(thaw.body.endsAt) - Date.parse(created.body.endsAt);
    expect(moved).toBeGreaterThanOrEqual(10 * 86_400_000);
    expect(moved).toBeLessThan(11 * 86_400_000);
    const cancel = await req('POST', `/v1/memberships/${id}/cancel`, tok.staff, { note: null });
    expect(cancel.status).toBe(200);
    expect(cancel.body).toMatchObject({ status: 'cancelled', note: null, frozenAt: null });
    const twice = await req('POST', `/v1/memberships/${id}/cancel`, tok.staff);
    expect(twice.body).toEqual(cancel.body);
    const revive = await req('POST', `/v1/memberships/${id}/activate`, tok.staff);
    expect(revive.status).toBe(409);
    expect(await outbox(a, id)).toEqual([
      'io.simptu.membership.created',
      'io.simptu.membership.activated',
      'io.simptu.membership.frozen',
      'io.simptu.membership.activated',
      'io.simptu.membership.cancelled',
    ]);
    for (const path of ['activate', 'freeze', 'cancel']) {
      expect((await req('POST', `/v1/memberships/${id}/${path}`, dan.token)).status, path).toBe(403);
      expect((await req('POST', `/v1/memberships/${randomUUID()}/${path}`, tok.staff)).status, path).toBe(
        404,
      );
      expect((await req('POST', `/v1/memberships/abc/${path}`, tok.staff)).status, path).toBe(400);
    }
    const junk = await req('POST', `/v1/memberships/${id}/freeze`, tok.staff, { note: 5 });
    expect(junk.status).toBe(400);
  });

  it('lists: staff filter and page; a customer sees only their own', async () => {
    const all = await req('GET', '/v1/memberships?limit=100', tok.staff);
    expect(all.status).toBe(200);
    const customers = new Set(all.body.items.map((m: { customerId: string }) => m.customerId));
    expect(customers.size).toBeGreaterThan(2);
    const p1 = await req('GET', '/v1/memberships?limit=2', tok.staff);
    expect(p1.body.items).toHaveLength(2);
    const p2 = await req('GET', `/v1/memberships?limit=2&cursor=${p1.body.nextCursor}`, tok.staff);
    expect(p2.body.items[0].id).not.toBe(p1.body.items[1].id);
    const byBob = await req('GET', `/v1/memberships?customerId=${bob.id}&status=active`, tok.admin);
    expect(byBob.body.items.length).toBeGreaterThan(0);
    expect(
      byBob.body.items.every(
        (m: { customerId: string; status: string }) => m.customerId === bob.id && m.status === 'active',
      ),
    ).toBe(true);
    const mine = await req('GET', '/v1/memberships', bob.token);
    expect(mine.body.items.length).toBeGreaterThan(0);
    expect(
      mine.body.items.every(
        (m: { customerId: string; note: unknown }) => m.customerId === bob.id && m.note === null,
      ),
    ).toBe(true);
    const peek = await req('GET', `/v1/memberships?customerId=${ana.id}`, bob.token);
    expect(peek.body.items).toEqual([]);
    const current = await req('GET', `/v1/memberships?customerId=${cara.id}&current=true`, tok.staff);
    expect(current.body.items).toEqual([]); // Cara's ended in 2025
    for (const q of ['status=gone', 'limit=0', 'customerId=x', 'cursor=%00', 'extra=1'])
      expect((await req('GET', `/v1/memberships?${q}`, tok.staff)).status, q).toBe(400);
  });
});

describe('class bookings need a membership once the tenant sells them', () => {
  let yoga: string;
  let pt: string;
  let limited: string;
  let member: Person;

  beforeAll(async () => {
    const owner = tok.owner;
    const studio = (await req('POST', '/v1/catalog/resources', owner, { kind: 'studio', name: 'Studio' }))
      .body.id;
    const trainer = (await req('POST', '/v1/catalog/resources', owner, { kind: 'trainer', name: 'Andrei' }))
      .body.id;
    yoga = (
      await req('POST', '/v1/catalog/services', owner, {
        kind: 'class',
        name: 'Yoga',
        durationMinutes: 60,
        priceCents: 5000,
        currency: 'RON',
        capacity: 10,
      })
    ).body.id;
    const ptRes = await req('POST', '/v1/catalog/services', owner, {
      kind: 'personal_training',
      name: 'Personal training',
      durationMinutes: 60,
      priceCents: 15000,
      currency: 'RON',
    });
    expect(ptRes.status).toBe(201);
    pt = ptRes.body.id;
    await req('PUT', `/v1/catalog/services/${yoga}/resources`, owner, { resourceIds: [studio] });
    await req('PUT', `/v1/catalog/services/${pt}/resources`, owner, { resourceIds: [trainer] });
    await req('PUT', '/v1/catalog/opening-hours', owner, {
      hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '08:00', closes: '20:00' })),
    });
    limited = await plan(owner, { ...monthly, name: 'One class a month', classAllowance: 1 });
    const c = await t.createCustomer(a, { displayName: 'Member' });
    member = { id: c.id, token: await t.tokenFor(a, { sub: c.id, roles: ['customer'] }) };
  });

  it('none → MEMBERSHIP_REQUIRED; pending and frozen too; allowance per period; PT needs none', async () => {
    const book = (start: string, service = yoga) =>
      req('POST', '/v1/bookings', member.token, { serviceId: service, start });
    const none = await book('2027-06-01T10:00:00+03:00');
    expect(none.status).toBe(409);
    expect(none.body.error).toMatchObject({
      code: 'SIMPTU_ERR_MEMBERSHIP_REQUIRED',
      details: { reason: 'none' },
    });
    // personal training is paid per session: no membership needed
    const ptBooking = await book('2027-06-01T10:00:00+03:00', pt);
    expect(ptBooking.status).toBe(201);

    const m = await req('POST', '/v1/memberships', tok.staff, {
      customerId: member.id,
      planId: limited,
      status: 'pending',
      startsAt: '2026-01-15T09:00:00+02:00',
    });
    expect(m.status).toBe(201);
    const pending = await book('2027-06-01T10:00:00+03:00');
    expect(pending.body.error).toMatchObject({
      code: 'SIMPTU_ERR_MEMBERSHIP_REQUIRED',
      details: { reason: 'pending', membershipId: m.body.id },
    });
    await req('POST', `/v1/memberships/${m.body.id}/activate`, tok.staff);

    const first = await book('2027-06-01T10:00:00+03:00');
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const second = await book('2027-06-01T12:00:00+03:00');
    expect(second.status).toBe(409);
    expect(second.body.error).toMatchObject({
      code: 'SIMPTU_ERR_CLASS_ALLOWANCE_EXHAUSTED',
      details: {
        membershipId: m.body.id,
        allowance: 1,
        used: 1,
        // monthly periods from the 15th 09:00 local
        periodStart: '2027-05-15T06:00:00.000Z',
        periodEnd: '2027-06-15T06:00:00.000Z',
      },
    });
    // the next period has its own allowance
    expect((await book('2027-06-16T12:00:00+03:00')).status).toBe(201);
    // moving the booked class inside its period does not count it twice
    const move = await req('POST', `/v1/bookings/${first.body.id}/reschedule`, member.token, {
      start: '2027-06-02T10:00:00+03:00',
    });
    expect(move.status).toBe(200);
    const usage = await req('GET', `/v1/memberships/${m.body.id}/usage`, member.token);
    expect(usage.status).toBe(200);
    expect(usage.body).toMatchObject({ membershipId: m.body.id, allowance: 1 });
    expect((await req('GET', `/v1/memberships/${m.body.id}/usage`, bob.token)).status).toBe(404);
    // cancelling a class gives it back
    await req('POST', `/v1/bookings/${first.body.id}/cancel`, member.token);
    expect((await book('2027-06-03T12:00:00+03:00')).status).toBe(201);

    await req('POST', `/v1/memberships/${m.body.id}/freeze`, tok.staff);
    const frozen = await book('2027-07-20T10:00:00+03:00');
    expect(frozen.body.error).toMatchObject({
      code: 'SIMPTU_ERR_MEMBERSHIP_REQUIRED',
      details: { reason: 'frozen' },
    });
  });

  it('concurrent class bookings never overrun the allowance (the membership row is locked)', async () => {
    const c = await t.createCustomer(a, { displayName: 'Racer' });
    const token = await t.tokenFor(a, { sub: c.id, roles: ['customer'] });
    const m = await req('POST', '/v1/memberships', tok.staff, {
      customerId: c.id,
      planId: limited,
      startsAt: '2026-01-15T09:00:00+02:00',
    });
    expect(m.status).toBe(201);
    const results = await Promise.all(
      ['08', '10', '12', '14', '16'].map((hour) =>
        req('POST', '/v1/bookings', token, { serviceId: yoga, start: `2027-09-01T${hour}:00:00+03:00` }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409))
      expect(r.body.error.code).toBe('SIMPTU_ERR_CLASS_ALLOWANCE_EXHAUSTED');
  });

  it('a tenant without active plans books classes freely', async () => {
    const owner = tok.ownerB;
    const studio = (await req('POST', '/v1/catalog/resources', owner, { kind: 'studio', name: 'S' })).body.id;
    const spin = (
      await req('POST', '/v1/catalog/services', owner, {
        kind: 'class',
        name: 'Spin',
        durationMinutes: 45,
        priceCents: 4000,
        currency: 'RON',
      })
    ).body.id;
    await req('PUT', `/v1/catalog/services/${spin}/resources`, owner, { resourceIds: [studio] });
    await req('PUT', '/v1/catalog/opening-hours', owner, {
      hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '08:00', closes: '20:00' })),
    });
    await req('PATCH', `/v1/membership-plans/${bPlan}`, owner, { active: false });
    const c = await t.createCustomer(b, { displayName: 'Walk-in' });
    const r = await req('POST', '/v1/bookings', tok.staffB, {
      customerId: c.id,
      serviceId: spin,
      start: '2027-06-01T10:00:00+03:00',
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  });
});

describe('OpenAPI', () => {
  it('documents every membership route', async () => {
    const doc = (await req('GET', '/v1/openapi.json', undefined)).body;
    for (const path of [
      '/v1/membership-plans',
      '/v1/membership-plans/{id}',
      '/v1/memberships',
      '/v1/memberships/{id}',
      '/v1/memberships/{id}/usage',
      '/v1/memberships/{id}/activate',
      '/v1/memberships/{id}/freeze',
      '/v1/memberships/{id}/cancel',
    ])
      expect(Object.keys(doc.paths), path).toContain(path);
    expect(Object.keys(doc.paths['/v1/memberships'].post.responses)).toEqual(
      expect.arrayContaining(['201', '400', '404', '409']),
    );
  });
});

describe('tenant isolation', () => {
  it("tenant A's tokens never reach tenant B's plans, memberships or customers", async () => {
    expect((await req('GET', `/v1/membership-plans/${bPlan}`, tok.owner)).status).toBe(404);
    expect((await req('PATCH', `/v1/membership-plans/${bPlan}`, tok.owner, { priceCents: 1 })).status).toBe(
      404,
    );
    expect((await req('DELETE', `/v1/membership-plans/${bPlan}`, tok.owner)).status).toBe(404);
    expect((await req('GET', `/v1/memberships/${bMembership}`, tok.owner)).status).toBe(404);
    expect((await req('GET', `/v1/memberships/${bMembership}/usage`, tok.owner)).status).toBe(404);
    for (const path of ['activate', 'freeze', 'cancel'])
      expect((await req('POST', `/v1/memberships/${bMembership}/${path}`, tok.staff)).status).toBe(404);
    const gold = (await req('GET', '/v1/membership-plans', tok.staff)).body.items[0].id;
    expect(
      (await req('POST', '/v1/memberships', tok.staff, { customerId: bCustomer, planId: gold })).status,
    ).toBe(404);
    expect(
      (await req('POST', '/v1/memberships', tok.staff, { customerId: ana.id, planId: bPlan })).status,
    ).toBe(404);
    const list = await req('GET', `/v1/memberships?customerId=${bCustomer}`, tok.admin);
    expect(list.body.items).toEqual([]);
    const own = await req('GET', `/v1/memberships/${bMembership}`, tok.staffB);
    expect(own.status).toBe(200);
    // B's plan in use: 409 on delete, deactivate instead
    const del = await req('DELETE', `/v1/membership-plans/${bPlan}`, tok.ownerB);
    expect(del.status).toBe(409);
    expect(del.body.error.code).toBe('SIMPTU_ERR_IN_USE');
  });
});
