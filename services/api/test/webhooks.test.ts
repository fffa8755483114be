/**
 * Inbound webhooks (routes/webhooks.ts) against real Postgres/Kafka/Redis: Twilio signatures
 * (form, port variants, JSON bodySHA256), Meta handshake and X-Hub-Signature-256 over the raw
 * body (Messenger and WhatsApp Cloud API), e-mail ingest secret; replays processed once; bad
 * signatures → 403 and nothing stored; another tenant's WhatsApp number → 403; every message
 * kind handled deliberately (inbound-content.ts): interactive replies → text, media / location /
 * contacts / unknown kinds → a described message for the agent, reactions → recorded for staff
 * only, status callbacks → nothing. (The round trip through the agent to the providers is
 * services/agent/test/channels-roundtrip.test.ts.)
 */
import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCustomer, messageBodyLocation } from '@simptu/common';
import { metaSignature, twilioSignature } from '../src/routes/webhooks.ts';
import { buildTestApp, uniqueTenantName, type TestApp, type TestTenant } from './support/index.ts';

const PUBLIC = 'https://hooks.example';
const TW = { authToken: 'twilio-auth-token' };
const FB = { appSecret: 'meta-app-secret', verifyToken: 'verify-me' };
const FB_OTHER = { appSecret: 'other-app-secret', verifyToken: 'verify-other' };

let t: TestApp;
let a: TestTenant;
let plain: TestTenant;
let other: TestTenant;
const saved = { json: process.env.SIMPTU_WEBHOOK_SECRETS_JSON, url: process.env.SIMPTU_WEBHOOK_PUBLIC_URL };

beforeAll(async () => {
  const name = uniqueTenantName('wh');
  // The plugin reads its secrets when it is registered: set them before the app is built.
  process.env.SIMPTU_WEBHOOK_SECRETS_JSON = JSON.stringify({
    tw: TW,
    fb: FB,
    'fb-other': FB_OTHER,
    'simptu-email-ingest': { [name]: 'mail-secret' },
  });
  process.env.SIMPTU_WEBHOOK_PUBLIC_URL = PUBLIC;
  t = await buildTestApp({
    tenants: [{ name, businessType: 'dental' }, { businessType: 'gym' }, { businessType: 'hotel' }],
    waitForEvents: false,
  });
  [a, plain, other] = t.tenants as [TestTenant, TestTenant, TestTenant];
  await t.platform.admin.query('UPDATE platform.tenants SET integrations = $2 WHERE name = $1', [
    a.name,
    JSON.stringify({
      twilio: { phoneNumber: '+40700000009', credentialsSecretRef: { name: 'tw' } },
      meta: { pageId: 'page-9', whatsappPhoneNumberId: '109000000009', credentialsSecretRef: { name: 'fb' } },
      email: { ingestAddress: 'in@a.example' },
    }),
  ]);
  await t.platform.admin.query('UPDATE platform.tenants SET integrations = $2 WHERE name = $1', [
    other.name,
    JSON.stringify({
      meta: {
        pageId: 'page-8',
        whatsappPhoneNumberId: '108000000008',
        credentialsSecretRef: { name: 'fb-other' },
      },
    }),
  ]);
}, 240_000);

afterAll(async () => {
  process.env.SIMPTU_WEBHOOK_SECRETS_JSON = saved.json;
  process.env.SIMPTU_WEBHOOK_PUBLIC_URL = saved.url;
  await t?.cleanup();
}, 120_000);

async function count(table: string, where = 'true', params: unknown[] = [], tenant = a): Promise<number> {
  const { rows } = await tenant.adminQuery<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${tenant.table(table)} WHERE ${where}`,
    params,
  );
  return rows[0]!.n;
}

/**
 * Runs one webhook call and reports what it did to the tenant: the messages it stored
 * (decrypted, oldest first) and how many `io.simptu.message.received` (for the agent) and
 * `io.simptu.message.created` (for staff) events it queued.
 */
async function observe<T>(
  call: () => Promise<T>,
  tenant = a,
): Promise<{ result: T; stored: string[]; received: number; created: number }> {
  const events = (type: string) => count('outbox', 'event_type = $1', [type], tenant);
  const before = {
    received: await events('io.simptu.message.received'),
    created: await events('io.simptu.message.created'),
    ids: new Set(
      (await tenant.adminQuery<{ id: string }>(`SELECT id FROM ${tenant.table('messages')}`)).rows.map(
        (r) => r.id,
      ),
    ),
  };
  const result = await call();
  const { rows } = await tenant.adminQuery<{ id: string; body: Buffer }>(
    `SELECT id, body FROM ${tenant.table('messages')} ORDER BY created_at, seq`,
  );
  const cipher = await tenant.cipher();
  return {
    result,
    stored: rows
      .filter((r) => !before.ids.has(r.id))
      .map((r) => cipher.decryptString(r.body, messageBodyLocation(r.id))),
    received: (await events('io.simptu.message.received')) - before.received,
    created: (await events('io.simptu.message.created')) - before.created,
  };
}

function twilioForm(sid: string, from = '+40711000111', body = 'What are your prices?') {
  return { MessageSid: sid, From: from, To: '+40700000009', Body: body, NumMedia: '0' };
}

describe('Twilio', () => {
  const path = () => `/v1/webhooks/twilio/${a.name}`;

  it('a signed SMS becomes a session, an encrypted message and an inbound event; a replay changes nothing', async () => {
    const form = twilioForm('SM00000000000000000000000000000001');
    const sig = twilioSignature(TW.authToken, PUBLIC + path(), form);
    const send = () =>
      t.app.inject({
        method: 'POST',
        url: path(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': sig },
        payload: new URLSearchParams(form).toString(),
      });
    const res = await send();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/xml/);
    expect(res.body).toContain('<Response>');
    expect(await count('sessions', "channel = 'sms'")).toBe(1);
    expect(await count('messages')).toBe(1);
    const { rows } = await a.adminQuery<{ body: Buffer }>(`SELECT body FROM ${a.table('messages')}`);
    expect(rows[0]!.body.toString('latin1')).not.toContain('prices');
    expect(
      await count('outbox', "event_type = 'io.simptu.message.received' AND headers->>'topic' = $1", [
        a.topics.inbound,
      ]),
    ).toBe(1);

    const again = await send();
    expect(again.statusCode).toBe(200);
    expect(await count('messages')).toBe(1);
    expect(await count('outbox', "event_type = 'io.simptu.message.received'")).toBe(1);

    // the next message of the same number joins the same session
    const next = twilioForm('SM00000000000000000000000000000002', '+40711000111', 'and tomorrow?');
    const r2 = await t.app.inject({
      method: 'POST',
      url: path(),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': twilioSignature(TW.authToken, `https://hooks.example:443${path()}`, next),
      },
      payload: new URLSearchParams(next).toString(),
    });
    expect(r2.statusCode).toBe(200); // signed with the explicit default port: accepted
    expect(await count('sessions', "channel = 'sms'")).toBe(1);
    expect(await count('messages')).toBe(2);
  });

  it('WhatsApp JSON body with bodySHA256', async () => {
    const body = JSON.stringify({
      MessageSid: 'SM00000000000000000000000000000003',
      From: 'whatsapp:+40711000222',
      To: 'whatsapp:+40700000009',
      Body: 'hi',
    });
    const hash = createHash('sha256').update(body).digest('hex');
    const url = `${path()}?bodySHA256=${hash}`;
    const res = await t.app.inject({
      method: 'POST',
      url,
      headers: {
        'content-type': 'application/json',
        'x-twilio-signature': twilioSignature(TW.authToken, PUBLIC + url, {}),
      },
      payload: body,
    });
    expect(res.statusCode).toBe(200);
    expect(await count('sessions', "channel = 'whatsapp'")).toBe(1);
    const tampered = await t.app.inject({
      method: 'POST',
      url,
      headers: {
        'content-type': 'application/json',
        'x-twilio-signature': twilioSignature(TW.authToken, PUBLIC + url, {}),
      },
      payload: body.replace('hi', 'cancel everything'),
    });
    expect(tampered.statusCode).toBe(403);
  });

  it('bad or missing signatures → 403, nothing stored or published', async () => {
    const before = [await count('messages'), await count('outbox'), await count('inbound_receipts')];
    const form = twilioForm('SM00000000000000000000000000000099');
    for (const sig of [
      undefined,
      'AAAA',
      twilioSignature('wrong-token', PUBLIC + path(), form),
      twilioSignature(TW.authToken, `${PUBLIC}/v1/webhooks/twilio/other`, form),
    ]) {
      const res = await t.app.inject({
        method: 'POST',
        url: path(),
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          ...(sig ? { 'x-twilio-signature': sig } : {}),
        },
        payload: new URLSearchParams(form).toString(),
      });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ error: { code: 'SIMPTU_ERR_FORBIDDEN' } });
    }
    expect([await count('messages'), await count('outbox'), await count('inbound_receipts')]).toEqual(before);
  });

  it('MMS, WhatsApp locations and button replies are described; status callbacks start no conversation', async () => {
    const post = (form: Record<string, string>) =>
      t.app.inject({
        method: 'POST',
        url: path(),
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-twilio-signature': twilioSignature(TW.authToken, PUBLIC + path(), form),
        },
        payload: new URLSearchParams(form).toString(),
      });
    const media = (n: number) => `https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME${n}`;
    // MMS: the text, then what was attached (never downloaded)
    const mms = await observe(() =>
      post({
        ...twilioForm('MM00000000000000000000000000000010', '+40711000777', 'Is this tooth ok?'),
        NumMedia: '2',
        MediaContentType0: 'image/jpeg',
        MediaUrl0: media(0),
        MediaContentType1: 'application/pdf',
        MediaUrl1: media(1),
      }),
    );
    expect(mms.result.statusCode).toBe(200);
    expect(mms.stored).toEqual([
      'Is this tooth ok?\n[Customer sent 2 attachments (image/jpeg, application/pdf) that cannot be opened here]',
    ]);
    expect([mms.received, mms.created]).toEqual([1, 1]);
    const photo = await observe(() =>
      post({
        ...twilioForm('MM00000000000000000000000000000011', '+40711000777', ''),
        NumMedia: '1',
        MediaContentType0: 'image/png',
        MediaUrl0: media(2),
      }),
    );
    expect(photo.stored).toEqual(['[Customer sent an attachment (image/png) that cannot be opened here]']);
    expect(photo.received).toBe(1);
    // WhatsApp through Twilio: a shared location, a quick-reply button
    const wa = { From: 'whatsapp:+40711000778', To: 'whatsapp:+40700000009', NumMedia: '0' };
    const loc = await observe(() =>
      post({
        ...wa,
        MessageSid: 'SM00000000000000000000000000000012',
        Body: '',
        Latitude: '44.4268',
        Longitude: '26.1025',
        Label: 'Clinic parking',
        Address: 'Str. Exemplu 1, București',
      }),
    );
    expect(loc.stored).toEqual([
      '[Customer shared a location: Clinic parking, Str. Exemplu 1, București (latitude 44.4268, longitude 26.1025)]',
    ]);
    const button = await observe(() =>
      post({
        ...wa,
        MessageSid: 'SM00000000000000000000000000000013',
        Body: 'Yes, confirm',
        ButtonText: 'Yes, confirm',
        ButtonPayload: 'confirm-1',
      }),
    );
    expect(button.stored).toEqual(['Yes, confirm']);
    expect(button.received).toBe(1);
    // a delivery receipt of one of our messages (From = the tenant's number): nothing
    const receipts = await count('inbound_receipts');
    const status = await observe(() =>
      post({
        MessageSid: 'SM00000000000000000000000000000014',
        MessageStatus: 'delivered',
        SmsStatus: 'delivered',
        From: '+40700000009',
        To: '+40711000777',
        AccountSid: 'AC1',
      }),
    );
    expect(status.result.statusCode).toBe(200);
    expect(status.result.body).toContain('<Response>');
    expect([status.stored, status.received, status.created]).toEqual([[], 0, 0]);
    expect(await count('inbound_receipts')).toBe(receipts);
  });

  it('unknown tenant and tenant without the integration → 404', async () => {
    const form = twilioForm('SM1');
    for (const name of ['no-such-tenant', plain.name]) {
      const res = await t.app.inject({
        method: 'POST',
        url: `/v1/webhooks/twilio/${name}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': 'x' },
        payload: new URLSearchParams(form).toString(),
      });
      expect(res.statusCode).toBe(404);
    }
  });
});

describe('Meta', () => {
  const path = () => `/v1/webhooks/meta/${a.name}`;

  it('verification handshake', async () => {
    const ok = await t.app.inject({
      method: 'GET',
      url: `${path()}?hub.mode=subscribe&hub.verify_token=${FB.verifyToken}&hub.challenge=12345`,
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toBe('12345');
    const bad = await t.app.inject({
      method: 'GET',
      url: `${path()}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=12345`,
    });
    expect(bad.statusCode).toBe(403);
  });

  it('signed Messenger events over the raw body; replay de-duplicated; bad signature 403', async () => {
    const payload = JSON.stringify({
      object: 'page',
      entry: [
        {
          id: 'page-9',
          time: 1,
          messaging: [
            {
              sender: { id: 'PSID-1' },
              recipient: { id: 'page-9' },
              message: { mid: 'm_1', text: 'hello there' },
            },
          ],
        },
      ],
    });
    const send = (sig: string | undefined, body = payload) =>
      t.app.inject({
        method: 'POST',
        url: path(),
        headers: { 'content-type': 'application/json', ...(sig ? { 'x-hub-signature-256': sig } : {}) },
        payload: body,
      });
    const before = await count('messages');
    const res = await send(metaSignature(FB.appSecret, Buffer.from(payload)));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ received: 1, duplicates: 0 });
    expect(await count('sessions', "channel = 'messenger'")).toBe(1);
    expect(await count('channel_contacts', "channel = 'messenger'")).toBe(1);
    const { rows } = await a.adminQuery<{ address: Buffer }>(
      `SELECT address FROM ${a.table('channel_contacts')}`,
    );
    expect(rows[0]!.address.toString('latin1')).not.toContain('PSID-1');
    const replay = await send(metaSignature(FB.appSecret, Buffer.from(payload)));
    expect(replay.json()).toEqual({ received: 0, duplicates: 1 });
    // the same JSON re-serialized (whitespace) has a different raw body → signature fails
    const reformatted = JSON.stringify(JSON.parse(payload), null, 2);
    expect((await send(metaSignature(FB.appSecret, Buffer.from(payload)), reformatted)).statusCode).toBe(403);
    expect((await send(undefined)).statusCode).toBe(403);
    expect(
      (await send(`sha256=${createHmac('sha256', 'other').update(payload).digest('hex')}`)).statusCode,
    ).toBe(403);
    expect(await count('messages')).toBe(before + 1);
  });
});

describe('WhatsApp Cloud API (Meta)', () => {
  const path = (tenant = a.name) => `/v1/webhooks/meta/${tenant}`;
  const NUMBER = '109000000009';
  function payload(o: {
    number?: string;
    wamid?: string;
    from?: string;
    text?: string;
    statuses?: boolean;
  }): string {
    const value: Record<string, unknown> = {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '40700000009', phone_number_id: o.number ?? NUMBER },
    };
    if (o.statuses)
      value.statuses = [
        { id: 'wamid.OUT1', status: 'read', timestamp: '1767225600', recipient_id: '40711000555' },
      ];
    else {
      value.contacts = [{ profile: { name: 'Maria' }, wa_id: o.from ?? '40711000555' }];
      value.messages = [
        {
          from: o.from ?? '40711000555',
          id: o.wamid ?? 'wamid.HBgLNDA3MTEwMDA1NTUVAgASGBQzQUY',
          timestamp: '1767225600',
          type: 'text',
          text: { body: o.text ?? 'Aveți programări mâine?' },
        },
      ];
    }
    return JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: 'WABA-9', changes: [{ field: 'messages', value }] }],
    });
  }
  const send = (body: string, sig: string | undefined, tenant = a.name) =>
    t.app.inject({
      method: 'POST',
      url: path(tenant),
      headers: { 'content-type': 'application/json', ...(sig ? { 'x-hub-signature-256': sig } : {}) },
      payload: body,
    });
  const published = (tenant = a) =>
    count(
      'outbox',
      "event_type = 'io.simptu.message.received' AND headers->>'topic' = $1",
      [tenant.topics.inbound],
      tenant,
    );

  it('a signed text message becomes a whatsapp session of the customer with that phone; the wamid replay is a duplicate', async () => {
    const body = payload({});
    const before = await published();
    const res = await send(body, metaSignature(FB.appSecret, Buffer.from(body)));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ received: 1, duplicates: 0 });
    expect(await published()).toBe(before + 1);
    const { rows } = await a.adminQuery<{ customer_id: string }>(
      `SELECT s.customer_id FROM ${a.table('sessions')} s WHERE s.channel = 'whatsapp'
         AND EXISTS (SELECT 1 FROM ${a.table('inbound_receipts')} r WHERE r.session_id = s.id AND r.provider = 'meta')`,
    );
    expect(rows).toHaveLength(1);
    const customer = await a.run((ctx) => getCustomer(ctx, rows[0]!.customer_id));
    expect(customer).toMatchObject({ phone: '+40711000555', displayName: 'Maria' });
    const replay = await send(body, metaSignature(FB.appSecret, Buffer.from(body)));
    expect(replay.statusCode).toBe(200);
    expect(replay.json()).toEqual({ received: 0, duplicates: 1 });
    expect(await published()).toBe(before + 1);
  });

  it('status callbacks: 200, nothing stored or published', async () => {
    const before = [await count('messages'), await count('outbox'), await count('inbound_receipts')];
    const body = payload({ statuses: true });
    const res = await send(body, metaSignature(FB.appSecret, Buffer.from(body)));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ received: 0, duplicates: 0 });
    expect([await count('messages'), await count('outbox'), await count('inbound_receipts')]).toEqual(before);
  });

  it('bad or missing signatures → 403, nothing stored or published', async () => {
    const before = [await count('messages'), await count('outbox'), await count('inbound_receipts')];
    const body = payload({ wamid: 'wamid.BAD1', text: 'cancel all bookings' });
    for (const sig of [
      undefined,
      'sha256=00',
      metaSignature('wrong-secret', Buffer.from(body)),
      metaSignature(FB.appSecret, Buffer.from(body.replace('cancel', 'book'))),
      `sha1=${createHmac('sha1', FB.appSecret).update(body).digest('hex')}`,
    ]) {
      const res = await send(body, sig);
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ error: { code: 'SIMPTU_ERR_FORBIDDEN' } });
    }
    expect([await count('messages'), await count('outbox'), await count('inbound_receipts')]).toEqual(before);
  });

  it('another tenant’s phone_number_id cannot be used to inject into this tenant (or the reverse)', async () => {
    const counts = async () => [
      await count('messages'),
      await count('outbox'),
      await count('messages', 'true', [], other),
      await count('outbox', 'true', [], other),
    ];
    const before = await counts();
    // the other tenant's number, posted to this tenant's URL: signed with this tenant's secret
    // (the signature is fine, the number is not this tenant's) or with the other's (signature fails)
    const theirs = payload({ number: '108000000008', wamid: 'wamid.X1' });
    expect((await send(theirs, metaSignature(FB.appSecret, Buffer.from(theirs)))).statusCode).toBe(403);
    expect((await send(theirs, metaSignature(FB_OTHER.appSecret, Buffer.from(theirs)))).statusCode).toBe(403);
    // this tenant's number posted to the other tenant's URL with the other's secret
    const ours = payload({ wamid: 'wamid.X2' });
    expect(
      (await send(ours, metaSignature(FB_OTHER.appSecret, Buffer.from(ours)), other.name)).statusCode,
    ).toBe(403);
    // one bad change among good ones: the whole delivery is refused, nothing stored
    const mixed = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [
        ...(JSON.parse(payload({ wamid: 'wamid.X3' })) as { entry: unknown[] }).entry,
        ...(JSON.parse(payload({ number: '108000000008', wamid: 'wamid.X4' })) as { entry: unknown[] }).entry,
      ],
    });
    expect((await send(mixed, metaSignature(FB.appSecret, Buffer.from(mixed)))).statusCode).toBe(403);
    expect(await counts()).toEqual(before);
    // a tenant without a WhatsApp number: 403 too
    await t.platform.admin.query('UPDATE platform.tenants SET integrations = $2 WHERE name = $1', [
      plain.name,
      JSON.stringify({ meta: { pageId: 'page-7', credentialsSecretRef: { name: 'fb' } } }),
    ]);
    const toPlain = payload({ wamid: 'wamid.X5' });
    const r = await send(toPlain, metaSignature(FB.appSecret, Buffer.from(toPlain)), plain.name);
    expect(r.statusCode).toBe(403);
  });

  it('malformed bodies → 400, never 5xx', async () => {
    for (const body of ['{not json', JSON.stringify({ object: 'whatsapp_business_account', entry: {} })]) {
      const res = await send(body, metaSignature(FB.appSecret, Buffer.from(body)));
      expect(res.statusCode).toBe(400);
    }
    const odd = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [null, { changes: 'x' }, { changes: [null, { field: 'messages', value: null }] }],
    });
    const res = await send(odd, metaSignature(FB.appSecret, Buffer.from(odd)));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ received: 0, duplicates: 0 });
  });
});

describe('Meta message kinds', () => {
  const post = (body: string) =>
    t.app.inject({
      method: 'POST',
      url: `/v1/webhooks/meta/${a.name}`,
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': metaSignature(FB.appSecret, Buffer.from(body)),
      },
      payload: body,
    });

  it('Messenger: attachments described, postbacks as text, reactions for staff only, receipts and echoes nothing', async () => {
    const sender = { id: 'PSID-KINDS' };
    const recipient = { id: 'page-9' };
    const body = JSON.stringify({
      object: 'page',
      entry: [
        {
          id: 'page-9',
          time: 2,
          messaging: [
            {
              sender,
              recipient,
              timestamp: 1767225600001,
              message: {
                mid: 'm_img',
                attachments: [{ type: 'image', payload: { url: 'https://cdn.example/x.jpg' } }],
              },
            },
            {
              sender,
              recipient,
              timestamp: 1767225600002,
              postback: { mid: 'm_pb', title: 'Book an appointment', payload: 'BOOK' },
            },
            {
              sender,
              recipient,
              timestamp: 1767225600003,
              reaction: { mid: 'm_out', action: 'react', emoji: '❤', reaction: 'love' },
            },
            {
              sender,
              recipient,
              timestamp: 1767225600004,
              reaction: { mid: 'm_out', action: 'unreact' },
            },
            { sender, recipient, timestamp: 1767225600005, delivery: { mids: ['m_out'], watermark: 1 } },
            { sender, recipient, timestamp: 1767225600006, read: { watermark: 1767225600000 } },
            {
              sender: recipient,
              recipient: sender,
              timestamp: 1767225600007,
              message: { mid: 'm_echo', is_echo: true, text: 'our own reply' },
            },
          ],
        },
      ],
    });
    const r = await observe(() => post(body));
    expect(r.result.statusCode).toBe(200);
    expect(r.result.json()).toEqual({ received: 3, duplicates: 0 });
    expect(r.stored).toEqual([
      '[Customer sent a photo that cannot be opened here]',
      'Book an appointment',
      '[Customer reacted ❤ to an earlier message]',
    ]);
    // the reaction is for staff: not given to the agent
    expect([r.received, r.created]).toEqual([2, 3]);
    // replayed: every one of them a duplicate
    expect((await post(body)).json()).toEqual({ received: 0, duplicates: 3 });
  });

  const waMessage = (id: string, m: Record<string, unknown>, from = '40711000666') =>
    JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [
        {
          id: 'WABA-9',
          changes: [
            {
              field: 'messages',
              value: {
                messaging_product: 'whatsapp',
                metadata: { display_phone_number: '40700000009', phone_number_id: '109000000009' },
                contacts: [{ profile: { name: 'Radu' }, wa_id: from }],
                messages: [{ from, id, timestamp: '1767225600', ...m }],
              },
            },
          ],
        },
      ],
    });

  it.each([
    [
      'image',
      { type: 'image', image: { id: 'm1', mime_type: 'image/jpeg', sha256: 'h', caption: 'my x-ray' } },
      '[Customer sent a photo that cannot be opened here, with the caption: "my x-ray"]',
      true,
    ],
    [
      'voice note',
      { type: 'audio', audio: { id: 'm2', mime_type: 'audio/ogg; codecs=opus', voice: true } },
      '[Customer sent a voice message that cannot be opened here]',
      true,
    ],
    [
      'document',
      { type: 'document', document: { id: 'm3', filename: 'referral.pdf', mime_type: 'application/pdf' } },
      '[Customer sent a document ("referral.pdf") that cannot be opened here]',
      true,
    ],
    [
      'sticker',
      { type: 'sticker', sticker: { id: 'm4', mime_type: 'image/webp', animated: false } },
      '[Customer sent a sticker that cannot be opened here]',
      true,
    ],
    [
      'location',
      {
        type: 'location',
        location: { latitude: 44.4268, longitude: 26.1025, name: 'Smile Clinic', address: 'Str. Exemplu 1' },
      },
      '[Customer shared a location: Smile Clinic, Str. Exemplu 1 (latitude 44.4268, longitude 26.1025)]',
      true,
    ],
    [
      'contacts',
      {
        type: 'contacts',
        contacts: [
          { name: { formatted_name: 'Ion Pop' }, phones: [{ phone: '+40711000999', type: 'CELL' }] },
        ],
      },
      '[Customer shared a contact card: Ion Pop]',
      true,
    ],
    [
      'reply button',
      {
        type: 'interactive',
        interactive: { type: 'button_reply', button_reply: { id: 'y', title: 'Yes, book it' } },
      },
      'Yes, book it',
      true,
    ],
    [
      'list reply',
      {
        type: 'interactive',
        interactive: {
          type: 'list_reply',
          list_reply: { id: 's10', title: '10:00', description: 'Tomorrow' },
        },
      },
      '10:00 (Tomorrow)',
      true,
    ],
    [
      'template quick reply',
      { type: 'button', button: { payload: 'CONFIRM', text: 'Confirm' } },
      'Confirm',
      true,
    ],
    [
      'reaction',
      { type: 'reaction', reaction: { message_id: 'wamid.OUT1', emoji: '👍' } },
      '[Customer reacted 👍 to an earlier message]',
      false,
    ],
    [
      'unsupported',
      {
        type: 'unsupported',
        errors: [{ code: 131051, title: 'Message type unknown', message: 'Message type unknown' }],
        unsupported: { type: 'poll_creation' },
      },
      '[Customer sent a message of a kind that cannot be shown here (unsupported: poll_creation)]',
      true,
    ],
    [
      'a kind Meta adds later',
      { type: 'hologram', hologram: { id: 'h1' } },
      '[Customer sent a message of a kind that cannot be shown here (hologram)]',
      true,
    ],
  ])('WhatsApp %s', async (label, message, text, forAgent) => {
    const body = waMessage(`wamid.KIND-${label.replace(/\W+/g, '-')}`, message);
    const r = await observe(() => post(body));
    expect(r.result.statusCode).toBe(200);
    expect(r.result.json()).toEqual({ received: 1, duplicates: 0 });
    expect(r.stored).toEqual([text]);
    expect([r.received, r.created]).toEqual([forAgent ? 1 : 0, 1]);
  });

  it('WhatsApp: receipts (also failed ones), system notices and removed reactions start no conversation', async () => {
    const statuses = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [
        {
          id: 'WABA-9',
          changes: [
            {
              field: 'messages',
              value: {
                messaging_product: 'whatsapp',
                metadata: { display_phone_number: '40700000009', phone_number_id: '109000000009' },
                statuses: [
                  {
                    id: 'wamid.OUT2',
                    status: 'delivered',
                    timestamp: '1767225600',
                    recipient_id: '40711000666',
                  },
                  {
                    id: 'wamid.OUT3',
                    status: 'failed',
                    timestamp: '1767225600',
                    recipient_id: '40711000666',
                    errors: [{ code: 131047, title: 'Re-engagement message' }],
                  },
                ],
              },
            },
          ],
        },
      ],
    });
    for (const body of [
      statuses,
      waMessage('wamid.SYS1', {
        type: 'system',
        system: {
          body: 'Radu changed their phone number',
          type: 'user_changed_number',
          new_wa_id: '40711000667',
        },
      }),
      waMessage('wamid.UNREACT1', { type: 'reaction', reaction: { message_id: 'wamid.OUT1', emoji: '' } }),
    ]) {
      const receipts = await count('inbound_receipts');
      const r = await observe(() => post(body));
      expect(r.result.statusCode).toBe(200);
      expect(r.result.json()).toEqual({ received: 0, duplicates: 0 });
      expect([r.stored, r.received, r.created]).toEqual([[], 0, 0]);
      expect(await count('inbound_receipts')).toBe(receipts);
    }
  });
});

describe('e-mail ingest', () => {
  const path = () => `/v1/webhooks/email/${a.name}`;
  const mime = [
    'From: Guest <g@example.com>',
    'To: in@a.example',
    'Subject: Hello',
    'Message-ID: <abc-1@example.com>',
    '',
    'Do you have parking?',
    '',
  ].join('\r\n');

  it('accepts raw MIME with the shared secret, publishes it encrypted, once', async () => {
    const send = (secret?: string) =>
      t.app.inject({
        method: 'POST',
        url: path(),
        headers: {
          'content-type': 'message/rfc822',
          ...(secret ? { 'x-simptu-ingest-secret': secret } : {}),
        },
        payload: mime,
      });
    expect((await send('wrong')).statusCode).toBe(403);
    expect((await send()).statusCode).toBe(403);
    const ok = await send('mail-secret');
    expect(ok.statusCode).toBe(202);
    expect(ok.json()).toEqual({ received: 1, duplicates: 0 });
    expect((await send('mail-secret')).json()).toEqual({ received: 0, duplicates: 1 });
    const { rows } = await a.adminQuery<{ payload: Buffer; headers: { topic: string } }>(
      `SELECT payload, headers FROM ${a.table('outbox')} WHERE event_type = 'io.simptu.email.received'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.headers.topic).toBe(a.topics.inbound);
    expect(rows[0]!.payload.toString('latin1')).not.toContain('parking');
  });
});
