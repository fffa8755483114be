/**
 * Integration-test fixture for the SSO service: a scratch platform database with tenants
 * provisioned as the operator does it (registry row, NOLOGIN tenant role with migrated schema,
 * a DEK wrapped by a local KMS), the service's own NOINHERIT login role, a real local SMTP
 * server that captures messages, and the auth service listening on a free port. Plus a tiny
 * cookie-keeping browser that follows redirects by hand and submits HTML forms.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import pg from 'pg';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import {
  createLogger,
  createScratchDatabase,
  dekWrapAad,
  generateDek,
  LocalKms,
  migratePlatform,
  migrateTenantSchema,
  quoteIdent,
  quoteLiteral,
  tenantDbRef,
  tenantId,
  uniqueName,
  withTenant,
  FieldCipher,
  TenantKeyring,
  type DomainContext,
  type ScratchDatabase,
} from '@simptu/common';
import { createAuthService, type AuthService } from '../src/app.ts';
import { AuthConfigSchema, checkSemantics, type AuthConfig } from '../src/config.ts';
import { loadConfig } from '@simptu/common';

export const API_RESOURCE = 'https://api.simptu.test';

// One KEK per test process, known in base64 so the service's config can carry it.
const kekBase64 = randomBytes(32).toString('base64');
const fixtureKms = LocalKms.fromBase64(kekBase64);

export function env(name: 'DATABASE_URL' | 'REDIS_URL'): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through 'make test' (or source .testenv/env)`);
  return v;
}

export function uniqueTenantName(prefix = 'au'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface SmtpCapture {
  url: string;
  messages: ParsedMail[];
  /** resolves with the next message (or one already received to `to`) */
  waitFor(to: string, timeoutMs?: number): Promise<ParsedMail>;
  close(): Promise<void>;
}

export async function startSmtp(): Promise<SmtpCapture> {
  const messages: ParsedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, cb) {
      simpleParser(stream).then(
        (m) => {
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
    async waitFor(to, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        const m = messages.find((x) => addressed(x, to));
        if (m) return m;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no mail to ${to} within ${timeoutMs} ms`);
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export interface FixtureTenant {
  name: string;
  displayName: string;
  redirectUri: string;
  origin: string;
}

export interface AuthFixture {
  db: ScratchDatabase;
  admin: pg.Pool;
  kms: LocalKms;
  smtp: SmtpCapture;
  service: AuthService;
  issuer: string;
  config: AuthConfig;
  tenants: FixtureTenant[];
  /** a unit of work in a tenant's schema with its cipher (as the API would do it) */
  runTenant<T>(tenant: string, fn: (ctx: DomainContext) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  tenants?: number;
  config?: (c: Record<string, unknown>) => void;
}

export async function createAuthFixture(opts: FixtureOptions = {}): Promise<AuthFixture> {
  const db = await createScratchDatabase(env('DATABASE_URL'), 'simptu_auth');
  const admin = new pg.Pool({ connectionString: db.url, max: 3 });
  admin.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  const login = uniqueName('auth_svc');
  const password = uniqueName('pw');
  const kms = fixtureKms;
  const deks = new Map<string, Buffer>();
  const tenants: FixtureTenant[] = [];
  const roles: string[] = [login];
  let smtp: SmtpCapture | undefined;
  let service: AuthService | undefined;
  let appPool: pg.Pool | undefined;

  const close = async () => {
    if (service) {
      // Everything this run put in Redis carries its unique prefix.
      const keys = await service.redis.keys(`${service.config.redisPrefix}*`);
      if (keys.length > 0) await service.redis.del(...keys);
    }
    await service?.close();
    await smtp?.close();
    await appPool?.end();
    await admin.end();
    await db.drop();
    const c = new pg.Client({ connectionString: env('DATABASE_URL') });
    await c.connect();
    try {
      for (const r of roles) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`);
    } finally {
      await c.end();
    }
  };

  try {
    await migratePlatform(admin);
    await admin.query(`CREATE ROLE ${quoteIdent(login)} LOGIN NOINHERIT PASSWORD ${quoteLiteral(password)}`);
    await admin.query(`GRANT CREATE ON DATABASE ${quoteIdent(db.name)} TO ${quoteIdent(login)}`);
    await admin.query(`GRANT USAGE ON SCHEMA platform TO ${quoteIdent(login)}`);
    await admin.query(`GRANT SELECT ON platform.tenants, platform.tenant_keys TO ${quoteIdent(login)}`);
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    for (let i = 0; i < (opts.tenants ?? 2); i++) {
      const name = uniqueTenantName();
      const ref = tenantDbRef(name);
      roles.push(ref.role);
      await admin.query(`CREATE ROLE ${quoteIdent(ref.role)} NOLOGIN`);
      await migrateTenantSchema(admin, ref);
      await admin.query(`GRANT ${quoteIdent(ref.role)} TO ${quoteIdent(login)}`);
      const dek = generateDek();
      deks.set(name, dek);
      await admin.query(
        'INSERT INTO platform.tenant_keys (tenant, version, wrapped_dek, kek_id) VALUES ($1, 1, $2, $3)',
        [name, await kms.wrap(dek, dekWrapAad(name, 1)), kms.kekId],
      );
      const t: FixtureTenant = {
        name,
        displayName: `Clinic ${name.toUpperCase()}`,
        origin: `http://127.0.0.1:${9000 + i}`,
        redirectUri: `http://127.0.0.1:${9000 + i}/callback`,
      };
      await admin.query(
        `INSERT INTO platform.tenants (name, tenant_id, display_name, business_type, database_name, schema_name,
                                       origins, redirect_uris, timezone, active_key_version)
         VALUES ($1, $2, $3, 'dental', $4, $5, $6, $7, 'Europe/Bucharest', 1)`,
        [name, tenantId(name), t.displayName, db.name, ref.schema, [t.origin], [t.redirectUri]],
      );
      tenants.push(t);
    }
    smtp = await startSmtp();
    const url = new URL(db.url);
    url.username = login;
    url.password = password;
    const raw: Record<string, unknown> = {
      port,
      host: '127.0.0.1',
      issuer,
      databaseUrl: url.toString(),
      databasePoolMax: 6,
      redisUrl: env('REDIS_URL'),
      redisPrefix: `simptu:authtest:${randomBytes(4).toString('hex')}:`,
      kek: kekBase64,
      cookieKeys: [randomBytes(32).toString('base64url')],
      api: { resource: API_RESOURCE, audience: 'simptu-api' },
      mail: { smtpUrl: smtp.url, from: 'Simptu <no-reply@simptu.test>' },
      ttl: {},
      keys: {},
      login: {},
      accessCode: {},
      logLevel: 'silent',
    };
    opts.config?.(raw);
    const config = loadConfig(AuthConfigSchema, raw);
    checkSemantics(config);
    appPool = new pg.Pool({ connectionString: config.databaseUrl, max: 6 });
    appPool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
    service = await createAuthService(config, {
      db: appPool,
      kms,
      logger: createLogger({ service: 'auth-test', level: process.env.AUTH_TEST_LOG ?? 'silent' }),
    });
    await service.listen();
    const svc = service;
    return {
      db,
      admin,
      kms,
      smtp,
      service: svc,
      issuer,
      config,
      tenants,
      async runTenant(tenant, fn) {
        const cipher = new FieldCipher(new TenantKeyring(tenant, new Map([[1, deks.get(tenant)!]])));
        return withTenant(appPool!, tenantDbRef(tenant), (client) =>
          fn({ client, cipher, timeZone: 'Europe/Bucharest' }),
        );
      },
      close,
    };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

/** A cookie-keeping HTTP client that doesn't follow redirects by itself. */
export class Browser {
  readonly cookies = new Map<string, string>();

  #store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.trim().split('=');
        if (k!.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k!.toLowerCase() === 'expires') return Date.parse(v!) < Date.now();
        return false;
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  #cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async get(url: string): Promise<Response> {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: this.#cookieHeader() } });
    this.#store(res);
    return res;
  }

  async post(
    url: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        cookie: this.#cookieHeader(),
        'content-type': 'application/x-www-form-urlencoded',
        ...headers,
      },
      body: new URLSearchParams(form).toString(),
    });
    this.#store(res);
    return res;
  }

  /**
   * Follows redirects from `url` until one leaves `origin` (the RP's callback) or a page is
   * served; returns the final URL and, for a page, the response.
   */
  async follow(url: string, origin: string, max = 10): Promise<{ url: string; res?: Response }> {
    let current = url;
    for (let i = 0; i < max; i++) {
      if (!current.startsWith(origin)) return { url: current };
      const res = await this.get(current);
      const loc = res.headers.get('location');
      if (process.env.AUTH_TEST_TRACE) console.log(res.status, current, '->', loc);
      if (res.status >= 300 && res.status < 400 && loc) {
        current = new URL(loc, current).toString();
        continue;
      }
      return { url: current, res };
    }
    throw new Error('too many redirects');
  }
}

/** The fields of the first form on an HTML page, and its action. */
export function parseForm(html: string, baseUrl: string): { action: string; fields: Record<string, string> } {
  const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
  if (!form) throw new Error(`no form in page:\n${html.slice(0, 500)}`);
  const decode = (s: string) =>
    s
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&');
  const fields: Record<string, string> = {};
  for (const m of form[2]!.matchAll(/<input[^>]*>/g)) {
    const name = /name="([^"]*)"/.exec(m[0])?.[1];
    const value = /value="([^"]*)"/.exec(m[0])?.[1] ?? '';
    if (name) fields[name] = decode(value);
  }
  return { action: new URL(decode(form[1]!), baseUrl).toString(), fields };
}
