/**
 * /v1/invitations against real Postgres/Redis/Kafka with tenants provisioned by the operator's
 * reconcilers: success, the role matrix, 400 with details, 404, 409, tenant isolation, tokens
 * hashed at rest, and no 5xx for any bad input.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvitation } from '@simptu/common';
import { caller } from './support/caller.ts';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const tokens = {} as Record<'owner' | 'admin' | 'staff' | 'customer' | 'ownerB', string>;
let bInvitationId: string;

const email = () => `inv-${randomUUID().slice(0, 8)}@example.com`;

const call = caller(() => t);

beforeAll(async () => {
  t = await buildTestApp({ waitForEvents: false });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  const customer = await t.createCustomer(a, { displayName: 'Ana' });
  tokens.owner = await t.tokenFor(a, { roles: ['owner'], sub: 'owner-a' });
  tokens.admin = await t.tokenFor(a, { roles: ['admin'], sub: 'admin-a' });
  tokens.staff = await t.tokenFor(a, { roles: ['staff'] });
  tokens.customer = await t.tokenFor(a, { roles: ['customer'], sub: customer.id });
  tokens.ownerB = await t.tokenFor(b, { roles: ['owner'] });
  const res = await call('POST', '/v1/invitations', tokens.ownerB, { email: email(), role: 'staff' });
  expect(res.status).toBe(201);
  bInvitationId = res.body.id;
}, 120_000);

afterAll(async () => {
  await t?.cleanup();
}, 60_000);

describe('POST /v1/invitations', () => {
  it('creates an invitation and returns the token once; the table holds its SHA-256 only', async () => {
    const addr = email();
    const res = await call('POST', '/v1/invitations', tokens.owner, {
      email: addr,
      phone: '+40 712 000 111',
      role: 'admin',
    });
    expect(res.status).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.location).toBe(`/v1/invitations/${res.body.id}`);
    expect(res.body).toMatchObject({
      email: addr,
      phone: '+40712000111',
      role: 'admin',
      status: 'pending',
      createdBy: 'owner-a',
    });
    expect(res.body.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(res.body.expiresAt) - Date.parse(res.body.createdAt)).toBe(7 * 24 * 3600 * 1000);
    const { rows } = await a.adminQuery(
      `SELECT token_hash, email FROM ${a.table('invitations')} WHERE id = $1`,
      [res.body.id],
    );
    expect(rows[0]!.token_hash.equals(createHash('sha256').update(res.body.token).digest())).toBe(true);
    expect(rows[0]!.email.includes(Buffer.from(addr))).toBe(false);
    // the token is never shown again
    const got = await call('GET', `/v1/invitations/${res.body.id}`, tokens.owner);
    expect(got.status).toBe(200);
    expect(got.body.token).toBeUndefined();
    expect(JSON.stringify(got.body).includes(res.body.token)).toBe(false);
    const list = await call('GET', '/v1/invitations?limit=100', tokens.owner);
    expect(JSON.stringify(list.body).includes(res.body.token)).toBe(false);
  });

  it('role matrix: owner → admin ok; admin → staff/customer ok, admin 403; staff, customer 403; no token 401', async () => {
    expect(
      (await call('POST', '/v1/invitations', tokens.admin, { email: email(), role: 'staff' })).status,
    ).toBe(201);
    expect(
      (await call('POST', '/v1/invitations', tokens.admin, { phone: '+40712000222', role: 'customer' }))
        .status,
    ).toBe(201);
    const adminAdmin = await call('POST', '/v1/invitations', tokens.admin, { email: email(), role: 'admin' });
    expect(adminAdmin.status).toBe(403);
    expect(adminAdmin.body.error.code).toBe('SIMPTU_ERR_FORBIDDEN');
    for (const who of ['staff', 'customer'] as const)
      expect(
        (await call('POST', '/v1/invitations', tokens[who], { email: email(), role: 'customer' })).status,
      ).toBe(403);
    expect(
      (await call('POST', '/v1/invitations', undefined, { email: email(), role: 'customer' })).status,
    ).toBe(401);
    for (const who of ['staff', 'customer'] as const) {
      expect((await call('GET', '/v1/invitations', tokens[who])).status).toBe(403);
      expect((await call('POST', `/v1/invitations/${randomUUID()}/revoke`, tokens[who])).status).toBe(403);
    }
  });

  it('400 with details for bad input, including inviting an owner', async () => {
    const owner = await call('POST', '/v1/invitations', tokens.owner, { email: email(), role: 'owner' });
    expect(owner.status).toBe(400);
    expect(owner.body.error.code).toBe('SIMPTU_ERR_VALIDATION');
    expect(owner.body.error.details.issues.length).toBeGreaterThan(0);
    const none = await call('POST', '/v1/invitations', tokens.owner, { role: 'staff' });
    expect(none.status).toBe(400);
    const badEmail = await call('POST', '/v1/invitations', tokens.owner, {
      email: 'not an address',
      role: 'staff',
    });
    expect(badEmail.status).toBe(400);
    expect(badEmail.body.error.details.issues).toEqual([
      { path: 'email', message: 'must be an e-mail address' },
    ]);
    const extra = await call('POST', '/v1/invitations', tokens.owner, {
      email: email(),
      role: 'staff',
      token: 'x',
    });
    expect(extra.status).toBe(400);
    expect(extra.body.error.details.issues.map((i: { path: string }) => i.path)).toContain('body.token');
    const far = await call('POST', '/v1/invitations', tokens.owner, {
      email: email(),
      role: 'staff',
      expiresAt: new Date(Date.now() + 31 * 24 * 3600 * 1000).toISOString(),
    });
    expect(far.status).toBe(400);
    expect(far.body.error.details.issues[0].path).toBe('expiresAt');
    const id = await call('POST', '/v1/invitations/not-a-uuid/revoke', tokens.owner);
    expect(id.status).toBe(400);
    expect(id.body.error.details.issues[0].path).toBe('params.id');
    expect((await call('GET', '/v1/invitations?limit=0', tokens.owner)).status).toBe(400);
    expect((await call('GET', '/v1/invitations?status=gone', tokens.owner)).status).toBe(400);
    expect((await call('GET', '/v1/invitations?cursor=garbage', tokens.owner)).status).toBe(400);
  });

  it('never answers a 5xx for junk bodies', async () => {
    const junk: unknown[] = [
      [],
      'text',
      null,
      42,
      { email: 'x'.repeat(10_000), role: 'staff' },
      { email: email(), role: 'staff', expiresAt: 'tomorrow' },
      { email: email(), role: 'staff', expiresAt: '2024-02-30T25:61:00Z' },
      { email: { $ne: 1 }, role: 'staff' },
      { phone: '+'.repeat(30), role: 'customer' },
      { email: email(), phone: null, role: 'staff' },
      { email: '\u0000@\u0000', role: 'staff' },
    ];
    for (const payload of junk) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/invitations',
        headers: { ...t.auth(tokens.owner), 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80)).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
      expect(res.json().error.code).toMatch(/^SIMPTU_ERR_/);
    }
  });

  it('409 for a second pending invitation to the same person', async () => {
    const addr = email();
    expect((await call('POST', '/v1/invitations', tokens.admin, { email: addr, role: 'staff' })).status).toBe(
      201,
    );
    const dup = await call('POST', '/v1/invitations', tokens.admin, {
      email: addr.toUpperCase(),
      role: 'customer',
    });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('SIMPTU_ERR_INVITATION_EXISTS');
  });
});

describe('GET /v1/invitations', () => {
  it('lists newest first with cursor pagination and filters', async () => {
    for (let i = 0; i < 3; i++)
      await call('POST', '/v1/invitations', tokens.admin, { email: email(), role: 'customer' });
    const p1 = await call('GET', '/v1/invitations?limit=2', tokens.admin);
    expect(p1.status).toBe(200);
    expect(p1.body.items).toHaveLength(2);
    expect(p1.body.nextCursor).toEqual(expect.any(String));
    const p2 = await call('GET', `/v1/invitations?limit=2&cursor=${p1.body.nextCursor}`, tokens.admin);
    expect(p2.body.items[0].createdAt <= p1.body.items[1].createdAt).toBe(true);
    expect(p2.body.items.map((i: { id: string }) => i.id)).not.toContain(p1.body.items[0].id);
    const customers = await call(
      'GET',
      '/v1/invitations?role=customer&status=pending&limit=100',
      tokens.admin,
    );
    expect(customers.body.items.length).toBeGreaterThanOrEqual(3);
    expect(
      customers.body.items.every(
        (i: { role: string; status: string }) => i.role === 'customer' && i.status === 'pending',
      ),
    ).toBe(true);
  });
});

describe('POST /v1/invitations/:id/revoke', () => {
  it('revokes idempotently; 404 unknown; 409 once accepted', async () => {
    const created = await call('POST', '/v1/invitations', tokens.admin, { email: email(), role: 'staff' });
    const r1 = await call('POST', `/v1/invitations/${created.body.id}/revoke`, tokens.admin);
    expect(r1.status).toBe(200);
    expect(r1.body.status).toBe('revoked');
    const r2 = await call('POST', `/v1/invitations/${created.body.id}/revoke`, tokens.owner);
    expect(r2.status).toBe(200);
    expect(r2.body).toEqual(r1.body);

    const unknown = await call('POST', `/v1/invitations/${randomUUID()}/revoke`, tokens.admin);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('SIMPTU_ERR_NOT_FOUND');
    expect((await call('GET', `/v1/invitations/${randomUUID()}`, tokens.admin)).status).toBe(404);

    const accepted = await call('POST', '/v1/invitations', tokens.admin, {
      email: email(),
      role: 'customer',
    });
    await a.run((ctx) => acceptInvitation(ctx, accepted.body.token, { acceptedBy: 'new-user' }));
    const refused = await call('POST', `/v1/invitations/${accepted.body.id}/revoke`, tokens.admin);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('SIMPTU_ERR_INVITATION_NOT_PENDING');
    const got = await call('GET', `/v1/invitations/${accepted.body.id}`, tokens.admin);
    expect(got.body).toMatchObject({ status: 'accepted', acceptedBy: 'new-user' });
  });
});

describe('tenant isolation', () => {
  it("tenant A's tokens never reach tenant B's invitations", async () => {
    expect((await call('GET', `/v1/invitations/${bInvitationId}`, tokens.owner)).status).toBe(404);
    expect((await call('POST', `/v1/invitations/${bInvitationId}/revoke`, tokens.owner)).status).toBe(404);
    const list = await call('GET', '/v1/invitations?limit=100', tokens.owner);
    expect(list.body.items.map((i: { id: string }) => i.id)).not.toContain(bInvitationId);
    // B's invitation is untouched
    const own = await call('GET', `/v1/invitations/${bInvitationId}`, tokens.ownerB);
    expect(own.status).toBe(200);
    expect(own.body.status).toBe('pending');
  });
});
