/**
 * Authentication and authorization (DESIGN §7, §10: token → request context → transaction
 * role). `app.authenticate` (a preHandler) verifies the bearer access token against the SSO
 * issuer's JWKS, takes the tenant FROM THE TOKEN ONLY, resolves it in the registry, counts the
 * request against the rate limits, and gives the request:
 *   - `request.auth`: the verified claims;
 *   - `request.tenant`: the registry's `TenantInfo`;
 *   - `request.withTenant(fn)`: `fn` in ONE transaction of the tenant's role and schema with its
 *     cipher and time zone, inside `runWithContext` so logs and the outbox see the tenant;
 *   - `request.log`: a child logger carrying tenant and subject.
 * `app.requireRole(...roles)` answers 403 unless the principal holds one of them.
 * `app.authenticateWithVersions(keysOf)` is `authenticate` for a route whose answer may come
 * from a cache validated by Redis versions (the history): the versions are read in the rate
 * limiter's round trip and left in `request.versions` (plugins/rate-limit.ts).
 */
import fp from 'fastify-plugin';
import { LRUCache } from 'lru-cache';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  bearerToken,
  createAccessTokenVerifier,
  defineErrors,
  ForbiddenError,
  isUuid,
  runWithContext,
  UnauthorizedError,
  withTenant,
  type AccessTokenClaims,
  type AccessTokenVerifier,
  type DomainContext,
  type Role,
} from '@simptu/common';
import type { TenantInfo, WithTenant } from '../types.ts';

export const ApiErrors = defineErrors({
  TENANT_SUSPENDED: { status: 403, message: 'The tenant is suspended' },
});

/** CloudEvents `source` of what the API writes. */
export const API_EVENT_SOURCE = '/simptu/api';

export interface AuthPluginOptions {
  issuer: string;
  audience: string;
  jwksUri: string;
  /** a prepared verifier (tests); built from the options otherwise */
  verifier?: AccessTokenVerifier;
}

/**
 * Remembers verified tokens for a short while, so a client sending the same access token on
 * every request costs one signature verification (an ECDSA/RSA verify, ~5 % of a history
 * request's CPU in bench/api) per `ttlMs`, not one per request. Keyed by the whole token
 * string (a different token, even for the same subject, is verified); an entry is used only
 * while the token is unexpired, and for at most `ttlMs` after its verification, which also bounds
 * how long a token signed by a key removed from the JWKS keeps working. Failures are not cached.
 * Bounded: at most `max` tokens, the least recently used dropped first.
 */
export function cachingVerifier(
  inner: AccessTokenVerifier,
  opts: { ttlMs?: number; max?: number; now?: () => number } = {},
): AccessTokenVerifier {
  const ttlMs = opts.ttlMs ?? 30_000;
  const now = opts.now ?? Date.now;
  const cache = new LRUCache<string, { claims: AccessTokenClaims; until: number }>({
    max: opts.max ?? 10_000,
  });
  return {
    async verify(token: string): Promise<AccessTokenClaims> {
      const t = now();
      const hit = cache.get(token);
      if (hit && t < hit.until) return hit.claims;
      if (hit) cache.delete(token);
      // Frozen: one object serves every request with this token, none may change it.
      const claims = Object.freeze({ ...(await inner.verify(token)) });
      Object.freeze(claims.roles);
      const until = Math.min(t + ttlMs, claims.expiresAt * 1000);
      if (until > t) cache.set(token, { claims, until });
      return claims;
    },
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * a preHandler like `authenticate` that also reads the Redis values of
     * `keysOf(request)` (computed after verification) into `request.versions`
     */
    authenticateWithVersions(
      keysOf: (request: FastifyRequest) => readonly string[],
    ): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
  interface FastifyRequest {
    /**
     * after `authenticateWithVersions`: the values of its keys, in order; undefined when Redis
     * could not be asked (or after plain `authenticate`)
     */
    versions: string[] | undefined;
  }
}

export default fp(
  async (app: FastifyInstance, opts: AuthPluginOptions) => {
    const verifier = cachingVerifier(
      opts.verifier ??
        createAccessTokenVerifier({ issuer: opts.issuer, audience: opts.audience, jwksUri: opts.jwksUri }),
    );

    app.decorateRequest('auth', null as never);
    app.decorateRequest('tenant', null as never);
    app.decorateRequest('withTenant', null as never);
    app.decorateRequest('versions', undefined);

    const authenticate = async (
      request: FastifyRequest,
      reply: FastifyReply,
      keysOf?: (request: FastifyRequest) => readonly string[],
    ) => {
      // Idempotent: a route may list it in onRequest and preHandler, or twice by accident.
      if (request.auth) return;
      let claims;
      let tenant;
      try {
        claims = await verifier.verify(bearerToken(request.headers.authorization));
        tenant = await app.registry.get(claims.tenant);
        if (!tenant)
          throw new UnauthorizedError(
            'invalid_tenant',
            'The access token names a tenant this platform does not serve',
          );
      } catch (err) {
        // A failed authentication counts against the caller IP's anonymous budget (token
        // guessing, scanners): over it, 429 instead of 401 (plugins/rate-limit.ts).
        if (err instanceof UnauthorizedError) await app.enforceAnonymousRateLimit(request, reply);
        throw err;
      }
      if (tenant.state === 'suspended')
        throw new ApiErrors.TENANT_SUSPENDED({ details: { tenant: tenant.name } });
      request.auth = claims;
      request.tenant = tenant;
      request.log = request.log.child({ tenant: tenant.name, principal: claims.sub });
      request.withTenant = makeWithTenant(app, request, tenant);
      request.versions = await app.enforceRateLimit(request, reply, keysOf?.(request));
    };
    app.decorate('authenticate', (request: FastifyRequest, reply: FastifyReply) =>
      authenticate(request, reply),
    );
    app.decorate(
      'authenticateWithVersions',
      (keysOf: (request: FastifyRequest) => readonly string[]) =>
        (request: FastifyRequest, reply: FastifyReply) =>
          authenticate(request, reply, keysOf),
    );

    app.decorate('requireRole', (...roles: Role[]) => {
      if (roles.length === 0) throw new TypeError('requireRole needs at least one role');
      return async (request: FastifyRequest, reply: FastifyReply) => {
        if (!request.auth) await app.authenticate(request, reply);
        if (!request.auth.roles.some((r) => roles.includes(r)))
          throw new ForbiddenError('Your role does not allow this', { details: { requiredRoles: roles } });
      };
    });
  },
  {
    name: 'simptu-auth',
    fastify: '5.x',
    dependencies: ['simptu-db', 'simptu-registry', 'simptu-crypto', 'simptu-rate-limit'],
  },
);

function makeWithTenant(app: FastifyInstance, request: FastifyRequest, tenant: TenantInfo): WithTenant {
  const ref = { name: tenant.name, schema: tenant.schema, role: tenant.role };
  const principal = { sub: request.auth.sub, roles: request.auth.roles, scope: request.auth.scope };
  return async <T>(fn: (ctx: DomainContext) => Promise<T>): Promise<T> => {
    const cipher = await app.cipherFor(tenant.name);
    return runWithContext({ tenant: tenant.name, principal, requestId: request.id }, () =>
      withTenant(app.dbFor(tenant), ref, (client) =>
        fn({ client, cipher, timeZone: tenant.timezone, source: API_EVENT_SOURCE }),
      ),
    );
  };
}

const STAFF_ROLES: readonly Role[] = ['owner', 'admin', 'staff'];

/** Whether the principal acts for the tenant (owner, admin or staff), not only as a customer. */
export function isStaff(request: FastifyRequest): boolean {
  return request.auth.roles.some((r) => STAFF_ROLES.includes(r));
}

/**
 * What the principal may see of per-customer resources (sessions, bookings, ratings): staff see
 * the tenant's (`{}`); anyone else only their own (`{customerId: sub}`, the token subject being
 * their `customers.id`). Fails closed: a non-staff token whose subject is no customer id → 403.
 */
export function customerScope(request: FastifyRequest): { customerId?: string } {
  if (isStaff(request)) return {};
  if (!isUuid(request.auth.sub) || !request.auth.roles.includes('customer'))
    throw new ForbiddenError('This token does not identify a customer', {
      details: { requiredRoles: ['customer', ...STAFF_ROLES] },
    });
  return { customerId: request.auth.sub.toLowerCase() };
}

export { UnauthorizedError };
