/**
 * The API's shared plumbing against real Postgres, Redis and Kafka: health and metrics, the
 * OpenAPI document, authentication (401 with reasons, tenant from the token only, suspended and
 * unknown tenants), the one error format (404 route, 400 validation details), rate limits (429
 * with Retry-After), request ids.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { buildTestApp, testApiConfig, uniqueTenantName, type TestApp } from './support/index.ts';

let t: TestApp;

beforeAll(async () => {
  t = await buildTestApp({ tenants: [{}, {}], waitForEvents: false });
});
afterAll(async () => {
  await t?.cleanup();
});

describe('probes and metrics', () => {
  it('answers /healthz and /readyz (Postgres and Redis checked)', async () => {
    const live = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(live.statusCode).toBe(200);
    const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks).toHaveProperty('postgres');
    expect(ready.json().checks).toHaveProperty('redis');
  });

  it('counts requests by route pattern and status in /metrics', async () => {
    await t.app.inject({ method: 'GET', url: '/v1/nothing-here' });
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toMatch(/simptu_http_requests_total\{[^}]*route="\/readyz"[^}]*status="200"/);
    expect(res.body).toMatch(/simptu_http_requests_total\{[^}]*route="unmatched"[^}]*status="404"/);
    expect(res.body).toContain('simptu_http_request_duration_seconds_bucket');
  });
});

describe('OpenAPI', () => {
  it('serves an OpenAPI 3 document with the bearer scheme at /v1/openapi.json', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(Object.keys(doc.paths)).toContain('/v1/sessions');
    expect(doc.paths['/healthz']).toBeUndefined();
  });

  it('serves the docs page at /docs', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('swagger');
  });
});

describe('errors', () => {
  it('answers unknown routes with 404 in the error format', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: {
        code: 'SIMPTU_ERR_NOT_FOUND',
        message: 'Route not found',
        details: { method: 'GET', url: '/v1/nope' },
      },
    });
  });

  it('echoes a sane X-Request-Id and makes one up otherwise', async () => {
    const mine = await t.app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(mine.headers['x-request-id']).toBe('abc-123');
    const bad = await t.app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'a b\u00e9' },
    });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('lists every schema violation in details.issues (400)', async () => {
    const token = await t.tokenFor(t.tenants[0]!, { roles: ['staff'] });
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/sessions?limit=0&state=nope&extra=1',
      headers: t.auth(token),
    });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expect(body.error.code).toBe('SIMPTU_ERR_VALIDATION');
    const paths = body.error.details.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining(['querystring.limit', 'querystring.state', 'querystring.extra']),
    );
  });

  it('answers malformed JSON with 400, not 500', async () => {
    const token = await t.tokenFor(t.tenants[0]!, { roles: ['staff'] });
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions',
      headers: { ...t.auth(token), 'content-type': 'application/json' },
      payload: '{"channel": ',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toMatch(/^SIMPTU_ERR_/);
  });
});

describe('authentication', () => {
  const get = (headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'GET', url: '/v1/sessions', headers });

  it('401 without a token, with a reason', async () => {
    const res = await get();
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toMatchObject({
      code: 'SIMPTU_ERR_UNAUTHORIZED',
      details: { reason: 'missing_token' },
    });
  });

  it('401 for a malformed header, an expired token, a wrong audience, a foreign issuer', async () => {
    expect((await get({ authorization: 'Basic abc' })).json().error.details.reason).toBe('malformed');
    const expired = await t.tokenFor(t.tenants[0]!, { expiresIn: Math.floor(Date.now() / 1000) - 3600 });
    const r1 = await get(t.auth(expired));
    expect(r1.statusCode).toBe(401);
    expect(r1.json().error.details.reason).toBe('token_expired');
    const aud = await t.tokenFor(t.tenants[0]!, { audience: 'someone-else' });
    expect((await get(t.auth(aud))).json().error.details.reason).toBe('invalid_audience');
    const foreign = await t.issuer.signAccessToken(
      { tenant: t.tenants[0]!.name, sub: 'x', roles: ['staff'] },
      { issuer: 'https://evil.example' },
    );
    expect((await get(t.auth(foreign))).statusCode).toBe(401);
  });

  it('401 for a tenant the registry does not know, or an archived one', async () => {
    const unknown = await t.tokenFor(uniqueTenantName('nope'));
    const res = await get(t.auth(unknown));
    expect(res.statusCode).toBe(401);
    expect(res.json().error.details.reason).toBe('invalid_tenant');
  });

  it('403 TENANT_SUSPENDED for a suspended tenant, served again once active', async () => {
    const b = t.tenants[1]!;
    const token = await t.tokenFor(b, { roles: ['staff'] });
    await b.setState('suspended');
    try {
      const res = await get(t.auth(token));
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('SIMPTU_ERR_TENANT_SUSPENDED');
      await b.setState('archived');
      expect((await get(t.auth(token))).statusCode).toBe(401);
    } finally {
      await b.setState('active');
    }
    expect((await get(t.auth(token))).statusCode).toBe(200);
  });

  it('403 when the role is not allowed', async () => {
    const token = await t.tokenFor(t.tenants[0]!, { roles: [] });
    const res = await get(t.auth(token));
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe('SIMPTU_ERR_FORBIDDEN');
  });
});

describe('rate limits', () => {
  it('429 with Retry-After once a principal exceeds its budget; other principals unaffected until the tenant ceiling', async () => {
    const config = testApiConfig(t.platform, t.issuer, {
      rateLimit: { perPrincipal: 3, perTenant: 5 },
      events: { relay: false, consumers: false },
    });
    const app = await buildApp(config);
    try {
      const a = t.tenants[0]!;
      const alice = await t.tokenFor(a, { roles: ['staff'] });
      const bob = await t.tokenFor(a, { roles: ['staff'] });
      const call = (tok: string) => app.inject({ method: 'GET', url: '/v1/sessions', headers: t.auth(tok) });
      for (let i = 0; i < 3; i++) {
        const r = await call(alice);
        expect(r.statusCode).toBe(200);
        expect(r.headers['x-ratelimit-remaining']).toBe(String(2 - i));
      }
      const limited = await call(alice);
      expect(limited.statusCode).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(limited.json().error).toMatchObject({
        code: 'SIMPTU_ERR_RATE_LIMITED',
        details: { scope: 'principal' },
      });
      // bob has his own budget, but the tenant's ceiling (5) is reached after 2 more
      expect((await call(bob)).statusCode).toBe(200);
      expect((await call(bob)).statusCode).toBe(200);
      const tenantLimited = await call(bob);
      expect(tenantLimited.statusCode).toBe(429);
      expect(tenantLimited.json().error.details.scope).toBe('tenant');
      // the other tenant is untouched
      const other = await t.tokenFor(t.tenants[1]!, { roles: ['staff'] });
      expect((await call(other)).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe('dedicated isolation', () => {
  it('routes a dedicated tenant to its own database, provisioned by the operator path', async () => {
    const d = await t.provision({ isolation: 'dedicated', businessType: 'hotel' });
    expect(d.database).not.toBe(t.platform.db.name);
    const token = await t.tokenFor(d, { roles: ['staff'] });
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions',
      headers: t.auth(token),
      payload: { subject: 'Late check-in' },
    });
    expect(res.statusCode, res.body).toBe(201);
    const { rows } = await d.adminQuery(`SELECT id FROM ${d.table('sessions')}`);
    expect(rows.map((r) => r.id)).toEqual([res.json().id]);
    // not visible to a shared tenant of the same platform
    const other = await t.tokenFor(t.tenants[0]!, { roles: ['staff'] });
    expect(
      (await t.app.inject({ method: 'GET', url: `/v1/sessions/${res.json().id}`, headers: t.auth(other) }))
        .statusCode,
    ).toBe(404);
  });
});
