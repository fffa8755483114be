/**
 * End to end with a real relying party (openid-client v6): discovery, authorization code +
 * PKCE through the server-rendered login form (CSRF token and cookies like a browser), token
 * exchange for the API resource, verification by the common verifier, refresh with rotation,
 * userinfo, RP-initiated logout; plus the attacks that must fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT, base64url } from 'jose';
import { createAccessTokenVerifier, type AccessTokenVerifier } from '@simptu/common';
import { createUser } from '../src/users.ts';
import { webClientId } from '../src/clients.ts';
import {
  API_RESOURCE,
  Browser,
  createAuthFixture,
  parseForm,
  type AuthFixture,
  type FixtureTenant,
} from './support.ts';
import { pkceAuthorizationUrl, secretClientConfig, serviceClient, webClientConfig } from './oidc-clients.ts';

const PASSWORD = 'correct horse battery staple';

let f: AuthFixture;
let verifier: AccessTokenVerifier;

const rpConfig = (t: FixtureTenant) => webClientConfig(f, t);

interface LoginResult {
  tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
  browser: Browser;
  config: oidc.Configuration;
}

/** Authorization code + PKCE through the login form; returns the API tokens. */
async function login(
  t: FixtureTenant,
  email: string,
  password = PASSWORD,
  browser = new Browser(),
): Promise<LoginResult> {
  const config = await rpConfig(t);
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const authUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: t.redirectUri,
    scope: 'openid email api',
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    resource: API_RESOURCE,
  });
  let r = await browser.follow(authUrl.toString(), f.issuer);
  if (r.res) {
    const page = await r.res.text();
    expect(r.res.status).toBe(200);
    expect(page).toContain(t.displayName); // branded with the tenant's display name
    const form = parseForm(page, r.url);
    const res = await browser.post(form.action, { ...form.fields, email, password });
    if (res.status !== 303) throw new Error(`login failed: ${res.status} ${await res.text()}`);
    r = await browser.follow(new URL(res.headers.get('location')!, form.action).toString(), f.issuer);
    // Switching accounts: oidc-provider ends the previous session first with a form post
    // (auto-submitted by script in a browser; a plain form without it).
    if (r.res) {
      const confirm = parseForm(await r.res.text(), r.url);
      expect(confirm.action).toContain('/session/end/confirm');
      const done = await browser.post(confirm.action, confirm.fields);
      r = await browser.follow(new URL(done.headers.get('location')!, confirm.action).toString(), f.issuer);
    }
  }
  expect(r.url.startsWith(t.redirectUri)).toBe(true);
  const tokens = await oidc.authorizationCodeGrant(
    config,
    new URL(r.url),
    { pkceCodeVerifier: codeVerifier, expectedState: state },
    { resource: API_RESOURCE },
  );
  return { tokens, browser, config };
}

beforeAll(async () => {
  f = await createAuthFixture({ tenants: 2 });
  verifier = createAccessTokenVerifier({
    issuer: f.issuer,
    audience: 'simptu-api',
    jwksUri: `${f.issuer}/jwks`,
    jwksCooldownMs: 0,
  });
  const [a, b] = f.tenants;
  await createUser(f.service.db, {
    tenant: a!.name,
    email: 'owner@a.test',
    password: PASSWORD,
    roles: ['owner'],
  });
  await createUser(f.service.db, {
    tenant: b!.name,
    email: 'staff@b.test',
    password: PASSWORD,
    roles: ['staff'],
  });
});

afterAll(async () => {
  await f?.close();
});

describe('authorization code + PKCE with openid-client', () => {
  it('logs in, issues an RFC 9068 token the common verifier accepts, refreshes, serves userinfo, logs out', async () => {
    const a = f.tenants[0]!;
    const { tokens, browser, config } = await login(a, 'owner@a.test');
    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    const claims = await verifier.verify(tokens.access_token);
    expect(claims).toMatchObject({
      tenant: a.name,
      roles: ['owner'],
      scope: ['api'],
      clientId: webClientId(a.name),
    });
    const idClaims = tokens.claims()!;
    expect(idClaims.sub).toBe(claims.sub);
    expect(idClaims.tenant).toBe(a.name);
    expect(tokens.refresh_token).toBeTruthy();

    // refresh (rotation): a new refresh token, and a new API token
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: API_RESOURCE });
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect((await verifier.verify(refreshed.access_token)).sub).toBe(claims.sub);

    // userinfo: with a token requested without a resource indicator (RFC 8707)
    const forUserinfo = await oidc.refreshTokenGrant(config, refreshed.refresh_token!);
    const info = await oidc.fetchUserInfo(config, forUserinfo.access_token, claims.sub);
    expect(info).toMatchObject({ sub: claims.sub, email: 'owner@a.test', tenant: a.name, roles: ['owner'] });

    // a second authorization reuses the SSO session: no login form
    const again = await login(a, 'owner@a.test', PASSWORD, browser);
    expect((await verifier.verify(again.tokens.access_token)).sub).toBe(claims.sub);

    // RP-initiated logout: confirm the form, land on the post-logout URI, session gone
    const endUrl = oidc.buildEndSessionUrl(config, {
      id_token_hint: again.tokens.id_token!,
      post_logout_redirect_uri: a.redirectUri,
      state: 'bye',
    });
    const page = await browser.follow(endUrl.toString(), f.issuer);
    const form = parseForm(await page.res!.text(), page.url);
    const done = await browser.post(form.action, { ...form.fields, logout: 'yes' });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe(`${a.redirectUri}?state=bye`);
    // the refresh token of the ended session no longer works
    await expect(oidc.refreshTokenGrant(config, forUserinfo.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    // and the next authorization asks for the password again
    const next = await browser.follow(await pkceAuthorizationUrl(config, a.redirectUri, 'openid'), f.issuer);
    expect(next.res?.status).toBe(200);
    expect(await next.res!.text()).toContain('name="password"');
  });

  it('publishes discovery with PKCE, revocation, introspection, end session and the custom grant', async () => {
    const res = await fetch(`${f.issuer}/.well-known/openid-configuration`);
    const d = (await res.json()) as Record<string, unknown>;
    expect(d.issuer).toBe(f.issuer);
    expect(d.code_challenge_methods_supported).toEqual(['S256']);
    expect(d.grant_types_supported).toEqual(
      expect.arrayContaining([
        'authorization_code',
        'refresh_token',
        'client_credentials',
        'urn:simptu:params:oauth:grant-type:access-code',
      ]),
    );
    for (const k of [
      'revocation_endpoint',
      'introspection_endpoint',
      'end_session_endpoint',
      'jwks_uri',
      'userinfo_endpoint',
    ])
      expect(d[k]).toEqual(expect.any(String));
  });

  it('refuses PKCE-less authorization requests', async () => {
    const a = f.tenants[0]!;
    const url = `${f.issuer}/auth?client_id=${webClientId(a.name)}&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(a.redirectUri)}`;
    const r = await new Browser().get(url);
    expect(r.status).toBe(303);
    expect(r.headers.get('location')).toContain('error=invalid_request');
  });
});

describe('tenant isolation', () => {
  it("never gives a tenant-A user a token for tenant B, even with A's SSO session", async () => {
    const [a, b] = f.tenants as [FixtureTenant, FixtureTenant];
    // the A user's password at B's login form: unknown there
    await expect(login(b, 'owner@a.test')).rejects.toThrow(/login failed: 401/);
    // signed in at A, then authorizing B's client: B's login form is shown, not a token
    const { browser } = await login(a, 'owner@a.test');
    const config = await rpConfig(b);
    const r = await browser.follow(await pkceAuthorizationUrl(config, b.redirectUri, 'openid api'), f.issuer);
    expect(r.res?.status).toBe(200);
    const page = await r.res!.text();
    expect(page).toContain(b.displayName);
    expect(page).toContain('name="password"');
    // a tenant-B user logging in there gets a tenant-B token
    const bTokens = await login(b, 'staff@b.test', PASSWORD, browser);
    expect(await verifier.verify(bTokens.tokens.access_token)).toMatchObject({
      tenant: b.name,
      roles: ['staff'],
    });
  });

  it("refuses A's redirect URI on B's client", async () => {
    const [a, b] = f.tenants as [FixtureTenant, FixtureTenant];
    const config = await rpConfig(b);
    const r = await new Browser().get(await pkceAuthorizationUrl(config, a.redirectUri, 'openid'));
    expect(r.status).toBe(400);
    expect(await r.text()).toContain('redirect_uri');
  });

  it('reads clients from the registry on demand: a changed Tenant changes its client without restart', async () => {
    const a = f.tenants[0]!;
    const newUri = 'http://127.0.0.1:9555/new-callback';
    await f.admin.query(
      `UPDATE platform.tenants SET redirect_uris = array_append(redirect_uris, $2) WHERE name = $1`,
      [a.name, newUri],
    );
    const { tokens } = await login({ ...a, redirectUri: newUri }, 'owner@a.test');
    expect((await verifier.verify(tokens.access_token)).tenant).toBe(a.name);
    await f.admin.query(`UPDATE platform.tenants SET state = 'suspended' WHERE name = $1`, [a.name]);
    try {
      await expect(rpConfig(a).then((c) => oidc.clientCredentialsGrant(c))).rejects.toBeDefined();
      const r = await new Browser().get(
        `${f.issuer}/auth?client_id=${webClientId(a.name)}&response_type=code&scope=openid`,
      );
      expect(r.status).toBe(400);
      expect(await r.text()).toContain('invalid_client');
    } finally {
      await f.admin.query(
        `UPDATE platform.tenants SET state = 'active', redirect_uris = $2 WHERE name = $1`,
        [a.name, [a.redirectUri]],
      );
    }
  });
});

describe('refresh-token reuse', () => {
  it('revokes the whole family and writes an audit row when a rotated refresh token is replayed', async () => {
    const a = f.tenants[0]!;
    const { tokens, config } = await login(a, 'owner@a.test');
    const second = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: API_RESOURCE });
    // replay of the first (already rotated) refresh token
    await expect(
      oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: API_RESOURCE }),
    ).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    // the family is gone: the newest refresh token is dead too
    await expect(
      oidc.refreshTokenGrant(config, second.refresh_token!, { resource: API_RESOURCE }),
    ).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    const sub = decodeJwt(tokens.access_token).sub;
    const { rows } = await f.admin.query(
      `SELECT tenant, subject, client_id, details FROM auth.audit_log WHERE event = 'refresh_token.reuse' AND subject = $1`,
      [sub],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      tenant: a.name,
      client_id: webClientId(a.name),
      details: { action: 'grant_revoked' },
    });
  });
});

describe('client credentials, revocation, introspection', () => {
  it('issues service tokens for the client’s tenant and roles', async () => {
    const b = f.tenants[1]!;
    const { svc, config } = await serviceClient(f, {
      clientId: `agent-${b.name}`,
      tenant: b.name,
      roles: ['staff'],
    });
    const t = await oidc.clientCredentialsGrant(config, { resource: API_RESOURCE, scope: 'api' });
    expect(await verifier.verify(t.access_token)).toMatchObject({
      tenant: b.name,
      roles: ['staff'],
      sub: svc.clientId,
      scope: ['api'],
    });
    const bad = await secretClientConfig(f, svc.clientId, 'wrong');
    await expect(oidc.clientCredentialsGrant(bad, { resource: API_RESOURCE })).rejects.toMatchObject({
      status: 401,
    });

    // introspection and revocation of a refresh token, by its public client
    const a = f.tenants[0]!;
    const { tokens, config: rp } = await login(a, 'owner@a.test');
    const intro = await oidc.tokenIntrospection(rp, tokens.refresh_token!);
    expect(intro).toMatchObject({ active: true, client_id: webClientId(a.name) });
    await oidc.tokenRevocation(rp, tokens.refresh_token!);
    expect((await oidc.tokenIntrospection(rp, tokens.refresh_token!)).active).toBe(false);
    await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });
});

describe('forged and unfit tokens are refused by the verifier', () => {
  it('alg none, HS256 with the public key, an unpublished key, wrong aud/iss/typ', async () => {
    const a = f.tenants[0]!;
    const { tokens } = await login(a, 'owner@a.test');
    const good = decodeJwt(tokens.access_token);
    const header = decodeProtectedHeader(tokens.access_token);
    const enc = (o: unknown) => base64url.encode(JSON.stringify(o));

    const none = `${enc({ alg: 'none', typ: 'at+jwt' })}.${enc(good)}.`;
    await expect(verifier.verify(none)).rejects.toMatchObject({
      reason: expect.stringMatching(/algorithm_not_allowed|malformed/),
    });

    // HS256 "signed" with the published public key as the MAC secret
    const jwks = (await (await fetch(`${f.issuer}/jwks`)).json()) as { keys: Array<Record<string, string>> };
    const pub = jwks.keys.find((k) => k.kid === header.kid)!;
    const hs = await new SignJWT(good)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: header.kid! })
      .sign(new TextEncoder().encode(JSON.stringify(pub)));
    await expect(verifier.verify(hs)).rejects.toMatchObject({ reason: 'algorithm_not_allowed' });

    // a key of our own (not published), and tokens right but for the wrong aud / iss / typ / time
    const { privateKey } = await generateKeyPair('ES256');
    const rogue = await new SignJWT(good)
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: header.kid! })
      .sign(privateKey);
    await expect(verifier.verify(rogue)).rejects.toMatchObject({ reason: 'invalid_signature' });

    // Tokens the issuer really signed, but unfit: the ID token (typ JWT, aud = client id).
    await expect(verifier.verify(tokens.id_token!)).rejects.toMatchObject({
      reason: expect.stringMatching(/invalid_type|invalid_audience/),
    });
    const otherAud = createAccessTokenVerifier({
      issuer: f.issuer,
      audience: 'another-api',
      jwksUri: `${f.issuer}/jwks`,
    });
    await expect(otherAud.verify(tokens.access_token)).rejects.toMatchObject({ reason: 'invalid_audience' });
    const otherIss = createAccessTokenVerifier({
      issuer: 'https://evil.example',
      audience: 'simptu-api',
      jwksUri: `${f.issuer}/jwks`,
    });
    await expect(otherIss.verify(tokens.access_token)).rejects.toMatchObject({ reason: 'invalid_issuer' });
    // (expiry: key-rotation.test.ts, with a service whose tokens live 2 s)
  });
});

describe('CSRF, brute force', () => {
  async function loginPage(t: FixtureTenant) {
    const browser = new Browser();
    const config = await rpConfig(t);
    const r = await browser.follow(await pkceAuthorizationUrl(config, t.redirectUri, 'openid'), f.issuer);
    return { browser, form: parseForm(await r.res!.text(), r.url) };
  }

  it('refuses a login POST without the CSRF token, with a foreign one, or without the cookie', async () => {
    const a = f.tenants[0]!;
    const { browser, form } = await loginPage(a);
    const creds = { email: 'owner@a.test', password: PASSWORD };
    expect((await browser.post(form.action, creds)).status).toBe(403);
    const other = await loginPage(a);
    expect((await browser.post(form.action, { ...creds, csrf: other.form.fields.csrf! })).status).toBe(403);
    const noCookie = new Browser();
    for (const [k, v] of browser.cookies) if (k !== 'simptu.csrf') noCookie.cookies.set(k, v);
    expect((await noCookie.post(form.action, { ...form.fields, ...creds })).status).toBe(403);
    // the real form still works
    expect((await browser.post(form.action, { ...form.fields, ...creds })).status).toBe(303);
  });

  it('locks an account after repeated wrong passwords, even with the right one afterwards', async () => {
    const b = f.tenants[1]!;
    await createUser(f.service.db, {
      tenant: b.name,
      email: 'victim@b.test',
      password: PASSWORD,
      roles: ['staff'],
    });
    const { browser, form } = await loginPage(b);
    const statuses: number[] = [];
    for (let i = 0; i < f.config.login.maxFailuresPerAccount; i++)
      statuses.push(
        (
          await browser.post(form.action, {
            ...form.fields,
            email: 'victim@b.test',
            password: `wrong-${i}-password`,
          })
        ).status,
      );
    expect(statuses).toEqual(Array(f.config.login.maxFailuresPerAccount).fill(401));
    const locked = await browser.post(form.action, {
      ...form.fields,
      email: 'victim@b.test',
      password: PASSWORD,
    });
    expect(locked.status).toBe(429);
    expect(await locked.text()).toContain('locked');
    const { rows } = await f.admin.query(
      `SELECT 1 FROM auth.audit_log WHERE event = 'login.locked' AND tenant = $1`,
      [b.name],
    );
    expect(rows).toHaveLength(1);
  });
});
