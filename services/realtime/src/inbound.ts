/**
 * `message:send` on a session channel (DESIGN §6, §7): the message is appended to the tenant's
 * `messages` table and two events are put in the outbox — `io.simptu.message.received` on the
 * tenant's `inbound` topic (what the agent consumes) and `io.simptu.message.created` on its
 * `domain` topic (what every subscriber of the session, on every hub instance, sees) — in ONE
 * `withTenant` transaction. The hub replies `ok` only after COMMIT, so `ok` means durable, and
 * the outbox relay makes "reaches the agent" at-least-once, de-duplicated by event id.
 *
 * Retries are safe: the client's `client_msg_id` is an idempotency key per principal (the
 * tenant's `idempotency_keys` table, key `ws:message:<client_msg_id>`); a retry after a lost
 * reply gets the first result and nothing is written twice. A different message under the
 * same key is refused.
 *
 * The body travels encrypted (`body_enc`, bound to the message row like the stored column),
 * so Kafka holds no message text in clear; the hub decrypts it only for authorized sockets.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import {
  appendMessage,
  enqueue,
  messageBodyLocation,
  tenantTopics,
  withTenant,
  type AccessTokenClaims,
  type FieldCipher,
} from '@simptu/common';
import { isStaff } from './topics.ts';
import type { TenantInfo } from './registry.ts';

export const EVENT_SOURCE = '/simptu/realtime';
export const MAX_CLIENT_MSG_ID = 200;

export interface SendMessageInput {
  body: string;
  /** idempotency key chosen by the client (a UUID is a good choice) */
  clientMsgId: string;
}

export interface SendMessageResult {
  message_id: string;
  seq: number;
  /** a retry of an earlier send: nothing new was written */
  duplicate: boolean;
}

export type SendMessageOutcome =
  | { ok: true; result: SendMessageResult }
  | { ok: false; reason: 'invalid' | 'idempotency_key_reused'; detail?: string };

/** Payload validation (pure). */
export function parseSendPayload(
  p: Record<string, unknown>,
  fallbackKey: string,
): { ok: true; input: SendMessageInput } | { ok: false; detail: string } {
  if (typeof p.body !== 'string' || p.body.length < 1 || p.body.length > 16_000)
    return { ok: false, detail: 'body must be a string of 1..16000 characters' };
  const id = p.client_msg_id ?? fallbackKey;
  if (typeof id !== 'string' || id.length < 1 || id.length > MAX_CLIENT_MSG_ID)
    return { ok: false, detail: `client_msg_id must be a string of 1..${MAX_CLIENT_MSG_ID} characters` };
  return { ok: true, input: { body: p.body, clientMsgId: id } };
}

export async function sendMessage(
  pool: pg.Pool,
  tenant: TenantInfo,
  cipher: FieldCipher,
  claims: AccessTokenClaims,
  sessionId: string,
  input: SendMessageInput,
): Promise<SendMessageOutcome> {
  const staff = isStaff(claims);
  const key = `ws:message:${input.clientMsgId}`;
  const requestHash = createHash('sha256').update(`${sessionId}\n${input.body}`).digest('hex');
  return withTenant(pool, tenant.ref, async (client) => {
    const ins = await client.query(
      `INSERT INTO idempotency_keys (key, principal, request_hash) VALUES ($1, $2, $3)
       ON CONFLICT (principal, key) DO NOTHING RETURNING key`,
      [key, claims.sub, requestHash],
    );
    if (ins.rowCount === 0) {
      // Another send with this key committed (a concurrent one blocks on the index until then).
      const { rows } = await client.query<{ request_hash: string; response: SendMessageResult | null }>(
        `SELECT request_hash, response FROM idempotency_keys WHERE principal = $1 AND key = $2`,
        [claims.sub, key],
      );
      const prior = rows[0];
      if (!prior || prior.request_hash !== requestHash || !prior.response)
        return { ok: false, reason: 'idempotency_key_reused' } as const;
      return { ok: true, result: { ...prior.response, duplicate: true } } as const;
    }
    const ctx = { client, cipher, timeZone: tenant.timeZone, source: EVENT_SOURCE };
    const msg = await appendMessage(
      ctx,
      sessionId,
      { role: staff ? 'staff' : 'user', body: input.body, author: staff ? claims.sub : null },
      staff ? {} : { customerId: claims.sub },
    );
    const { rows: s } = await client.query<{ customer_id: string | null }>(
      `SELECT customer_id FROM sessions WHERE id = $1`,
      [msg.sessionId],
    );
    const data = {
      session_id: msg.sessionId,
      message_id: msg.id,
      seq: msg.seq,
      role: msg.role,
      author: msg.author,
      customer_id: s[0]?.customer_id ?? null,
      client_msg_id: input.clientMsgId,
      channel: 'web',
      body_enc: cipher.encryptText(input.body, messageBodyLocation(msg.id)),
    };
    const topics = tenantTopics(tenant.name);
    await enqueue(client, cipher, {
      type: 'io.simptu.message.received',
      source: EVENT_SOURCE,
      aggregateType: 'session',
      aggregateId: msg.sessionId,
      topic: topics.inbound,
      data,
    });
    await enqueue(client, cipher, {
      type: 'io.simptu.message.created',
      source: EVENT_SOURCE,
      aggregateType: 'session',
      aggregateId: msg.sessionId,
      topic: topics.domain,
      data,
    });
    const result: SendMessageResult = { message_id: msg.id, seq: msg.seq, duplicate: false };
    await client.query(
      `UPDATE idempotency_keys SET status_code = 200, response = $3 WHERE principal = $1 AND key = $2`,
      [claims.sub, key, { message_id: msg.id, seq: msg.seq }],
    );
    return { ok: true, result } as const;
  });
}
