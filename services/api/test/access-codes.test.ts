/**
 * /v1/access-codes against real Postgres/Redis/Kafka: issue (code shown once, keyed hash at
 * rest), list/get without codes, revoke (idempotent, 409 once used), the role matrix, 400 with
 * details, 404, tenant isolation, no 5xx for bad input.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAccessCode } from '@simptu/common';
import { caller } from './support/caller.ts';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const tokens = {} as Record<'staff' | 'admin' | 'owner' | 'customer' | 'staffB', string>;
let patient: string;
let bPatient: string;
let bCodeId: string;

const CODE_RE = /^[23456789ABCDEFGHJKMNPQRSTVWXYZ]{4}-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{4}$/;

const call = caller(() => t);

beforeAll(async () => {
  t = await buildTestApp({ waitForEvents: false });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  patient = (await t.createCustomer(a, { displayName: 'Patient', birthDate: '1980-01-31' })).id;
  tokens.staff = await t.tokenFor(a, { roles: ['staff'], sub: 'desk-1' });
  tokens.admin = await t.tokenFor(a, { roles: ['admin'] });
  tokens.owner = await t.tokenFor(a, { roles: ['owner'] });
  tokens.customer = await t.tokenFor(a, { roles: ['customer'], sub: patient });
  bPatient = (await t.createCustomer(b, { displayName: 'B patient' })).id;
  tokens.staffB = await t.tokenFor(b, { roles: ['staff'] });
  const r = await call('POST', '/v1/access-codes', tokens.staffB, { customerId: bPatient });
  expect(r.status).toBe(201);
  bCodeId = r.body.id;
}, 120_000);

afterAll(async () => {
  await t?.cleanup();
}, 60_000);

describe('POST /v1/access-codes', () => {
  it('issues a code shown once; only a keyed hash is stored', async () => {
    const res = await call('POST', '/v1/access-codes', tokens.staff, { customerId: patient });
    expect(res.status).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.location).toBe(`/v1/access-codes/${res.body.id}`);
    expect(res.body).toMatchObject({
      customerId: patient,
      status: 'active',
      attempts: 0,
      maxAttempts: 5,
      createdBy: 'desk-1',
    });
    expect(res.body.code).toMatch(CODE_RE);
    expect(Date.parse(res.body.expiresAt) - Date.parse(res.body.createdAt)).toBe(24 * 3600 * 1000);
    const { rows } = await a.adminQuery(`SELECT code_hash FROM ${a.table('access_codes')} WHERE id = $1`, [
      res.body.id,
    ]);
    const plain = res.body.code.replace('-', '');
    expect(rows[0]!.code_hash).toHaveLength(32);
    expect(rows[0]!.code_hash.equals(createHash('sha256').update(plain).digest())).toBe(false);
    expect(rows[0]!.code_hash.toString('latin1').includes(plain)).toBe(false);
    const got = await call('GET', `/v1/access-codes/${res.body.id}`, tokens.staff);
    expect(got.status).toBe(200);
    expect(got.body.code).toBeUndefined();
    const list = await call('GET', `/v1/access-codes?customerId=${patient}&limit=100`, tokens.admin);
    expect(list.body.items.map((c: { id: string }) => c.id)).toContain(res.body.id);
    expect(JSON.stringify(list.body).includes(plain)).toBe(false);
    // the code works for the SSO's exchange
    const v = await a.run((ctx) =>
      verifyAccessCode(ctx, res.body.code, { secondFactor: { birthDate: '1980-01-31' } }),
    );
    expect(v).toEqual({ ok: true, accessCodeId: res.body.id, customerId: patient });
  });

  it('honours expiresAt and maxAttempts; 400 with details for bad values; 404 unknown customer', async () => {
    const expiresAt = new Date(Date.now() + 2 * 3600 * 1000).toISOString();
    const ok = await call('POST', '/v1/access-codes', tokens.owner, {
      customerId: patient,
      expiresAt,
      maxAttempts: 3,
    });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ expiresAt, maxAttempts: 3 });
    const tooMany = await call('POST', '/v1/access-codes', tokens.staff, {
      customerId: patient,
      maxAttempts: 11,
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.details.issues[0].path).toBe('body.maxAttempts');
    const past = await call('POST', '/v1/access-codes', tokens.staff, {
      customerId: patient,
      expiresAt: new Date(Date.now() - 1000).toISOString(),
    });
    expect(past.status).toBe(400);
    expect(past.body.error.details.issues).toEqual([
      { path: 'expiresAt', message: 'must be at least 5 minutes in the future' },
    ]);
    const missing = await call('POST', '/v1/access-codes', tokens.staff, {});
    expect(missing.status).toBe(400);
    expect(missing.body.error.details.issues[0].path).toBe('body.customerId');
    const unknown = await call('POST', '/v1/access-codes', tokens.staff, { customerId: randomUUID() });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('SIMPTU_ERR_NOT_FOUND');
    const junk: unknown[] = [
      [],
      null,
      'x',
      { customerId: 'nope' },
      { customerId: patient, expiresAt: 'soon' },
      { customerId: patient, maxAttempts: 2.5 },
      { customerId: patient, maxAttempts: -1 },
      { customerId: patient, code: 'AAAA-AAAA' },
    ];
    for (const payload of junk) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/access-codes',
        headers: { ...t.auth(tokens.staff), 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
      expect(res.statusCode, JSON.stringify(payload)).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
    }
  });

  it('role matrix: staff, admin, owner issue, list, get, revoke; customers 403; no token 401', async () => {
    for (const who of ['staff', 'admin', 'owner'] as const) {
      const issued = await call('POST', '/v1/access-codes', tokens[who], { customerId: patient });
      expect(issued.status, who).toBe(201);
      expect((await call('GET', '/v1/access-codes', tokens[who])).status).toBe(200);
      expect((await call('GET', `/v1/access-codes/${issued.body.id}`, tokens[who])).status).toBe(200);
      expect((await call('POST', `/v1/access-codes/${issued.body.id}/revoke`, tokens[who])).status).toBe(200);
    }
    const mine = await call('POST', '/v1/access-codes', tokens.staff, { customerId: patient });
    expect((await call('POST', '/v1/access-codes', tokens.customer, { customerId: patient })).status).toBe(
      403,
    );
    expect((await call('GET', '/v1/access-codes', tokens.customer)).status).toBe(403);
    expect((await call('GET', `/v1/access-codes/${mine.body.id}`, tokens.customer)).status).toBe(403);
    expect((await call('POST', `/v1/access-codes/${mine.body.id}/revoke`, tokens.customer)).status).toBe(403);
    expect((await call('GET', '/v1/access-codes', undefined)).status).toBe(401);
  });
});

describe('GET /v1/access-codes', () => {
  it('filters by status and paginates', async () => {
    const revoked = await call('POST', '/v1/access-codes', tokens.staff, { customerId: patient });
    await call('POST', `/v1/access-codes/${revoked.body.id}/revoke`, tokens.staff);
    const list = await call('GET', '/v1/access-codes?status=revoked&limit=100', tokens.staff);
    expect(list.status).toBe(200);
    expect(list.body.items.map((c: { id: string }) => c.id)).toContain(revoked.body.id);
    expect(list.body.items.every((c: { status: string }) => c.status === 'revoked')).toBe(true);
    const p1 = await call('GET', '/v1/access-codes?limit=1', tokens.staff);
    const p2 = await call('GET', `/v1/access-codes?limit=1&cursor=${p1.body.nextCursor}`, tokens.staff);
    expect(p2.status).toBe(200);
    expect(p2.body.items[0].id).not.toBe(p1.body.items[0].id);
    for (const q of ['status=gone', 'limit=0', 'limit=1000', 'customerId=x', 'cursor=%00', 'extra=1'])
      expect((await call('GET', `/v1/access-codes?${q}`, tokens.staff)).status, q).toBe(400);
  });
});

describe('POST /v1/access-codes/:id/revoke', () => {
  it('revokes idempotently; 404 unknown; 400 malformed id; 409 once used', async () => {
    const issued = await call('POST', '/v1/access-codes', tokens.staff, { customerId: patient });
    const r1 = await call('POST', `/v1/access-codes/${issued.body.id}/revoke`, tokens.staff);
    expect(r1.status).toBe(200);
    expect(r1.body.status).toBe('revoked');
    const r2 = await call('POST', `/v1/access-codes/${issued.body.id}/revoke`, tokens.admin);
    expect(r2.body).toEqual(r1.body);
    expect((await call('POST', `/v1/access-codes/${randomUUID()}/revoke`, tokens.staff)).status).toBe(404);
    expect((await call('GET', `/v1/access-codes/${randomUUID()}`, tokens.staff)).status).toBe(404);
    expect((await call('POST', '/v1/access-codes/123/revoke', tokens.staff)).status).toBe(400);

    const used = await call('POST', '/v1/access-codes', tokens.staff, { customerId: patient });
    await a.run((ctx) =>
      verifyAccessCode(ctx, used.body.code, { secondFactor: { birthDate: '1980-01-31' } }),
    );
    const refused = await call('POST', `/v1/access-codes/${used.body.id}/revoke`, tokens.staff);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('SIMPTU_ERR_ACCESS_CODE_USED');
  });
});

describe('tenant isolation', () => {
  it("tenant A's tokens never reach tenant B's codes or customers", async () => {
    expect((await call('GET', `/v1/access-codes/${bCodeId}`, tokens.owner)).status).toBe(404);
    expect((await call('POST', `/v1/access-codes/${bCodeId}/revoke`, tokens.owner)).status).toBe(404);
    expect((await call('POST', '/v1/access-codes', tokens.staff, { customerId: bPatient })).status).toBe(404);
    const list = await call('GET', `/v1/access-codes?customerId=${bPatient}`, tokens.admin);
    expect(list.body.items).toEqual([]);
    const own = await call('GET', `/v1/access-codes/${bCodeId}`, tokens.staffB);
    expect(own.body.status).toBe('active');
  });
});
