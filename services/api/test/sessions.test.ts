/**
 * /v1/sessions against real Postgres, Redis and Kafka, with tenants provisioned by the operator's
 * reconcilers: every route's success path, roles, 400 with details, 404, 409 on illegal state
 * transitions, tenant isolation, encryption at rest, the inbound outbox event on Kafka (body
 * encrypted), and agent replies consumed from Kafka exactly once.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import kafkajs, { type Consumer } from 'kafkajs';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventProducer,
  fromKafkaRecord,
  messageBodyLocation,
  newCloudEvent,
  type CloudEvent,
  type Customer,
} from '@simptu/common';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
let staffA: string;
let staffB: string;
let alice: Customer;
let bob: Customer;
let aliceToken: string;
let bobToken: string;

beforeAll(async () => {
  t = await buildTestApp({
    tenants: [{ businessType: 'dental', timezone: 'Europe/Bucharest' }, { businessType: 'gym' }],
  });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  staffA = await t.tokenFor(a, { roles: ['staff'] });
  staffB = await t.tokenFor(b, { roles: ['staff'] });
  alice = await t.createCustomer(a, { displayName: 'Alice' });
  bob = await t.createCustomer(a, { displayName: 'Bob' });
  aliceToken = await t.tokenFor(a, { sub: alice.id, roles: ['customer'] });
  bobToken = await t.tokenFor(a, { sub: bob.id, roles: ['customer'] });
});
afterAll(async () => {
  await t?.cleanup();
});

const inject = (method: 'GET' | 'POST', url: string, token?: string, payload?: Record<string, unknown>) => {
  const opts: InjectOptions = { method, url };
  if (token) opts.headers = t.auth(token);
  if (payload !== undefined) opts.payload = payload;
  return t.app.inject(opts);
};

async function newSession(token = aliceToken, body: Record<string, unknown> = {}) {
  const res = await inject('POST', '/v1/sessions', token, body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; customerId: string | null; state: string; channel: string };
}

describe('POST /v1/sessions', () => {
  it('a customer starts their own session (web), subject encrypted at rest', async () => {
    const s = await newSession(aliceToken, { subject: 'Toothache since Monday' });
    expect(s).toMatchObject({ customerId: alice.id, state: 'bot', channel: 'web' });
    const { rows } = await a.adminQuery<{ subject: Buffer }>(
      `SELECT subject FROM ${a.table('sessions')} WHERE id = $1`,
      [s.id],
    );
    expect(rows[0]!.subject.toString('latin1')).not.toContain('Toothache');
  });

  it('staff start one for a customer or an anonymous one', async () => {
    expect(await newSession(staffA, { customerId: bob.id, channel: 'phone' })).toMatchObject({
      customerId: bob.id,
      channel: 'phone',
    });
    expect(await newSession(staffA)).toMatchObject({ customerId: null, channel: 'staff' });
  });

  it('403 when a customer starts one for someone else; 404 for an unknown customer', async () => {
    expect((await inject('POST', '/v1/sessions', aliceToken, { customerId: bob.id })).statusCode).toBe(403);
    const res = await inject('POST', '/v1/sessions', staffA, { customerId: randomUUID() });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('SIMPTU_ERR_NOT_FOUND');
  });

  it('400 listing each schema violation', async () => {
    const res = await inject('POST', '/v1/sessions', staffA, {
      channel: 'pigeon',
      subject: '',
      customerId: 'x',
      extra: true,
    });
    expect(res.statusCode).toBe(400);
    const paths = res.json().error.details.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining(['body.channel', 'body.subject', 'body.customerId', 'body.extra']),
    );
  });

  it('401 without a token; 403 for a token without a role', async () => {
    expect((await inject('POST', '/v1/sessions', undefined, {})).statusCode).toBe(401);
    const none = await t.tokenFor(a, { roles: [] });
    expect((await inject('POST', '/v1/sessions', none, {})).statusCode).toBe(403);
  });
});

describe('GET /v1/sessions and /v1/sessions/:id', () => {
  it('customers see their own only; staff see all, filter by state and customer, page by cursor', async () => {
    const mine = await newSession(bobToken);
    const res = await inject('GET', '/v1/sessions?limit=100', bobToken);
    expect(res.statusCode).toBe(200);
    const items = res.json().items as Array<{ id: string; customerId: string }>;
    expect(items.map((s) => s.id)).toContain(mine.id);
    expect(items.every((s) => s.customerId === bob.id)).toBe(true);
    // asking for someone else's sessions gives nothing, not theirs
    const other = await inject('GET', `/v1/sessions?customerId=${alice.id}`, bobToken);
    expect(other.json().items).toEqual([]);

    const staff = await inject('GET', `/v1/sessions?customerId=${bob.id}&state=bot&limit=100`, staffA);
    expect(staff.json().items.map((s: { id: string }) => s.id)).toContain(mine.id);

    // cursor pagination over everything, one by one, no duplicates
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await inject('GET', `/v1/sessions?limit=1${cursor ? `&cursor=${cursor}` : ''}`, staffA);
      expect(page.statusCode).toBe(200);
      const body = page.json() as { items: Array<{ id: string }>; nextCursor: string | null };
      seen.push(...body.items.map((s) => s.id));
      cursor = body.nextCursor;
    } while (cursor);
    const all = await inject('GET', '/v1/sessions?limit=100', staffA);
    expect(seen).toEqual(all.json().items.map((s: { id: string }) => s.id));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('400 for a bad cursor or limit', async () => {
    expect((await inject('GET', '/v1/sessions?cursor=garbage', staffA)).statusCode).toBe(400);
    expect((await inject('GET', '/v1/sessions?limit=101', staffA)).statusCode).toBe(400);
  });

  it('gets one; another customer gets 404; unknown 404; malformed 400', async () => {
    const s = await newSession(aliceToken);
    expect((await inject('GET', `/v1/sessions/${s.id}`, aliceToken)).json()).toMatchObject({ id: s.id });
    expect((await inject('GET', `/v1/sessions/${s.id}`, staffA)).statusCode).toBe(200);
    expect((await inject('GET', `/v1/sessions/${s.id}`, bobToken)).statusCode).toBe(404);
    expect((await inject('GET', `/v1/sessions/${randomUUID()}`, staffA)).statusCode).toBe(404);
    const bad = await inject('GET', '/v1/sessions/not-a-uuid', staffA);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details.issues[0].path).toBe('params.id');
  });
});

describe('messages', () => {
  it('stores the customer message encrypted and returns the history decrypted, in order, paginated', async () => {
    const s = await newSession(aliceToken);
    const bodies = ['hello', 'I need an appointment', 'tomorrow?', 'thanks'];
    for (const body of bodies) {
      const r = await inject('POST', `/v1/sessions/${s.id}/messages`, aliceToken, { body });
      expect(r.statusCode, r.body).toBe(201);
      expect(r.json()).toMatchObject({ sessionId: s.id, role: 'user', body });
    }
    const { rows } = await a.adminQuery<{ id: string; body: Buffer }>(
      `SELECT id, body FROM ${a.table('messages')} WHERE session_id = $1`,
      [s.id],
    );
    expect(rows).toHaveLength(4);
    for (const r of rows) for (const body of bodies) expect(r.body.toString('latin1')).not.toContain(body);
    // a ciphertext copied to another row fails to decrypt: an error, not garbage
    await a.adminQuery(`UPDATE ${a.table('messages')} SET body = $1 WHERE id = $2`, [
      rows[0]!.body,
      rows[1]!.id,
    ]);
    const broken = await inject('GET', `/v1/sessions/${s.id}/messages`, aliceToken);
    expect(broken.statusCode).toBe(500);
    expect(broken.json().error.message).toBe('Internal server error');
    await a.adminQuery(`UPDATE ${a.table('messages')} SET body = $1 WHERE id = $2`, [
      rows[1]!.body,
      rows[1]!.id,
    ]);

    const newest = await inject('GET', `/v1/sessions/${s.id}/messages?limit=3`, aliceToken);
    expect(newest.statusCode).toBe(200);
    expect(newest.json().items.map((m: { body: string }) => m.body)).toEqual(bodies.slice(1));
    const back = await inject(
      'GET',
      `/v1/sessions/${s.id}/messages?limit=3&cursor=${newest.json().nextCursor}`,
      aliceToken,
    );
    expect(back.json()).toMatchObject({ items: [{ body: 'hello', seq: 1 }], nextCursor: null });
    const forward = await inject('GET', `/v1/sessions/${s.id}/messages?afterSeq=2&limit=1`, staffA);
    expect(forward.json().items.map((m: { seq: number }) => m.seq)).toEqual([3]);
    const next = await inject(
      'GET',
      `/v1/sessions/${s.id}/messages?limit=5&cursor=${forward.json().nextCursor}`,
      staffA,
    );
    expect(next.json().items.map((m: { seq: number }) => m.seq)).toEqual([4]);
    expect(
      (await inject('GET', `/v1/sessions/${s.id}/messages?cursor=x&afterSeq=1`, staffA)).statusCode,
    ).toBe(400);
    expect((await inject('GET', `/v1/sessions/${s.id}/messages`, bobToken)).statusCode).toBe(404);
  });

  it('roles and validation: staff use staff-replies (403 here), empty body 400, other customer 404', async () => {
    const s = await newSession(aliceToken);
    expect((await inject('POST', `/v1/sessions/${s.id}/messages`, staffA, { body: 'x' })).statusCode).toBe(
      403,
    );
    const empty = await inject('POST', `/v1/sessions/${s.id}/messages`, aliceToken, { body: '' });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error.details.issues[0].path).toBe('body.body');
    expect((await inject('POST', `/v1/sessions/${s.id}/messages`, bobToken, { body: 'hi' })).statusCode).toBe(
      404,
    );
    expect(
      (await inject('POST', `/v1/sessions/${randomUUID()}/messages`, aliceToken, { body: 'hi' })).statusCode,
    ).toBe(404);
  });
});

describe('state changes', () => {
  it('handover → staff reply (human) → close; illegal moves are 409', async () => {
    const s = await newSession(aliceToken);
    const h = await inject('POST', `/v1/sessions/${s.id}/handover`, aliceToken, { reason: 'I want a human' });
    expect(h.statusCode, h.body).toBe(200);
    expect(h.json().state).toBe('pending_human');
    // again: a no-op
    expect((await inject('POST', `/v1/sessions/${s.id}/handover`, aliceToken, {})).json().state).toBe(
      'pending_human',
    );

    expect(
      (await inject('POST', `/v1/sessions/${s.id}/staff-replies`, aliceToken, { body: 'x' })).statusCode,
    ).toBe(403);
    const staffSub = randomUUID();
    const staff = await t.tokenFor(a, { sub: staffSub, roles: ['staff'] });
    const r = await inject('POST', `/v1/sessions/${s.id}/staff-replies`, staff, { body: 'Hi, I am Maria' });
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json()).toMatchObject({ role: 'staff', author: staffSub, body: 'Hi, I am Maria' });
    const now = (await inject('GET', `/v1/sessions/${s.id}`, staffA)).json();
    expect(now).toMatchObject({ state: 'human', assignedTo: staffSub });

    // human → pending_human is not an edge of the state machine
    const illegal = await inject('POST', `/v1/sessions/${s.id}/handover`, aliceToken, {});
    expect(illegal.statusCode).toBe(409);
    expect(illegal.json().error).toMatchObject({
      code: 'SIMPTU_ERR_INVALID_STATE_TRANSITION',
      details: { from: 'human', to: 'pending_human' },
    });

    const history = (await inject('GET', `/v1/sessions/${s.id}/messages`, aliceToken)).json().items;
    expect(history.map((m: { role: string; body: string }) => [m.role, m.body])).toEqual([
      ['system', 'Handover requested: I want a human'],
      ['staff', 'Hi, I am Maria'],
    ]);

    expect((await inject('POST', `/v1/sessions/${s.id}/close`, aliceToken)).json().state).toBe('closed');
    expect((await inject('POST', `/v1/sessions/${s.id}/close`, staffA)).statusCode).toBe(200);
    const closed = await inject('POST', `/v1/sessions/${s.id}/messages`, aliceToken, { body: 'hello?' });
    expect(closed.statusCode).toBe(409);
    expect(closed.json().error.code).toBe('SIMPTU_ERR_SESSION_CLOSED');
    expect(
      (await inject('POST', `/v1/sessions/${s.id}/staff-replies`, staffA, { body: 'x' })).statusCode,
    ).toBe(409);
    expect((await inject('POST', `/v1/sessions/${s.id}/handover`, aliceToken, {})).statusCode).toBe(409);
  });

  it('a staff reply to a bot session takes it over directly', async () => {
    const s = await newSession(aliceToken);
    expect(
      (await inject('POST', `/v1/sessions/${s.id}/staff-replies`, staffA, { body: 'Taking over' }))
        .statusCode,
    ).toBe(201);
    expect((await inject('GET', `/v1/sessions/${s.id}`, staffA)).json().state).toBe('human');
  });

  it('another customer cannot close or hand over (404)', async () => {
    const s = await newSession(aliceToken);
    expect((await inject('POST', `/v1/sessions/${s.id}/close`, bobToken)).statusCode).toBe(404);
    expect((await inject('POST', `/v1/sessions/${s.id}/handover`, bobToken, {})).statusCode).toBe(404);
  });
});

describe('tenant isolation', () => {
  it("with tenant B's token every id of tenant A is 404 on every route", async () => {
    const s = await newSession(aliceToken);
    await inject('POST', `/v1/sessions/${s.id}/messages`, aliceToken, { body: 'secret' });
    const bCustomer = await t.createCustomer(b, { displayName: 'Eve' });
    const eve = await t.tokenFor(b, { sub: bCustomer.id, roles: ['customer'] });
    for (const token of [staffB, eve]) {
      expect((await inject('GET', `/v1/sessions/${s.id}`, token)).statusCode).toBe(404);
      expect((await inject('GET', `/v1/sessions/${s.id}/messages`, token)).statusCode).toBe(404);
      expect((await inject('POST', `/v1/sessions/${s.id}/close`, token)).statusCode).toBe(404);
      expect((await inject('POST', `/v1/sessions/${s.id}/handover`, token, {})).statusCode).toBe(404);
    }
    expect((await inject('POST', `/v1/sessions/${s.id}/messages`, eve, { body: 'x' })).statusCode).toBe(404);
    expect(
      (await inject('POST', `/v1/sessions/${s.id}/staff-replies`, staffB, { body: 'x' })).statusCode,
    ).toBe(404);
    expect(
      (await inject('GET', '/v1/sessions?limit=100', staffB)).json().items.map((x: { id: string }) => x.id),
    ).not.toContain(s.id);
    // a customer of A can't be named by B either
    expect((await inject('POST', '/v1/sessions', staffB, { customerId: alice.id })).statusCode).toBe(404);
    expect((await inject('GET', `/v1/sessions/${s.id}`, aliceToken)).statusCode).toBe(200);
  });
});

describe('Kafka', () => {
  let consumer: Consumer | undefined;
  let producer: EventProducer | undefined;
  afterAll(async () => {
    await consumer?.disconnect();
    await producer?.disconnect();
  });

  it('a customer message reaches simptu.t.<name>.inbound as io.simptu.message.received, body encrypted', async () => {
    const kafka = new kafkajs.Kafka({
      clientId: 'api-test',
      brokers: process.env.KAFKA_BROKERS!.split(','),
      logLevel: kafkajs.logLevel.NOTHING,
    });
    consumer = kafka.consumer({ groupId: `api-test-${randomBytes(6).toString('hex')}` });
    const seen: Array<{ raw: string; event: CloudEvent; key: string | undefined }> = [];
    await consumer.connect();
    await consumer.subscribe({ topic: a.topics.inbound, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const d = fromKafkaRecord({
          value: message.value,
          key: message.key,
          headers: message.headers as Record<string, unknown>,
        });
        if (d.ok) seen.push({ raw: message.value!.toString('utf8'), event: d.event, key: d.key });
      },
    });
    const s = await newSession(aliceToken);
    const body = `please call me at +40 721 ${randomBytes(3).toString('hex')}`;
    const m = (await inject('POST', `/v1/sessions/${s.id}/messages`, aliceToken, { body })).json() as {
      id: string;
      seq: number;
    };
    await expect
      .poll(() => seen.find((x) => (x.event.data as { message_id?: string }).message_id === m.id), {
        timeout: 30_000,
        interval: 250,
      })
      .toBeTruthy();
    const got = seen.find((x) => (x.event.data as { message_id?: string }).message_id === m.id)!;
    expect(got.event).toMatchObject({
      type: 'io.simptu.message.received',
      tenant: a.name,
      source: '/simptu/api',
    });
    expect(got.key).toBe(s.id);
    expect(got.event.data).toMatchObject({
      session_id: s.id,
      seq: m.seq,
      role: 'user',
      customer_id: alice.id,
    });
    expect(got.raw).not.toContain(body);
    const enc = (got.event.data as { body_enc: string }).body_enc;
    expect((await a.cipher()).decryptText(enc, messageBodyLocation(m.id))).toBe(body);
    // bound to the message: as another message's body it does not decrypt
    await expect(
      a.cipher().then((c) => c.decryptText(enc, messageBodyLocation(randomUUID()))),
    ).rejects.toThrow();
    // tenant B's key can't open it
    await expect(b.cipher().then((c) => c.decryptText(enc, messageBodyLocation(m.id)))).rejects.toThrow();
  });

  it('an agent reply on simptu.t.<name>.agent appears in the history exactly once, even delivered twice', async () => {
    const kafka = t.app.events.kafka;
    producer = new EventProducer({ kafka });
    const s = await newSession(aliceToken);
    await inject('POST', `/v1/sessions/${s.id}/messages`, aliceToken, { body: 'When are you open?' });
    const messageId = randomUUID();
    const reply = 'We are open 9 to 17.';
    const cipher = await a.cipher();
    const event = newCloudEvent({
      type: 'io.simptu.agent.message',
      source: '/simptu/agent',
      tenant: a.name,
      subject: s.id,
      data: {
        session_id: s.id,
        message_id: messageId,
        body_enc: cipher.encryptText(reply, messageBodyLocation(messageId)),
      },
    });
    const token = newCloudEvent({
      type: 'io.simptu.agent.token',
      source: '/simptu/agent',
      tenant: a.name,
      data: { session_id: s.id, delta: 'We', seq: 0 },
    });
    await producer.send(a.topics.agent, token, s.id);
    await producer.send(a.topics.agent, event, s.id);
    await producer.send(a.topics.agent, event, s.id); // redelivery: same event id
    const assistant = async () =>
      (
        (await inject('GET', `/v1/sessions/${s.id}/messages`, aliceToken)).json().items as Array<{
          role: string;
          body: string;
        }>
      ).filter((m) => m.role === 'assistant');
    await expect.poll(assistant, { timeout: 45_000, interval: 300 }).toHaveLength(1);
    // a later event proves both copies were consumed by now
    const later = newCloudEvent({
      type: 'io.simptu.agent.message',
      source: '/simptu/agent',
      tenant: a.name,
      data: { session_id: s.id, message_id: randomUUID(), body: 'Anything else?' },
    });
    await producer.send(a.topics.agent, later, s.id);
    await expect.poll(assistant, { timeout: 30_000, interval: 300 }).toHaveLength(2);
    const items = await assistant();
    expect(items.map((m) => m.body)).toEqual([reply, 'Anything else?']);
    // tokens are not history and leave no processed-event row
    const { rows } = await a.adminQuery(`SELECT 1 FROM ${a.table('processed_events')} WHERE event_id = $1`, [
      token.id,
    ]);
    expect(rows).toHaveLength(0);
  });
});
