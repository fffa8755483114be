/**
 * Replies and `send_message` texts to SMS/WhatsApp/Messenger customers.
 *
 * Two steps, so nothing is lost and nothing is sent twice by a replay: `queueOutbound` records
 * the message (encrypted recipient and body, id derived from the idempotency key, so the same
 * call queues once) in the run's tenant transaction; after COMMIT `OutboundSender.deliver`
 * sends pending rows (row-locked, SKIP LOCKED: one sender per row) and marks them sent. A crash
 * between a provider's accept and the mark can resend that one message on the next sweep —
 * the providers have no idempotency keys, so at-least-once is the honest guarantee.
 * Sending is rate-limited per tenant (Redis fixed window): over the limit, rows stay pending.
 */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import {
  deterministicEventId,
  withTenant,
  type DomainContext,
  type FieldCipher,
  type FieldLocation,
  type Logger,
} from '@simptu/common';
import type { AgentTenant } from '../registry.ts';
import type { SecretSource } from '../secrets.ts';
import { sendMetaMessage, sendTwilioMessage, type SendResult } from './clients.ts';

export type OutboundChannel = 'sms' | 'whatsapp' | 'messenger' | 'instagram';

const loc = (id: string, column: 'recipient' | 'body'): FieldLocation => ({
  table: 'outbound_messages',
  column,
  rowId: id,
});

/** Queues a message; the same key queues it once. Returns its id. */
export async function queueOutbound(
  ctx: DomainContext,
  m: { key: string; sessionId: string; channel: OutboundChannel; recipient: string; body: string },
): Promise<string> {
  const id = deterministicEventId('outbound', ctx.cipher.tenant, m.key);
  await ctx.client.query(
    `INSERT INTO outbound_messages (id, session_id, channel, recipient, body) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (id) DO NOTHING`,
    [
      id,
      m.sessionId,
      m.channel,
      ctx.cipher.encrypt(m.recipient, loc(id, 'recipient')),
      ctx.cipher.encrypt(m.body, loc(id, 'body')),
    ],
  );
  return id;
}

/** The address replies to a session go to: the customer's phone, or their Messenger/Instagram id. */
export async function replyAddress(
  ctx: DomainContext,
  customerId: string,
  channel: OutboundChannel,
): Promise<string | null> {
  if (channel === 'sms' || channel === 'whatsapp') {
    const { rows } = await ctx.client.query<{ phone: Buffer | null }>(
      'SELECT phone FROM customers WHERE id = $1',
      [customerId],
    );
    const phone = rows[0]?.phone;
    return phone
      ? ctx.cipher.decryptString(phone, { table: 'customers', column: 'phone', rowId: customerId })
      : null;
  }
  const { rows } = await ctx.client.query<{ id: string; address: Buffer }>(
    'SELECT id, address FROM channel_contacts WHERE customer_id = $1 AND channel = $2 ORDER BY created_at DESC LIMIT 1',
    [customerId, channel],
  );
  return rows[0]
    ? ctx.cipher.decryptString(rows[0].address, {
        table: 'channel_contacts',
        column: 'address',
        rowId: rows[0].id,
      })
    : null;
}

export interface OutboundSenderOptions {
  redis: Redis;
  redisPrefix: string;
  secrets: SecretSource;
  twilioBaseUrl: string;
  metaBaseUrl: string;
  metaApiVersion: string;
  ratePerMinute: number;
  logger?: Logger;
}

interface Row {
  id: string;
  channel: OutboundChannel;
  recipient: Buffer;
  body: Buffer;
}

export class OutboundSender {
  readonly #o: OutboundSenderOptions;

  constructor(options: OutboundSenderOptions) {
    this.#o = options;
  }

  /** One slot of the tenant's per-minute budget; false when it is used up. */
  async #take(tenant: string): Promise<boolean> {
    const window = Math.floor(Date.now() / 60_000);
    const key = `${this.#o.redisPrefix}rl:out:${tenant}:${window}`;
    const n = await this.#o.redis.incr(key);
    if (n === 1) await this.#o.redis.expire(key, 120);
    return n <= this.#o.ratePerMinute;
  }

  async #send(tenant: AgentTenant, row: Row, recipient: string, body: string): Promise<SendResult> {
    const i = tenant.integrations;
    if (row.channel === 'sms' || row.channel === 'whatsapp') {
      if (!i.twilio) return { ok: false, status: 0, error: 'tenant has no twilio integration' };
      const name = i.twilio.credentialsSecretRef.name;
      const accountSid = this.#o.secrets.get(name, 'accountSid');
      const authToken = this.#o.secrets.get(name, 'authToken');
      if (!accountSid || !authToken)
        return { ok: false, status: 0, error: `secret ${name} lacks accountSid/authToken` };
      return sendTwilioMessage(
        this.#o.twilioBaseUrl,
        { accountSid, authToken },
        {
          from: i.twilio.phoneNumber,
          to: recipient,
          body,
          whatsapp: row.channel === 'whatsapp',
        },
      );
    }
    if (!i.meta) return { ok: false, status: 0, error: 'tenant has no meta integration' };
    const name = i.meta.credentialsSecretRef.name;
    const pageAccessToken = this.#o.secrets.get(name, 'pageAccessToken');
    const appSecret = this.#o.secrets.get(name, 'appSecret');
    if (!pageAccessToken || !appSecret)
      return { ok: false, status: 0, error: `secret ${name} lacks pageAccessToken/appSecret` };
    return sendMetaMessage(
      this.#o.metaBaseUrl,
      this.#o.metaApiVersion,
      i.meta.pageId,
      { pageAccessToken, appSecret },
      { recipientId: recipient, text: body },
    );
  }

  /** Sends the tenant's pending messages; returns how many went out. */
  async deliver(pool: pg.Pool, tenant: AgentTenant, cipher: FieldCipher): Promise<number> {
    return withTenant(pool, tenant.ref, async (c) => {
      const { rows } = await c.query<Row>(
        `SELECT id, channel, recipient, body FROM outbound_messages WHERE status = 'pending'
          ORDER BY created_at LIMIT 20 FOR UPDATE SKIP LOCKED`,
      );
      let sent = 0;
      for (const row of rows) {
        if (!(await this.#take(tenant.name))) {
          this.#o.logger?.warn({ tenant: tenant.name }, 'outbound rate limit reached; messages stay pending');
          break;
        }
        const recipient = cipher.decryptString(row.recipient, loc(row.id, 'recipient'));
        const body = cipher.decryptString(row.body, loc(row.id, 'body'));
        let r: SendResult;
        try {
          r = await this.#send(tenant, row, recipient, body);
        } catch (err) {
          r = { ok: false, status: 0, error: err instanceof Error ? err.message : String(err) };
        }
        if (r.ok) sent++;
        // 4xx from the provider: the request itself is wrong, retrying won't help.
        const failed = !r.ok && r.status >= 400 && r.status < 500 && r.status !== 429;
        await c.query(
          `UPDATE outbound_messages SET status = $2, attempts = attempts + 1, provider_message_id = $3, last_error = $4,
                  sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE NULL END
            WHERE id = $1`,
          [
            row.id,
            r.ok ? 'sent' : failed ? 'failed' : 'pending',
            r.id ?? null,
            r.error?.slice(0, 500) ?? null,
          ],
        );
        if (!r.ok)
          this.#o.logger?.warn(
            { tenant: tenant.name, outboundId: row.id, status: r.status, error: r.error },
            'outbound send failed',
          );
      }
      return sent;
    });
  }
}
