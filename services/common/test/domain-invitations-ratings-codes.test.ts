/**
 * Invitations (hashed single-use tokens, revoke rules, expiry), ratings (upsert, ownership,
 * aggregates) and patient access codes (alphabet, keyed hash at rest, attempt counting under
 * concurrency, lockout, expiry, single use) against a real PostgreSQL, as the tenant role.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FieldCipher, generateDek, TenantKeyring } from '../src/crypto/envelope.ts';
import {
  ACCESS_CODE_ALPHABET,
  AccessCodeErrors,
  generateAccessCode,
  issueAccessCode,
  listAccessCodes,
  normalizeAccessCode,
  revokeAccessCode,
  verifyAccessCode,
  getAccessCode,
} from '../src/domain/access-codes.ts';
import { createBooking } from '../src/domain/bookings.ts';
import {
  createResource,
  createService,
  setOpeningHours,
  setServiceResources,
} from '../src/domain/catalog.ts';
import type { DomainContext } from '../src/domain/context.ts';
import { createCustomer } from '../src/domain/customers.ts';
import {
  acceptInvitation,
  createInvitation,
  findInvitationByToken,
  invitableRolesFor,
  invitationFieldLocation,
  InvitationErrors,
  invitationStatus,
  INVITATION_EVENT_TYPES,
  listInvitations,
  revokeInvitation,
  type Actor,
} from '../src/domain/invitations.ts';
import { getRatingAggregate, getRating, listRatings, submitRating } from '../src/domain/ratings.ts';
import { createSession } from '../src/domain/sessions.ts';
import { ForbiddenError, NotFoundError, ValidationError, type SimptuError } from '../src/errors.ts';
import { outboxPayloadLocation } from '../src/events/outbox.ts';
import { createTestTenant, type TestTenant } from './support/tenant.ts';

let t: TestTenant;
const DAY = 24 * 60 * 60 * 1000;
const owner: Actor = { sub: 'owner-1', roles: ['owner'] };
const admin: Actor = { sub: 'admin-1', roles: ['admin'] };

const ctxOf = (client: pg.ClientBase, opts: { cipher?: FieldCipher; now?: Date } = {}): DomainContext => ({
  client,
  cipher: opts.cipher ?? t.cipher,
  timeZone: 'Europe/Bucharest',
  ...(opts.now ? { now: () => opts.now! } : {}),
});
const inTenant = <T>(
  fn: (ctx: DomainContext) => Promise<T>,
  opts: { cipher?: FieldCipher; now?: Date } = {},
) => t.run((c) => fn(ctxOf(c, opts)));

async function rejection(p: Promise<unknown>): Promise<SimptuError> {
  try {
    await p;
  } catch (err) {
    return err as SimptuError;
  }
  throw new Error('expected a rejection');
}

const uniqueEmail = () => `inv-${Math.random().toString(36).slice(2)}@example.com`;

beforeAll(async () => {
  t = await createTestTenant({ poolSize: 12 });
});

afterAll(async () => {
  await t?.close();
});

describe('invitations', () => {
  it('returns a random token once and stores only its SHA-256 and the encrypted contact', async () => {
    const email = uniqueEmail();
    const { invitation, token } = await inTenant((ctx) =>
      createInvitation(ctx, { email: email.toUpperCase(), phone: '+40 712 000 999', role: 'staff' }, admin),
    );
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    expect(invitation).toMatchObject({
      email,
      phone: '+40712000999',
      role: 'staff',
      status: 'pending',
      createdBy: 'admin-1',
    });
    const ttl = invitation.expiresAt.getTime() - invitation.createdAt.getTime();
    expect(ttl).toBe(7 * DAY);
    const { rows } = await t.admin.query(`SELECT * FROM ${t.table('invitations')} WHERE id = $1`, [
      invitation.id,
    ]);
    const row = rows[0];
    expect(row.token_hash.equals(createHash('sha256').update(token).digest())).toBe(true);
    const dump =
      JSON.stringify(row) +
      Object.values(row)
        .map((v) => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v)))
        .join('|');
    expect(dump.includes(token)).toBe(false);
    expect(row.email.includes(Buffer.from(email))).toBe(false);
    expect(row.phone.includes(Buffer.from('712000999'))).toBe(false);
    expect(row.email_bidx).toHaveLength(32);
    expect(t.cipher.decryptString(row.email, invitationFieldLocation(invitation.id, 'email'))).toBe(email);
    // two invitations never share a token
    const other = await inTenant((ctx) =>
      createInvitation(ctx, { email: uniqueEmail(), role: 'customer' }, admin),
    );
    expect(other.token).not.toBe(token);
    // the list never carries tokens or hashes
    const page = await inTenant((ctx) => listInvitations(ctx, { limit: 200 }));
    const listed = page.items.find((i) => i.id === invitation.id);
    expect(listed).toEqual(invitation);
    expect(JSON.stringify(page).includes(token)).toBe(false);
    expect(JSON.stringify(page)).not.toMatch(/token/i);
  });

  it('enforces who may invite whom and validates input', async () => {
    expect(invitableRolesFor(['owner'])).toEqual(['admin', 'staff', 'customer']);
    expect(invitableRolesFor(['admin'])).toEqual(['staff', 'customer']);
    expect(invitableRolesFor(['staff', 'customer'])).toEqual([]);
    const asAdmin = await rejection(
      inTenant((ctx) => createInvitation(ctx, { email: uniqueEmail(), role: 'admin' }, admin)),
    );
    expect(asAdmin).toBeInstanceOf(ForbiddenError);
    const byOwner = await inTenant((ctx) =>
      createInvitation(ctx, { email: uniqueEmail(), role: 'admin' }, owner),
    );
    expect(byOwner.invitation.role).toBe('admin');
    const ownerRole = await rejection(
      inTenant((ctx) => createInvitation(ctx, { email: uniqueEmail(), role: 'owner' as 'admin' }, owner)),
    );
    expect(ownerRole).toBeInstanceOf(ValidationError);
    expect(
      await rejection(
        inTenant((ctx) =>
          createInvitation(ctx, { email: uniqueEmail(), role: 'staff' }, { sub: 's', roles: ['staff'] }),
        ),
      ),
    ).toBeInstanceOf(ForbiddenError);
    const bad = (await rejection(
      inTenant((ctx) =>
        createInvitation(
          ctx,
          { email: 'nope', phone: '0712', role: 'staff', expiresAt: new Date(Date.now() + 31 * DAY) },
          owner,
        ),
      ),
    )) as ValidationError;
    expect(bad.issues.map((i) => i.path)).toEqual(['email', 'phone', 'expiresAt']);
    const none = (await rejection(
      inTenant((ctx) => createInvitation(ctx, { role: 'staff' }, owner)),
    )) as ValidationError;
    expect(none.issues.map((i) => i.path)).toEqual(['email']);
    const past = (await rejection(
      inTenant((ctx) =>
        createInvitation(
          ctx,
          { email: uniqueEmail(), role: 'staff', expiresAt: new Date(Date.now() - 1000) },
          owner,
        ),
      ),
    )) as ValidationError;
    expect(past.issues[0]!.path).toBe('expiresAt');
    const custom = new Date(Date.now() + 30 * DAY - 60_000);
    const ok = await inTenant((ctx) =>
      createInvitation(ctx, { email: uniqueEmail(), role: 'staff', expiresAt: custom }, owner),
    );
    expect(ok.invitation.expiresAt.getTime()).toBe(custom.getTime());
  });

  it('refuses a second pending invitation for the same contact, also between concurrent creates', async () => {
    const email = uniqueEmail();
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () =>
        inTenant((ctx) => createInvitation(ctx, { email, role: 'customer' }, admin)),
      ),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected')
        expect((r.reason as SimptuError).code).toBe(InvitationErrors.INVITATION_EXISTS.code);
    // after a revoke the person can be invited again
    const first = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof createInvitation>>>).value;
    await inTenant((ctx) => revokeInvitation(ctx, first.invitation.id));
    await inTenant((ctx) => createInvitation(ctx, { email: email.toUpperCase(), role: 'customer' }, admin));
  });

  it('accepts a token exactly once, also between concurrent accepts', async () => {
    const { invitation, token } = await inTenant((ctx) =>
      createInvitation(ctx, { phone: '+40712111222', role: 'customer' }, admin),
    );
    const found = await inTenant((ctx) => findInvitationByToken(ctx, token));
    expect(found).toMatchObject({ id: invitation.id, status: 'pending', phone: '+40712111222' });
    expect(
      await inTenant((ctx) =>
        findInvitationByToken(ctx, token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')),
      ),
    ).toBeNull();
    expect(await inTenant((ctx) => findInvitationByToken(ctx, 'short'))).toBeNull();

    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        inTenant((ctx) => acceptInvitation(ctx, token, { acceptedBy: `user-${i}` })),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') {
        expect((r.reason as SimptuError).code).toBe(InvitationErrors.INVITATION_NOT_PENDING.code);
        expect((r.reason as SimptuError).statusCode).toBe(409);
      }
    const accepted = await inTenant((ctx) => findInvitationByToken(ctx, token));
    expect(accepted?.status).toBe('accepted');
    expect(accepted?.acceptedBy).toMatch(/^user-\d$/);
    // unknown / malformed token: 404 without echoing the token
    const unknown = await rejection(inTenant((ctx) => acceptInvitation(ctx, 'x'.repeat(43))));
    expect(unknown).toBeInstanceOf(NotFoundError);
    expect(JSON.stringify(unknown.details ?? {}).includes('x'.repeat(43))).toBe(false);
    expect(await rejection(inTenant((ctx) => acceptInvitation(ctx, '')))).toBeInstanceOf(NotFoundError);
  });

  it('revoke: idempotent, kills the token, refused once accepted; unknown ids are 404', async () => {
    const a = await inTenant((ctx) => createInvitation(ctx, { email: uniqueEmail(), role: 'staff' }, admin));
    const r1 = await inTenant((ctx) => revokeInvitation(ctx, a.invitation.id));
    const r2 = await inTenant((ctx) => revokeInvitation(ctx, a.invitation.id));
    expect(r1.status).toBe('revoked');
    expect(r2).toEqual(r1);
    const refused = await rejection(inTenant((ctx) => acceptInvitation(ctx, a.token)));
    expect(refused.code).toBe(InvitationErrors.INVITATION_NOT_PENDING.code);
    expect(refused.details).toMatchObject({ status: 'revoked' });

    const b = await inTenant((ctx) => createInvitation(ctx, { email: uniqueEmail(), role: 'staff' }, admin));
    await inTenant((ctx) => acceptInvitation(ctx, b.token));
    const noRevoke = await rejection(inTenant((ctx) => revokeInvitation(ctx, b.invitation.id)));
    expect(noRevoke.code).toBe(InvitationErrors.INVITATION_NOT_PENDING.code);
    expect(noRevoke.statusCode).toBe(409);

    expect(
      await rejection(inTenant((ctx) => revokeInvitation(ctx, '00000000-0000-4000-8000-000000000000'))),
    ).toBeInstanceOf(NotFoundError);
    expect(await rejection(inTenant((ctx) => revokeInvitation(ctx, 'nope')))).toBeInstanceOf(ValidationError);

    // one event per change, encrypted, no token and no contact in it
    const { rows } = await t.admin.query(
      `SELECT id, event_type, payload FROM ${t.table('outbox')} WHERE aggregate_id = $1 ORDER BY seq`,
      [a.invitation.id],
    );
    expect(rows.map((r) => r.event_type)).toEqual([
      INVITATION_EVENT_TYPES.created,
      INVITATION_EVENT_TYPES.revoked,
    ]);
    const event = JSON.parse(t.cipher.decryptString(rows[0].payload, outboxPayloadLocation(rows[0].id)));
    expect(event).toMatchObject({
      type: INVITATION_EVENT_TYPES.created,
      data: { invitationId: a.invitation.id, role: 'staff', channels: ['email'] },
    });
    expect(JSON.stringify(event).includes(a.token)).toBe(false);
    expect(JSON.stringify(event).includes(a.invitation.email!)).toBe(false);
  });

  it('expires: status computed, accept after expiry is 410, list filters by status', async () => {
    const now = new Date();
    const { invitation, token } = await inTenant(
      (ctx) =>
        createInvitation(
          ctx,
          { email: uniqueEmail(), role: 'customer', expiresAt: new Date(now.getTime() + DAY) },
          admin,
        ),
      { now },
    );
    const later = new Date(now.getTime() + DAY + 1000);
    expect((await inTenant((ctx) => findInvitationByToken(ctx, token), { now: later }))?.status).toBe(
      'expired',
    );
    const err = await rejection(inTenant((ctx) => acceptInvitation(ctx, token), { now: later }));
    expect(err.code).toBe(InvitationErrors.INVITATION_EXPIRED.code);
    expect(err.statusCode).toBe(410);
    const expired = await inTenant((ctx) => listInvitations(ctx, { status: 'expired', limit: 200 }), {
      now: later,
    });
    expect(expired.items.map((i) => i.id)).toContain(invitation.id);
    const pending = await inTenant((ctx) => listInvitations(ctx, { status: 'pending', limit: 200 }), {
      now: later,
    });
    expect(pending.items.map((i) => i.id)).not.toContain(invitation.id);
    // still acceptable just before expiry
    expect(
      (await inTenant((ctx) => acceptInvitation(ctx, token), { now: new Date(now.getTime() + DAY - 1000) }))
        .status,
    ).toBe('accepted');
    expect(invitationStatus({ acceptedAt: null, revokedAt: null, expiresAt: now }, now)).toBe('expired');
  });

  it('paginates newest first with a cursor', async () => {
    for (let i = 0; i < 3; i++)
      await inTenant((ctx) => createInvitation(ctx, { email: uniqueEmail(), role: 'staff' }, admin));
    const all = await inTenant((ctx) => listInvitations(ctx, { limit: 200 }));
    const p1 = await inTenant((ctx) => listInvitations(ctx, { limit: 2 }));
    expect(p1.items.map((i) => i.id)).toEqual(all.items.slice(0, 2).map((i) => i.id));
    const p2 = await inTenant((ctx) => listInvitations(ctx, { limit: 2, cursor: p1.nextCursor! }));
    expect(p2.items.map((i) => i.id)).toEqual(all.items.slice(2, 4).map((i) => i.id));
    expect(await rejection(inTenant((ctx) => listInvitations(ctx, { cursor: 'garbage' })))).toBeInstanceOf(
      ValidationError,
    );
  });
});

describe('ratings', () => {
  let ana: string;
  let bob: string;
  let anaSession: string;
  let bobSession: string;
  let anaBooking: string;

  beforeAll(async () => {
    ({ ana, bob, anaSession, bobSession, anaBooking } = await inTenant(async (ctx) => {
      const a = await createCustomer(ctx, { displayName: 'Ana' });
      const b = await createCustomer(ctx, { displayName: 'Bob' });
      const s1 = await createSession(ctx, { channel: 'web', customerId: a.id });
      const s2 = await createSession(ctx, { channel: 'web', customerId: b.id });
      const service = await createService(ctx, {
        kind: 'treatment',
        name: 'Cleaning',
        durationMinutes: 30,
        priceCents: 25000,
        currency: 'RON',
      });
      const chair = await createResource(ctx, { kind: 'chair', name: 'Chair 1' });
      await setServiceResources(ctx, service.id, [chair.id]);
      await setOpeningHours(
        ctx,
        [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '00:00', closes: '24:00' })),
      );
      const start = new Date(Math.ceil((Date.now() + 2 * DAY) / 3_600_000) * 3_600_000);
      const { booking } = await createBooking(ctx, {
        customerId: a.id,
        serviceId: service.id,
        start,
        source: 'web',
      });
      return { ana: a.id, bob: b.id, anaSession: s1.id, bobSession: s2.id, anaBooking: booking.id };
    }));
  });

  it('one rating per customer and subject: a second submit edits it; comment encrypted', async () => {
    const first = await inTenant((ctx) =>
      submitRating(ctx, {
        customerId: ana,
        subjectType: 'session',
        subjectId: anaSession,
        score: 2,
        comment: 'Slow answers',
      }),
    );
    expect(first.created).toBe(true);
    expect(first.rating).toMatchObject({ score: 2, comment: 'Slow answers', customerId: ana });
    const later = new Date(Date.now() + 60_000);
    const second = await inTenant(
      (ctx) =>
        submitRating(ctx, {
          customerId: ana,
          subjectType: 'session',
          subjectId: anaSession.toUpperCase(),
          score: 4,
          comment: 'Better now',
        }),
      { now: later },
    );
    expect(second.created).toBe(false);
    expect(second.rating.id).toBe(first.rating.id);
    expect(second.rating).toMatchObject({ score: 4, comment: 'Better now' });
    expect(second.rating.createdAt).toEqual(first.rating.createdAt);
    expect(second.rating.updatedAt.getTime()).toBe(later.getTime());
    const { rows } = await t.admin.query(`SELECT comment FROM ${t.table('ratings')} WHERE subject_id = $1`, [
      anaSession,
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0].comment.includes(Buffer.from('Better'))).toBe(false);
    // clearing the comment
    const third = await inTenant((ctx) =>
      submitRating(ctx, { customerId: ana, subjectType: 'session', subjectId: anaSession, score: 5 }),
    );
    expect(third.rating.comment).toBeNull();
    expect(await inTenant((ctx) => getRating(ctx, first.rating.id, { customerId: ana }))).toEqual(
      third.rating,
    );
    expect(
      await rejection(inTenant((ctx) => getRating(ctx, first.rating.id, { customerId: bob }))),
    ).toBeInstanceOf(NotFoundError);
  });

  it('concurrent first submissions of the same subject leave one row', async () => {
    const staffId = `staff-${Math.random().toString(36).slice(2)}`;
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((score) =>
        inTenant((ctx) =>
          submitRating(ctx, { customerId: bob, subjectType: 'staff', subjectId: staffId, score }),
        ),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.rating.id)).size).toBe(1);
    const { rows } = await t.admin.query(
      `SELECT count(*)::int AS n FROM ${t.table('ratings')} WHERE subject_id = $1`,
      [staffId],
    );
    expect(rows[0].n).toBe(1);
  });

  it('a customer may rate only their own session or booking', async () => {
    expect(
      await rejection(
        inTenant((ctx) =>
          submitRating(ctx, { customerId: ana, subjectType: 'session', subjectId: bobSession, score: 1 }),
        ),
      ),
    ).toBeInstanceOf(NotFoundError);
    expect(
      await rejection(
        inTenant((ctx) =>
          submitRating(ctx, { customerId: bob, subjectType: 'booking', subjectId: anaBooking, score: 1 }),
        ),
      ),
    ).toBeInstanceOf(NotFoundError);
    expect(
      await rejection(
        inTenant((ctx) =>
          submitRating(ctx, { customerId: ana, subjectType: 'booking', subjectId: anaSession, score: 1 }),
        ),
      ),
    ).toBeInstanceOf(NotFoundError);
    const ok = await inTenant((ctx) =>
      submitRating(ctx, { customerId: ana, subjectType: 'booking', subjectId: anaBooking, score: 3 }),
    );
    expect(ok.created).toBe(true);
    const bad = (await rejection(
      inTenant((ctx) =>
        submitRating(ctx, {
          customerId: ana,
          subjectType: 'session',
          subjectId: 'abc',
          score: 6,
          comment: 'x'.repeat(2001),
        }),
      ),
    )) as ValidationError;
    expect(bad.issues.map((i) => i.path)).toEqual(['subjectId', 'score', 'comment']);
    expect(
      (
        (await rejection(
          inTenant((ctx) =>
            submitRating(ctx, {
              customerId: ana,
              subjectType: 'product' as 'staff',
              subjectId: 'x',
              score: 3,
            }),
          ),
        )) as ValidationError
      ).issues[0]!.path,
    ).toBe('subjectType');
    expect(
      await rejection(
        inTenant((ctx) =>
          submitRating(ctx, {
            customerId: '00000000-0000-4000-8000-000000000000',
            subjectType: 'staff',
            subjectId: 'x',
            score: 3,
          }),
        ),
      ),
    ).toBeInstanceOf(NotFoundError);
  });

  it('aggregates: average, count and distribution per subject and per type', async () => {
    const staffId = `staff-agg-${Math.random().toString(36).slice(2)}`;
    const scores = [5, 4, 4, 1];
    const customers = await inTenant(async (ctx) => {
      const ids: string[] = [];
      for (let i = 0; i < scores.length; i++)
        ids.push((await createCustomer(ctx, { displayName: `Rater ${i}` })).id);
      return ids;
    });
    for (const [i, score] of scores.entries())
      await inTenant((ctx) =>
        submitRating(ctx, { customerId: customers[i]!, subjectType: 'staff', subjectId: staffId, score }),
      );
    // an edit replaces, it doesn't add
    await inTenant((ctx) =>
      submitRating(ctx, { customerId: customers[3]!, subjectType: 'staff', subjectId: staffId, score: 2 }),
    );
    const agg = await inTenant((ctx) => getRatingAggregate(ctx, 'staff', staffId));
    expect(agg).toEqual({
      subjectType: 'staff',
      subjectId: staffId,
      count: 4,
      average: (5 + 4 + 4 + 2) / 4,
      distribution: { '1': 0, '2': 1, '3': 0, '4': 2, '5': 1 },
    });
    const none = await inTenant((ctx) => getRatingAggregate(ctx, 'staff', 'nobody-rated-me'));
    expect(none).toMatchObject({
      count: 0,
      average: null,
      distribution: { '1': 0, '2': 0, '3': 0, '4': 0, '5': 0 },
    });
    // per type: every staff rating in the tenant, checked against the table itself
    const byType = await inTenant((ctx) => getRatingAggregate(ctx, 'staff'));
    const { rows } = await t.admin.query(
      `SELECT count(*)::int AS n, avg(score)::float8 AS a FROM ${t.table('ratings')} WHERE subject_type = 'staff'`,
    );
    expect(byType.subjectId).toBeNull();
    expect(byType.count).toBe(rows[0].n);
    expect(byType.average).toBeCloseTo(rows[0].a, 10);
    expect(Object.values(byType.distribution).reduce((a, b) => a + b, 0)).toBe(byType.count);
  });

  it('lists with filters and scope', async () => {
    const mine = await inTenant((ctx) => listRatings(ctx, {}, { customerId: ana }));
    expect(mine.items.length).toBeGreaterThan(0);
    expect(mine.items.every((r) => r.customerId === ana)).toBe(true);
    const bookings = await inTenant((ctx) =>
      listRatings(ctx, { subjectType: 'booking', subjectId: anaBooking }),
    );
    expect(bookings.items.map((r) => r.subjectId)).toEqual([anaBooking]);
    const high = await inTenant((ctx) => listRatings(ctx, { minScore: 5, limit: 200 }));
    expect(high.items.every((r) => r.score === 5)).toBe(true);
    const bad = (await rejection(
      inTenant((ctx) => listRatings(ctx, { subjectId: 'x', minScore: 0 })),
    )) as ValidationError;
    expect(bad.issues.map((i) => i.path)).toEqual(['subjectId', 'minScore']);
  });
});

describe('access codes', () => {
  let patient: string;
  beforeAll(async () => {
    patient = (
      await inTenant((ctx) =>
        createCustomer(ctx, {
          displayName: 'Patient',
          birthDate: '1985-03-09',
          phone: '+40744555666',
          email: 'p@example.com',
        }),
      )
    ).id;
  });

  it('generates XXXX-XXXX from the unambiguous alphabet, uniformly enough', () => {
    expect(ACCESS_CODE_ALPHABET).toHaveLength(30);
    for (const ch of '01OILU') expect(ACCESS_CODE_ALPHABET.includes(ch)).toBe(false);
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const c = generateAccessCode();
      expect(c).toMatch(/^[23456789ABCDEFGHJKMNPQRSTVWXYZ]{4}-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{4}$/);
      for (const ch of c.replace('-', '')) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    }
    expect(counts.size).toBe(30);
    // 24000 symbols over 30: 800 expected each; ±25 % is > 8 sigma
    for (const n of counts.values()) expect(Math.abs(n - 800)).toBeLessThan(200);
    expect(normalizeAccessCode(' abcd-efgh ')).toBe('ABCDEFGH');
    expect(normalizeAccessCode('ABCD EFGH')).toBe('ABCDEFGH');
    expect(normalizeAccessCode('ABCD-EFG0')).toBeNull();
    expect(normalizeAccessCode('ABCD-EFG')).toBeNull();
    expect(normalizeAccessCode('ABCDEFGHJ')).toBeNull();
  });

  it('stores a keyed hash, never the code; the code is returned once and lists carry none', async () => {
    const { code, accessCode } = await inTenant((ctx) =>
      issueAccessCode(ctx, { customerId: patient }, { sub: 'staff-7' }),
    );
    expect(accessCode).toMatchObject({
      customerId: patient,
      status: 'active',
      attempts: 0,
      maxAttempts: 5,
      createdBy: 'staff-7',
    });
    expect(accessCode.expiresAt.getTime() - accessCode.createdAt.getTime()).toBe(DAY);
    const { rows } = await t.admin.query(`SELECT * FROM ${t.table('access_codes')} WHERE id = $1`, [
      accessCode.id,
    ]);
    const plain = code.replace('-', '');
    const stored: Buffer = rows[0].code_hash;
    expect(stored).toHaveLength(32);
    for (const v of Object.values(rows[0]))
      if (Buffer.isBuffer(v) || typeof v === 'string') {
        expect(String(Buffer.isBuffer(v) ? v.toString('latin1') : v).includes(plain)).toBe(false);
      }
    // not a plain hash of the code: a dump alone can't be searched offline
    for (const guess of [plain, code])
      for (const alg of ['sha256', 'sha3-256'])
        expect(stored.equals(createHash(alg).update(guess).digest())).toBe(false);
    // another tenant key makes another hash: the code doesn't verify there
    const stranger = new FieldCipher(new TenantKeyring(t.ref.name, [[1, generateDek()]]));
    expect(
      await inTenant((ctx) => verifyAccessCode(ctx, code, { secondFactor: { birthDate: '1985-03-09' } }), {
        cipher: stranger,
      }),
    ).toEqual({
      ok: false,
      reason: 'invalid',
    });
    const page = await inTenant((ctx) => listAccessCodes(ctx, { customerId: patient }));
    expect(page.items.map((c) => c.id)).toContain(accessCode.id);
    expect(JSON.stringify(page).includes(plain)).toBe(false);
    expect(JSON.stringify(page)).not.toMatch(/code_hash|codeHash/);
  });

  it('verifies once with the second factor (any spelling of the code), then is used', async () => {
    const { code, accessCode } = await inTenant((ctx) => issueAccessCode(ctx, { customerId: patient }));
    const typed = code.toLowerCase().replace('-', ' ');
    const ok = await inTenant((ctx) =>
      verifyAccessCode(ctx, typed, { secondFactor: { phone: '0040 744 555 666' } }),
    );
    expect(ok).toEqual({ ok: true, accessCodeId: accessCode.id, customerId: patient });
    const again = await inTenant((ctx) =>
      verifyAccessCode(ctx, code, { secondFactor: { phone: '+40744555666' } }),
    );
    expect(again).toEqual({ ok: false, reason: 'used', accessCodeId: accessCode.id });
    expect((await inTenant((ctx) => getAccessCode(ctx, accessCode.id))).status).toBe('used');
    // a used code can't be revoked
    const err = await rejection(inTenant((ctx) => revokeAccessCode(ctx, accessCode.id)));
    expect(err.code).toBe(AccessCodeErrors.ACCESS_CODE_USED.code);
    expect(err.statusCode).toBe(409);
    // other second factors, and a malformed one
    const e = await inTenant((ctx) => issueAccessCode(ctx, { customerId: patient }));
    expect(
      await inTenant((ctx) => verifyAccessCode(ctx, e.code, { secondFactor: { email: 'not-an-email' } })),
    ).toMatchObject({
      ok: false,
      reason: 'second_factor_mismatch',
      attemptsRemaining: 4,
    });
    expect(
      await inTenant((ctx) => verifyAccessCode(ctx, e.code, { secondFactor: { email: ' P@Example.com' } })),
    ).toMatchObject({ ok: true });
    // malformed or unknown codes count nothing and never throw
    expect(
      await inTenant((ctx) => verifyAccessCode(ctx, 'hello', { secondFactor: { birthDate: '1985-03-09' } })),
    ).toEqual({ ok: false, reason: 'invalid' });
    expect(
      await inTenant((ctx) =>
        verifyAccessCode(ctx, 'ZZZZ-ZZZZ', { secondFactor: { birthDate: '1985-03-09' } }),
      ),
    ).toEqual({ ok: false, reason: 'invalid' });
  });

  it('counts 10 concurrent wrong attempts exactly: max_attempts counted, then locked', async () => {
    const { code, accessCode } = await inTenant((ctx) =>
      issueAccessCode(ctx, { customerId: patient, maxAttempts: 5 }),
    );
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        inTenant((ctx) => verifyAccessCode(ctx, code, { secondFactor: { birthDate: '1985-03-10' } })),
      ),
    );
    const mismatches = results.filter((r) => !r.ok && r.reason === 'second_factor_mismatch');
    const locked = results.filter((r) => !r.ok && r.reason === 'locked');
    expect(mismatches).toHaveLength(5);
    expect(locked).toHaveLength(5);
    expect(mismatches.map((r) => (r.ok ? -1 : r.attemptsRemaining)).sort()).toEqual([0, 1, 2, 3, 4]);
    const { rows } = await t.admin.query(`SELECT attempts FROM ${t.table('access_codes')} WHERE id = $1`, [
      accessCode.id,
    ]);
    expect(rows[0].attempts).toBe(5);
    // locked: even the right second factor fails now
    expect(
      await inTenant((ctx) => verifyAccessCode(ctx, code, { secondFactor: { birthDate: '1985-03-09' } })),
    ).toEqual({
      ok: false,
      reason: 'locked',
      accessCodeId: accessCode.id,
      attemptsRemaining: 0,
    });
    expect((await inTenant((ctx) => getAccessCode(ctx, accessCode.id))).status).toBe('locked');
    const lockedList = await inTenant((ctx) => listAccessCodes(ctx, { status: 'locked', limit: 200 }));
    expect(lockedList.items.map((c) => c.id)).toContain(accessCode.id);
  });

  it('expires, revokes (idempotently), and validates issue input', async () => {
    const now = new Date();
    const { code, accessCode } = await inTenant(
      (ctx) =>
        issueAccessCode(ctx, { customerId: patient, expiresAt: new Date(now.getTime() + 60 * 60 * 1000) }),
      { now },
    );
    const later = new Date(now.getTime() + 60 * 60 * 1000 + 1);
    expect(
      await inTenant((ctx) => verifyAccessCode(ctx, code, { secondFactor: { birthDate: '1985-03-09' } }), {
        now: later,
      }),
    ).toEqual({
      ok: false,
      reason: 'expired',
      accessCodeId: accessCode.id,
    });
    const { rows } = await t.admin.query(
      `SELECT attempts, used_at FROM ${t.table('access_codes')} WHERE id = $1`,
      [accessCode.id],
    );
    expect(rows[0]).toEqual({ attempts: 0, used_at: null });

    const r = await inTenant((ctx) => issueAccessCode(ctx, { customerId: patient }));
    const rev1 = await inTenant((ctx) => revokeAccessCode(ctx, r.accessCode.id));
    expect(rev1.status).toBe('revoked');
    expect(await inTenant((ctx) => revokeAccessCode(ctx, r.accessCode.id))).toEqual(rev1);
    expect(
      await inTenant((ctx) => verifyAccessCode(ctx, r.code, { secondFactor: { birthDate: '1985-03-09' } })),
    ).toMatchObject({
      ok: false,
      reason: 'revoked',
    });
    const { rows: events } = await t.admin.query(
      `SELECT event_type FROM ${t.table('outbox')} WHERE aggregate_id = $1 ORDER BY seq`,
      [r.accessCode.id],
    );
    expect(events.map((e) => e.event_type)).toEqual([
      'io.simptu.access-code.issued',
      'io.simptu.access-code.revoked',
    ]);

    const bad = (await rejection(
      inTenant((ctx) =>
        issueAccessCode(ctx, {
          customerId: patient,
          maxAttempts: 0,
          expiresAt: new Date(Date.now() + 31 * DAY),
        }),
      ),
    )) as ValidationError;
    expect(bad.issues.map((i) => i.path)).toEqual(['expiresAt', 'maxAttempts']);
    expect(
      await rejection(
        inTenant((ctx) => issueAccessCode(ctx, { customerId: '00000000-0000-4000-8000-000000000000' })),
      ),
    ).toBeInstanceOf(NotFoundError);
    expect(
      await rejection(inTenant((ctx) => revokeAccessCode(ctx, '00000000-0000-4000-8000-000000000000'))),
    ).toBeInstanceOf(NotFoundError);
  });

  it('codes issued before a key rotation still verify', async () => {
    const { code } = await inTenant((ctx) => issueAccessCode(ctx, { customerId: patient }));
    const rotated = new FieldCipher(new TenantKeyring(t.ref.name, [...t.deks, [2, generateDek()]]));
    expect(
      await inTenant((ctx) => verifyAccessCode(ctx, code, { secondFactor: { birthDate: '1985-03-09' } }), {
        cipher: rotated,
      }),
    ).toMatchObject({ ok: true });
  });
});
