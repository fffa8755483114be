/**
 * `node hack/dev-mail.ts`: the development mail catcher `make dev` starts (hack/dev.sh). An SMTP
 * server on 127.0.0.1 (`SIMPTU_DEV_MAIL_PORT`, default 1025) that accepts every mail, delivers
 * none: each one is logged (envelope, From, Subject, threading headers, the text) and kept as
 * `<dir>/<time>-<n>.eml` (`SIMPTU_DEV_MAIL_DIR`, default `.dev/mail/`; open it with any mail
 * client). The agent's e-mail replies and staff messages (`SIMPTU_AGENT_CHANNELS_SMTP_URL`) and
 * the SSO's mails (its default `smtp://127.0.0.1:1025`) land here.
 *
 * Any AUTH is accepted (so `smtp://user:pass@127.0.0.1:1025` works too); no TLS.
 * @see https://nodemailer.com/extras/smtp-server/
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { simpleParser, type AddressObject } from 'mailparser';
import { SMTPServer } from 'smtp-server';

const ROOT = resolve(import.meta.dirname, '..');
const port = Number(process.env.SIMPTU_DEV_MAIL_PORT ?? 1025);
const host = process.env.SIMPTU_DEV_MAIL_HOST ?? '127.0.0.1';
const dir = resolve(ROOT, process.env.SIMPTU_DEV_MAIL_DIR ?? '.dev/mail');
const MAX_BYTES = 10 * 1024 * 1024;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(
    `SIMPTU_DEV_MAIL_PORT must be a port number, got ${process.env.SIMPTU_DEV_MAIL_PORT}\n`,
  );
  process.exit(2);
}
mkdirSync(dir, { recursive: true });

const addresses = (a: AddressObject | AddressObject[] | undefined): string =>
  (Array.isArray(a) ? a : a ? [a] : []).map((x) => x.text).join(', ');
let n = 0;

const server = new SMTPServer({
  name: 'simptu-dev-mail',
  banner: 'Simptu development mail catcher: nothing is delivered',
  authOptional: true,
  allowInsecureAuth: true,
  disabledCommands: ['STARTTLS'],
  size: MAX_BYTES,
  logger: false,
  onAuth(auth, _session, cb) {
    cb(null, { user: auth.username ?? 'dev' });
  },
  onData(stream, session, cb) {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', (err) => cb(err));
    stream.on('end', () => {
      const raw = Buffer.concat(chunks);
      if ((stream as { sizeExceeded?: boolean }).sizeExceeded) {
        const err = Object.assign(new Error(`message exceeds ${MAX_BYTES} bytes`), { responseCode: 552 });
        return cb(err);
      }
      const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${++n}.eml`);
      writeFileSync(file, raw);
      simpleParser(raw)
        .then((m) => {
          const lines = [
            `[mail] ${new Date().toISOString()} ${relative(ROOT, file)}`,
            `  envelope: ${session.envelope.mailFrom ? session.envelope.mailFrom.address : '<>'} → ${session.envelope.rcptTo.map((r) => r.address).join(', ')}`,
            `  From: ${addresses(m.from)}`,
            `  To: ${addresses(m.to)}`,
            `  Subject: ${m.subject ?? ''}`,
            ...(m.inReplyTo ? [`  In-Reply-To: ${m.inReplyTo}`] : []),
            ...(m.headers.get('auto-submitted')
              ? [`  Auto-Submitted: ${String(m.headers.get('auto-submitted'))}`]
              : []),
            ...(m.text ?? '')
              .trimEnd()
              .split('\n')
              .slice(0, 40)
              .map((l) => `  | ${l}`),
          ];
          process.stdout.write(`${lines.join('\n')}\n`);
        })
        .catch((err: unknown) =>
          process.stdout.write(`[mail] ${relative(ROOT, file)} (not parsed: ${String(err)})\n`),
        )
        .finally(() => cb());
    });
  },
});
server.on('error', (err) => process.stderr.write(`[mail] ${err.message}\n`));
server.listen(port, host, () => {
  const a = server.server.address();
  const bound = typeof a === 'object' && a ? a.port : port;
  process.stdout.write(
    `[mail] catching SMTP on smtp://${host}:${bound}, keeping mails in ${relative(ROOT, dir)}/\n`,
  );
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
