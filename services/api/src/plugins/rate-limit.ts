/**
 * Rate limits per principal and per tenant, counted in Redis (so every API instance shares the
 * budget) by @fastify/rate-limit's Redis store: fixed one-minute windows, one counter per
 * `<tenant>:<sub>` and one per tenant. The keys come from the VERIFIED token, so the check runs
 * inside `authenticate` (after verification) through `createRateLimit`, not as a global
 * onRequest hook that would have to trust an unverified token. Exceeding either answers 429 in
 * our error format with `Retry-After` (seconds). When Redis is unreachable the limit is skipped
 * (`skipOnError`) rather than failing every request.
 *
 * Unauthenticated traffic has a third budget, per client IP (`anonymous`): every request that
 * FAILS authentication (no, bad or expired token, unknown tenant — token guessing, scanners)
 * and every request to the public documentation (`/v1/openapi.json`, `/docs`). Over it, such a
 * request is 429 instead of its 401/200. Requests with a valid token never count against it
 * (a clinic's staff behind one NAT share an IP), nor do probes (`/healthz`, `/readyz`,
 * `/metrics`). The IP is fastify's `request.ip`: behind a proxy, the proxy's address unless
 * fastify's `trustProxy` is set.
 * @see https://github.com/fastify/fastify-rate-limit#manual-rate-limit
 */
import fp from 'fastify-plugin';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RateLimitedError } from '@simptu/common';

export interface RateLimitPluginOptions {
  /** requests per minute per principal (tenant + sub) */
  perPrincipal: number;
  /** requests per minute per tenant */
  perTenant: number;
  /** unauthenticated requests (failed authentication, public docs) per minute per client IP */
  anonymous: number;
  /** @default 60_000 */
  windowMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** counts the authenticated request against its principal's and tenant's budgets; throws 429 */
    enforceRateLimit(request: FastifyRequest, reply: FastifyReply): Promise<void>;
    /** counts an unauthenticated request against its IP's budget; throws 429 */
    enforceAnonymousRateLimit(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  }
}

export default fp(
  async (app: FastifyInstance, opts: RateLimitPluginOptions) => {
    const windowMs = opts.windowMs ?? 60_000;
    await app.register(rateLimit, {
      global: false,
      redis: app.redis,
      nameSpace: 'rl:',
      skipOnError: true,
      timeWindow: windowMs,
    });
    const perPrincipal = app.createRateLimit({
      max: opts.perPrincipal,
      timeWindow: windowMs,
      keyGenerator: (req) => `p:${req.auth.tenant}:${req.auth.sub}`,
    });
    const perTenant = app.createRateLimit({
      max: opts.perTenant,
      timeWindow: windowMs,
      keyGenerator: (req) => `t:${req.auth.tenant}`,
    });

    const anonymous = app.createRateLimit({
      max: opts.anonymous,
      timeWindow: windowMs,
      keyGenerator: (req) => `a:${req.ip}`,
    });

    const enforce = async (
      request: FastifyRequest,
      reply: FastifyReply,
      limiters: ReadonlyArray<readonly ['principal' | 'tenant' | 'anonymous', typeof perTenant]>,
    ) => {
      for (const [scope, limiter] of limiters) {
        const r = await limiter(request);
        if (r.isAllowed) continue;
        if (scope !== 'tenant') {
          reply.header('x-ratelimit-limit', r.max);
          reply.header('x-ratelimit-remaining', r.remaining);
          reply.header('x-ratelimit-reset', r.ttlInSeconds);
        }
        if (r.isExceeded) {
          const retryAfter = Math.max(1, r.ttlInSeconds);
          reply.header('retry-after', retryAfter);
          throw new RateLimitedError(
            retryAfter,
            `Rate limit of the ${scope} exceeded, retry in ${retryAfter} s`,
            {
              details: { scope, limit: r.max },
            },
          );
        }
      }
    };
    const authenticated = [
      ['principal', perPrincipal],
      ['tenant', perTenant],
    ] as const;
    const unauthenticated = [['anonymous', anonymous]] as const;

    app.decorate('enforceRateLimit', (request: FastifyRequest, reply: FastifyReply) =>
      enforce(request, reply, authenticated),
    );
    app.decorate('enforceAnonymousRateLimit', (request: FastifyRequest, reply: FastifyReply) =>
      enforce(request, reply, unauthenticated),
    );
  },
  { name: 'simptu-rate-limit', fastify: '5.x', dependencies: ['simptu-redis'] },
);
