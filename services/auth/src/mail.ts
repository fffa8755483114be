/**
 * Outgoing e-mail through SMTP (nodemailer): password-reset links. Text and HTML parts; the
 * HTML escapes everything it interpolates.
 * @see https://nodemailer.com/smtp/
 */
import nodemailer, { type Transporter } from 'nodemailer';
import { escapeHtml } from './views.ts';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
  verify(): Promise<void>;
  close(): void;
}

export function createMailer(opts: { smtpUrl: string; from: string }): Mailer {
  const transport: Transporter = nodemailer.createTransport(opts.smtpUrl);
  return {
    async send(m) {
      await transport.sendMail({ from: opts.from, to: m.to, subject: m.subject, text: m.text, html: m.html });
    },
    async verify() {
      await transport.verify();
    },
    close() {
      transport.close();
    },
  };
}

export function passwordResetMessage(
  to: string,
  tenantName: string,
  link: string,
  ttlMin: number,
): MailMessage {
  return {
    to,
    subject: `Reset your ${tenantName} password`,
    text:
      `Someone asked to reset the password of your ${tenantName} account.\n\n` +
      `Open this link within ${ttlMin} minutes to choose a new password:\n${link}\n\n` +
      `If it wasn't you, ignore this message: your password stays as it is.\n`,
    html:
      `<p>Someone asked to reset the password of your ${escapeHtml(tenantName)} account.</p>` +
      `<p><a href="${escapeHtml(link)}">Choose a new password</a> (valid for ${ttlMin} minutes).</p>` +
      `<p>If it wasn't you, ignore this message: your password stays as it is.</p>`,
  };
}
