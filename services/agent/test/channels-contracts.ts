/**
 * Local servers implementing the documented contracts of the providers the agent sends through,
 * for the channel tests (no mocks of our own code: the real clients talk HTTP / SMTP to these).
 *
 *  - Meta Graph API (`startMetaGraph`):
 *    - Messenger / Instagram Send API, `POST /{version}/{page-id}/messages`: Bearer page token,
 *      `appsecret_proof` = hex HMAC-SHA256(app secret, token), JSON `{recipient: {id}, message}`;
 *      @see https://developers.facebook.com/docs/messenger-platform/reference/send-api/
 *    - WhatsApp Cloud API, `POST /{version}/{phone-number-id}/messages`: Bearer token of the
 *      WhatsApp Business Account that owns that number (`appsecret_proof` checked when sent),
 *      JSON `{messaging_product: "whatsapp", recipient_type?: "individual", to, type: "text",
 *      text: {body (1..4096), preview_url?}}` → `{messaging_product, contacts: [{input, wa_id}],
 *      messages: [{id: "wamid.…"}]}`; errors are Graph errors `{error: {message, type, code,
 *      fbtrace_id}}` (190 bad token → 401, 100 bad parameter → 400).
 *      @see https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
 *  - Twilio Programmable Messaging (`startTwilio`): `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
 *    HTTP Basic `AccountSid:AuthToken`, form-encoded `To`, `From`, `Body` → 201 `{sid: "SM…"}`;
 *    a wrong path or credentials → 401 `{code: 20003, message: "Authenticate"}`.
 *    @see https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
 *  - SMTP (`startSmtp`): `smtp-server` accepting every mail, each parsed with `mailparser`.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface GraphRequest {
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  /** the HTTP status the server answered */
  status: number;
}

export interface WhatsAppSend {
  phoneNumberId: string;
  to: string;
  body: string;
  wamid: string;
}

export interface MetaGraph {
  url: string;
  /** every request, answered or refused */
  seen: GraphRequest[];
  /** WhatsApp messages accepted (auth and payload valid) */
  whatsapp: WhatsAppSend[];
  close(): Promise<void>;
}

export interface MetaGraphOptions {
  /** the app secret `appsecret_proof`s are checked with (Messenger pages; numbers without their own) */
  appSecret: string;
  /** Messenger pages: page id → page access token */
  pages?: Record<string, string>;
  /** WhatsApp Cloud numbers: phone-number id → the token allowed to send from it (and its app's secret) */
  whatsappNumbers?: Record<string, { token: string; appSecret?: string }>;
}

function graphError(status: number, code: number, message: string) {
  return {
    status,
    body: { error: { message, type: 'OAuthException', code, fbtrace_id: randomBytes(8).toString('hex') } },
  };
}

export async function startMetaGraph(o: MetaGraphOptions): Promise<MetaGraph> {
  const seen: GraphRequest[] = [];
  const whatsapp: WhatsAppSend[] = [];
  const proof = (token: string, secret = o.appSecret) =>
    createHmac('sha256', secret).update(token).digest('hex');

  function handle(path: string, query: URLSearchParams, headers: IncomingMessage['headers'], raw: string) {
    const m = /^\/v\d+\.\d+\/([^/]+)\/messages$/.exec(path);
    if (!m) return graphError(404, 803, 'Unknown path components');
    const id = decodeURIComponent(m[1]!);
    const token = /^Bearer (.+)$/.exec(headers.authorization ?? '')?.[1];
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return graphError(400, 100, 'Invalid JSON');
    }
    const pageToken = o.pages?.[id];
    if (pageToken !== undefined) {
      if (token !== pageToken || query.get('appsecret_proof') !== proof(pageToken))
        return graphError(401, 190, 'Invalid OAuth access token or appsecret_proof');
      const recipient = body.recipient as { id?: unknown } | undefined;
      const message = body.message as { text?: unknown } | undefined;
      if (typeof recipient?.id !== 'string' || typeof message?.text !== 'string')
        return graphError(400, 100, 'recipient.id and message.text are required');
      return {
        status: 200,
        body: { recipient_id: recipient.id, message_id: `m_${randomBytes(12).toString('hex')}` },
      };
    }
    const number = o.whatsappNumbers?.[id];
    if (number === undefined) return graphError(400, 100, `Unsupported post request. Object with ID '${id}'`);
    if (token !== number.token) return graphError(401, 190, 'Invalid OAuth access token');
    const sentProof = query.get('appsecret_proof');
    if (sentProof !== null && sentProof !== proof(number.token, number.appSecret))
      return graphError(400, 100, 'Invalid appsecret_proof');
    const text = body.text as { body?: unknown; preview_url?: unknown } | undefined;
    if (body.messaging_product !== 'whatsapp')
      return graphError(400, 100, 'The parameter messaging_product is required');
    if (body.recipient_type !== undefined && body.recipient_type !== 'individual')
      return graphError(400, 100, 'Invalid parameter recipient_type');
    if (typeof body.to !== 'string' || !/^\+?[1-9][0-9]{6,14}$/.test(body.to))
      return graphError(400, 100, 'Invalid parameter to');
    if (body.type !== 'text') return graphError(400, 100, 'Only text messages in this contract server');
    if (typeof text?.body !== 'string' || text.body.length < 1 || text.body.length > 4096)
      return graphError(400, 100, 'Param text[body] must be 1..4096 characters');
    if (text.preview_url !== undefined && typeof text.preview_url !== 'boolean')
      return graphError(400, 100, 'Invalid parameter text[preview_url]');
    const wamid = `wamid.${randomBytes(24).toString('base64url')}`;
    const waId = body.to.replace(/^\+/, '');
    whatsapp.push({ phoneNumberId: id, to: body.to, body: text.body, wamid });
    return {
      status: 200,
      body: {
        messaging_product: 'whatsapp',
        contacts: [{ input: body.to, wa_id: waId }],
        messages: [{ id: wamid }],
      },
    };
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://x');
      const raw = Buffer.concat(chunks).toString('utf8');
      const out =
        req.method === 'POST'
          ? handle(u.pathname, u.searchParams, req.headers, raw)
          : graphError(405, 100, 'POST only');
      seen.push({
        path: u.pathname,
        query: u.searchParams,
        headers: req.headers,
        body: raw,
        status: out.status,
      });
      res.writeHead(out.status, { 'content-type': 'application/json' }).end(JSON.stringify(out.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    whatsapp,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export interface SmtpCapture {
  url: string;
  messages: ParsedMail[];
  /** envelope recipients of every accepted mail, in order */
  envelopes: Array<{ from: string; to: string[] }>;
  /** mails addressed (To:) to `address` */
  to(address: string): ParsedMail[];
  close(): Promise<void>;
}

/** An SMTP server on 127.0.0.1 that keeps every mail, parsed. */
export async function startSmtp(): Promise<SmtpCapture> {
  const messages: ParsedMail[] = [];
  const envelopes: SmtpCapture['envelopes'] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
      simpleParser(stream).then(
        (m) => {
          envelopes.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
          });
          messages.push(m);
          cb();
        },
        (err: Error) => cb(err),
      );
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  const addressed = (m: ParsedMail, to: string) =>
    (Array.isArray(m.to) ? m.to : m.to ? [m.to] : []).some((a) => a.value.some((v) => v.address === to));
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    envelopes,
    to: (address) => messages.filter((m) => addressed(m, address)),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export interface TwilioCapture {
  url: string;
  /** the form of every message accepted (path and credentials valid), in order */
  sent: URLSearchParams[];
  close(): Promise<void>;
}

/** Twilio's Messages API for one account. */
export async function startTwilio(creds: { accountSid: string; authToken: string }): Promise<TwilioCapture> {
  const sent: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const ok =
        req.method === 'POST' &&
        req.url === `/2010-04-01/Accounts/${creds.accountSid}/Messages.json` &&
        req.headers.authorization ===
          `Basic ${Buffer.from(`${creds.accountSid}:${creds.authToken}`).toString('base64')}`;
      if (ok) sent.push(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      res
        .writeHead(ok ? 201 : 401, { 'content-type': 'application/json' })
        .end(
          JSON.stringify(
            ok ? { sid: `SM${randomBytes(16).toString('hex')}` } : { code: 20003, message: 'Authenticate' },
          ),
        );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
