/**
 * Set-up shared by the channel round-trip tests (channels-roundtrip, channels-staff-relay): the
 * API service as its own PROCESS on the agent harness' platform database and KEK (its webhooks
 * and staff routes are the real ones), and the requests a provider or a mail gateway makes to it
 * — signed Meta and Twilio webhooks, raw MIME to the e-mail ingest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { env, waitFor, type AgentHarness } from './support.ts';

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface ApiProcess {
  url: string;
  proc: ChildProcess;
  stderr(): string;
  close(): Promise<void>;
}

export interface ApiProcessOptions {
  /** `SIMPTU_WEBHOOK_SECRETS_JSON`: secret name → key → value */
  secrets: Record<string, Record<string, string>>;
  /** the token issuer the API trusts (staff routes); none: webhooks only */
  issuer?: { issuer: string; jwksUri: string };
}

/** The API service as a process, on the harness' platform database and KEK. */
export async function startApi(h: AgentHarness, o: ApiProcessOptions): Promise<ApiProcess> {
  const port = await freePort();
  let stderr = '';
  const proc = spawn(process.execPath, ['services/api/src/main.ts'], {
    cwd: new URL('../../..', import.meta.url).pathname,
    env: {
      PATH: process.env.PATH ?? '',
      SIMPTU_API_DATABASE_URL: h.platform.appUrl,
      SIMPTU_API_REDIS_URL: env('REDIS_URL'),
      SIMPTU_API_REDIS_PREFIX: `test:api:${randomBytes(4).toString('hex')}:`,
      SIMPTU_API_KAFKA_BROKERS: env('KAFKA_BROKERS'),
      SIMPTU_API_KEK: h.platform.kekBase64,
      SIMPTU_API_HOST: '127.0.0.1',
      SIMPTU_API_PORT: String(port),
      // without an issuer no token is ever presented: the webhooks authenticate by signature
      SIMPTU_API_AUTH_ISSUER: o.issuer?.issuer ?? 'http://127.0.0.1:9/issuer',
      SIMPTU_API_AUTH_JWKS_URI: o.issuer?.jwksUri ?? 'http://127.0.0.1:9/jwks',
      SIMPTU_API_EVENTS_CONSUMERS: 'false',
      SIMPTU_API_EVENTS_TENANT_REFRESH_MS: '500',
      SIMPTU_API_EVENTS_GROUP_PREFIX: `test-api-${randomBytes(4).toString('hex')}`,
      SIMPTU_API_LOG_LEVEL: 'warn',
      SIMPTU_WEBHOOK_SECRETS_JSON: JSON.stringify(o.secrets),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'the API to be ready',
    async () => {
      if (proc.exitCode !== null) throw new Error(`API exited ${proc.exitCode}: ${stderr}`);
      return (await fetch(`${url}/readyz`).catch(() => null))?.ok ? true : undefined;
    },
    60_000,
  );
  return {
    url,
    proc,
    stderr: () => stderr,
    async close() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.on('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** A raw MIME message from header lines and a body. */
export const mime = (headers: string[], body: string): string => [...headers, '', body, ''].join('\r\n');

/** `X-Hub-Signature-256` of a Meta webhook body. */
export const metaSignature = (appSecret: string, body: string): string =>
  `sha256=${createHmac('sha256', appSecret).update(body).digest('hex')}`;

/** POSTs a Meta webhook (signed when `signature` is given). */
export async function postMeta(api: ApiProcess, tenant: string, body: string, signature?: string) {
  const res = await fetch(`${api.url}/v1/webhooks/meta/${tenant}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(signature ? { 'x-hub-signature-256': signature } : {}),
    },
    body,
  });
  return { status: res.status, json: (await res.json()) as unknown };
}

/**
 * POSTs a Twilio webhook as Twilio does: form-encoded, `X-Twilio-Signature` = base64
 * HMAC-SHA1(auth token, URL + every param name and value, sorted by name).
 * @see https://www.twilio.com/docs/usage/webhooks/webhooks-security
 */
export async function postTwilio(
  api: ApiProcess,
  tenant: string,
  authToken: string,
  params: Record<string, string>,
) {
  const url = `${api.url}/v1/webhooks/twilio/${tenant}`;
  let data = url;
  for (const k of Object.keys(params).sort()) data += k + params[k]!;
  const signature = createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
    body: new URLSearchParams(params).toString(),
  });
  return { status: res.status, text: await res.text() };
}

/** POSTs raw MIME to the e-mail ingest webhook. */
export async function ingestEmail(api: ApiProcess, tenant: string, secret: string, raw: string) {
  const res = await fetch(`${api.url}/v1/webhooks/email/${tenant}`, {
    method: 'POST',
    headers: { 'content-type': 'message/rfc822', 'x-simptu-ingest-secret': secret },
    body: raw,
  });
  return { status: res.status, json: (await res.json()) as unknown };
}
