/**
 * Inbound channel webhooks (DESIGN §7): Twilio (SMS, WhatsApp), Meta (Messenger, Instagram,
 * WhatsApp Cloud API), e-mail ingest. DEVIATION from "tenant from the verified token only": providers don't send our
 * bearer tokens, so these routes are unauthenticated by token and authenticate by the
 * PROVIDER'S SIGNATURE instead; the tenant comes from the URL path
 * (`/v1/webhooks/<provider>/<tenant>`) and must have that provider in its registry
 * `integrations`, whose referenced Secret holds the key the signature is checked with. A bad or
 * missing signature is 403 and nothing is stored or published.
 *
 *   POST /v1/webhooks/twilio/<tenant>   X-Twilio-Signature: base64 HMAC-SHA1(authToken,
 *        URL + each POST param name+value sorted by name); the URL is tried as received and
 *        with the default port added/removed (Twilio signs either); JSON bodies carry
 *        `bodySHA256` in the query (signature over the URL only, body hash checked).
 *        @see https://www.twilio.com/docs/usage/webhooks/webhooks-security
 *   GET  /v1/webhooks/meta/<tenant>     verification handshake (hub.mode, hub.verify_token,
 *        hub.challenge).  POST: X-Hub-Signature-256 = sha256=HMAC-SHA256(appSecret, RAW body).
 *        `object: page | instagram` → `entry[].messaging[]` (entry.id = the tenant's pageId);
 *        `object: whatsapp_business_account` → `entry[].changes[].value.messages[]`, each
 *        value's `metadata.phone_number_id` = the tenant's `whatsappPhoneNumberId`; `statuses[]`
 *        (sent/delivered/read receipts of our own messages) start no conversation.
 *        Every message kind — text, interactive replies, media, locations, reactions, unknown
 *        ones; Twilio MMS too — is handled as inbound-content.ts describes.
 *        @see https://developers.facebook.com/docs/messenger-platform/webhooks
 *        @see https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
 *   POST /v1/webhooks/email/<tenant>    raw MIME (message/rfc822), header
 *        `X-Simptu-Ingest-Secret`; parsed by the agent (untrusted input stays out of the API).
 *
 * Accepted messages become what the sessions route makes of a customer message — customer
 * (found by phone / contact id, else created), the channel's open session (else a new one), an
 * encrypted `user` message, `io.simptu.message.received` on the inbound topic and
 * `io.simptu.message.created` on the domain topic, all in ONE tenant transaction with the
 * provider message id recorded in `inbound_receipts`: a replayed webhook is acknowledged and
 * changes nothing. E-mails become `io.simptu.email.received` with the raw MIME encrypted.
 *
 * Secrets (no API config field exists for them, so this plugin reads its own at registration):
 * `SIMPTU_WEBHOOK_SECRETS_JSON` = `{"<secret name>": {"<key>": "<value>"}}` and/or
 * `SIMPTU_WEBHOOK_SECRETS_DIR` = a directory of mounted Secrets (`<dir>/<name>/<key>`).
 * Twilio: keys `authToken`; Meta: `appSecret`, `verifyToken`; e-mail: Secret
 * `simptu-email-ingest`, key = tenant name. `SIMPTU_WEBHOOK_PUBLIC_URL` is the external base URL
 * Twilio signs (behind a proxy the Host header may differ).
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type pg from 'pg';
import {
  appendMessage,
  createCustomer,
  createSession,
  enqueue,
  findCustomerByPhone,
  ForbiddenError,
  getSession,
  messageBodyLocation,
  NotFoundError,
  newId,
  tenantTopics,
  toText,
  ValidationError,
  withTenant,
  type Channel,
  type DomainContext,
  type FieldCipher,
} from '@simptu/common';
import {
  isTwilioStatusCallback,
  messengerContent,
  twilioContent,
  whatsAppContent,
} from '../inbound-content.ts';
import { API_EVENT_SOURCE } from '../plugins/auth.ts';
import { errorResponses } from '../schemas.ts';
import type { TenantInfo } from '../types.ts';

export const EMAIL_RECEIVED_TYPE = 'io.simptu.email.received';
export const EMAIL_INGEST_SECRET = 'simptu-email-ingest';
const MAX_EMAIL_BYTES = 512 * 1024;

// ---------------------------------------------------------------------------------------------
// Signatures (pure)

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Twilio's signature of a URL and POST params: base64 HMAC-SHA1 over url + sorted name+value. */
export function twilioSignature(
  authToken: string,
  url: string,
  params: Record<string, string | string[]>,
): string {
  let data = url;
  for (const k of Object.keys(params).sort()) {
    const v = params[k]!;
    for (const item of Array.isArray(v) ? [...v].sort() : [v]) data += k + item;
  }
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

/** The URL as received plus its default-port variant (with :443/:80 added or removed). */
export function twilioUrlVariants(url: string): string[] {
  const u = new URL(url);
  const out = new Set([url]);
  const def = u.protocol === 'https:' ? '443' : '80';
  if (u.port === '' || u.port === def) {
    const withPort = new URL(url);
    // URL normalizes a default port away; build the text by hand.
    out.add(`${u.protocol}//${u.hostname}:${def}${u.pathname}${u.search}`);
    withPort.port = '';
    out.add(withPort.toString());
  }
  return [...out];
}

export function verifyTwilio(
  authToken: string,
  url: string,
  signature: string | undefined,
  body: { form: Record<string, string | string[]> } | { raw: Buffer },
): boolean {
  if (!signature) return false;
  const u = new URL(url);
  if ('raw' in body) {
    const want = u.searchParams.get('bodySHA256');
    if (!want) return false;
    const have = createHash('sha256').update(body.raw).digest('hex');
    if (!safeEqual(have, want.toLowerCase())) return false;
    return twilioUrlVariants(url).some((v) => safeEqual(twilioSignature(authToken, v, {}), signature));
  }
  return twilioUrlVariants(url).some((v) => safeEqual(twilioSignature(authToken, v, body.form), signature));
}

export function metaSignature(appSecret: string, raw: Buffer): string {
  return `sha256=${createHmac('sha256', appSecret).update(raw).digest('hex')}`;
}

export function verifyMeta(appSecret: string, raw: Buffer, header: string | undefined): boolean {
  return typeof header === 'string' && safeEqual(metaSignature(appSecret, raw), header.trim().toLowerCase());
}

// ---------------------------------------------------------------------------------------------
// Secrets

export interface WebhookSecrets {
  get(name: string, key: string): string | undefined;
}

export function webhookSecretsFromEnv(env: Record<string, string | undefined> = process.env): WebhookSecrets {
  const map = env.SIMPTU_WEBHOOK_SECRETS_JSON
    ? (JSON.parse(env.SIMPTU_WEBHOOK_SECRETS_JSON) as Record<string, Record<string, string>>)
    : {};
  const dir = env.SIMPTU_WEBHOOK_SECRETS_DIR;
  return {
    get(name, key) {
      const v = map[name]?.[key];
      if (typeof v === 'string') return v;
      if (!dir || !/^[a-z0-9][-a-z0-9.]*$/.test(name) || !/^[-._a-zA-Z0-9]+$/.test(key)) return undefined;
      try {
        return readFileSync(join(dir, name, key), 'utf8').trim();
      } catch {
        return undefined;
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Storing an inbound message

interface Integrations {
  twilio?: { phoneNumber?: string; credentialsSecretRef?: { name?: string } };
  meta?: { pageId?: string; whatsappPhoneNumberId?: string; credentialsSecretRef?: { name?: string } };
  email?: { ingestAddress?: string };
}

interface InboundText {
  provider: 'twilio' | 'meta';
  providerMessageId: string;
  channel: Channel;
  /** phone (E.164) for sms/whatsapp, sender id for messenger/instagram */
  address: string;
  text: string;
  /** the sender's profile name (WhatsApp), for a customer created by this message */
  name?: string;
  /** what was sent (inbound-content.ts): `text`, `image`, `reaction`, `unknown:<type>`… */
  kind: string;
  /** published for the agent (false: recorded for staff only — reactions) */
  answer: boolean;
  /** a type we do not know (logged) */
  unknown?: string;
}

/** Records the provider id; false when it was seen before (a replay). */
async function firstReceipt(
  client: pg.ClientBase,
  provider: string,
  id: string,
  sessionId: string | null,
): Promise<boolean> {
  const r = await client.query(
    `INSERT INTO inbound_receipts (provider, provider_message_id, session_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
    [provider, id.slice(0, 300), sessionId],
  );
  return r.rowCount === 1;
}

async function customerFor(ctx: DomainContext, m: InboundText): Promise<string> {
  if (m.channel === 'sms' || m.channel === 'whatsapp') {
    const found = await findCustomerByPhone(ctx, m.address);
    return (
      found ??
      (await createCustomer(ctx, {
        phone: m.address,
        ...(m.name?.trim() ? { displayName: m.name.trim().slice(0, 200) } : {}),
      }))
    ).id;
  }
  const bidx = ctx.cipher.blindIndexes('channel_contacts', 'address', 'text', m.address);
  const { rows } = await ctx.client.query<{ customer_id: string }>(
    'SELECT customer_id FROM channel_contacts WHERE channel = $1 AND address_bidx = ANY($2::bytea[]) LIMIT 1',
    [m.channel, bidx],
  );
  if (rows[0]) return rows[0].customer_id;
  const c = await createCustomer(ctx, {});
  const id = newId();
  await ctx.client.query(
    'INSERT INTO channel_contacts (id, channel, address, address_bidx, customer_id) VALUES ($1, $2, $3, $4, $5)',
    [
      id,
      m.channel,
      ctx.cipher.encrypt(m.address, { table: 'channel_contacts', column: 'address', rowId: id }),
      ctx.cipher.blindIndex('channel_contacts', 'address', 'text', m.address),
      c.id,
    ],
  );
  return c.id;
}

/** Stores one inbound text like a customer message of the sessions route; null for a replay. */
async function storeInbound(ctx: DomainContext, m: InboundText): Promise<string | null> {
  if (!(await firstReceipt(ctx.client, m.provider, m.providerMessageId, null))) return null;
  const customerId = await customerFor(ctx, m);
  const { rows } = await ctx.client.query<{ id: string }>(
    `SELECT id FROM sessions WHERE customer_id = $1 AND channel = $2 AND state <> 'closed' ORDER BY created_at DESC LIMIT 1 FOR UPDATE`,
    [customerId, m.channel],
  );
  const session = rows[0]
    ? await getSession(ctx, rows[0].id)
    : await createSession(ctx, { customerId, channel: m.channel });
  if (!rows[0])
    await enqueue(ctx.client, ctx.cipher, {
      type: 'io.simptu.session.created',
      source: API_EVENT_SOURCE,
      aggregateType: 'session',
      aggregateId: session.id,
      subject: session.id,
      data: {
        session_id: session.id,
        customer_id: customerId,
        channel: m.channel,
        state: session.state,
        assigned_to: null,
      },
    });
  const message = await appendMessage(ctx, session.id, {
    role: 'user',
    body: m.text.slice(0, 16_000) || '(empty)',
  });
  await ctx.client.query(
    'UPDATE inbound_receipts SET session_id = $3 WHERE provider = $1 AND provider_message_id = $2',
    [m.provider, m.providerMessageId.slice(0, 300), session.id],
  );
  const data = {
    session_id: session.id,
    message_id: message.id,
    seq: message.seq,
    role: 'user',
    customer_id: customerId,
    channel: m.channel,
    session_state: session.state,
    author: null,
    body_enc: ctx.cipher.encryptText(message.body, messageBodyLocation(message.id)),
  };
  const common = {
    source: API_EVENT_SOURCE,
    aggregateType: 'session',
    aggregateId: session.id,
    subject: session.id,
  };
  if (m.answer)
    await enqueue(ctx.client, ctx.cipher, {
      ...common,
      type: 'io.simptu.message.received',
      topic: tenantTopics(ctx.cipher.tenant).inbound,
      data,
    });
  await enqueue(ctx.client, ctx.cipher, { ...common, type: 'io.simptu.message.created', data });
  return session.id;
}

// ---------------------------------------------------------------------------------------------
// Meta event bodies (only the fields read; everything else is ignored)

interface MetaEvent {
  object?: string;
  entry?: Array<{
    id?: string;
    messaging?: unknown[];
    changes?: Array<{ field?: string; value?: WhatsAppValue }>;
  }>;
}

interface WhatsAppValue {
  messaging_product?: string;
  metadata?: { display_phone_number?: string; phone_number_id?: string };
  contacts?: Array<{ wa_id?: string; profile?: { name?: string } }>;
  messages?: Array<{ from?: string; id?: string; type?: string } | null>;
  statuses?: Array<{ status?: string; errors?: Array<{ code?: number; title?: string }> } | null>;
}

/**
 * Messenger / Instagram messages of every kind (inbound-content.ts); every entry must be the
 * tenant's page. Echoes of our own messages, delivery and read receipts: nothing.
 */
function messengerTexts(body: MetaEvent, pageId: string | undefined): InboundText[] {
  const channel: Channel = body.object === 'instagram' ? 'instagram' : 'messenger';
  const texts: InboundText[] = [];
  for (const entry of body.entry ?? []) {
    if (pageId && entry?.id !== pageId) throw new ForbiddenError('the event is not for this tenant’s page');
    for (const ev of Array.isArray(entry?.messaging) ? entry.messaging : []) {
      const sender = (ev as { sender?: { id?: unknown } } | null)?.sender?.id;
      if (typeof sender !== 'string' || !sender) continue;
      const item = messengerContent(ev);
      if (!item) continue;
      texts.push({
        provider: 'meta',
        providerMessageId: item.id,
        channel,
        address: sender,
        text: item.content.text,
        kind: item.content.kind,
        answer: item.content.answer,
        ...(item.content.unknown ? { unknown: item.content.unknown } : {}),
      });
    }
  }
  return texts;
}

/**
 * WhatsApp Cloud API messages of every kind (inbound-content.ts). Each change's
 * `metadata.phone_number_id` must be the tenant's number (else 403: another tenant's number
 * can't be used to write into this one). `statuses` (receipts of our own messages) start no
 * conversation; failed ones are counted for the log. `from` is the sender's WhatsApp id —
 * their number without `+` — so it joins the customer with that phone.
 */
function whatsAppTexts(
  body: MetaEvent,
  phoneNumberId: string | undefined,
): { texts: InboundText[]; statuses: number; failed: Array<number | string> } {
  if (!phoneNumberId) throw new ForbiddenError('this tenant has no WhatsApp Cloud API number');
  const texts: InboundText[] = [];
  let statuses = 0;
  const failed: Array<number | string> = [];
  for (const entry of body.entry ?? [])
    for (const change of Array.isArray(entry?.changes) ? entry.changes : []) {
      const v = change?.value;
      if (change?.field !== 'messages' || !v || typeof v !== 'object') continue;
      if (v.metadata?.phone_number_id !== phoneNumberId)
        throw new ForbiddenError('the event is not for this tenant’s WhatsApp number');
      for (const st of Array.isArray(v.statuses) ? v.statuses : []) {
        statuses++;
        if (st?.status === 'failed') failed.push(st.errors?.[0]?.code ?? 'unknown');
      }
      for (const m of Array.isArray(v.messages) ? v.messages : []) {
        if (typeof m?.id !== 'string' || !m.id) continue;
        if (typeof m.from !== 'string' || !/^[1-9][0-9]{6,14}$/.test(m.from)) continue;
        const c = whatsAppContent(m);
        if (!c) continue;
        const name = Array.isArray(v.contacts)
          ? v.contacts.find((x) => x?.wa_id === m.from)?.profile?.name
          : undefined;
        texts.push({
          provider: 'meta',
          providerMessageId: m.id,
          channel: 'whatsapp',
          address: `+${m.from}`,
          text: c.text,
          kind: c.kind,
          answer: c.answer,
          ...(c.unknown ? { unknown: c.unknown } : {}),
          ...(typeof name === 'string' ? { name } : {}),
        });
      }
    }
  return { texts, statuses, failed };
}

/** Non-text messages are logged (kind only, never content); unknown kinds as warnings. */
function logContent(request: FastifyRequest, tenant: string, t: InboundText): void {
  if (t.unknown)
    request.log.warn(
      { tenant, provider: t.provider, channel: t.channel, type: t.unknown },
      'inbound message of an unknown kind recorded with a placeholder',
    );
  else if (t.kind !== 'text')
    request.log.info(
      { tenant, provider: t.provider, channel: t.channel, kind: t.kind },
      'non-text message recorded',
    );
}

// ---------------------------------------------------------------------------------------------

const TenantParams = Type.Object(
  { tenant: Type.String({ pattern: '^[a-z]([a-z0-9-]*[a-z0-9])?$', minLength: 3, maxLength: 40 }) },
  { additionalProperties: false },
);
const Accepted = Type.Object({
  received: Type.Integer({ minimum: 0 }),
  duplicates: Type.Integer({ minimum: 0 }),
});

export default async function webhookRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const secrets = webhookSecretsFromEnv();
  const publicUrl = process.env.SIMPTU_WEBHOOK_PUBLIC_URL?.replace(/\/$/, '');
  const tags = ['webhooks'];

  // This plugin's scope only: signatures are over the RAW bytes, so keep them.
  app.removeContentTypeParser(['application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (_req, body, done) =>
    done(null, body),
  );
  app.addContentTypeParser(
    ['message/rfc822', 'text/plain', 'application/octet-stream'],
    { parseAs: 'buffer', bodyLimit: MAX_EMAIL_BYTES },
    (_req, body, done) => done(null, body),
  );

  async function tenantWith(
    name: string,
    provider: keyof Integrations,
  ): Promise<{ info: TenantInfo; integrations: Integrations }> {
    const info = await app.registry.get(name);
    if (!info || info.state !== 'active') throw new NotFoundError('tenant not found');
    const { rows } = await app.db.query<{ integrations: Integrations | null }>(
      'SELECT integrations FROM platform.tenants WHERE name = $1',
      [name],
    );
    const integrations = rows[0]?.integrations ?? {};
    if (!integrations[provider]) throw new NotFoundError(`tenant has no ${provider} integration`);
    return { info, integrations };
  }

  async function inTenant<T>(info: TenantInfo, fn: (ctx: DomainContext) => Promise<T>): Promise<T> {
    const cipher: FieldCipher = await app.cipherFor(info.name);
    return withTenant(app.dbFor(info), { name: info.name, schema: info.schema, role: info.role }, (client) =>
      fn({ client, cipher, timeZone: info.timezone, source: API_EVENT_SOURCE }),
    );
  }

  function externalUrl(request: FastifyRequest): string {
    if (publicUrl) return publicUrl + request.url;
    const proto =
      (request.headers['x-forwarded-proto'] as string | undefined)?.split(',')[0]?.trim() ?? request.protocol;
    return `${proto}://${request.headers.host ?? 'localhost'}${request.url}`;
  }

  app.post(
    '/webhooks/twilio/:tenant',
    {
      schema: {
        tags,
        summary: 'Twilio inbound SMS / WhatsApp (signed with X-Twilio-Signature)',
        params: TenantParams,
        response: {
          200: Type.String({ description: 'empty TwiML; the reply is sent later through the Messages API' }),
          ...errorResponses(400, 403, 404, 413, 429, 500),
        },
      },
    },
    async (request, reply) => {
      const { info, integrations } = await tenantWith(request.params.tenant, 'twilio');
      const secretName = integrations.twilio?.credentialsSecretRef?.name;
      const authToken = secretName ? secrets.get(secretName, 'authToken') : undefined;
      if (!authToken) throw new ForbiddenError('webhook credentials are not configured for this tenant');
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const signature = request.headers['x-twilio-signature'] as string | undefined;
      const url = externalUrl(request);
      const isJson = (request.headers['content-type'] ?? '').startsWith('application/json');
      let params: Record<string, string>;
      if (isJson) {
        if (!verifyTwilio(authToken, url, signature, { raw }))
          throw new ForbiddenError('bad webhook signature');
        try {
          params = JSON.parse(raw.toString('utf8')) as Record<string, string>;
        } catch {
          throw new ValidationError([{ path: 'body', message: 'is not JSON' }]);
        }
      } else {
        const form: Record<string, string> = {};
        for (const [k, v] of new URLSearchParams(raw.toString('utf8'))) form[k] = v;
        if (!verifyTwilio(authToken, url, signature, { form }))
          throw new ForbiddenError('bad webhook signature');
        params = form;
      }
      // A status callback of one of our messages (sent, delivered, failed…): no conversation.
      if (isTwilioStatusCallback(params)) {
        request.log.debug(
          { tenant: info.name, status: params.MessageStatus ?? params.SmsStatus },
          'Twilio status callback',
        );
        return reply.type('text/xml').send('<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
      }
      const from = String(params.From ?? '');
      const to = String(params.To ?? '').replace(/^whatsapp:/, '');
      const sid = String(params.MessageSid ?? params.SmsSid ?? '');
      if (!sid || !from)
        throw new ValidationError([{ path: 'body', message: 'MessageSid and From are required' }]);
      if (integrations.twilio?.phoneNumber && to !== integrations.twilio.phoneNumber)
        throw new ForbiddenError('the message is not for this tenant’s number');
      const whatsapp = from.startsWith('whatsapp:');
      const address = from.replace(/^whatsapp:/, '');
      const c = twilioContent(params);
      const message: InboundText = {
        provider: 'twilio',
        providerMessageId: sid,
        channel: whatsapp ? 'whatsapp' : 'sms',
        address,
        text: c.text,
        kind: c.kind,
        answer: c.answer,
      };
      if (await inTenant(info, (ctx) => storeInbound(ctx, message))) logContent(request, info.name, message);
      return reply.type('text/xml').send('<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
    },
  );

  app.get(
    '/webhooks/meta/:tenant',
    {
      schema: {
        tags,
        summary: 'Meta webhook verification handshake',
        params: TenantParams,
        querystring: Type.Object({
          'hub.mode': Type.Optional(Type.String()),
          'hub.verify_token': Type.Optional(Type.String()),
          'hub.challenge': Type.Optional(Type.String({ maxLength: 200 })),
        }),
        response: { 200: Type.String(), ...errorResponses(400, 403, 404, 429, 500) },
      },
    },
    async (request, reply) => {
      const { integrations } = await tenantWith(request.params.tenant, 'meta');
      const secretName = integrations.meta?.credentialsSecretRef?.name;
      const expected = secretName ? secrets.get(secretName, 'verifyToken') : undefined;
      const q = request.query;
      if (!expected || q['hub.mode'] !== 'subscribe' || !safeEqual(q['hub.verify_token'] ?? '', expected))
        throw new ForbiddenError('verification failed');
      return reply.type('text/plain').send(q['hub.challenge'] ?? '');
    },
  );

  app.post(
    '/webhooks/meta/:tenant',
    {
      schema: {
        tags,
        summary:
          'Meta (Messenger / Instagram / WhatsApp Cloud API) events, signed with X-Hub-Signature-256 over the raw body',
        params: TenantParams,
        response: { 200: Accepted, ...errorResponses(400, 403, 404, 413, 429, 500) },
      },
    },
    async (request) => {
      const { info, integrations } = await tenantWith(request.params.tenant, 'meta');
      const secretName = integrations.meta?.credentialsSecretRef?.name;
      const appSecret = secretName ? secrets.get(secretName, 'appSecret') : undefined;
      if (!appSecret) throw new ForbiddenError('webhook credentials are not configured for this tenant');
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      if (!verifyMeta(appSecret, raw, request.headers['x-hub-signature-256'] as string | undefined))
        throw new ForbiddenError('bad webhook signature');
      let body: MetaEvent;
      try {
        body = JSON.parse(raw.toString('utf8')) as MetaEvent;
      } catch {
        throw new ValidationError([{ path: 'body', message: 'is not JSON' }]);
      }
      if (!body || typeof body !== 'object' || (body.entry !== undefined && !Array.isArray(body.entry)))
        throw new ValidationError([{ path: 'body.entry', message: 'must be an array' }]);
      // Every entry is checked against the tenant before anything is stored.
      let texts: InboundText[];
      if (body.object === 'whatsapp_business_account') {
        const wa = whatsAppTexts(body, integrations.meta?.whatsappPhoneNumberId);
        texts = wa.texts;
        if (wa.failed.length)
          request.log.warn(
            { tenant: info.name, failed: wa.failed.length, codes: wa.failed.slice(0, 10) },
            'WhatsApp reported messages it could not deliver',
          );
        else if (wa.statuses)
          request.log.debug({ tenant: info.name, statuses: wa.statuses }, 'WhatsApp statuses');
      } else texts = messengerTexts(body, integrations.meta?.pageId);
      let received = 0;
      for (const t of texts) {
        if (!(await inTenant(info, (ctx) => storeInbound(ctx, t)))) continue;
        received++;
        logContent(request, info.name, t);
      }
      return { received, duplicates: texts.length - received };
    },
  );

  app.post(
    '/webhooks/email/:tenant',
    {
      bodyLimit: MAX_EMAIL_BYTES,
      schema: {
        tags,
        summary: 'E-mail ingest: raw MIME, authenticated by the X-Simptu-Ingest-Secret header',
        params: TenantParams,
        response: { 202: Accepted, ...errorResponses(400, 403, 404, 413, 429, 500) },
      },
    },
    async (request, reply) => {
      const { info } = await tenantWith(request.params.tenant, 'email');
      const expected = secrets.get(EMAIL_INGEST_SECRET, info.name);
      const given = request.headers['x-simptu-ingest-secret'];
      if (!expected || typeof given !== 'string' || !safeEqual(given, expected))
        throw new ForbiddenError('bad ingest secret');
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      if (raw.length === 0)
        throw new ValidationError([{ path: 'body', message: 'an e-mail (raw MIME) is required' }]);
      const header = raw.subarray(0, Math.min(raw.length, 64 * 1024)).toString('utf8');
      const messageId =
        /^message-id:\s*(<[^>\r\n]{1,250}>)/im.exec(header)?.[1] ??
        `sha256:${createHash('sha256').update(raw).digest('hex')}`;
      const first = await inTenant(info, async (ctx) => {
        if (!(await firstReceipt(ctx.client, 'email', messageId, null))) return false;
        const emailId = randomUUID();
        await enqueue(ctx.client, ctx.cipher, {
          type: EMAIL_RECEIVED_TYPE,
          source: API_EVENT_SOURCE,
          aggregateType: 'email',
          aggregateId: emailId,
          topic: tenantTopics(info.name).inbound,
          data: {
            email_id: emailId,
            size: raw.length,
            // the bytes as received (MIME may carry 8-bit parts), encrypted; `toText` form for JSON
            raw_enc: toText(
              ctx.cipher.encrypt(raw, { table: 'inbound_emails', column: 'raw', rowId: emailId }),
            ),
          },
        });
        return true;
      });
      return reply.code(202).send({ received: first ? 1 : 0, duplicates: first ? 0 : 1 });
    },
  );
}
