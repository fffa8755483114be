/**
 * Outbound channel clients with configurable base URLs (tests point them at local servers
 * implementing the documented contracts).
 *  - Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
 *    form-encoded `To`, `From`, `Body`, HTTP Basic `AccountSid:AuthToken`; WhatsApp numbers
 *    are `whatsapp:+E.164` on both ends.
 *    @see https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
 *  - Meta Send API (Messenger, Instagram): `POST /{version}/{page-id}/messages` with a page
 *    access token (Bearer) and `appsecret_proof` = HMAC-SHA256(app secret, access token), hex.
 *    @see https://developers.facebook.com/docs/messenger-platform/reference/send-api/
 *    @see https://developers.facebook.com/docs/graph-api/securing-requests/#appsecret_proof
 *  - WhatsApp Cloud API: `POST /{version}/{phone-number-id}/messages` with a Bearer access token
 *    (a system-user token of the WhatsApp Business Account) and JSON
 *    `{messaging_product: "whatsapp", recipient_type: "individual", to, type: "text", text: {body}}`;
 *    `appsecret_proof` is added when the app secret is known (required when the app enforces it).
 *    Answer `{messaging_product, contacts: [{input, wa_id}], messages: [{id: "wamid…"}]}`; errors
 *    are Graph errors `{error: {message, type, code, error_subcode, fbtrace_id}}`.
 *    @see https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
 */
import { createHmac } from 'node:crypto';

export interface SendResult {
  ok: boolean;
  /** provider message id (Twilio `sid`, Meta `message_id`) */
  id?: string;
  status: number;
  error?: string;
  /** retrying cannot help (default: an HTTP 4xx other than 429) */
  permanent?: boolean;
}

export interface TwilioCredentials {
  accountSid: string;
  authToken: string;
}

export async function sendTwilioMessage(
  baseUrl: string,
  creds: TwilioCredentials,
  msg: { from: string; to: string; body: string; whatsapp: boolean },
  signal?: AbortSignal,
): Promise<SendResult> {
  const addr = (n: string) => (msg.whatsapp && !n.startsWith('whatsapp:') ? `whatsapp:${n}` : n);
  const url = `${baseUrl.replace(/\/$/, '')}/2010-04-01/Accounts/${encodeURIComponent(creds.accountSid)}/Messages.json`;
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${creds.accountSid}:${creds.authToken}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ To: addr(msg.to), From: addr(msg.from), Body: msg.body }).toString(),
    signal: signal ?? AbortSignal.timeout(15_000),
  });
  const json = (await res.json().catch(() => ({}))) as { sid?: string; message?: string };
  return res.ok
    ? { ok: true, status: res.status, ...(json.sid ? { id: json.sid } : {}) }
    : { ok: false, status: res.status, error: json.message ?? `HTTP ${res.status}` };
}

export interface MetaCredentials {
  pageAccessToken: string;
  appSecret: string;
}

export function appSecretProof(appSecret: string, accessToken: string): string {
  return createHmac('sha256', appSecret).update(accessToken).digest('hex');
}

export async function sendMetaMessage(
  baseUrl: string,
  version: string,
  pageId: string,
  creds: MetaCredentials,
  msg: { recipientId: string; text: string },
  signal?: AbortSignal,
): Promise<SendResult> {
  const url = new URL(`${baseUrl.replace(/\/$/, '')}/${version}/${encodeURIComponent(pageId)}/messages`);
  url.searchParams.set('appsecret_proof', appSecretProof(creds.appSecret, creds.pageAccessToken));
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${creds.pageAccessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      recipient: { id: msg.recipientId },
      messaging_type: 'RESPONSE',
      message: { text: msg.text },
    }),
    signal: signal ?? AbortSignal.timeout(15_000),
  });
  const json = (await res.json().catch(() => ({}))) as { message_id?: string; error?: { message?: string } };
  return res.ok
    ? { ok: true, status: res.status, ...(json.message_id ? { id: json.message_id } : {}) }
    : { ok: false, status: res.status, error: json.error?.message ?? `HTTP ${res.status}` };
}

export interface WhatsAppCloudCredentials {
  accessToken: string;
  /** adds `appsecret_proof` when set */
  appSecret?: string;
}

/** The Cloud API's text limit. */
export const WHATSAPP_TEXT_MAX = 4096;

/** A WhatsApp id (`wa_id`) from an E.164 number or a `whatsapp:` address: digits only. */
export function whatsAppId(address: string): string {
  return address.replace(/^whatsapp:/, '').replace(/[^0-9]/g, '');
}

export async function sendWhatsAppCloudMessage(
  baseUrl: string,
  version: string,
  phoneNumberId: string,
  creds: WhatsAppCloudCredentials,
  msg: { to: string; text: string },
  signal?: AbortSignal,
): Promise<SendResult> {
  const url = new URL(
    `${baseUrl.replace(/\/$/, '')}/${version}/${encodeURIComponent(phoneNumberId)}/messages`,
  );
  if (creds.appSecret)
    url.searchParams.set('appsecret_proof', appSecretProof(creds.appSecret, creds.accessToken));
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${creds.accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: whatsAppId(msg.to),
      type: 'text',
      text: { preview_url: false, body: msg.text.slice(0, WHATSAPP_TEXT_MAX) },
    }),
    signal: signal ?? AbortSignal.timeout(15_000),
  });
  const json = (await res.json().catch(() => ({}))) as {
    messages?: Array<{ id?: string }>;
    error?: { message?: string; code?: number };
  };
  const id = json.messages?.[0]?.id;
  return res.ok
    ? { ok: true, status: res.status, ...(id ? { id } : {}) }
    : {
        ok: false,
        status: res.status,
        error: json.error?.message
          ? `${json.error.message}${json.error.code ? ` (code ${json.error.code})` : ''}`
          : `HTTP ${res.status}`,
      };
}
