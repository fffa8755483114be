/**
 * Customers (encrypted PII, blind-index lookups, key rotation) and chat sessions (encrypted
 * messages, seq, history pages, state machine) against a real PostgreSQL, as the tenant role.
 */
import net from 'node:net';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecryptionError, FieldCipher, generateDek, TenantKeyring } from '../src/crypto/envelope.ts';
import type { DomainContext } from '../src/domain/context.ts';
import {
  createCustomer,
  findCustomerByEmail,
  findCustomerByPhone,
  getCustomer,
  updateCustomer,
} from '../src/domain/customers.ts';
import { DomainErrors } from '../src/domain/errors.ts';
import {
  appendMessage,
  canTransition,
  createSession,
  getSession,
  listMessages,
  listSessions,
  onSessionsChanged,
  SESSION_VERSION_TTL_SECONDS,
  sessionVersionKey,
  setSessionState,
  trackSessionVersions,
  type SessionState,
} from '../src/domain/sessions.ts';
import { NotFoundError, ValidationError, type SimptuError } from '../src/errors.ts';
import { createTestTenant, type TestTenant } from './support/tenant.ts';

let t: TestTenant;

const ctxOf = (client: pg.ClientBase, cipher = t.cipher): DomainContext => ({
  client,
  cipher,
  timeZone: 'Europe/Bucharest',
});
const inTenant = <T>(fn: (ctx: DomainContext) => Promise<T>, cipher?: FieldCipher) =>
  t.run((c) => fn(ctxOf(c, cipher)));

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  t = await createTestTenant({ poolSize: 8 });
});

afterAll(async () => {
  await t?.close();
});

describe('customers', () => {
  it('stores every personal field as ciphertext and decrypts it on read', async () => {
    const c = await inTenant((ctx) =>
      createCustomer(ctx, {
        displayName: 'Ana Popescu',
        phone: '+40 712 345 678',
        email: 'Ana.Popescu@Example.RO',
        birthDate: '1990-05-17',
        locale: 'ro-ro',
      }),
    );
    expect(c).toMatchObject({
      displayName: 'Ana Popescu',
      phone: '+40712345678',
      email: 'ana.popescu@example.ro',
      birthDate: '1990-05-17',
      locale: 'ro-RO',
    });
    const { rows } = await t.admin.query(`SELECT * FROM ${t.table('customers')} WHERE id = $1`, [c.id]);
    const row = rows[0];
    for (const [col, plain] of [
      ['display_name', 'Ana Popescu'],
      ['phone', '+40712345678'],
      ['email', 'ana.popescu@example.ro'],
      ['birth_date', '1990-05-17'],
    ] as const) {
      expect(Buffer.isBuffer(row[col])).toBe(true);
      expect(row[col].includes(Buffer.from(plain))).toBe(false);
      expect(row[col].includes(Buffer.from(plain.slice(0, 6)))).toBe(false);
    }
    expect(row.phone_bidx).toHaveLength(32);
    expect(await inTenant((ctx) => getCustomer(ctx, c.id))).toEqual(c);
  });

  it('a ciphertext copied to another row or column fails to decrypt (DecryptionError), never garbage', async () => {
    const [a, b] = await inTenant(async (ctx) => [
      await createCustomer(ctx, { displayName: 'Alice', email: 'alice@example.com' }),
      await createCustomer(ctx, { displayName: 'Bob', email: 'bob@example.com' }),
    ]);
    // another row
    await t.admin.query(
      `UPDATE ${t.table('customers')} SET display_name = (SELECT display_name FROM ${t.table('customers')} WHERE id = $1) WHERE id = $2`,
      [a.id, b.id],
    );
    const err = await rejection(inTenant((ctx) => getCustomer(ctx, b.id)));
    expect(err).toBeInstanceOf(DecryptionError);
    expect((err as DecryptionError).reason).toBe('authentication-failed');
    // another column of the same row
    await t.admin.query(`UPDATE ${t.table('customers')} SET display_name = email WHERE id = $1`, [a.id]);
    expect(await rejection(inTenant((ctx) => getCustomer(ctx, a.id)))).toBeInstanceOf(DecryptionError);
    // another tenant's key: same table, same row id, still refused
    const stranger = new FieldCipher(new TenantKeyring(t.ref.name, [[1, generateDek()]]));
    const c = await inTenant((ctx) => createCustomer(ctx, { displayName: 'Carol' }));
    expect(await rejection(inTenant((ctx) => getCustomer(ctx, c.id), stranger))).toBeInstanceOf(
      DecryptionError,
    );
  });

  it('finds a customer by phone or e-mail through the blind index, in any common spelling', async () => {
    const c = await inTenant((ctx) =>
      createCustomer(ctx, { displayName: 'Dan', phone: '0040 (721) 000-111', email: 'dan@clinic.example' }),
    );
    expect(c.phone).toBe('+40721000111');
    expect((await inTenant((ctx) => findCustomerByPhone(ctx, '+40721000111')))?.id).toBe(c.id);
    expect((await inTenant((ctx) => findCustomerByPhone(ctx, '+40 721 000 111')))?.id).toBe(c.id);
    expect((await inTenant((ctx) => findCustomerByEmail(ctx, '  DAN@Clinic.Example ')))?.id).toBe(c.id);
    expect(await inTenant((ctx) => findCustomerByPhone(ctx, '+40721000112'))).toBeNull();
    expect(await inTenant((ctx) => findCustomerByEmail(ctx, 'dan@clinic.example.org'))).toBeNull();
    expect(await rejection(inTenant((ctx) => findCustomerByPhone(ctx, 'call me')))).toBeInstanceOf(
      ValidationError,
    );
  });

  it('keeps finding rows after a key rotation, and an update re-encrypts them under the new key', async () => {
    const c = await inTenant((ctx) => createCustomer(ctx, { displayName: 'Eva', phone: '+40730000001' }));
    const rotated = new FieldCipher(new TenantKeyring(t.ref.name, [...t.deks, [2, generateDek()]]));
    const found = await inTenant((ctx) => findCustomerByPhone(ctx, '+40730000001'), rotated);
    expect(found?.id).toBe(c.id);
    // uniqueness holds across key versions
    const dup = await rejection(
      inTenant((ctx) => createCustomer(ctx, { phone: '+40 730 000 001' }), rotated),
    );
    expect((dup as SimptuError).code).toBe(DomainErrors.CUSTOMER_EXISTS.code);
    const updated = await inTenant((ctx) => updateCustomer(ctx, c.id, { email: 'eva@example.com' }), rotated);
    expect(updated).toMatchObject({ displayName: 'Eva', phone: '+40730000001', email: 'eva@example.com' });
    const { rows } = await t.admin.query(
      `SELECT display_name, phone FROM ${t.table('customers')} WHERE id = $1`,
      [c.id],
    );
    expect(rows[0].display_name.readUInt32BE(1)).toBe(2); // key version in the stored format
    expect((await inTenant((ctx) => findCustomerByPhone(ctx, '+40730000001'), rotated))?.id).toBe(c.id);
    // the old keyring can't read what the new key wrote
    expect(await rejection(inTenant((ctx) => getCustomer(ctx, c.id)))).toBeInstanceOf(DecryptionError);
  });

  it('refuses a duplicate phone/e-mail (also between concurrent creates) and bad input', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () => inTenant((ctx) => createCustomer(ctx, { email: 'race@example.com' }))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected')
        expect((r.reason as SimptuError).code).toBe(DomainErrors.CUSTOMER_EXISTS.code);
    const bad = await rejection(
      inTenant((ctx) =>
        createCustomer(ctx, { phone: '0712', email: 'nope', birthDate: '1990-13-01', locale: '!!' }),
      ),
    );
    expect((bad as ValidationError).issues.map((i) => i.path)).toEqual([
      'phone',
      'email',
      'birthDate',
      'locale',
    ]);
    expect(
      await rejection(inTenant((ctx) => getCustomer(ctx, '00000000-0000-4000-8000-000000000000'))),
    ).toBeInstanceOf(NotFoundError);
  });
});

describe('sessions', () => {
  it('encrypts message bodies and numbers them 1, 2, 3 … even under concurrent appends', async () => {
    const s = await inTenant((ctx) => createSession(ctx, { channel: 'web', subject: 'Toothache, Ana' }));
    expect(s).toMatchObject({ state: 'bot', lastSeq: 0, subject: 'Toothache, Ana', customerId: null });
    const bodies = Array.from({ length: 12 }, (_, i) => `message number ${i}`);
    const appended = await Promise.all(
      bodies.map((body) => inTenant((ctx) => appendMessage(ctx, s.id, { role: 'user', body }))),
    );
    expect(appended.map((m) => m.seq).sort((a, b) => a - b)).toEqual(bodies.map((_, i) => i + 1));
    const { rows } = await t.admin.query<{ body: Buffer }>(
      `SELECT body FROM ${t.table('messages')} WHERE session_id = $1`,
      [s.id],
    );
    expect(rows).toHaveLength(12);
    for (const r of rows) expect(r.body.includes(Buffer.from('message number'))).toBe(false);
    const { rows: sub } = await t.admin.query(`SELECT subject FROM ${t.table('sessions')} WHERE id = $1`, [
      s.id,
    ]);
    expect(sub[0].subject.includes(Buffer.from('Toothache'))).toBe(false);
    expect((await inTenant((ctx) => getSession(ctx, s.id))).lastSeq).toBe(12);
  });

  it('pages history by seq: newest page first, then back; or forward from a seq', async () => {
    const s = await inTenant((ctx) => createSession(ctx, { channel: 'sms' }));
    await inTenant(async (ctx) => {
      for (let i = 1; i <= 7; i++)
        await appendMessage(ctx, s.id, { role: i % 2 ? 'user' : 'assistant', body: `m${i}` });
    });
    const newest = await inTenant((ctx) => listMessages(ctx, s.id, { limit: 3 }));
    expect(newest.messages.map((m) => m.body)).toEqual(['m5', 'm6', 'm7']);
    expect(newest).toMatchObject({ hasMore: true, nextCursor: 5 });
    const older = await inTenant((ctx) => listMessages(ctx, s.id, { limit: 3, beforeSeq: 5 }));
    expect(older.messages.map((m) => m.body)).toEqual(['m2', 'm3', 'm4']);
    const oldest = await inTenant((ctx) => listMessages(ctx, s.id, { limit: 3, beforeSeq: 2 }));
    expect(oldest).toMatchObject({ hasMore: false, nextCursor: null });
    expect(oldest.messages.map((m) => m.seq)).toEqual([1]);
    const forward = await inTenant((ctx) => listMessages(ctx, s.id, { afterSeq: 4, limit: 2 }));
    expect(forward.messages.map((m) => m.body)).toEqual(['m5', 'm6']);
    expect(forward).toMatchObject({ hasMore: true, nextCursor: 6 });
    const end = await inTenant((ctx) => listMessages(ctx, s.id, { afterSeq: 6, limit: 2 }));
    expect(end).toMatchObject({ hasMore: false, nextCursor: null });
    expect(end.messages.map((m) => m.role)).toEqual(['user']);
    const bad = await rejection(inTenant((ctx) => listMessages(ctx, s.id, { afterSeq: 1, beforeSeq: 3 })));
    expect(bad).toBeInstanceOf(ValidationError);
  });

  it('moves along the state machine and refuses illegal transitions with 409', async () => {
    expect(canTransition('bot', 'human')).toBe(false);
    expect(canTransition('pending_human', 'bot')).toBe(true);
    const s = await inTenant((ctx) => createSession(ctx, { channel: 'whatsapp' }));
    const step = (to: SessionState, assignedTo?: string) =>
      inTenant((ctx) => setSessionState(ctx, s.id, to, assignedTo ? { assignedTo } : {}));
    const illegal = await rejection(step('human'));
    expect((illegal as SimptuError).code).toBe(DomainErrors.INVALID_STATE_TRANSITION.code);
    expect((illegal as SimptuError).statusCode).toBe(409);
    expect((await step('pending_human')).state).toBe('pending_human');
    expect(await step('human', 'staff-7')).toMatchObject({ state: 'human', assignedTo: 'staff-7' });
    expect((await step('human')).assignedTo).toBe('staff-7'); // same state: no-op
    expect(await step('bot')).toMatchObject({ state: 'bot', assignedTo: null });
    const closed = await step('closed');
    expect(closed.closedAt).toBeInstanceOf(Date);
    for (const to of ['bot', 'pending_human', 'human'] as const)
      expect(((await rejection(step(to))) as SimptuError).code).toBe(
        DomainErrors.INVALID_STATE_TRANSITION.code,
      );
    const append = await rejection(
      inTenant((ctx) => appendMessage(ctx, s.id, { role: 'user', body: 'hello?' })),
    );
    expect((append as SimptuError).code).toBe(DomainErrors.SESSION_CLOSED.code);
  });

  it('scopes sessions to their customer and lists newest first with a cursor', async () => {
    const [c1, c2] = await inTenant(async (ctx) => [
      await createCustomer(ctx, { displayName: 'S1' }),
      await createCustomer(ctx, { displayName: 'S2' }),
    ]);
    const mine = await inTenant(async (ctx) => {
      const out = [];
      for (let i = 0; i < 3; i++) out.push(await createSession(ctx, { channel: 'web', customerId: c1.id }));
      return out;
    });
    const theirs = await inTenant((ctx) => createSession(ctx, { channel: 'web', customerId: c2.id }));
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await inTenant((ctx) =>
        listSessions(ctx, { limit: 2, ...(cursor ? { cursor } : {}) }, { customerId: c1.id }),
      );
      seen.push(...page.items.map((s) => s.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(new Set(seen)).toEqual(new Set(mine.map((s) => s.id)));
    expect(seen).toHaveLength(3);
    expect(
      await rejection(inTenant((ctx) => getSession(ctx, theirs.id, { customerId: c1.id }))),
    ).toBeInstanceOf(NotFoundError);
    expect(
      await rejection(
        inTenant((ctx) => appendMessage(ctx, theirs.id, { role: 'user', body: 'hi' }, { customerId: c1.id })),
      ),
    ).toBeInstanceOf(NotFoundError);
    expect(
      await rejection(inTenant((ctx) => listMessages(ctx, theirs.id, {}, { customerId: c1.id }))),
    ).toBeInstanceOf(NotFoundError);
  });
});

describe('session change tracking (the API history cache)', () => {
  it('tells listeners after COMMIT which sessions a transaction changed, once each, never on ROLLBACK', async () => {
    const heard: Array<{ tenant: string; ids: string[]; committed: number }> = [];
    const stop = onSessionsChanged(async (tenant, ids) => {
      // the change is visible to other connections when the listener runs
      const { rows } = await t.admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${t.table('messages')} WHERE session_id = ANY($1::uuid[])`,
        [ids],
      );
      heard.push({ tenant, ids: [...ids], committed: rows[0]!.n });
    });
    try {
      const s = await inTenant((ctx) => createSession(ctx, { channel: 'web' }));
      expect(heard).toEqual([{ tenant: t.ref.name, ids: [s.id], committed: 0 }]);
      await inTenant(async (ctx) => {
        await appendMessage(ctx, s.id, { role: 'user', body: 'one' });
        await appendMessage(ctx, s.id, { role: 'assistant', body: 'two' });
        expect(heard).toHaveLength(1); // nothing before COMMIT
      });
      expect(heard[1]).toEqual({ tenant: t.ref.name, ids: [s.id], committed: 2 });
      await rejection(
        inTenant(async (ctx) => {
          await appendMessage(ctx, s.id, { role: 'user', body: 'rolled back' });
          throw new Error('boom');
        }),
      );
      expect(heard).toHaveLength(2);
      await inTenant((ctx) => setSessionState(ctx, s.id, 'pending_human'));
      await inTenant((ctx) => setSessionState(ctx, s.id, 'pending_human')); // no change: no news
      await inTenant((ctx) => setSessionState(ctx, s.id, 'closed'));
      expect(heard.slice(2).map((h) => h.ids)).toEqual([[s.id], [s.id]]);
    } finally {
      stop();
    }
    await inTenant((ctx) => createSession(ctx, { channel: 'web' }));
    expect(heard).toHaveLength(4); // stopped listening
  });

  it('returns the session owner with the page, in one query; an empty session is an empty page', async () => {
    const c = await inTenant((ctx) => createCustomer(ctx, { displayName: 'Owner' }));
    const s = await inTenant((ctx) => createSession(ctx, { channel: 'web', customerId: c.id }));
    const empty = await inTenant((ctx) => listMessages(ctx, s.id, {}));
    expect(empty).toEqual({ messages: [], hasMore: false, nextCursor: null, customerId: c.id });
    await inTenant((ctx) => appendMessage(ctx, s.id, { role: 'user', body: 'hi' }));
    expect(await inTenant((ctx) => listMessages(ctx, s.id, { afterSeq: 1 }))).toMatchObject({
      messages: [],
      customerId: c.id,
    });
    const mine = await inTenant((ctx) => listMessages(ctx, s.id, {}, { customerId: c.id }));
    expect(mine.messages.map((m) => m.body)).toEqual(['hi']);
    const anon = await inTenant((ctx) => createSession(ctx, { channel: 'sms' }));
    expect((await inTenant((ctx) => listMessages(ctx, anon.id))).customerId).toBeNull();
    expect(
      await rejection(inTenant((ctx) => listMessages(ctx, anon.id, {}, { customerId: c.id }))),
    ).toBeInstanceOf(NotFoundError);
    expect(
      await rejection(inTenant((ctx) => listMessages(ctx, '00000000-0000-4000-8000-000000000000'))),
    ).toBeInstanceOf(NotFoundError);
  });
});

describe('trackSessionVersions (Redis)', () => {
  it('bumps the version after each commit, and retries a bump Redis did not get until it does', async () => {
    const redisUrl = process.env.REDIS_URL;
    if (!redisUrl) throw new Error('REDIS_URL is not set');
    const direct = new Redis(redisUrl);
    // A relay to the real Redis whose link can be cut.
    const target = new URL(redisUrl);
    let up = true;
    const sockets = new Set<net.Socket>();
    const relay = net.createServer((c) => {
      if (!up) return void c.destroy();
      const u = net.connect(Number(target.port || 6379), target.hostname);
      for (const s of [c, u]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
      c.pipe(u).pipe(c);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const viaRelay = new Redis(`redis://127.0.0.1:${(relay.address() as net.AddressInfo).port}`, {
      maxRetriesPerRequest: 1,
    });
    viaRelay.on('error', () => undefined);
    const failures: string[][] = [];
    const stop = trackSessionVersions(viaRelay, {
      retryMs: 50,
      onError: (_e, _t, ids) => failures.push([...ids]),
    });
    try {
      const s = await inTenant((ctx) => createSession(ctx, { channel: 'web' }));
      const key = sessionVersionKey(t.ref.name, s.id);
      const v1 = await direct.get(key);
      expect(v1).toEqual(expect.any(String));
      await inTenant((ctx) => appendMessage(ctx, s.id, { role: 'user', body: 'x' }));
      const v2 = await direct.get(key);
      expect(v2).not.toBe(v1);
      up = false;
      for (const sock of sockets) sock.destroy();
      await inTenant((ctx) => appendMessage(ctx, s.id, { role: 'user', body: 'y' }));
      expect(failures).toEqual([[s.id]]);
      expect(await direct.get(key)).toBe(v2); // not bumped yet
      up = true;
      await expect.poll(() => direct.get(key), { timeout: 20_000, interval: 50 }).not.toBe(v2);
      expect(await direct.ttl(key)).toBeGreaterThan(SESSION_VERSION_TTL_SECONDS - 60);
    } finally {
      stop();
      viaRelay.disconnect();
      direct.disconnect();
      await new Promise<void>((r) => relay.close(() => r()));
    }
  });
});
