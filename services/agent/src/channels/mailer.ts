/**
 * Outgoing e-mail replies by SMTP, with nodemailer (the library the SSO service uses for its
 * password-reset mail). One transport per agent process, from `SIMPTU_AGENT_CHANNELS_SMTP_URL`
 * (`smtp://user:pass@host:587`, `smtps://…:465`; nodemailer's URL options such as `?pool=true`
 * apply).
 *
 * A reply is threaded on the customer's mail (`In-Reply-To`, `References`, `Re:` subject); the
 * agent's replies mark themselves as automatic, so well-behaved auto-responders at the other end
 * stay quiet (`Auto-Submitted: auto-replied`, RFC 3834 §5; Microsoft's
 * `X-Auto-Response-Suppress`) — staff messages, written by a person, do not. Its
 * Message-ID derives from the outbound row id, so a resend after a crash is recognisable as the
 * same message.
 * @see https://nodemailer.com/smtp/
 * @see https://www.rfc-editor.org/rfc/rfc3834#section-5
 */
import nodemailer, { type Transporter } from 'nodemailer';
import type { EmailThread } from './email.ts';
import type { SendResult } from './clients.ts';

export interface EmailReply {
  /** the outbound row id (becomes the Message-ID's left part) */
  id: string;
  from: { name: string; address: string };
  to: string;
  text: string;
  thread: EmailThread;
  /**
   * Sent on the agent's behalf: `Auto-Submitted: auto-replied` and `X-Auto-Response-Suppress`.
   * False for a staff member's message (RFC 3834 §5: only automatic responses say so). @default true
   */
  automatic?: boolean;
}

export interface ReplyMailer {
  send(m: EmailReply): Promise<SendResult>;
  verify(): Promise<void>;
  close(): void;
}

/** The Message-ID of the mail sent for an outbound row, From `fromAddress`. */
export function emailMessageId(id: string, fromAddress: string): string {
  return `<${id}@${fromAddress.split('@')[1] ?? 'localhost'}>`;
}

export function createReplyMailer(smtpUrl: string): ReplyMailer {
  const transport: Transporter = nodemailer.createTransport(smtpUrl);
  return {
    async send(m) {
      try {
        const info = (await transport.sendMail({
          from: { name: m.from.name, address: m.from.address },
          to: m.to,
          subject: m.thread.subject,
          text: m.text,
          messageId: emailMessageId(m.id, m.from.address),
          ...(m.thread.inReplyTo ? { inReplyTo: m.thread.inReplyTo } : {}),
          ...(m.thread.references.length ? { references: m.thread.references } : {}),
          headers:
            (m.automatic ?? true)
              ? { 'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All' }
              : {},
        })) as { messageId?: string; rejected?: unknown[] };
        if (info.rejected?.length)
          return { ok: false, status: 550, permanent: true, error: 'recipient rejected' };
        return { ok: true, status: 250, ...(info.messageId ? { id: info.messageId } : {}) };
      } catch (err) {
        // SMTP reply codes: 5xx is permanent (retrying won't help), 4xx and connection failures
        // are transient.
        const e = err as { responseCode?: number; message?: string };
        const code = typeof e.responseCode === 'number' ? e.responseCode : 0;
        return { ok: false, status: code, permanent: code >= 500, error: e.message ?? String(err) };
      }
    },
    async verify() {
      await transport.verify();
    },
    close() {
      transport.close();
    },
  };
}
