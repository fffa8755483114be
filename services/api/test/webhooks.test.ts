/**
 * Inbound webhooks (routes/webhooks.ts) against real Postgres/Kafka/Redis: Twilio signatures
 * (form, port variants, JSON bodySHA256), Meta handshake and X-Hub-Signature-256 over the raw
 * body (Messenger and WhatsApp Cloud API), e-mail ingest secret; replays processed once; bad
 * signatures → 403 and nothing stored; another tenant's WhatsApp number → 403. (The round trip
 * through the agent to the providers is services/agent/test/channels-roundtrip.test.ts.)
 */
import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCustomer } from '@simptu/common';
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
    type?: string;
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
          type: o.type ?? 'text',
          ...(o.type === 'image'
            ? { image: { id: 'media-1', mime_type: 'image/jpeg' } }
            : { text: { body: o.text ?? 'Aveți programări mâine?' } }),
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

  it('status callbacks and non-text messages: 200, nothing stored or published', async () => {
    const before = [await count('messages'), await count('outbox'), await count('inbound_receipts')];
    for (const body of [payload({ statuses: true }), payload({ type: 'image', wamid: 'wamid.IMG1' })]) {
      const res = await send(body, metaSignature(FB.appSecret, Buffer.from(body)));
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ received: 0, duplicates: 0 });
    }
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
