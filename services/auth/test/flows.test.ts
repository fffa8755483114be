/**
 * The SSO's own flows against real Postgres, Redis and SMTP: the patient access-code grant
 * (narrow token, attempts counted, lockout, per-IP throttling), invitation acceptance (single
 * use), password reset by e-mail, signing-key rotation without restart, token expiry, and the
 * API accepting our tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import {
  createAccessTokenVerifier,
  createCustomer,
  createInvitation,
  issueAccessCode,
  revokeAccessCode,
  type AccessTokenVerifier,
} from '@simptu/common';
import { runCli } from '../src/cli.ts';
import { webClientId, ACCESS_CODE_GRANT } from '../src/clients.ts';
import { checkPassword, createUser } from '../src/users.ts';
import {
  API_RESOURCE,
  Browser,
  createAuthFixture,
  parseForm,
  type AuthFixture,
  type FixtureTenant,
} from './support.ts';
import { serviceClient, webClientConfig } from './oidc-clients.ts';

let f: AuthFixture;
let verifier: AccessTokenVerifier;
let a: FixtureTenant;
let b: FixtureTenant;

const TOKEN_TTL = 3;

beforeAll(async () => {
  f = await createAuthFixture({
    tenants: 2,
    config: (c) => {
      c.ttl = { accessTokenSec: TOKEN_TTL, accessCodeTokenSec: TOKEN_TTL, idTokenSec: TOKEN_TTL };
      c.accessCode = { maxAttemptsPerIp: 12 };
      c.keys = { refreshMs: 1000 };
    },
  });
  [a, b] = f.tenants as [FixtureTenant, FixtureTenant];
  verifier = createAccessTokenVerifier({
    issuer: f.issuer,
    audience: 'simptu-api',
    jwksUri: `${f.issuer}/jwks`,
    jwksCooldownMs: 0,
    clockToleranceSec: 0,
  });
});

afterAll(async () => {
  await f?.close();
});

async function exchange(t: FixtureTenant, params: Record<string, string>) {
  const config = await webClientConfig(f, t);
  return oidc.genericGrantRequest(config, ACCESS_CODE_GRANT, params);
}

async function rawExchange(t: FixtureTenant, params: Record<string, string>) {
  const res = await fetch(`${f.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: ACCESS_CODE_GRANT, client_id: webClientId(t.name), ...params }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('patient access-code grant', () => {
  it('exchanges a code + birth date for a narrow, short-lived customer token, once', async () => {
    const { customer, code } = await f.runTenant(a.name, async (ctx) => {
      const customer = await createCustomer(ctx, {
        displayName: 'Ana',
        birthDate: '1990-04-01',
        phone: '+40712345678',
      });
      const issued = await issueAccessCode(ctx, { customerId: customer.id }, { sub: 'staff-1' });
      return { customer, code: issued.code };
    });
    const t = await exchange(a, { code: code.toLowerCase(), birth_date: '1990-04-01' });
    expect(t.refresh_token).toBeUndefined();
    const claims = await verifier.verify(t.access_token);
    expect(claims).toMatchObject({
      tenant: a.name,
      sub: customer.id,
      roles: ['customer'],
      scope: ['sessions:own', 'bookings:own'],
    });
    const p = decodeJwt(t.access_token);
    expect(p.exp! - p.iat!).toBe(TOKEN_TTL);
    // single use
    const again = await rawExchange(a, { code, birth_date: '1990-04-01' });
    expect(again).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'the access code was already used' },
    });
    // the code of tenant A means nothing at tenant B's client
    const { code: code2 } = await f.runTenant(a.name, async (ctx) => {
      const c = await createCustomer(ctx, { displayName: 'Bo', birthDate: '1985-01-02' });
      return issueAccessCode(ctx, { customerId: c.id });
    });
    expect((await rawExchange(b, { code: code2, birth_date: '1985-01-02' })).status).toBe(400);
    expect(
      (await verifier.verify((await exchange(a, { code: code2, birth_date: '1985-01-02' })).access_token))
        .tenant,
    ).toBe(a.name);
  });

  it('counts wrong second factors and locks the code; revoked codes fail', async () => {
    const { code, revoked } = await f.runTenant(a.name, async (ctx) => {
      const c = await createCustomer(ctx, { displayName: 'Cai', birthDate: '1970-12-31' });
      const issued = await issueAccessCode(ctx, { customerId: c.id, maxAttempts: 3 });
      const r = await issueAccessCode(ctx, { customerId: c.id });
      await revokeAccessCode(ctx, r.accessCode.id);
      return { code: issued.code, revoked: r.code };
    });
    const remaining: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await rawExchange(a, { code, birth_date: `1970-01-0${i + 1}` });
      expect(r.status).toBe(400);
      remaining.push(/\((\d) attempts? left\)/.exec(String(r.body.error_description))?.[1]);
    }
    expect(remaining).toEqual(['2', '1', '0']);
    const locked = await rawExchange(a, { code, birth_date: '1970-12-31' });
    expect(locked.body.error_description).toContain('locked');
    const { rows } = await f.admin.query(
      `SELECT 1 FROM auth.audit_log WHERE event = 'access_code.locked' AND tenant = $1`,
      [a.name],
    );
    expect(rows).toHaveLength(1);
    expect(
      (await rawExchange(a, { code: revoked, birth_date: '1970-12-31' })).body.error_description,
    ).toContain('revoked');
    expect((await rawExchange(a, { code })).status).toBe(400); // no second factor
  });
});

describe('invitations', () => {
  it('accepting creates the user with the invited role; the token cannot be reused', async () => {
    const { token } = await f.runTenant(b.name, (ctx) =>
      createInvitation(
        ctx,
        { email: 'new.staff@b.test', role: 'staff' },
        { sub: 'owner-1', roles: ['owner'] },
      ),
    );
    const browser = new Browser();
    const link = `${f.issuer}/t/${b.name}/invite?token=${token}`;
    const page = await browser.get(link);
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(html).toContain(b.displayName);
    const form = parseForm(html, link);
    // CSRF: the form without its token is refused
    expect(
      (await browser.post(form.action, { password: 'a fine password', password2: 'a fine password' })).status,
    ).toBe(403);
    const short = await browser.post(form.action, { ...form.fields, password: 'short', password2: 'short' });
    expect(short.status).toBe(400);
    const ok = await browser.post(form.action, {
      ...form.fields,
      password: 'a fine password',
      password2: 'a fine password',
    });
    expect(ok.status).toBe(201);
    const login = await checkPassword(f.service.db, b.name, 'new.staff@b.test', 'a fine password');
    expect(login).toMatchObject({ ok: true, user: { tenant: b.name, roles: ['staff'] } });
    // the invitation is accepted by that user
    const { rows } = await f.admin.query(
      `SELECT accepted_by FROM ${`"t_${b.name.replace(/-/g, '_')}"`}.invitations`,
    );
    expect(rows[0]!.accepted_by).toBe(login.ok ? login.user.id : undefined);
    // reuse: the page says so, and a replayed POST creates nothing
    expect((await browser.get(link)).status).toBe(410);
    const replay = await browser.post(form.action, {
      ...form.fields,
      password: 'another password',
      password2: 'another password',
    });
    expect([409, 410]).toContain(replay.status);
    expect((await checkPassword(f.service.db, b.name, 'new.staff@b.test', 'another password')).ok).toBe(
      false,
    );
    // nor at another tenant
    expect((await browser.get(`${f.issuer}/t/${a.name}/invite?token=${token}`)).status).toBe(404);
  });
});

describe('password reset by e-mail', () => {
  it('mails a single-use link that sets a new password', async () => {
    await createUser(f.service.db, {
      tenant: a.name,
      email: 'forgetful@a.test',
      password: 'the old password',
      roles: ['staff'],
    });
    const browser = new Browser();
    const forgot = `${f.issuer}/t/${a.name}/forgot`;
    const form = parseForm(await (await browser.get(forgot)).text(), forgot);
    expect((await browser.post(form.action, { ...form.fields, email: 'forgetful@a.test' })).status).toBe(202);
    // unknown addresses get the same answer and no mail
    expect((await browser.post(form.action, { ...form.fields, email: 'nobody@a.test' })).status).toBe(202);
    const mail = await f.smtp.waitFor('forgetful@a.test');
    expect(mail.subject).toContain(a.displayName);
    const link = /(http:\/\/\S+\/reset\?token=[A-Za-z0-9_-]+)/.exec(mail.text ?? '')![1]!;
    const resetForm = parseForm(await (await browser.get(link)).text(), link);
    const done = await browser.post(resetForm.action, {
      ...resetForm.fields,
      password: 'the new password',
      password2: 'the new password',
    });
    expect(done.status).toBe(200);
    expect((await checkPassword(f.service.db, a.name, 'forgetful@a.test', 'the new password')).ok).toBe(true);
    expect((await checkPassword(f.service.db, a.name, 'forgetful@a.test', 'the old password')).ok).toBe(
      false,
    );
    expect((await browser.get(link)).status).toBe(410);
    expect(f.smtp.messages.filter((m) => JSON.stringify(m.to).includes('nobody@a.test'))).toHaveLength(0);
  });
});

describe('signing-key rotation', () => {
  it('new tokens use the new key, old-key tokens verify until they expire, no restart', async () => {
    const { svc, config } = await serviceClient(f, {
      clientId: `svc-${a.name}`,
      tenant: a.name,
      roles: ['admin'],
    });
    const before = (await oidc.clientCredentialsGrant(config, { resource: API_RESOURCE })).access_token;
    expect((await verifier.verify(before)).roles).toEqual(['admin']); // the verifier caches this JWKS
    const oldKid = decodeProtectedHeader(before).kid;

    const out: string[] = [];
    expect(await runCli(['rotate-keys'], f.config, (l) => out.push(l))).toBe(0);
    expect(out.join('\n')).toContain(`retired ${oldKid}`);
    // picked up by the running service within keys.refreshMs (1 s here)
    let after = before;
    for (let i = 0; i < 40 && decodeProtectedHeader(after).kid === oldKid; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await oidc.clientCredentialsGrant(config, { resource: API_RESOURCE })).access_token;
    }
    const newKid = decodeProtectedHeader(after).kid;
    expect(newKid).not.toBe(oldKid);
    const jwks = (await (await fetch(`${f.issuer}/jwks`)).json()) as {
      keys: Array<{ kid: string; d?: string }>;
    };
    expect(jwks.keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true); // public keys only
    // same verifier instance: refetches on the unknown kid, still accepts the old-key token
    expect((await verifier.verify(after)).sub).toBe(svc.clientId);
    expect((await verifier.verify(before)).sub).toBe(svc.clientId);
    // the old key stays published for its tokens' lifetime plus skew
    const { rows } = await f.admin.query(
      `SELECT extract(epoch FROM publish_until - retired_at)::int AS s FROM auth.signing_keys WHERE kid = $1`,
      [oldKid],
    );
    expect(rows[0]!.s).toBe(TOKEN_TTL + 120);
    // the private key is stored encrypted, never in clear
    const raw = await f.admin.query(`SELECT wrapped_jwk FROM auth.signing_keys WHERE kid = $1`, [newKid]);
    expect(raw.rows[0]!.wrapped_jwk.toString('latin1')).not.toContain('"d"');

    // expiry: both tokens die after their lifetime
    await new Promise((r) => setTimeout(r, (TOKEN_TTL + 1) * 1000));
    await expect(verifier.verify(before)).rejects.toMatchObject({ reason: 'token_expired' });
    await expect(verifier.verify(after)).rejects.toMatchObject({ reason: 'token_expired' });
  });
});

describe('the API accepts our tokens', () => {
  it('lists sessions with a staff service token and with a customer access-code token', async () => {
    // By name through a variable: @simptu/api is another workspace, not a project reference.
    const apiModule = '@simptu/api';
    const api = (await import(apiModule)) as {
      loadApiConfig(env: Record<string, string | undefined>): unknown;
      buildApp(config: unknown): Promise<{
        inject(o: {
          method: 'GET';
          url: string;
          headers: Record<string, string>;
        }): Promise<{ statusCode: number }>;
        close(): Promise<void>;
      }>;
    };
    const apiConfig = api.loadApiConfig({
      SIMPTU_API_DATABASE_URL: f.config.databaseUrl,
      SIMPTU_API_REDIS_URL: f.config.redisUrl,
      SIMPTU_API_REDIS_PREFIX: `${f.config.redisPrefix}api:`,
      SIMPTU_API_KAFKA_BROKERS: process.env.KAFKA_BROKERS,
      SIMPTU_API_KEK: f.config.kek,
      SIMPTU_API_AUTH_ISSUER: f.issuer,
      SIMPTU_API_AUTH_JWKS_URI: `${f.issuer}/jwks`,
      SIMPTU_API_EVENTS_RELAY: 'false',
      SIMPTU_API_EVENTS_CONSUMERS: 'false',
      SIMPTU_API_LOG_LEVEL: 'silent',
    });
    const app = await api.buildApp(apiConfig);
    try {
      const { config: cc } = await serviceClient(f, {
        clientId: `api-${b.name}`,
        tenant: b.name,
        roles: ['staff'],
      });
      const staff = (await oidc.clientCredentialsGrant(cc, { resource: API_RESOURCE })).access_token;
      const r1 = await app.inject({
        method: 'GET',
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${staff}` },
      });
      expect(r1.statusCode).toBe(200);
      const { code } = await f.runTenant(b.name, async (ctx) => {
        const c = await createCustomer(ctx, { displayName: 'Dan', birthDate: '1999-09-09' });
        return issueAccessCode(ctx, { customerId: c.id });
      });
      const customer = (await exchange(b, { code, birth_date: '1999-09-09' })).access_token;
      const r2 = await app.inject({
        method: 'GET',
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${customer}` },
      });
      expect(r2.statusCode).toBe(200);
      const r3 = await app.inject({
        method: 'GET',
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${customer}x` },
      });
      expect(r3.statusCode).toBe(401);
    } finally {
      await app.close();
    }
  });
});

// Last: it exhausts this process's per-IP access-code budget.
describe('access-code brute force', () => {
  it('throttles guessing per IP', async () => {
    let status = 0;
    for (let i = 0; i < 15 && status !== 429; i++)
      status = (await rawExchange(b, { code: 'ABCD-EFGH', birth_date: '2000-01-01' })).status;
    expect(status).toBe(429);
  });
});
