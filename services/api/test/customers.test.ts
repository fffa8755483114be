/**
 * Customer routes against real Postgres, Redis and Kafka: create (Idempotency-Key), get, patch,
 * exact lookup by phone / e-mail through the blind index; the role matrix (staff and up for
 * everyone, a customer for themself only), schema violations, conflicts, encryption at rest of
 * the rows and of the stored idempotent response, tenant isolation.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '@simptu/common';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const tokens: Record<Exclude<Role, 'customer'>, string> = { owner: '', admin: '', staff: '' };

let seq = 0;
/** A unique Romanian mobile number and e-mail per call. */
function contact() {
  seq++;
  const n = String(Date.now() % 1_000_000).padStart(6, '0') + String(seq).padStart(2, '0');
  return { phone: `+4072${n.slice(-7)}`, email: `Ana.${randomUUID().slice(0, 8)}@Example.com` };
}

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

beforeAll(async () => {
  t = await buildTestApp({ tenants: [{}, {}], waitForEvents: false });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  for (const role of ['owner', 'admin', 'staff'] as const)
    tokens[role] = await t.tokenFor(a, { roles: [role] });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

describe('POST /v1/customers', () => {
  it('creates for staff, admin and owner (201 + Location, normalized fields)', async () => {
    for (const role of ['staff', 'admin', 'owner'] as const) {
      const c = contact();
      const res = await req('POST', '/v1/customers', tokens[role], {
        displayName: ' Ana Pop ',
        phone: c.phone.replace('+40', '0040 '),
        email: c.email,
        birthDate: '1990-04-01',
        locale: 'ro-ro',
      });
      expect(res.statusCode, role).toBe(201);
      const body = res.json();
      expect(res.headers.location).toBe(`/v1/customers/${body.id}`);
      expect(body).toMatchObject({
        displayName: 'Ana Pop',
        phone: c.phone,
        email: c.email.toLowerCase(),
        birthDate: '1990-04-01',
        locale: 'ro-RO',
      });
    }
  });

  it('refuses customers (403) and anonymous callers (401)', async () => {
    const self = await t.createCustomer(a);
    const ctoken = await t.tokenFor(a, { sub: self.id, roles: ['customer'] });
    expect((await req('POST', '/v1/customers', ctoken, { displayName: 'X' })).statusCode).toBe(403);
    expect((await req('POST', '/v1/customers', undefined, { displayName: 'X' })).statusCode).toBe(401);
  });

  it('answers bad input with 400 naming the field, never 5xx', async () => {
    const cases: Array<[unknown, string]> = [
      [{ email: 'not-an-address' }, 'email'],
      [{ phone: '12' }, 'body.phone'],
      [{ phone: 'call me maybe' }, 'phone'],
      [{ displayName: 'x'.repeat(50_000) }, 'body.displayName'],
      [{ birthDate: '1990-13-01' }, 'body.birthDate'],
      [{ locale: '!!' }, 'locale'],
      [{ ssn: '123' }, 'body.ssn'],
      [{ displayName: ['a', 'b'] }, 'body.displayName'],
    ];
    for (const [body, path] of cases) {
      const res = await req('POST', '/v1/customers', tokens.staff, body);
      expect(res.statusCode, JSON.stringify(body).slice(0, 60)).toBe(400);
      expect(issuePaths(res), path).toContain(path);
    }
    const notJson = await t.app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: { ...t.auth(tokens.staff), 'content-type': 'application/json' },
      payload: '{"displayName": ',
    });
    expect(notJson.statusCode).toBe(400);
  });

  it('refuses a second customer with the same phone or e-mail (409)', async () => {
    const c = contact();
    expect((await req('POST', '/v1/customers', tokens.staff, c)).statusCode).toBe(201);
    const dupPhone = await req('POST', '/v1/customers', tokens.staff, { phone: c.phone });
    expect(dupPhone.statusCode).toBe(409);
    expect(dupPhone.json().error).toMatchObject({
      code: 'SIMPTU_ERR_CUSTOMER_EXISTS',
      details: { field: 'phone' },
    });
    const dupEmail = await req('POST', '/v1/customers', tokens.staff, { email: c.email.toUpperCase() });
    expect(dupEmail.statusCode).toBe(409);
    expect(dupEmail.json().error.details.field).toBe('email');
  });

  it('stores personal data as ciphertext', async () => {
    const c = contact();
    const id = (
      await req('POST', '/v1/customers', tokens.staff, { displayName: 'Ioana Secret', ...c })
    ).json().id;
    const { rows } = await a.adminQuery(
      `SELECT display_name, phone, email FROM ${a.table('customers')} WHERE id = $1`,
      [id],
    );
    const row = rows[0]!;
    for (const col of ['display_name', 'phone', 'email']) {
      expect(Buffer.isBuffer(row[col])).toBe(true);
      expect((row[col] as Buffer).toString('latin1')).not.toMatch(/Ioana|\+4072|example/i);
    }
  });
});

describe('Idempotency-Key on POST /v1/customers', () => {
  it('replays the first response for the same key and body, with one row', async () => {
    const key = randomUUID();
    const body = { displayName: 'Idem Potent', ...contact() };
    const first = await req('POST', '/v1/customers', tokens.staff, body, { 'idempotency-key': key });
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    // key order in the body doesn't matter
    const reordered = Object.fromEntries(Object.entries(body).reverse());
    const second = await req('POST', '/v1/customers', tokens.staff, reordered, { 'idempotency-key': key });
    expect(second.statusCode).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.headers.location).toBe(first.headers.location);
    expect(second.json()).toEqual(first.json());

    const { rows } = await a.adminQuery(
      `SELECT count(*)::int AS n FROM ${a.table('customers')} WHERE id = $1`,
      [first.json().id],
    );
    expect(rows[0]!.n).toBe(1);
    // the stored response holds no personal data in clear
    const stored = await a.adminQuery(
      `SELECT response::text AS r FROM ${a.table('idempotency_keys')} WHERE key = $1`,
      [key],
    );
    expect(stored.rows[0]!.r).not.toMatch(/Idem|Potent|example|\+4072/i);
  });

  it('refuses the same key with another body (409 IDEMPOTENCY_KEY_REUSED) and scopes keys per principal', async () => {
    const key = randomUUID();
    expect(
      (await req('POST', '/v1/customers', tokens.staff, contact(), { 'idempotency-key': key })).statusCode,
    ).toBe(201);
    const other = await req('POST', '/v1/customers', tokens.staff, contact(), { 'idempotency-key': key });
    expect(other.statusCode).toBe(409);
    expect(other.json().error.code).toBe('SIMPTU_ERR_IDEMPOTENCY_KEY_REUSED');
    // another principal's key of the same value is its own
    const admin = await req('POST', '/v1/customers', tokens.admin, contact(), { 'idempotency-key': key });
    expect(admin.statusCode).toBe(201);
    expect(admin.headers['idempotent-replayed']).toBeUndefined();
  });

  it('does not remember failed requests, and validates the key', async () => {
    const key = randomUUID();
    const c = contact();
    const bad = await req(
      'POST',
      '/v1/customers',
      tokens.staff,
      { ...c, email: 'nope' },
      { 'idempotency-key': key },
    );
    expect(bad.statusCode).toBe(400);
    const { rows } = await a.adminQuery(
      `SELECT count(*)::int AS n FROM ${a.table('idempotency_keys')} WHERE key = $1`,
      [key],
    );
    expect(rows[0]!.n).toBe(0);
    const tooLong = await req('POST', '/v1/customers', tokens.staff, c, {
      'idempotency-key': 'k'.repeat(201),
    });
    expect(tooLong.statusCode).toBe(400);
    expect(issuePaths(tooLong)).toContain('headers.idempotency-key');
  });
});

describe('GET and PATCH /v1/customers/:id', () => {
  it('lets staff and up read and edit anyone, a customer only themself (others → 404)', async () => {
    const me = await t.createCustomer(a, { displayName: 'Me', ...contact() });
    const other = await t.createCustomer(a, { displayName: 'Other', ...contact() });
    const mine = await t.tokenFor(a, { sub: me.id, roles: ['customer'] });
    for (const role of ['staff', 'admin', 'owner'] as const) {
      const res = await req('GET', `/v1/customers/${other.id}`, tokens[role]);
      expect(res.statusCode, role).toBe(200);
      expect(res.json()).toMatchObject({ id: other.id, displayName: 'Other', phone: other.phone });
    }
    expect((await req('GET', `/v1/customers/${me.id}`, mine)).json().displayName).toBe('Me');
    const peek = await req('GET', `/v1/customers/${other.id}`, mine);
    expect(peek.statusCode).toBe(404);
    expect(JSON.stringify(peek.json())).not.toContain('Other');
    expect(
      (await req('PATCH', `/v1/customers/${other.id}`, mine, { displayName: 'Hacked' })).statusCode,
    ).toBe(404);

    const selfEdit = await req('PATCH', `/v1/customers/${me.id}`, mine, {
      displayName: 'Me Too',
      birthDate: null,
    });
    expect(selfEdit.statusCode).toBe(200);
    expect(selfEdit.json()).toMatchObject({ displayName: 'Me Too', birthDate: null, phone: me.phone });
    const staffEdit = await req('PATCH', `/v1/customers/${other.id}`, tokens.staff, { email: null });
    expect(staffEdit.json().email).toBeNull();
    expect((await req('GET', `/v1/customers/${other.id}`, tokens.admin)).json().displayName).toBe('Other');

    // a token with no role of the matrix
    const nobody = await t.tokenFor(a, { sub: me.id, roles: [] });
    expect((await req('GET', `/v1/customers/${me.id}`, nobody)).statusCode).toBe(403);
  });

  it('answers unknown ids 404, malformed ids and bad patches 400, duplicates 409', async () => {
    const x = await t.createCustomer(a, contact());
    const y = await t.createCustomer(a, contact());
    expect((await req('GET', `/v1/customers/${randomUUID()}`, tokens.staff)).statusCode).toBe(404);
    expect(
      (await req('PATCH', `/v1/customers/${randomUUID()}`, tokens.staff, { displayName: 'N' })).statusCode,
    ).toBe(404);
    const malformed = await req('GET', '/v1/customers/123', tokens.staff);
    expect(malformed.statusCode).toBe(400);
    expect(issuePaths(malformed)).toContain('params.id');
    // an absurdly long id is refused by the router (414 URI Too Long): a 4xx either way
    const huge = await req('GET', `/v1/customers/${'f'.repeat(5000)}`, tokens.staff);
    expect([400, 414]).toContain(huge.statusCode);
    const empty = await req('PATCH', `/v1/customers/${x.id}`, tokens.staff, {});
    expect(empty.statusCode).toBe(400);
    const extra = await req('PATCH', `/v1/customers/${x.id}`, tokens.staff, { id: randomUUID() });
    expect(extra.statusCode).toBe(400);
    expect(issuePaths(extra)).toContain('body.id');
    const dup = await req('PATCH', `/v1/customers/${x.id}`, tokens.staff, { phone: y.phone });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error.code).toBe('SIMPTU_ERR_CUSTOMER_EXISTS');
  });
});

describe('GET /v1/customers?phone=|email=', () => {
  it('finds exactly, through the blind index, for staff and up', async () => {
    const c = contact();
    const created = await t.createCustomer(a, { displayName: 'Lookup', ...c });
    for (const role of ['staff', 'admin', 'owner'] as const) {
      const byPhone = await req(
        'GET',
        `/v1/customers?phone=${encodeURIComponent(c.phone.replace('+40', '0040'))}`,
        tokens[role],
      );
      expect(byPhone.statusCode, role).toBe(200);
      expect(byPhone.json().id).toBe(created.id);
    }
    const byEmail = await req(
      'GET',
      `/v1/customers?email=${encodeURIComponent(c.email.toUpperCase())}`,
      tokens.staff,
    );
    expect(byEmail.statusCode).toBe(200);
    expect(byEmail.json()).toMatchObject({ id: created.id, displayName: 'Lookup' });
    const none = await req(
      'GET',
      `/v1/customers?email=${encodeURIComponent('nobody@example.com')}`,
      tokens.staff,
    );
    expect(none.statusCode).toBe(404);
    expect(none.json().error.code).toBe('SIMPTU_ERR_NOT_FOUND');
  });

  it('refuses customers (403) and needs exactly one valid criterion (400)', async () => {
    const me = await t.createCustomer(a, contact());
    const mine = await t.tokenFor(a, { sub: me.id, roles: ['customer'] });
    expect((await req('GET', `/v1/customers?phone=${encodeURIComponent(me.phone!)}`, mine)).statusCode).toBe(
      403,
    );
    expect((await req('GET', '/v1/customers', tokens.staff)).statusCode).toBe(400);
    expect(
      (await req('GET', '/v1/customers?phone=%2B40721234567&email=a%40b.co', tokens.staff)).statusCode,
    ).toBe(400);
    const badPhone = await req('GET', '/v1/customers?phone=hello', tokens.staff);
    expect(badPhone.statusCode).toBe(400);
    expect(issuePaths(badPhone)).toContain('phone');
    expect((await req('GET', `/v1/customers?email=${'a'.repeat(300)}`, tokens.staff)).statusCode).toBe(400);
    expect((await req('GET', '/v1/customers?name=Ana', tokens.staff)).statusCode).toBe(400);
  });
});

describe('tenant isolation', () => {
  it("answers 404 with tenant A's token for tenant B's customers on every route", async () => {
    const c = contact();
    const theirs = await t.createCustomer(b, { displayName: 'B person', ...c });
    expect((await req('GET', `/v1/customers/${theirs.id}`, tokens.owner)).statusCode).toBe(404);
    expect(
      (await req('PATCH', `/v1/customers/${theirs.id}`, tokens.owner, { displayName: 'x' })).statusCode,
    ).toBe(404);
    expect(
      (await req('GET', `/v1/customers?phone=${encodeURIComponent(c.phone)}`, tokens.owner)).statusCode,
    ).toBe(404);
    expect(
      (await req('GET', `/v1/customers?email=${encodeURIComponent(c.email)}`, tokens.owner)).statusCode,
    ).toBe(404);
    // a customer token of A whose sub is B's customer id sees nothing either
    const forged = await t.tokenFor(a, { sub: theirs.id, roles: ['customer'] });
    expect((await req('GET', `/v1/customers/${theirs.id}`, forged)).statusCode).toBe(404);
    // the same phone is free in A (blind indexes are per tenant key)
    expect((await req('POST', '/v1/customers', tokens.staff, { phone: c.phone })).statusCode).toBe(201);
    const bToken = await t.tokenFor(b, { roles: ['staff'] });
    expect((await req('GET', `/v1/customers/${theirs.id}`, bToken)).json().displayName).toBe('B person');
  });
});
