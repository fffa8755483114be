/**
 * Cross-cutting behaviour of the app against real Postgres, Redis and Kafka:
 *   - framework errors (URL parameter too long → 414, bad percent-encoding → 400) in our error
 *     format, without echoing the URL;
 *   - type coercion for querystring/params only: a string where a JSON body needs a number is 400;
 *   - the per-IP `anonymous` rate limit on failed authentication and the public docs;
 *   - cache TTLs from the configuration;
 *   - start-up refuses a database role that could read tenant data without `SET ROLE`;
 *   - verified tokens are remembered briefly (never failures, never past expiry).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccessTokenVerifier, quoteIdent, type AccessTokenVerifier } from '@simptu/common';
import { buildApp } from '../src/app.ts';
import { cachingVerifier } from '../src/plugins/auth.ts';
import { LoginRoleError } from '../src/plugins/db.ts';
import { buildTestApp, env, testApiConfig, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let owner: string;
let raw: Redis;

const ANONYMOUS_LIMIT = 3;

beforeAll(async () => {
  t = await buildTestApp({
    tenants: [{}],
    waitForEvents: false,
    config: {
      rateLimit: { anonymous: ANONYMOUS_LIMIT },
      cache: { catalogTtlSec: 7, availabilityTtlSec: 11 },
    },
  });
  [a] = t.tenants as [TestTenant];
  owner = await t.tokenFor(a, { roles: ['owner'] });
  raw = new Redis(env('REDIS_URL'));
}, 120_000);

afterAll(async () => {
  raw?.disconnect();
  await t?.cleanup();
});

type ErrorJson = {
  error: { code: string; message: string; details?: { issues?: Array<{ path: string }>; scope?: string } };
};

describe('framework errors', () => {
  it('a URL parameter over maxParamLength is 414 in the error format, the URL not echoed', async () => {
    const long = `x${'secret'.repeat(40)}`;
    const res = await t.app.inject({ method: 'GET', url: `/v1/sessions/${long}`, headers: t.auth(owner) });
    expect(res.statusCode).toBe(414);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['x-request-id']).toBeTruthy();
    expect(res.json<ErrorJson>().error.code).toBe('SIMPTU_ERR_URI_TOO_LONG');
    expect(res.body).not.toContain('secret');
  });

  it('a URL with broken percent-encoding is 400 in the error format, the URL not echoed', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/sessions/%E0%A4%Asecret',
      headers: t.auth(owner),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json<ErrorJson>().error.code).toBe('SIMPTU_ERR_BAD_URL');
    expect(res.body).not.toContain('secret');
  });
});

describe('type coercion', () => {
  it('refuses a string where a JSON body needs a number (400 with details); the query string is still coerced', async () => {
    const service = {
      kind: 'treatment',
      name: 'Cleaning',
      durationMinutes: '30',
      priceCents: 5000,
      currency: 'RON',
    };
    const bad = await t.app.inject({
      method: 'POST',
      url: '/v1/catalog/services',
      headers: t.auth(owner),
      payload: service,
    });
    expect(bad.statusCode).toBe(400);
    const body = bad.json<ErrorJson>();
    expect(body.error.code).toBe('SIMPTU_ERR_VALIDATION');
    expect(body.error.details?.issues?.map((i) => i.path)).toEqual(['body.durationMinutes']);

    const good = await t.app.inject({
      method: 'POST',
      url: '/v1/catalog/services',
      headers: t.auth(owner),
      payload: { ...service, durationMinutes: 30 },
    });
    expect(good.statusCode).toBe(201);

    const list = await t.app.inject({ method: 'GET', url: '/v1/sessions?limit=10', headers: t.auth(owner) });
    expect(list.statusCode).toBe(200);
    const tooMany = await t.app.inject({
      method: 'GET',
      url: '/v1/sessions?limit=1000',
      headers: t.auth(owner),
    });
    expect(tooMany.json<ErrorJson>().error.details?.issues?.map((i) => i.path)).toEqual([
      'querystring.limit',
    ]);
  });
});

describe('anonymous rate limit (per IP)', () => {
  it('counts failed authentication per IP: 401 up to the limit, then 429; valid tokens and probes unaffected', async () => {
    const from = (remoteAddress: string, headers: Record<string, string> = {}, url = '/v1/sessions') =>
      t.app.inject({ method: 'GET', url, headers, remoteAddress });
    for (let i = 0; i < ANONYMOUS_LIMIT; i++) expect((await from('10.1.0.1')).statusCode).toBe(401);
    const limited = await from('10.1.0.1', { authorization: 'Bearer not-a-token' });
    expect(limited.statusCode).toBe(429);
    expect(limited.json<ErrorJson>().error).toMatchObject({
      code: 'SIMPTU_ERR_RATE_LIMITED',
      details: { scope: 'anonymous' },
    });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // the same IP with a valid token, and the probes, are served
    expect((await from('10.1.0.1', t.auth(owner))).statusCode).toBe(200);
    expect((await from('10.1.0.1', {}, '/healthz')).statusCode).toBe(200);
    // another IP has its own budget
    expect((await from('10.1.0.2')).statusCode).toBe(401);
  });

  it('counts the public documentation per IP', async () => {
    const docs = (url: string) => t.app.inject({ method: 'GET', url, remoteAddress: '10.1.0.3' });
    for (let i = 0; i < ANONYMOUS_LIMIT - 1; i++)
      expect((await docs('/v1/openapi.json')).statusCode).toBe(200);
    expect((await docs('/docs')).statusCode).toBeLessThan(400);
    const limited = await docs('/v1/openapi.json');
    expect(limited.statusCode).toBe(429);
    expect(limited.json<ErrorJson>().error.code).toBe('SIMPTU_ERR_RATE_LIMITED');
  });
});

describe('cache TTLs from the configuration', () => {
  it('stores catalog and availability entries with cache.catalogTtlSec / cache.availabilityTtlSec', async () => {
    const list = await t.app.inject({ method: 'GET', url: '/v1/catalog/services', headers: t.auth(owner) });
    expect(list.statusCode).toBe(200);
    const service = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/catalog/services',
        headers: t.auth(owner),
        payload: { kind: 'treatment', name: 'X-ray', durationMinutes: 30, priceCents: 1, currency: 'RON' },
      })
    ).json<{ id: string }>();
    const avail = await t.app.inject({
      method: 'GET',
      url: `/v1/availability?serviceId=${service.id}&from=2031-01-06T00:00:00Z&to=2031-01-07T00:00:00Z`,
      headers: t.auth(owner),
    });
    expect(avail.statusCode).toBe(200);
    const ttls = async (area: string) => {
      const keys = await raw.keys(`${t.config.redisPrefix}t:${a.name}:${area}:*`);
      return Promise.all(keys.map((k) => raw.ttl(k)));
    };
    const catalog = await ttls('catalog');
    const availability = await ttls('availability');
    expect(catalog.length).toBeGreaterThan(0);
    expect(availability.length).toBeGreaterThan(0);
    // the defaults would be 300 and 30 s
    expect(Math.max(...catalog)).toBeLessThanOrEqual(7);
    expect(Math.min(...catalog)).toBeGreaterThan(0);
    expect(Math.max(...availability)).toBeLessThanOrEqual(11);
    expect(Math.min(...availability)).toBeGreaterThan(7);
  });
});

describe('start-up database role check', () => {
  const roles: string[] = [];
  afterAll(async () => {
    for (const r of roles) await t.platform.admin.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`);
  });

  async function roleUrl(attributes: string, grantTenantRole: boolean): Promise<string> {
    const role = `api_bad_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    roles.push(role);
    await t.platform.admin.query(
      `CREATE ROLE ${quoteIdent(role)} LOGIN ${attributes} PASSWORD '${password}'`,
    );
    if (grantTenantRole)
      await t.platform.admin.query(`GRANT ${quoteIdent(a.ref.role)} TO ${quoteIdent(role)}`);
    const url = new URL(t.platform.db.url);
    url.username = role;
    url.password = password;
    return url.toString();
  }

  async function startWith(databaseUrl: string): Promise<unknown> {
    return buildApp(testApiConfig(t.platform, t.issuer, { databaseUrl })).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (err: unknown) => err,
    );
  }

  it('refuses a superuser', async () => {
    const err = await startWith(t.platform.db.url);
    expect(err).toBeInstanceOf(LoginRoleError);
    expect((err as Error).message).toMatch(/superuser/);
  });

  it('refuses a role that inherits a tenant role', async () => {
    const err = await startWith(await roleUrl('INHERIT', true));
    expect(err).toBeInstanceOf(LoginRoleError);
    expect((err as Error).message).toContain(`inherits the privileges of ${a.ref.role}`);
  });

  it('refuses a BYPASSRLS role', async () => {
    const err = await startWith(await roleUrl('NOINHERIT BYPASSRLS', false));
    expect(err).toBeInstanceOf(LoginRoleError);
    expect((err as Error).message).toMatch(/BYPASSRLS/);
  });

  it('accepts a NOINHERIT member of tenant roles (the operator’s login role)', async () => {
    expect(await startWith(await roleUrl('NOINHERIT', true))).toBeUndefined();
  });
});

describe('verified-token cache', () => {
  it('verifies a token once per TTL, never past its expiry, and never remembers failures', async () => {
    const real = createAccessTokenVerifier({
      issuer: t.issuer.issuer,
      audience: t.issuer.audience,
      jwksUri: t.issuer.jwksUri,
    });
    let calls = 0;
    const counting: AccessTokenVerifier = { verify: (token) => (calls++, real.verify(token)) };
    let clock = Date.now();
    const v = cachingVerifier(counting, { ttlMs: 30_000, now: () => clock });
    const token = await t.tokenFor(a, { roles: ['staff'], expiresIn: '60s' });
    const first = await v.verify(token);
    expect(await v.verify(token)).toBe(first);
    expect(calls).toBe(1);
    expect(() => (first.roles as string[]).push('owner')).toThrow(TypeError);
    clock += 31_000; // past the TTL: verified again
    await v.verify(token);
    expect(calls).toBe(2);
    clock += 40_000; // past the token's exp: not served from the cache (the real check decides)
    await v.verify(token).catch(() => undefined);
    expect(calls).toBe(3);
    const forged = `${token.slice(0, -4)}AAAA`;
    await expect(v.verify(forged)).rejects.toThrow();
    await expect(v.verify(forged)).rejects.toThrow();
    expect(calls).toBe(5);
  });
});
