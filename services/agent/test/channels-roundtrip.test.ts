/**
 * Channel round trips end to end, against real Postgres, Kafka and Redis: the API service runs
 * as its own PROCESS (its webhooks verify signatures and write the conversation + outbox), the
 * agent runtime runs in this process, and replies leave through local contract servers (Meta
 * Graph for the WhatsApp Cloud API, an SMTP server for e-mail; channels-contracts.ts).
 *
 *  - WhatsApp Cloud API: a signed `whatsapp_business_account` webhook → conversation → the
 *    agent's reply sent from THAT tenant's phone_number_id with that tenant's token; a replayed
 *    wamid is processed once; another tenant's phone_number_id is refused (403, nothing
 *    published); a photo reaches the agent as a description and is answered, a reaction is
 *    kept for staff and not answered.
 *  - E-mail: raw MIME through the ingest webhook → conversation → the reply received by SMTP,
 *    threaded (In-Reply-To, References, `Re:`), From the tenant's address; machine-written mail
 *    (auto-reply, list, bounce, our own address) gets no reply.
 *  - The outbound sender itself: per-tenant rate limit, the per-recipient e-mail loop guard,
 *    Twilio vs Cloud API routing for WhatsApp, and no SMTP server configured.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCustomer,
  createSession,
  findCustomerByEmail,
  getCustomer,
  messageBodyLocation,
  type CloudEvent,
} from '@simptu/common';
import { parseEmail } from '../src/channels/email.ts';
import { OutboundSender, queueEmailReply, queueOutbound } from '../src/channels/outbound.ts';
import { toAgentTenant } from '../src/registry.ts';
import {
  startMetaGraph,
  startSmtp,
  startTwilio,
  type MetaGraph,
  type SmtpCapture,
  type TwilioCapture,
} from './channels-contracts.ts';
import {
  ingestEmail,
  metaSignature as sign,
  mime,
  postMeta as postMetaTo,
  startApi,
  type ApiProcess,
} from './channels-harness.ts';
import { env, startAgentHarness, waitFor, type AgentHarness, type TestTenant } from './support.ts';

const A = {
  appSecret: 'app-secret-a',
  verifyToken: 'verify-a',
  whatsappAccessToken: 'wa-token-a',
  number: '1110001',
};
const B = {
  appSecret: 'app-secret-b',
  verifyToken: 'verify-b',
  whatsappAccessToken: 'wa-token-b',
  number: '2220002',
};
const TWILIO = { accountSid: 'AC0123456789abcdef0123456789abcdef', authToken: 'tw-token' };
const INGEST_SECRET = 'ingest-secret';
const DESK = 'desk@smile.example';

let h: AgentHarness;
let graph: MetaGraph;
let smtp: SmtpCapture;
let twilio: TwilioCapture;
let api: ApiProcess;
let waA: TestTenant;
let waB: TestTenant;
let mail: TestTenant;
let direct: TestTenant;
const redisClients: Redis[] = [];
const newRedis = () => {
  const r = new Redis(env('REDIS_URL'));
  redisClients.push(r);
  return r;
};

beforeAll(async () => {
  graph = await startMetaGraph({
    appSecret: A.appSecret,
    whatsappNumbers: {
      [A.number]: { token: A.whatsappAccessToken, appSecret: A.appSecret },
      [B.number]: { token: B.whatsappAccessToken, appSecret: B.appSecret },
    },
  });
  smtp = await startSmtp();
  twilio = await startTwilio(TWILIO);

  const secretsForAgent = {
    'fb-a': { appSecret: A.appSecret, whatsappAccessToken: A.whatsappAccessToken, pageAccessToken: 'pa' },
    'fb-b': { appSecret: B.appSecret, whatsappAccessToken: B.whatsappAccessToken, pageAccessToken: 'pb' },
    tw: TWILIO,
  };
  h = await startAgentHarness(
    [
      {
        displayName: 'WA Dental A',
        integrations: {
          meta: {
            pageId: '100000000000001',
            whatsappPhoneNumberId: A.number,
            credentialsSecretRef: { name: 'fb-a' },
          },
          // Twilio too: a conversation that came in through Meta must be answered through Meta
          twilio: { phoneNumber: '+40700000071', credentialsSecretRef: { name: 'tw' } },
        },
      },
      {
        displayName: 'WA Dental B',
        integrations: {
          meta: {
            pageId: '100000000000002',
            whatsappPhoneNumberId: B.number,
            credentialsSecretRef: { name: 'fb-b' },
          },
        },
      },
      { displayName: 'Smile Mail', integrations: { email: { ingestAddress: DESK } } },
      {
        // not served by the pooled runtime: its outbound rows are delivered only by the test
        displayName: 'Direct Sender',
        agentIsolation: 'dedicated',
        integrations: {
          email: { ingestAddress: 'front@direct.example' },
          twilio: { phoneNumber: '+40700000072', credentialsSecretRef: { name: 'tw' } },
          meta: {
            pageId: '100000000000003',
            whatsappPhoneNumberId: A.number,
            credentialsSecretRef: { name: 'fb-a' },
          },
        },
      },
    ],
    {
      outbound: new OutboundSender({
        redis: newRedis(),
        redisPrefix: `test:agent:${randomBytes(4).toString('hex')}:`,
        secrets: { get: (n, k) => (secretsForAgent as Record<string, Record<string, string>>)[n]?.[k] },
        twilioBaseUrl: twilio.url,
        metaBaseUrl: graph.url,
        metaApiVersion: 'v21.0',
        ratePerMinute: 100,
        smtpUrl: smtp.url,
      }),
    },
  );
  [waA, waB, mail, direct] = h.tenants as [TestTenant, TestTenant, TestTenant, TestTenant];
  api = await startApi(h, {
    secrets: {
      'fb-a': { appSecret: A.appSecret, verifyToken: A.verifyToken },
      'fb-b': { appSecret: B.appSecret, verifyToken: B.verifyToken },
      'simptu-email-ingest': { [mail.name]: INGEST_SECRET },
    },
  });
}, 300_000);

afterAll(async () => {
  await api?.close();
  await h?.close();
  for (const r of redisClients) r.disconnect();
  await graph?.close();
  await smtp?.close();
  await twilio?.close();
}, 120_000);

// ---------------------------------------------------------------------------------------------

function waPayload(o: {
  phoneNumberId: string;
  from?: string;
  wamid?: string;
  text?: string;
  name?: string;
  statusOnly?: boolean;
}): string {
  const value: Record<string, unknown> = {
    messaging_product: 'whatsapp',
    metadata: { display_phone_number: '15550001111', phone_number_id: o.phoneNumberId },
  };
  if (o.statusOnly)
    value.statuses = [
      {
        id: 'wamid.sent-by-us',
        status: 'delivered',
        timestamp: '1767225600',
        recipient_id: o.from ?? '40711000222',
      },
    ];
  else {
    value.contacts = [{ profile: { name: o.name ?? 'Ana' }, wa_id: o.from }];
    value.messages = [
      { from: o.from, id: o.wamid, timestamp: '1767225600', type: 'text', text: { body: o.text } },
    ];
  }
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: 'WABA-1', changes: [{ field: 'messages', value }] }],
  });
}

const postMeta = (tenant: string, body: string, signature?: string) =>
  postMetaTo(api, tenant, body, signature);

/** Outbox rows a webhook writes (the agent's own events are left out: they come asynchronously). */
const WEBHOOK_EVENTS =
  "event_type IN ('io.simptu.message.received', 'io.simptu.message.created', 'io.simptu.session.created')";

async function count(t: TestTenant, table: string, where = 'true', params: unknown[] = []): Promise<number> {
  const { rows } = await t.adminQuery<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${t.table(table)} WHERE ${where}`,
    params,
  );
  return rows[0]!.n;
}

/** The user messages of the tenant's sessions on a channel, oldest first. */
async function userMessages(
  t: TestTenant,
  channel: string,
): Promise<Array<{ id: string; session_id: string }>> {
  const { rows } = await t.adminQuery<{ id: string; session_id: string }>(
    `SELECT m.id, m.session_id FROM ${t.table('messages')} m JOIN ${t.table('sessions')} s ON s.id = m.session_id
      WHERE s.channel = $1 AND m.role = 'user' ORDER BY m.created_at, m.seq`,
    [channel],
  );
  return rows;
}

describe('WhatsApp Cloud API round trip', () => {
  it('signed webhook → conversation → reply from the tenant’s phone_number_id; replay once; statuses ignored', async () => {
    const first = waPayload({
      phoneNumberId: A.number,
      from: '40711000222',
      wamid: 'wamid.A-1',
      text: 'What are your prices?',
    });
    const res = await postMeta(waA.name, first, sign(A.appSecret, first));
    expect(res).toEqual({ status: 200, json: { received: 1, duplicates: 0 } });

    const [inbound] = await waitFor('the WhatsApp message stored', async () => {
      const m = await userMessages(waA, 'whatsapp');
      return m.length === 1 ? m : undefined;
    });
    const answer = await h.reply(waA, inbound!.id, 90_000);
    expect(answer.trim()).not.toBe('');
    const sent = await waitFor('the Cloud API send', () => graph.whatsapp.find((w) => w.body === answer));
    expect(sent).toMatchObject({ phoneNumberId: A.number, to: '40711000222' });
    const req = graph.seen.find((r) => r.path === `/v21.0/${A.number}/messages` && r.status === 200)!;
    expect(req.headers.authorization).toBe(`Bearer ${A.whatsappAccessToken}`);
    expect(JSON.parse(req.body)).toMatchObject({
      messaging_product: 'whatsapp',
      to: '40711000222',
      type: 'text',
      text: { body: answer },
    });
    const out = await waitFor('outbound marked sent', async () => {
      const r = await waA.adminQuery<{ status: string; provider_message_id: string; channel: string }>(
        `SELECT status, provider_message_id, channel FROM ${waA.table('outbound_messages')}`,
      );
      return r.rows[0]?.status === 'sent' ? r.rows : undefined;
    });
    expect(out).toEqual([{ status: 'sent', provider_message_id: sent.wamid, channel: 'whatsapp' }]);
    // the tenant has Twilio too, but this conversation came in through Meta
    expect(twilio.sent).toHaveLength(0);
    // the sender became a customer with that phone and their WhatsApp profile name
    const customer = await waA.run(async (ctx) => {
      const { rows } = await ctx.client.query<{ customer_id: string }>(
        'SELECT customer_id FROM sessions WHERE id = $1',
        [inbound!.session_id],
      );
      return getCustomer(ctx, rows[0]!.customer_id);
    });
    expect(customer).toMatchObject({ phone: '+40711000222', displayName: 'Ana' });

    // Replay of the same wamid (Meta retries): acknowledged, nothing new.
    expect(await postMeta(waA.name, first, sign(A.appSecret, first))).toEqual({
      status: 200,
      json: { received: 0, duplicates: 1 },
    });
    // A status callback (our message was delivered): 200, nothing stored or published.
    const outboxBefore = await count(waA, 'outbox', WEBHOOK_EVENTS);
    const status = waPayload({ phoneNumberId: A.number, statusOnly: true });
    expect(await postMeta(waA.name, status, sign(A.appSecret, status))).toEqual({
      status: 200,
      json: { received: 0, duplicates: 0 },
    });
    expect(await count(waA, 'outbox', WEBHOOK_EVENTS)).toBe(outboxBefore);

    // The next message of the same sender: same session; after its reply went out, the
    // replayed wamid has still produced exactly one message and one send.
    const second = waPayload({
      phoneNumberId: A.number,
      from: '40711000222',
      wamid: 'wamid.A-2',
      text: 'hello',
    });
    expect((await postMeta(waA.name, second, sign(A.appSecret, second))).status).toBe(200);
    const msgs = await waitFor('the second message stored', async () => {
      const m = await userMessages(waA, 'whatsapp');
      return m.length === 2 ? m : undefined;
    });
    expect(msgs[1]!.session_id).toBe(inbound!.session_id);
    const hello = await h.reply(waA, msgs[1]!.id, 90_000);
    await waitFor('the second send', () => graph.whatsapp.find((w) => w.body === hello && w !== sent));
    expect(graph.whatsapp.filter((w) => w.phoneNumberId === A.number)).toHaveLength(2);
    expect(await count(waA, 'messages', "role = 'user'")).toBe(2);
    expect(await count(waA, 'inbound_receipts')).toBe(2);
  }, 240_000);

  it('a photo is described to the agent, which answers it; a reaction is kept for staff, unanswered', async () => {
    const from = '40711000888';
    const delivery = (wamid: string, m: Record<string, unknown>) =>
      JSON.stringify({
        object: 'whatsapp_business_account',
        entry: [
          {
            id: 'WABA-1',
            changes: [
              {
                field: 'messages',
                value: {
                  messaging_product: 'whatsapp',
                  metadata: { display_phone_number: '15550001111', phone_number_id: A.number },
                  contacts: [{ profile: { name: 'Dan' }, wa_id: from }],
                  messages: [{ from, id: wamid, timestamp: '1767225600', ...m }],
                },
              },
            ],
          },
        ],
      });
    const sessionMessages = async () => {
      const { rows } = await waA.adminQuery<{ id: string; body: Buffer }>(
        `SELECT m.id, m.body FROM ${waA.table('messages')} m
           JOIN ${waA.table('inbound_receipts')} r ON r.session_id = m.session_id AND r.provider_message_id = 'wamid.PHOTO-1'
          WHERE m.role = 'user' ORDER BY m.created_at, m.seq`,
      );
      const cipher = await waA.cipher();
      return rows.map((r) => ({ id: r.id, text: cipher.decryptString(r.body, messageBodyLocation(r.id)) }));
    };

    const photo = delivery('wamid.PHOTO-1', {
      type: 'image',
      image: { id: '1234567890', mime_type: 'image/jpeg', sha256: 'abc', caption: 'is this a cavity?' },
    });
    expect(await postMeta(waA.name, photo, sign(A.appSecret, photo))).toEqual({
      status: 200,
      json: { received: 1, duplicates: 0 },
    });
    const [m] = await waitFor('the photo stored', async () => {
      const r = await sessionMessages();
      return r.length === 1 ? r : undefined;
    });
    expect(m!.text).toBe(
      '[Customer sent a photo that cannot be opened here, with the caption: "is this a cavity?"]',
    );
    // the agent got the description and answered it, through the Cloud API
    const answer = await h.reply(waA, m!.id, 90_000);
    expect(answer.trim()).not.toBe('');
    await waitFor('the answer sent', () => graph.whatsapp.find((w) => w.to === from && w.body === answer));

    // A reaction: stored on the conversation (staff see it), not given to the agent.
    const received = () => count(waA, 'outbox', "event_type = 'io.simptu.message.received'");
    const created = () => count(waA, 'outbox', "event_type = 'io.simptu.message.created'");
    const before = [await received(), await created()];
    const reaction = delivery('wamid.REACT-1', {
      type: 'reaction',
      reaction: { message_id: graph.whatsapp.find((w) => w.to === from)!.wamid, emoji: '👍' },
    });
    expect(await postMeta(waA.name, reaction, sign(A.appSecret, reaction))).toEqual({
      status: 200,
      json: { received: 1, duplicates: 0 },
    });
    expect((await sessionMessages()).map((x) => x.text)).toEqual([
      m!.text,
      '[Customer reacted 👍 to an earlier message]',
    ]);
    expect([await received(), await created()]).toEqual([before[0], before[1]! + 1]);
  }, 180_000);

  it('each tenant’s reply leaves from its own number; another tenant’s phone_number_id cannot inject', async () => {
    const before = {
      a: [await count(waA, 'outbox', WEBHOOK_EVENTS), await count(waA, 'messages')],
      b: [await count(waB, 'outbox', WEBHOOK_EVENTS), await count(waB, 'messages')],
    };
    // B's number posted to A's URL: refused whether signed with A's secret or B's
    const forB = waPayload({
      phoneNumberId: B.number,
      from: '40711000333',
      wamid: 'wamid.X-1',
      text: 'cancel all',
    });
    expect((await postMeta(waA.name, forB, sign(A.appSecret, forB))).status).toBe(403);
    expect((await postMeta(waA.name, forB, sign(B.appSecret, forB))).status).toBe(403);
    // A's number posted to B's URL, signed with B's secret
    const forA = waPayload({
      phoneNumberId: A.number,
      from: '40711000333',
      wamid: 'wamid.X-2',
      text: 'cancel all',
    });
    expect((await postMeta(waB.name, forA, sign(B.appSecret, forA))).status).toBe(403);
    // bad and missing signatures
    const own = waPayload({ phoneNumberId: A.number, from: '40711000333', wamid: 'wamid.X-3', text: 'hi' });
    expect((await postMeta(waA.name, own, sign('not-the-secret', own))).status).toBe(403);
    const missing = await postMeta(waA.name, own);
    expect(missing.status).toBe(403);
    expect(missing.json).toMatchObject({ error: { code: 'SIMPTU_ERR_FORBIDDEN' } });
    expect({
      a: [await count(waA, 'outbox', WEBHOOK_EVENTS), await count(waA, 'messages')],
      b: [await count(waB, 'outbox', WEBHOOK_EVENTS), await count(waB, 'messages')],
    }).toEqual(before);

    // B's own, properly signed message is answered from B's number with B's token
    const fine = waPayload({
      phoneNumberId: B.number,
      from: '40711000444',
      wamid: 'wamid.B-1',
      text: 'hello',
      name: 'Ion',
    });
    expect(await postMeta(waB.name, fine, sign(B.appSecret, fine))).toEqual({
      status: 200,
      json: { received: 1, duplicates: 0 },
    });
    const [m] = await waitFor('B’s message stored', async () => {
      const r = await userMessages(waB, 'whatsapp');
      return r.length === 1 ? r : undefined;
    });
    const answer = await h.reply(waB, m!.id, 90_000);
    const sent = await waitFor('B’s send', () =>
      graph.whatsapp.find((w) => w.phoneNumberId === B.number && w.body === answer),
    );
    expect(sent.to).toBe('40711000444');
    const req = graph.seen.find((r) => r.path === `/v21.0/${B.number}/messages`)!;
    expect(req.headers.authorization).toBe(`Bearer ${B.whatsappAccessToken}`);
    expect(graph.whatsapp.filter((w) => w.to === '40711000333')).toHaveLength(0);
  }, 180_000);
});

// ---------------------------------------------------------------------------------------------

const ingest = (raw: string) => ingestEmail(api, mail.name, INGEST_SECRET, raw);

/** The user messages stored for the customer with this e-mail (0 until the agent handled it). */
async function messagesOf(t: TestTenant, email: string): Promise<{ sessions: string[]; messages: number }> {
  return t.run(async (ctx) => {
    const c = await findCustomerByEmail(ctx, email);
    if (!c) return { sessions: [], messages: 0 };
    const s = await ctx.client.query<{ id: string }>(
      `SELECT id FROM sessions WHERE customer_id = $1 AND channel = 'email'`,
      [c.id],
    );
    const m = await ctx.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM messages WHERE session_id = ANY($1::uuid[]) AND role = 'user'`,
      [s.rows.map((r) => r.id)],
    );
    return { sessions: s.rows.map((r) => r.id), messages: m.rows[0]!.n };
  });
}

describe('e-mail replies by SMTP', () => {
  it('inbound MIME → conversation → threaded reply From the tenant’s address', async () => {
    const raw = mime(
      [
        'From: Ana Pop <ana.pop@example.com>',
        `To: Smile <${DESK}>`,
        'Subject: Prices',
        'Date: Thu, 01 Jan 2026 10:00:00 +0200',
        'Message-ID: <q2.abc@mail.example.com>',
        'In-Reply-To: <q1.abc@mail.example.com>',
        'References: <q0.abc@mail.example.com> <q1.abc@mail.example.com>',
        'Content-Type: text/plain; charset=utf-8',
      ],
      'Hello, what are your prices?',
    );
    expect(await ingest(raw)).toEqual({ status: 202, json: { received: 1, duplicates: 0 } });
    const reply = await waitFor('the reply by SMTP', () => smtp.to('ana.pop@example.com')[0], 90_000);
    expect(reply.from?.value).toEqual([{ address: DESK, name: 'Smile Mail' }]);
    expect(reply.subject).toBe('Re: Prices');
    expect(reply.inReplyTo).toBe('<q2.abc@mail.example.com>');
    expect(reply.references).toEqual([
      '<q0.abc@mail.example.com>',
      '<q1.abc@mail.example.com>',
      '<q2.abc@mail.example.com>',
    ]);
    expect(reply.headers.get('auto-submitted')).toBe('auto-replied');
    expect(reply.messageId).toMatch(/@smile\.example>$/);
    // the body is the agent's answer, as published on the agent topic
    const { sessions } = await messagesOf(mail, 'ana.pop@example.com');
    const event = h.watcher.ofType(
      'io.simptu.agent.message',
      (e: CloudEvent) => e.subject === sessions[0],
    )[0]!;
    const d = event.data as { message_id: string; body_enc: string };
    const answer = (await mail.cipher()).decryptText(d.body_enc, messageBodyLocation(d.message_id));
    expect(reply.text?.trim()).toBe(answer.trim());
    expect(smtp.envelopes.find((e) => e.to.includes('ana.pop@example.com'))?.from).toBe(DESK);
    const rows = await waitFor('outbound marked sent', async () => {
      const r = await mail.adminQuery<{ channel: string; status: string }>(
        `SELECT channel, status FROM ${mail.table('outbound_messages')} WHERE session_id = $1`,
        [sessions[0]],
      );
      return r.rows[0]?.status === 'sent' ? r.rows : undefined;
    });
    expect(rows).toEqual([{ channel: 'email', status: 'sent' }]);
    // the replayed mail is not ingested again, so not answered again
    expect(await ingest(raw)).toEqual({ status: 202, json: { received: 0, duplicates: 1 } });
  }, 180_000);

  it('machine-written mail is kept but never answered (auto-reply, list, bounce, our own address)', async () => {
    const autoMails: Array<[string, string]> = [
      [
        'ooo@example.com',
        mime(
          [
            'From: Out Of Office <ooo@example.com>',
            `To: ${DESK}`,
            'Subject: Automatic reply: Re: Prices',
            'Message-ID: <ooo-1@example.com>',
            'Auto-Submitted: auto-replied',
          ],
          'I am out of the office until Monday.',
        ),
      ],
      [
        'news@list.example.com',
        mime(
          [
            'From: Newsletter <news@list.example.com>',
            `To: ${DESK}`,
            'Subject: Our weekly offers',
            'Message-ID: <list-1@list.example.com>',
            'Precedence: bulk',
            'List-Id: Offers <offers.list.example.com>',
            'List-Unsubscribe: <mailto:unsubscribe@list.example.com>',
          ],
          'Buy now!',
        ),
      ],
      [
        'mailer-daemon@mx.example.net',
        mime(
          [
            'From: Mail Delivery System <MAILER-DAEMON@mx.example.net>',
            `To: ${DESK}`,
            'Subject: Undelivered Mail Returned to Sender',
            'Message-ID: <bounce-1@mx.example.net>',
            'Return-Path: <>',
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"',
          ],
          [
            '--b1',
            'Content-Type: text/plain',
            '',
            'This is the mail system. Your message could not be delivered.',
            '--b1',
            'Content-Type: message/delivery-status',
            '',
            'Reporting-MTA: dns; mx.example.net',
            '',
            'Final-Recipient: rfc822; nobody@example.org',
            'Action: failed',
            'Status: 5.1.1',
            '--b1--',
          ].join('\r\n'),
        ),
      ],
      [
        // our own reply coming back (a forwarding loop): no auto headers, but it is from us
        DESK,
        mime(
          [
            `From: Smile Mail <${DESK}>`,
            `To: ${DESK}`,
            'Subject: Re: Prices',
            'Message-ID: <own-1@smile.example>',
          ],
          'Our prices are …',
        ),
      ],
    ];
    for (const [, raw] of autoMails) expect((await ingest(raw)).status).toBe(202);
    // Each one is handled (stored on its sender's e-mail session) in the same transaction that
    // would have queued a reply: once it is there, a reply would be queued too.
    for (const [from] of autoMails)
      await waitFor(`the mail from ${from} handled`, async () =>
        (await messagesOf(mail, from)).messages === 1 ? true : undefined,
      );
    for (const [from] of autoMails) {
      const { sessions } = await messagesOf(mail, from);
      expect(await count(mail, 'outbound_messages', 'session_id = ANY($1::uuid[])', [sessions])).toBe(0);
      expect(smtp.to(from)).toHaveLength(0);
    }
    // positive control, after them: a person's mail is still answered
    const person = mime(
      ['From: Dan <dan@example.com>', `To: ${DESK}`, 'Subject: Parking', 'Message-ID: <dan-1@example.com>'],
      'Do you have parking?',
    );
    expect((await ingest(person)).status).toBe(202);
    const r = await waitFor('the reply to Dan', () => smtp.to('dan@example.com')[0], 90_000);
    expect(r.subject).toBe('Re: Parking');
    expect(smtp.messages.every((m) => m.from?.value[0]?.address === DESK)).toBe(true);
    expect(smtp.messages.map((m) => m.to && !Array.isArray(m.to) && m.to.value[0]?.address).sort()).toEqual([
      'ana.pop@example.com',
      'dan@example.com',
    ]);
  }, 180_000);
});

// ---------------------------------------------------------------------------------------------

describe('outbound sender', () => {
  const sender = (o: { ratePerMinute?: number; perRecipient?: number; smtp?: boolean }) =>
    new OutboundSender({
      redis: newRedis(),
      redisPrefix: `test:out:${randomBytes(4).toString('hex')}:`,
      secrets: {
        get: (n, k) =>
          (
            ({
              'fb-a': { whatsappAccessToken: A.whatsappAccessToken, appSecret: A.appSecret },
              tw: TWILIO,
            }) as Record<string, Record<string, string>>
          )[n]?.[k],
      },
      twilioBaseUrl: twilio.url,
      metaBaseUrl: graph.url,
      metaApiVersion: 'v21.0',
      ratePerMinute: o.ratePerMinute ?? 100,
      emailPerRecipientPerHour: o.perRecipient ?? 100,
      ...(o.smtp === false ? {} : { smtpUrl: smtp.url }),
    });

  async function directTenant() {
    const { rows } = await h.platform.admin.query(
      `SELECT name, display_name, business_type, locale, timezone, database_name, schema_name, agent, integrations
         FROM platform.tenants WHERE name = $1`,
      [direct.name],
    );
    return toAgentTenant(rows[0]);
  }

  async function emailSession(address: string): Promise<string> {
    return direct.run(async (ctx) => {
      const c = await createCustomer(ctx, { email: address });
      return (await createSession(ctx, { customerId: c.id, channel: 'email' })).id;
    });
  }

  async function queueMails(sessionId: string, to: string, n: number, tag: string): Promise<void> {
    const parsed = await parseEmail(
      mime([`From: <${to}>`, 'Subject: Hi', `Message-ID: <${tag}@example.com>`], 'hello'),
    );
    await direct.run(async (ctx) => {
      for (let i = 0; i < n; i++)
        expect(
          await queueEmailReply(ctx, await directTenant(), {
            key: `${tag}-${i}`,
            sessionId,
            mail: parsed,
            body: `reply ${i}`,
          }),
        ).toEqual(expect.any(String));
    });
  }

  const statuses = async (sessionId: string) =>
    (
      await direct.adminQuery<{ status: string; last_error: string | null }>(
        `SELECT status, last_error FROM ${direct.table('outbound_messages')} WHERE session_id = $1 ORDER BY created_at, id`,
        [sessionId],
      )
    ).rows;

  it('per-tenant rate limit: over it, e-mail replies stay pending', async () => {
    const s = await emailSession('rate@example.com');
    await queueMails(s, 'rate@example.com', 3, 'rate');
    const out = sender({ ratePerMinute: 2 });
    const tenant = await directTenant();
    const pool = h.pool;
    expect(await out.deliver(pool, tenant, await direct.cipher())).toBe(2);
    const st = await statuses(s);
    expect(st.filter((r) => r.status === 'sent')).toHaveLength(2);
    expect(st.filter((r) => r.status === 'pending')).toHaveLength(1);
    expect(smtp.to('rate@example.com')).toHaveLength(2);
    out.close();
    // the next window (here: a sender with a fresh budget) sends the one left
    const next = sender({});
    expect(await next.deliver(pool, tenant, await direct.cipher())).toBe(1);
    expect(smtp.to('rate@example.com')).toHaveLength(3);
    next.close();
  });

  it('per-recipient loop guard drops e-mails past the hourly budget; no SMTP server → failed', async () => {
    const s = await emailSession('loop@example.com');
    await queueMails(s, 'loop@example.com', 3, 'loop');
    const out = sender({ perRecipient: 1 });
    expect(await out.deliver(h.pool, await directTenant(), await direct.cipher())).toBe(1);
    const st = await statuses(s);
    expect(st.map((r) => r.status).sort()).toEqual(['failed', 'failed', 'sent']);
    expect(st.filter((r) => r.status === 'failed').every((r) => /loop guard/.test(r.last_error ?? ''))).toBe(
      true,
    );
    expect(smtp.to('loop@example.com')).toHaveLength(1);
    out.close();

    const s2 = await emailSession('nosmtp@example.com');
    await queueMails(s2, 'nosmtp@example.com', 1, 'nosmtp');
    expect(await sender({ smtp: false }).deliver(h.pool, await directTenant(), await direct.cipher())).toBe(
      0,
    );
    expect(await statuses(s2)).toEqual([
      { status: 'failed', last_error: expect.stringContaining('SIMPTU_AGENT_CHANNELS_SMTP_URL') },
    ]);
  });

  it('auto-generated mail is never queued', async () => {
    const s = await emailSession('auto@example.com');
    const parsed = await parseEmail(
      mime(['From: <auto@example.com>', 'Subject: Away', 'Auto-Submitted: auto-replied'], 'away'),
    );
    expect(parsed.autoGenerated).toMatch(/auto-replied/);
    const id = await direct.run(async (ctx) =>
      queueEmailReply(ctx, await directTenant(), { key: 'auto', sessionId: s, mail: parsed, body: 'x' }),
    );
    expect(id).toBeNull();
    expect(await statuses(s)).toEqual([]);
  });

  it('WhatsApp: Twilio unless the conversation came in through the Cloud API', async () => {
    const phone = '+40711000555';
    const [viaTwilio, viaMeta] = await direct.run(async (ctx) => {
      const c = await createCustomer(ctx, { phone });
      const s1 = await createSession(ctx, { customerId: c.id, channel: 'whatsapp' });
      const s2 = await createSession(ctx, { customerId: c.id, channel: 'whatsapp' });
      await ctx.client.query(
        `INSERT INTO inbound_receipts (provider, provider_message_id, session_id) VALUES ('twilio', 'SM-x', $1), ('meta', 'wamid.x', $2)`,
        [s1.id, s2.id],
      );
      for (const [s, body] of [
        [s1.id, 'via twilio'],
        [s2.id, 'via cloud'],
      ] as const)
        await queueOutbound(ctx, { key: body, sessionId: s, channel: 'whatsapp', recipient: phone, body });
      return [s1.id, s2.id];
    });
    const out = sender({});
    expect(await out.deliver(h.pool, await directTenant(), await direct.cipher())).toBe(2);
    expect(twilio.sent.find((b) => b.get('Body') === 'via twilio')?.get('To')).toBe(`whatsapp:${phone}`);
    expect(graph.whatsapp.find((w) => w.body === 'via cloud')).toMatchObject({
      phoneNumberId: A.number,
      to: '40711000555',
    });
    expect(graph.whatsapp.find((w) => w.body === 'via twilio')).toBeUndefined();
    expect((await statuses(viaTwilio))[0]!.status).toBe('sent');
    expect((await statuses(viaMeta))[0]!.status).toBe('sent');
  });
});
