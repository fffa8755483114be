/**
 * /v1/ratings against real Postgres/Redis/Kafka: submit (create 201 / edit 200), ownership,
 * the role matrix (staff can't rate; customers see their own), aggregates math and who may
 * read them, 400 with details, 404, tenant isolation, comment encrypted at rest, no 5xx.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSession } from '@simptu/common';
import { caller } from './support/caller.ts';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const tokens = {} as Record<
  'ana' | 'bob' | 'staff' | 'admin' | 'owner' | 'staffCustomer' | 'carolB' | 'staffB',
  string
>;
let ana: string;
let bob: string;
let anaSession: string;
let bobSession: string;
let bSession: string;
let bRatingId: string;

const call = caller(() => t);

beforeAll(async () => {
  t = await buildTestApp({ waitForEvents: false });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  ana = (await t.createCustomer(a, { displayName: 'Ana' })).id;
  bob = (await t.createCustomer(a, { displayName: 'Bob' })).id;
  anaSession = (await a.run((ctx) => createSession(ctx, { channel: 'web', customerId: ana }))).id;
  bobSession = (await a.run((ctx) => createSession(ctx, { channel: 'web', customerId: bob }))).id;
  tokens.ana = await t.tokenFor(a, { roles: ['customer'], sub: ana });
  tokens.bob = await t.tokenFor(a, { roles: ['customer'], sub: bob });
  tokens.staff = await t.tokenFor(a, { roles: ['staff'] });
  tokens.admin = await t.tokenFor(a, { roles: ['admin'] });
  tokens.owner = await t.tokenFor(a, { roles: ['owner'] });
  tokens.staffCustomer = await t.tokenFor(a, { roles: ['staff', 'customer'], sub: ana });
  const carol = (await t.createCustomer(b, { displayName: 'Carol' })).id;
  bSession = (await b.run((ctx) => createSession(ctx, { channel: 'web', customerId: carol }))).id;
  tokens.carolB = await t.tokenFor(b, { roles: ['customer'], sub: carol });
  tokens.staffB = await t.tokenFor(b, { roles: ['staff'] });
  const r = await call('POST', '/v1/ratings', tokens.carolB, {
    subjectType: 'session',
    subjectId: bSession,
    score: 5,
  });
  expect(r.status).toBe(201);
  bRatingId = r.body.id;
}, 120_000);

afterAll(async () => {
  await t?.cleanup();
}, 60_000);

describe('POST /v1/ratings', () => {
  it('creates (201) then edits (200) the one rating of a subject; comment encrypted at rest', async () => {
    const first = await call('POST', '/v1/ratings', tokens.ana, {
      subjectType: 'session',
      subjectId: anaSession,
      score: 3,
      comment: 'Quick but curt',
    });
    expect(first.status).toBe(201);
    expect(first.headers.location).toBe(`/v1/ratings/${first.body.id}`);
    expect(first.body).toMatchObject({
      customerId: ana,
      subjectType: 'session',
      subjectId: anaSession,
      score: 3,
      comment: 'Quick but curt',
    });
    const edit = await call('POST', '/v1/ratings', tokens.ana, {
      subjectType: 'session',
      subjectId: anaSession,
      score: 5,
      comment: 'Actually great',
    });
    expect(edit.status).toBe(200);
    expect(edit.body).toMatchObject({
      id: first.body.id,
      score: 5,
      comment: 'Actually great',
      createdAt: first.body.createdAt,
    });
    expect(edit.body.updatedAt >= first.body.updatedAt).toBe(true);
    const { rows } = await a.adminQuery(`SELECT comment FROM ${a.table('ratings')} WHERE id = $1`, [
      first.body.id,
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.comment.includes(Buffer.from('great'))).toBe(false);
  });

  it('a customer may rate only their own session; unknown subjects are 404', async () => {
    const other = await call('POST', '/v1/ratings', tokens.ana, {
      subjectType: 'session',
      subjectId: bobSession,
      score: 1,
    });
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('SIMPTU_ERR_NOT_FOUND');
    expect(
      (
        await call('POST', '/v1/ratings', tokens.ana, {
          subjectType: 'booking',
          subjectId: randomUUID(),
          score: 1,
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await call('POST', '/v1/ratings', tokens.bob, {
          subjectType: 'session',
          subjectId: bobSession,
          score: 2,
        })
      ).status,
    ).toBe(201);
  });

  it('staff, admins and owners cannot rate (also with a customer role); no token is 401', async () => {
    for (const who of ['staff', 'admin', 'owner', 'staffCustomer'] as const) {
      const res = await call('POST', '/v1/ratings', tokens[who], {
        subjectType: 'staff',
        subjectId: 'someone',
        score: 5,
      });
      expect(res.status, who).toBe(403);
      expect(res.body.error.code).toBe('SIMPTU_ERR_FORBIDDEN');
    }
    expect(
      (await call('POST', '/v1/ratings', undefined, { subjectType: 'staff', subjectId: 'x', score: 5 }))
        .status,
    ).toBe(401);
    // a customer token whose subject is not a customer id of the tenant
    const ghost = await t.tokenFor(a, { roles: ['customer'], sub: randomUUID() });
    expect(
      (await call('POST', '/v1/ratings', ghost, { subjectType: 'staff', subjectId: 'x', score: 5 })).status,
    ).toBe(404);
    const notUuid = await t.tokenFor(a, { roles: ['customer'], sub: 'not-a-uuid' });
    expect(
      (await call('POST', '/v1/ratings', notUuid, { subjectType: 'staff', subjectId: 'x', score: 5 })).status,
    ).toBe(403);
  });

  it('400 with details; never a 5xx', async () => {
    const bad = await call('POST', '/v1/ratings', tokens.ana, {
      subjectType: 'session',
      subjectId: anaSession,
      score: 6,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.issues[0].path).toBe('body.score');
    const notUuid = await call('POST', '/v1/ratings', tokens.ana, {
      subjectType: 'session',
      subjectId: 'abc',
      score: 4,
    });
    expect(notUuid.status).toBe(400);
    expect(notUuid.body.error.details.issues).toEqual([
      { path: 'subjectId', message: 'must be the session’s UUID' },
    ]);
    const junk: unknown[] = [
      {},
      [],
      'x',
      null,
      { subjectType: 'product', subjectId: 'x', score: 3 },
      { subjectType: 'staff', subjectId: '', score: 3 },
      { subjectType: 'staff', subjectId: 'x', score: 3.5 },
      { subjectType: 'staff', subjectId: ' padded ', score: 3 },
      { subjectType: 'staff', subjectId: 'x', score: 3, comment: 'x'.repeat(2001) },
      { subjectType: 'staff', subjectId: 'x'.repeat(201), score: 3 },
      { subjectType: 'staff', subjectId: 'x', score: 3, customerId: bob },
    ];
    for (const payload of junk) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/ratings',
        headers: { ...t.auth(tokens.ana), 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
      expect(res.statusCode, JSON.stringify(payload)).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
    }
  });
});

describe('GET /v1/ratings', () => {
  it('customers see their own; staff see all and filter; /:id is scoped the same way', async () => {
    const own = await call('GET', '/v1/ratings?limit=100', tokens.ana);
    expect(own.status).toBe(200);
    expect(own.body.items.length).toBeGreaterThan(0);
    expect(own.body.items.every((r: { customerId: string }) => r.customerId === ana)).toBe(true);
    // a customer can't widen the scope with a filter
    const sneaky = await call('GET', `/v1/ratings?customerId=${bob}`, tokens.ana);
    expect(sneaky.body.items).toEqual([]);
    const all = await call('GET', '/v1/ratings?limit=100', tokens.staff);
    const customers = new Set(all.body.items.map((r: { customerId: string }) => r.customerId));
    expect(customers.has(ana) && customers.has(bob)).toBe(true);
    const bobs = await call(
      'GET',
      `/v1/ratings?customerId=${bob}&subjectType=session&minScore=2&maxScore=2`,
      tokens.admin,
    );
    expect(bobs.body.items.map((r: { subjectId: string }) => r.subjectId)).toEqual([bobSession]);
    const anaRating = own.body.items[0];
    expect((await call('GET', `/v1/ratings/${anaRating.id}`, tokens.ana)).body).toEqual(anaRating);
    expect((await call('GET', `/v1/ratings/${anaRating.id}`, tokens.bob)).status).toBe(404);
    expect((await call('GET', `/v1/ratings/${anaRating.id}`, tokens.owner)).status).toBe(200);
    expect((await call('GET', `/v1/ratings/${randomUUID()}`, tokens.staff)).status).toBe(404);
    expect((await call('GET', '/v1/ratings/nope', tokens.staff)).status).toBe(400);
    const p1 = await call('GET', '/v1/ratings?limit=1', tokens.staff);
    expect(p1.body.nextCursor).toEqual(expect.any(String));
    const p2 = await call('GET', `/v1/ratings?limit=1&cursor=${p1.body.nextCursor}`, tokens.staff);
    expect(p2.body.items[0].id).not.toBe(p1.body.items[0].id);
    expect((await call('GET', '/v1/ratings?minScore=9', tokens.staff)).status).toBe(400);
    expect((await call('GET', '/v1/ratings?subjectId=x', tokens.staff)).status).toBe(400);
  });
});

describe('GET /v1/ratings/aggregates', () => {
  it('computes average, count and distribution; customers may read staff aggregates only', async () => {
    const staffSub = `dr-${randomUUID().slice(0, 8)}`;
    const raters = [];
    for (let i = 0; i < 3; i++) raters.push((await t.createCustomer(a, { displayName: `R${i}` })).id);
    const scores = [5, 4, 1];
    for (const [i, score] of scores.entries()) {
      const tok = await t.tokenFor(a, { roles: ['customer'], sub: raters[i] });
      expect(
        (await call('POST', '/v1/ratings', tok, { subjectType: 'staff', subjectId: staffSub, score })).status,
      ).toBe(201);
    }
    const agg = await call(
      'GET',
      `/v1/ratings/aggregates?subjectType=staff&subjectId=${staffSub}`,
      tokens.staff,
    );
    expect(agg.status).toBe(200);
    expect(agg.body).toEqual({
      subjectType: 'staff',
      subjectId: staffSub,
      count: 3,
      average: 10 / 3,
      distribution: { '1': 1, '2': 0, '3': 0, '4': 1, '5': 1 },
    });
    const asCustomer = await call(
      'GET',
      `/v1/ratings/aggregates?subjectType=staff&subjectId=${staffSub}`,
      tokens.bob,
    );
    expect(asCustomer.status).toBe(200);
    expect(asCustomer.body).toEqual(agg.body);
    expect(
      (await call('GET', `/v1/ratings/aggregates?subjectType=session&subjectId=${anaSession}`, tokens.ana))
        .status,
    ).toBe(403);
    const session = await call(
      'GET',
      `/v1/ratings/aggregates?subjectType=session&subjectId=${anaSession}`,
      tokens.staff,
    );
    expect(session.body).toMatchObject({ count: 1, average: 5 });
    const empty = await call('GET', '/v1/ratings/aggregates?subjectType=booking', tokens.owner);
    expect(empty.body).toMatchObject({ subjectId: null, count: 0, average: null });
    expect((await call('GET', '/v1/ratings/aggregates', tokens.staff)).status).toBe(400);
    expect(
      (await call('GET', '/v1/ratings/aggregates?subjectType=session&subjectId=abc', tokens.staff)).status,
    ).toBe(400);
    expect((await call('GET', '/v1/ratings/aggregates?subjectType=staff', undefined)).status).toBe(401);
  });
});

describe('tenant isolation', () => {
  it("tenant A's tokens never reach tenant B's ratings or sessions, and vice versa", async () => {
    expect((await call('GET', `/v1/ratings/${bRatingId}`, tokens.staff)).status).toBe(404);
    expect((await call('GET', `/v1/ratings/${bRatingId}`, tokens.owner)).status).toBe(404);
    const listA = await call('GET', '/v1/ratings?limit=100', tokens.owner);
    expect(listA.body.items.map((r: { id: string }) => r.id)).not.toContain(bRatingId);
    // A's customer rating B's session: not theirs, not in their tenant → 404
    expect(
      (
        await call('POST', '/v1/ratings', tokens.ana, {
          subjectType: 'session',
          subjectId: bSession,
          score: 1,
        })
      ).status,
    ).toBe(404);
    // B's aggregates are unaffected by A's ratings
    const aggB = await call('GET', '/v1/ratings/aggregates?subjectType=session', tokens.staffB);
    expect(aggB.body).toMatchObject({ count: 1, average: 5 });
  });
});
