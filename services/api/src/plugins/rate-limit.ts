/**
 * Rate limits per principal and per tenant, counted in Redis (so every API instance shares the
 * budget): fixed one-minute windows, one counter per `<tenant>:<sub>` and one per tenant. The
 * keys come from the VERIFIED token, so the check runs inside `authenticate` (after
 * verification), not as a global onRequest hook that would have to trust an unverified token.
 * Exceeding either answers 429 in our error format with `Retry-After` (seconds); every
 * authenticated response carries the principal's `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
 * When Redis is unreachable the limit is skipped rather than failing every request.
 *
 * One round trip per request: both counters are taken by ONE Lua script (INCR + PEXPIRE on the
 * first hit of a window, as @fastify/rate-limit's Redis store does; a principal over its budget
 * does not count against the tenant's), and the same script reads the session versions a route
 * asks for (`versionKeys`, the history cache's validation — plugins/auth.ts passes them), so a
 * cached history page costs one Redis round trip in all. A missing version is created (a random
 * token, living `CREATED_VERSION_TTL_SECONDS` — short: asking for a session id that doesn't
 * exist creates one too; writers' bumps live `SESSION_VERSION_TTL_SECONDS`) in the same atomic
 * step. The script runs on the
 * unprefixed `sharedRedis` (session versions are shared with other services); the counters'
 * keys carry this deployment's `redisPrefix` themselves:
 * `<prefix>rl:{<tenant>}:p:<sub>` and `<prefix>rl:{<tenant>}:t` (hash-tagged by tenant, like the
 * version keys, so one script touches one Redis Cluster slot).
 *
 * Unauthenticated traffic has a third budget, per client IP (`anonymous`, @fastify/rate-limit's
 * Redis store on the prefixed client): every request that FAILS authentication (no, bad or
 * expired token, unknown tenant — token guessing, scanners) and every request to the public
 * documentation (`/v1/openapi.json`, `/docs`). Over it, such a request is 429 instead of its
 * 401/200. Requests with a valid token never count against it (a clinic's staff behind one NAT
 * share an IP), nor do probes (`/healthz`, `/readyz`, `/metrics`). The IP is fastify's
 * `request.ip`: behind a proxy, the proxy's address unless fastify's `trustProxy` is set.
 * @see https://github.com/fastify/fastify-rate-limit#manual-rate-limit
 * @see https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
 */
import { randomBytes } from 'node:crypto';
import fp from 'fastify-plugin';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { RateLimitedError } from '@simptu/common';

/**
 * Lifetime of a version created by a reader (the first read of a session since its last change
 * expired): long enough for many hits (a page is cached at most `cache.historyTtlSec`), short
 * enough that ids probed at the rate limits can't fill Redis.
 */
export const CREATED_VERSION_TTL_SECONDS = 600;

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
    /**
     * counts the authenticated request against its principal's and tenant's budgets (throws
     * 429) and, in the same Redis round trip, reads (or creates) the values of `versionKeys`;
     * resolves to them, or to undefined when Redis could not be asked (limits skipped)
     */
    enforceRateLimit(
      request: FastifyRequest,
      reply: FastifyReply,
      versionKeys?: readonly string[],
    ): Promise<string[] | undefined>;
    /** counts an unauthenticated request against its IP's budget; throws 429 */
    enforceAnonymousRateLimit(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  }
}

/**
 * KEYS[1] principal counter, KEYS[2] tenant counter, KEYS[3..] versions to read (or create).
 * ARGV[1] window ms, ARGV[2] principal budget, ARGV[3] version TTL s, ARGV[4] a fresh token.
 * Returns {principal count, principal ttl ms, tenant count (-1: not counted), tenant ttl ms,
 * version...}.
 */
export const AUTHENTICATED_LUA = `
local window = tonumber(ARGV[1])
local function count(key)
  local n = redis.call('INCR', key)
  local ttl = -1
  if n > 1 then ttl = redis.call('PTTL', key) end
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = window
  end
  return n, ttl
end
local pn, pttl = count(KEYS[1])
local tn, tttl = -1, 0
if pn <= tonumber(ARGV[2]) then tn, tttl = count(KEYS[2]) end
local out = {pn, pttl, tn, tttl}
for i = 3, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    v = ARGV[4] .. '.' .. i
    redis.call('SET', KEYS[i], v, 'EX', ARGV[3])
  end
  out[#out + 1] = v
end
return out
`;

type AuthenticatedCommand = (numKeys: number, ...args: Array<string | number>) => Promise<unknown[]>;

export default fp(
  async (app: FastifyInstance, opts: RateLimitPluginOptions) => {
    const windowMs = opts.windowMs ?? 60_000;
    // The anonymous budget: @fastify/rate-limit on the prefixed client.
    await app.register(rateLimit, {
      global: false,
      redis: app.redis,
      nameSpace: 'rl:',
      skipOnError: true,
      timeWindow: windowMs,
    });
    const anonymous = app.createRateLimit({
      max: opts.anonymous,
      timeWindow: windowMs,
      keyGenerator: (req) => `a:${req.ip}`,
    });

    const shared = app.sharedRedis as Redis & { simptuAuthenticated?: AuthenticatedCommand };
    shared.defineCommand('simptuAuthenticated', { lua: AUTHENTICATED_LUA });
    const run = shared.simptuAuthenticated!.bind(shared);
    const prefix = app.redisPrefix;
    const principalMax = String(opts.perPrincipal);
    const windowArg = String(windowMs);
    const ttlArg = String(CREATED_VERSION_TTL_SECONDS);
    // Tokens for versions a read creates: unique without a random number per request (this
    // process's random prefix + a counter).
    const tokenPrefix = randomBytes(12).toString('base64url');
    let tokenCounter = 0;

    const exceeded = (reply: FastifyReply, scope: 'principal' | 'tenant', limit: number, ttlMs: number) => {
      const retryAfter = Math.max(1, Math.ceil(ttlMs / 1000));
      reply.header('retry-after', retryAfter);
      return new RateLimitedError(
        retryAfter,
        `Rate limit of the ${scope} exceeded, retry in ${retryAfter} s`,
        {
          details: { scope, limit },
        },
      );
    };

    app.decorate(
      'enforceRateLimit',
      async (
        request: FastifyRequest,
        reply: FastifyReply,
        versionKeys: readonly string[] = [],
      ): Promise<string[] | undefined> => {
        const { tenant, sub } = request.auth;
        const base = `${prefix}rl:{${tenant}}:`;
        let r: unknown[];
        try {
          r = await run(
            2 + versionKeys.length,
            `${base}p:${sub}`,
            `${base}t`,
            ...versionKeys,
            windowArg,
            principalMax,
            ttlArg,
            `${tokenPrefix}${(++tokenCounter).toString(36)}`,
          );
        } catch (err) {
          // Redis unreachable: no limits (as @fastify/rate-limit's skipOnError), no versions.
          request.log.debug({ err }, 'rate limit skipped: redis unavailable');
          reply.header('x-ratelimit-limit', opts.perPrincipal);
          reply.header('x-ratelimit-remaining', opts.perPrincipal);
          reply.header('x-ratelimit-reset', 0);
          return undefined;
        }
        const pn = r[0] as number;
        const pttl = r[1] as number;
        reply.header('x-ratelimit-limit', opts.perPrincipal);
        reply.header('x-ratelimit-remaining', Math.max(0, opts.perPrincipal - pn));
        reply.header('x-ratelimit-reset', Math.ceil(pttl / 1000));
        if (pn > opts.perPrincipal) throw exceeded(reply, 'principal', opts.perPrincipal, pttl);
        if ((r[2] as number) > opts.perTenant)
          throw exceeded(reply, 'tenant', opts.perTenant, r[3] as number);
        return r.length > 4 ? (r.slice(4) as string[]) : [];
      },
    );

    app.decorate('enforceAnonymousRateLimit', async (request: FastifyRequest, reply: FastifyReply) => {
      const r = await anonymous(request);
      if (r.isAllowed) return;
      reply.header('x-ratelimit-limit', r.max);
      reply.header('x-ratelimit-remaining', r.remaining);
      reply.header('x-ratelimit-reset', r.ttlInSeconds);
      if (r.isExceeded) {
        const retryAfter = Math.max(1, r.ttlInSeconds);
        reply.header('retry-after', retryAfter);
        throw new RateLimitedError(
          retryAfter,
          `Rate limit of the anonymous exceeded, retry in ${retryAfter} s`,
          {
            details: { scope: 'anonymous', limit: r.max },
          },
        );
      }
    });
  },
  { name: 'simptu-rate-limit', fastify: '5.x', dependencies: ['simptu-redis'] },
);
