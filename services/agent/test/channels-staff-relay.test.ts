/**
 * Staff replies reach customers on external channels (staff-relay.ts), end to end against real
 * Postgres, Kafka and Redis: the API service runs as its own PROCESS (staff reply through
 * `POST /v1/sessions/:id/staff-replies` with a signed staff token → message + outbox →
 * `io.simptu.message.created` on the domain topic), the agent runtime and the staff relay run in
 * this process, and messages leave through local contract servers (Twilio REST, Meta Graph for
 * the WhatsApp Cloud API, SMTP; channels-contracts.ts).
 *
 *  - SMS → the Twilio server, From the tenant's number; WhatsApp (conversation in through the
 *    Cloud API) → the Graph server from the tenant's phone_number_id; e-mail → SMTP, threaded on
 *    the conversation's e-mail thread (In-Reply-To the customer's latest mail, also one the
 *    agent left to staff; References every mail, theirs and ours), not marked automatic;
 *    web → nothing.
 *  - exactly once: the same event redelivered after a relay restart, and the same message under
 *    another event id, send nothing more;
 *  - isolation: an event of tenant A on B's topic is rejected; B's event naming A's message
 *    finds nothing in B; B's staff reply leaves from B's number;
 *  - staff messages older than the relay window are not sent.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendMessage,
  createCustomer,
  createSession,
  findCustomerByEmail,
  newCloudEvent,
  startTestIssuer,
  tenantTopics,
  toKafkaRecord,
  type CloudEvent,
  type TestIssuer,
} from '@simptu/common';
import { OutboundSender } from '../src/channels/outbound.ts';
import { MESSAGE_CREATED_TYPE, StaffRelay, type StaffRelayReport } from '../src/staff-relay.ts';
import {
  startMetaGraph,
  startSmtp,
  startTwilio,
  type MetaGraph,
  type SmtpCapture,
  type TwilioCapture,
} from './channels-contracts.ts';
import { ingestEmail, mime, startApi, type ApiProcess } from './channels-harness.ts';
import { env, startAgentHarness, waitFor, type AgentHarness, type TestTenant } from './support.ts';

const TWILIO = { accountSid: 'AC0123456789abcdef0123456789abcdef', authToken: 'tw-token' };
const WA = { appSecret: 'app-secret-r', token: 'wa-token-r', number: '3330003' };
const INGEST_SECRET = 'ingest-secret-r';
const DESK = 'desk@relay-a.example';
const A_NUMBER = '+40700000081';
const B_NUMBER = '+40700000082';

let h: AgentHarness;
let issuer: TestIssuer;
let graph: MetaGraph;
let smtp: SmtpCapture;
let twilio: TwilioCapture;
let api: ApiProcess;
let outbound: OutboundSender;
let relay: StaffRelay;
let groupId: string;
let A: TestTenant;
let B: TestTenant;
const reports: StaffRelayReport[] = [];
const redisClients: Redis[] = [];

function startRelay(): StaffRelay {
  return new StaffRelay({
    kafka: h.kafka,
    pool: h.pool,
    databaseUrl: h.platform.appUrl,
    keyrings: h.keyrings,
    outbound,
    select: { mode: 'pool' },
    groupId,
    registryRefreshMs: 1000,
    onOutcome: (r) => reports.push(r),
  });
}

beforeAll(async () => {
  issuer = await startTestIssuer();
  graph = await startMetaGraph({
    appSecret: WA.appSecret,
    whatsappNumbers: { [WA.number]: { token: WA.token, appSecret: WA.appSecret } },
  });
  smtp = await startSmtp();
  twilio = await startTwilio(TWILIO);

  const secrets: Record<string, Record<string, string>> = {
    tw: TWILIO,
    'fb-r': { appSecret: WA.appSecret, whatsappAccessToken: WA.token, pageAccessToken: 'pr' },
  };
  const redis = new Redis(env('REDIS_URL'));
  redisClients.push(redis);
  outbound = new OutboundSender({
    redis,
    redisPrefix: `test:relay:${randomBytes(4).toString('hex')}:`,
    secrets: { get: (n, k) => secrets[n]?.[k] },
    twilioBaseUrl: twilio.url,
    metaBaseUrl: graph.url,
    metaApiVersion: 'v21.0',
    ratePerMinute: 100,
    smtpUrl: smtp.url,
  });
  h = await startAgentHarness(
    [
      {
        displayName: 'Relay Dental A',
        integrations: {
          twilio: { phoneNumber: A_NUMBER, credentialsSecretRef: { name: 'tw' } },
          meta: {
            pageId: '100000000000071',
            whatsappPhoneNumberId: WA.number,
            credentialsSecretRef: { name: 'fb-r' },
          },
          email: { ingestAddress: DESK },
        },
      },
      {
        displayName: 'Relay Dental B',
        integrations: { twilio: { phoneNumber: B_NUMBER, credentialsSecretRef: { name: 'tw' } } },
      },
    ],
    { outbound },
  );
  [A, B] = h.tenants as [TestTenant, TestTenant];
  groupId = `agent-test-relay-${randomBytes(4).toString('hex')}`;
  relay = startRelay();
  await relay.start();
  api = await startApi(h, {
    issuer,
    secrets: { 'simptu-email-ingest': { [A.name]: INGEST_SECRET } },
  });
}, 300_000);

afterAll(async () => {
  await api?.close();
  await relay?.stop();
  await h?.close();
  outbound?.close();
  for (const r of redisClients) r.disconnect();
  await graph?.close();
  await smtp?.close();
  await twilio?.close();
  await issuer?.close();
}, 120_000);

// ---------------------------------------------------------------------------------------------

async function staffReply(t: TestTenant, sessionId: string, body: string): Promise<string> {
  const token = await issuer.signAccessToken({ tenant: t.name, sub: 'desk-maria', roles: ['staff'] });
  const res = await fetch(`${api.url}/v1/sessions/${sessionId}/staff-replies`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ body }),
  });
  const json = (await res.json()) as { id: string; role: string };
  expect(res.status, JSON.stringify(json)).toBe(201);
  expect(json.role).toBe('staff');
  return json.id;
}

/** The relay's report on a message (or event), once there is one matching. */
function reportOf(
  what: string,
  pred: (r: StaffRelayReport) => boolean,
  timeoutMs = 60_000,
): Promise<StaffRelayReport> {
  return waitFor(`the relay's report on ${what}`, () => reports.find(pred), timeoutMs);
}

/** The `io.simptu.message.created` event the API published for a message. */
function createdEvent(messageId: string): Promise<CloudEvent> {
  return waitFor(
    `the message.created event of ${messageId}`,
    () =>
      h.watcher.ofType(
        MESSAGE_CREATED_TYPE,
        (e) => (e.data as { message_id?: string }).message_id === messageId,
      )[0],
  );
}

async function outboundRows(t: TestTenant, sessionId: string) {
  const { rows } = await t.adminQuery<{ id: string; channel: string; status: string }>(
    `SELECT id, channel, status FROM ${t.table('outbound_messages')} WHERE session_id = $1 ORDER BY created_at`,
    [sessionId],
  );
  return rows;
}

let sms: { sessionId: string; messageId: string; text: string };

describe('staff replies reach the customer on the conversation’s channel', () => {
  it('SMS → Twilio, From the tenant’s number, once; the session is taken over', async () => {
    const { sessionId } = await h.newConversation(A, 'sms', '+40722000101');
    const text = 'Hello, Maria from the front desk: we moved you to 10:30.';
    const messageId = await staffReply(A, sessionId, text);
    sms = { sessionId, messageId, text };

    const sent = await waitFor('the SMS at Twilio', () => twilio.sent.find((p) => p.get('Body') === text));
    expect(sent.get('To')).toBe('+40722000101');
    expect(sent.get('From')).toBe(A_NUMBER);
    expect(await reportOf('the SMS', (r) => r.messageId === messageId)).toMatchObject({
      outcome: 'queued',
      tenant: A.name,
      channel: 'sms',
    });
    await waitFor('the row marked sent', async () =>
      (await outboundRows(A, sessionId))[0]?.status === 'sent' ? true : undefined,
    );
    expect(await outboundRows(A, sessionId)).toEqual([
      { id: expect.any(String), channel: 'sms', status: 'sent' },
    ]);
    const { rows } = await A.adminQuery<{ state: string }>(
      `SELECT state FROM ${A.table('sessions')} WHERE id = $1`,
      [sessionId],
    );
    expect(rows[0]!.state).toBe('human');
    expect(twilio.sent.filter((p) => p.get('Body') === text)).toHaveLength(1);
  }, 120_000);

  it('WhatsApp that came in through the Cloud API → the Graph server from the tenant’s number', async () => {
    const phone = '+40722000102';
    const sessionId = await A.run(async (ctx) => {
      const c = await createCustomer(ctx, { displayName: 'Ion', phone });
      const s = await createSession(ctx, { customerId: c.id, channel: 'whatsapp' });
      await ctx.client.query(
        `INSERT INTO inbound_receipts (provider, provider_message_id, session_id) VALUES ('meta', 'wamid.in-relay-1', $1)`,
        [s.id],
      );
      return s.id;
    });
    const text = 'Staff here: yes, we have parking behind the clinic.';
    const messageId = await staffReply(A, sessionId, text);
    const sent = await waitFor('the WhatsApp message at Graph', () =>
      graph.whatsapp.find((w) => w.body === text),
    );
    expect(sent).toMatchObject({ phoneNumberId: WA.number, to: '40722000102' });
    const req = graph.seen.find((r) => r.status === 200 && r.body.includes('parking behind'))!;
    expect(req.headers.authorization).toBe(`Bearer ${WA.token}`);
    // the tenant has Twilio too, but this conversation came in through Meta
    expect(twilio.sent.find((p) => p.get('Body') === text)).toBeUndefined();
    expect(await reportOf('the WhatsApp message', (r) => r.messageId === messageId)).toMatchObject({
      outcome: 'queued',
      channel: 'whatsapp',
    });
  }, 120_000);

  it('e-mail → SMTP, From the tenant’s address, threaded on the conversation, not marked automatic', async () => {
    const raw = mime(
      [
        'From: Elena Ionescu <elena@example.com>',
        `To: Relay Dental <${DESK}>`,
        'Subject: Booking question',
        'Message-ID: <e2.relay@mail.example.com>',
        'In-Reply-To: <e1.relay@mail.example.com>',
        'References: <e1.relay@mail.example.com>',
        'Content-Type: text/plain; charset=utf-8',
      ],
      'Can I bring my daughter to the same appointment?',
    );
    expect((await ingestEmail(api, A.name, INGEST_SECRET, raw)).status).toBe(202);
    // the agent answers first (automatic), then staff take over
    const auto = await waitFor('the agent’s reply by SMTP', () => smtp.to('elena@example.com')[0], 90_000);
    expect(auto.headers.get('auto-submitted')).toBe('auto-replied');
    const sessionId = await A.run(async (ctx) => {
      const c = await findCustomerByEmail(ctx, 'elena@example.com');
      const { rows } = await ctx.client.query<{ id: string }>(
        `SELECT id FROM sessions WHERE customer_id = $1 AND channel = 'email'`,
        [c!.id],
      );
      return rows[0]!.id;
    });
    const text = 'Of course — I have booked her right after you. Maria';
    const messageId = await staffReply(A, sessionId, text);
    const mail = await waitFor('the staff mail by SMTP', () =>
      smtp.to('elena@example.com').find((m) => m.text?.trim() === text),
    );
    expect(mail.from?.value).toEqual([{ address: DESK, name: 'Relay Dental A' }]);
    expect(mail.subject).toBe('Re: Booking question');
    expect(mail.inReplyTo).toBe('<e2.relay@mail.example.com>');
    // the agent's reply is part of the thread too
    expect(mail.references).toEqual([
      '<e1.relay@mail.example.com>',
      '<e2.relay@mail.example.com>',
      auto.messageId,
    ]);
    expect(mail.headers.get('auto-submitted')).toBeUndefined();
    expect(mail.headers.get('x-auto-response-suppress')).toBeUndefined();
    expect(mail.messageId).toMatch(/@relay-a\.example>$/);
    expect(mail.messageId).not.toBe(auto.messageId);
    expect(smtp.envelopes.filter((e) => e.to.includes('elena@example.com'))).toHaveLength(2);
    expect(await reportOf('the staff mail', (r) => r.messageId === messageId)).toMatchObject({
      outcome: 'queued',
      channel: 'email',
    });
  }, 180_000);

  it('e-mail: staff replies answer the customer’s latest mail — also one the agent left to staff — with the whole thread', async () => {
    const who = 'mihai@example.com';
    const ingest = (headers: string[], body: string) =>
      ingestEmail(
        api,
        A.name,
        INGEST_SECRET,
        mime([`From: Mihai <${who}>`, `To: ${DESK}`, ...headers], body),
      );
    expect(
      (await ingest(['Subject: Parking', 'Message-ID: <t1.thread@mail.example>'], 'Is there parking?'))
        .status,
    ).toBe(202);
    const auto = await waitFor('the agent’s reply', () => smtp.to(who)[0], 90_000);
    const sessionId = await A.run(async (ctx) => {
      const c = await findCustomerByEmail(ctx, who);
      const { rows } = await ctx.client.query<{ id: string }>(
        `SELECT id FROM sessions WHERE customer_id = $1 AND channel = 'email'`,
        [c!.id],
      );
      return rows[0]!.id;
    });
    const allSent = (n: number) =>
      waitFor(`${n} mails of the session marked sent`, async () => {
        const rows = await outboundRows(A, sessionId);
        return rows.length === n && rows.every((r) => r.status === 'sent') ? true : undefined;
      });
    const userMessages = (n: number) =>
      waitFor(`${n} mails of Mihai stored`, async () => {
        const { rows } = await A.adminQuery<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${A.table('messages')} WHERE session_id = $1 AND role = 'user'`,
          [sessionId],
        );
        return rows[0]!.n === n ? true : undefined;
      });
    await allSent(1);

    // Staff take over: the first staff mail answers the only mail so far.
    await staffReply(A, sessionId, 'Staff: yes, behind the clinic.');
    const s1 = await waitFor('the first staff mail', () =>
      smtp.to(who).find((m) => m.text?.includes('behind the clinic')),
    );
    expect(s1.inReplyTo).toBe('<t1.thread@mail.example>');
    expect(s1.references).toEqual(['<t1.thread@mail.example>', auto.messageId]);
    await allSent(2);

    // Mihai answers the staff mail; the conversation is staff's now, so the agent stays quiet.
    expect(
      (
        await ingest(
          [
            'Subject: Re: Parking',
            'Message-ID: <t2.thread@mail.example>',
            `In-Reply-To: ${s1.messageId}`,
            `References: <t1.thread@mail.example> ${auto.messageId} ${s1.messageId}`,
          ],
          'Great, and is it free?',
        )
      ).status,
    ).toBe(202);
    // … then his out-of-office notice, which a person's reply must not answer
    expect(
      (
        await ingest(
          [
            'Subject: Automatic reply: Re: Parking',
            'Message-ID: <ooo.thread@mail.example>',
            'Auto-Submitted: auto-replied',
          ],
          'I am away until Monday.',
        )
      ).status,
    ).toBe(202);
    await userMessages(3);

    await staffReply(A, sessionId, 'Staff: it is free for patients.');
    const s2 = await waitFor('the second staff mail', () =>
      smtp.to(who).find((m) => m.text?.includes('free for patients')),
    );
    expect(s2.inReplyTo).toBe('<t2.thread@mail.example>');
    expect(s2.references).toEqual([
      '<t1.thread@mail.example>',
      auto.messageId,
      s1.messageId,
      '<t2.thread@mail.example>',
    ]);
    expect(s2.subject).toBe('Re: Parking');
    expect(s2.headers.get('auto-submitted')).toBeUndefined();
    // the agent answered only the first mail
    expect(smtp.to(who).filter((m) => m.headers.get('auto-submitted') === 'auto-replied')).toHaveLength(1);
    await allSent(3);
  }, 180_000);

  it('e-mail conversation the agent never answered → unthreaded mail to the customer, Re: subject', async () => {
    const sessionId = await A.run(async (ctx) => {
      const c = await createCustomer(ctx, { displayName: 'Radu', email: 'radu@example.com' });
      return (await createSession(ctx, { customerId: c.id, channel: 'email', subject: 'Invoice' })).id;
    });
    const text = 'Your invoice is attached to your account page.';
    await staffReply(A, sessionId, text);
    const mail = await waitFor('the staff mail to Radu', () => smtp.to('radu@example.com')[0]);
    expect(mail.text?.trim()).toBe(text);
    expect(mail.subject).toBe('Re: Invoice');
    expect(mail.inReplyTo).toBeUndefined();
    expect(mail.from?.value[0]?.address).toBe(DESK);
  }, 120_000);

  it('staff e-mails are outside the per-recipient loop guard (meant for automatic replies)', async () => {
    const sessionId = await A.run(async (ctx) => {
      const c = await createCustomer(ctx, { displayName: 'Vlad', email: 'vlad@example.com' });
      return (await createSession(ctx, { customerId: c.id, channel: 'email', subject: 'Move' })).id;
    });
    // one more than the guard's default budget (10 e-mails to one address per hour)
    for (let i = 1; i <= 11; i++) await staffReply(A, sessionId, `Staff note ${i}`);
    await waitFor('11 rows handled', async () => {
      const rows = await outboundRows(A, sessionId);
      return rows.length === 11 && rows.every((r) => r.status !== 'pending') ? true : undefined;
    });
    expect((await outboundRows(A, sessionId)).map((r) => r.status)).toEqual(Array(11).fill('sent'));
    expect(
      smtp
        .to('vlad@example.com')
        .map((m) => m.text?.trim())
        .sort(),
    ).toEqual(Array.from({ length: 11 }, (_, i) => `Staff note ${i + 1}`).sort());
  }, 120_000);

  it('web chat: nothing is sent (the realtime hub delivers it)', async () => {
    const { sessionId } = await h.newConversation(A, 'web');
    const text = 'Web staff reply, stays on the web.';
    const messageId = await staffReply(A, sessionId, text);
    expect(await reportOf('the web message', (r) => r.messageId === messageId)).toMatchObject({
      outcome: 'skipped',
      reason: 'channel web',
    });
    expect(await outboundRows(A, sessionId)).toEqual([]);
    expect(twilio.sent.some((p) => p.get('Body') === text)).toBe(false);
    expect(graph.whatsapp.some((w) => w.body === text)).toBe(false);
    expect(smtp.messages.some((m) => m.text?.includes(text))).toBe(false);
  }, 60_000);
});

describe('exactly once', () => {
  it('a redelivered event (after a relay restart) and the same message under a new event id send nothing more', async () => {
    const event = await createdEvent(sms.messageId);
    await relay.stop();
    relay = startRelay();
    await relay.start();
    // the very same record again (an outbox re-publication / Kafka redelivery)
    await h.producer.forTenant(A.name).send(A.topics.domain, event, sms.sessionId);
    expect(
      await reportOf('the redelivered event', (r) => r.eventId === event.id && r.outcome === 'duplicate'),
    ).toMatchObject({ tenant: A.name });
    // the same message under another event id
    const copy = newCloudEvent({
      type: event.type,
      source: event.source,
      tenant: A.name,
      subject: sms.sessionId,
      data: event.data,
    });
    await h.producer.forTenant(A.name).send(A.topics.domain, copy, sms.sessionId);
    expect(await reportOf('the copy', (r) => r.eventId === copy.id)).toMatchObject({
      outcome: 'already-queued',
      messageId: sms.messageId,
    });
    expect(twilio.sent.filter((p) => p.get('Body') === sms.text)).toHaveLength(1);
    expect(await outboundRows(A, sms.sessionId)).toHaveLength(1);
  }, 120_000);
});

describe('tenant isolation', () => {
  it('A’s event on B’s topic is rejected; B’s event naming A’s message finds nothing; B sends from B', async () => {
    const event = await createdEvent(sms.messageId);
    // A's event, re-keyed, published raw on B's domain topic
    const forged = { ...event, id: randomUUID() };
    const producer = h.kafka.producer();
    await producer.connect();
    await producer.send({ topic: B.topics.domain, messages: [toKafkaRecord(forged, sms.sessionId)] });
    await producer.disconnect();
    expect(await reportOf('the forged event', (r) => r.eventId === forged.id)).toMatchObject({
      outcome: 'rejected',
    });

    // B's own event carrying A's session and message ids: looked up in B's schema → nothing
    const borrowed = newCloudEvent({
      type: MESSAGE_CREATED_TYPE,
      source: '/simptu/api',
      tenant: B.name,
      subject: sms.sessionId,
      data: { ...(event.data as object) },
    });
    await h.producer.forTenant(B.name).send(tenantTopics(B.name).domain, borrowed, sms.sessionId);
    expect(await reportOf('the borrowed ids', (r) => r.eventId === borrowed.id)).toMatchObject({
      outcome: 'skipped',
      tenant: B.name,
      reason: 'no such message in this tenant',
    });
    expect(twilio.sent.filter((p) => p.get('Body') === sms.text)).toHaveLength(1);
    const { rows } = await B.adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${B.table('outbound_messages')}`,
    );
    expect(rows[0]!.n).toBe(0);

    // positive control: B's staff reply leaves from B's number
    const { sessionId } = await h.newConversation(B, 'sms', '+40722000201');
    const text = 'B desk: see you tomorrow.';
    await staffReply(B, sessionId, text);
    const sent = await waitFor('B’s SMS', () => twilio.sent.find((p) => p.get('Body') === text));
    expect(sent.get('From')).toBe(B_NUMBER);
    expect(sent.get('To')).toBe('+40722000201');
  }, 120_000);
});

describe('relay window', () => {
  it('a staff message older than the window is not sent', async () => {
    const { sessionId } = await h.newConversation(A, 'sms', '+40722000103');
    const text = 'A reply written two days ago.';
    const event = await A.run(async (ctx) => {
      const m = await appendMessage(ctx, sessionId, { role: 'staff', body: text, author: 'desk-maria' });
      await ctx.client.query(`UPDATE messages SET created_at = now() - interval '2 days' WHERE id = $1`, [
        m.id,
      ]);
      return newCloudEvent({
        type: MESSAGE_CREATED_TYPE,
        source: '/simptu/api',
        tenant: A.name,
        subject: sessionId,
        data: { session_id: sessionId, message_id: m.id, role: 'staff', channel: 'sms' },
      });
    });
    await h.producer.forTenant(A.name).send(A.topics.domain, event, sessionId);
    expect(await reportOf('the old message', (r) => r.eventId === event.id)).toMatchObject({
      outcome: 'skipped',
      reason: 'older than the relay window',
    });
    expect(await outboundRows(A, sessionId)).toEqual([]);
    expect(twilio.sent.some((p) => p.get('Body') === text)).toBe(false);
  }, 60_000);
});
