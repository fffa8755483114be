/**
 * Rate limits per principal and per tenant, counted in Redis (so every API instance shares the
 * budget) by @fastify/rate-limit's Redis store: fixed one-minute windows, one counter per
 * `<tenant>:<sub>` and one per tenant. The keys come from the VERIFIED token, so the check runs
 * inside `authenticate` (after verification) through `createRateLimit`, not as a global
 * onRequest hook that would have to trust an unverified token. Exceeding either answers 429 in
 * our error format with `Retry-After` (seconds). When Redis is unreachable the limit is skipped
 * (`skipOnError`) rather than failing every request.
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
  /** @default 60_000 */
  windowMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** counts the authenticated request against its principal's and tenant's budgets; throws 429 */
    enforceRateLimit(request: FastifyRequest, reply: FastifyReply): Promise<void>;
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

    app.decorate('enforceRateLimit', async (request: FastifyRequest, reply: FastifyReply) => {
      for (const [scope, limiter] of [
        ['principal', perPrincipal],
        ['tenant', perTenant],
      ] as const) {
        const r = await limiter(request);
        if (r.isAllowed) continue;
        if (scope === 'principal') {
          reply.header('x-ratelimit-limit', r.max);
          reply.header('x-ratelimit-remaining', r.remaining);
          reply.header('x-ratelimit-reset', r.ttlInSeconds);
        }
        if (r.isExceeded) {
          const retryAfter = Math.max(1, r.ttlInSeconds);
          reply.header('retry-after', retryAfter);
          throw new RateLimitedError(retryAfter, `Rate limit of the ${scope} exceeded, retry in ${retryAfter} s`, {
            details: { scope, limit: r.max },
          });
        }
      }
    });
  },
  { name: 'simptu-rate-limit', fastify: '5.x', dependencies: ['simptu-redis'] },
);
