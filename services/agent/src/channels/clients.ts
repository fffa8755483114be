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
 */
import { createHmac } from 'node:crypto';

export interface SendResult {
  ok: boolean;
  /** provider message id (Twilio `sid`, Meta `message_id`) */
  id?: string;
  status: number;
  error?: string;
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
