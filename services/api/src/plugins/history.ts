/**
 * The history cache's plumbing (src/history-cache.ts, docs/api.md "History cache"):
 *   - `app.historyCache`: this process's cache of decrypted history pages;
 *   - session versions: `trackSessionVersions` (@simptu/common) on the unprefixed
 *     `sharedRedis`, so every session this process changes — routes, the agent-replies consumer,
 *     test code in the process — gets a new version in Redis after its commit (failed bumps are
 *     retried until Redis answers); removed on close;
 *   - the whole cache is dropped whenever `sharedRedis` (re)connects: while this instance could
 *     not reach Redis, writers elsewhere may have failed to bump versions too, and its pages of
 *     before the outage can't be trusted to be current;
 *   - metrics: `simptu_api_history_cache_requests_total{outcome}` (hit, miss, bypass — Redis
 *     not asked or the cache off), `simptu_api_history_cache_bytes`, and
 *     `simptu_api_session_version_bump_failures_total` (writes whose bump did not reach Redis).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { trackSessionVersions } from '@simptu/common';
import { HistoryCache } from '../history-cache.ts';

export interface HistoryPluginOptions {
  maxBytes: number;
  ttlSec: number;
}

export type HistoryOutcome = 'hit' | 'miss' | 'bypass';

declare module 'fastify' {
  interface FastifyInstance {
    historyCache: HistoryCache;
    /** counts one history request by how the cache served it */
    countHistory(outcome: HistoryOutcome): void;
  }
}

export default fp(
  async (app: FastifyInstance, opts: HistoryPluginOptions) => {
    const cache = new HistoryCache({ maxBytes: opts.maxBytes, ttlMs: opts.ttlSec * 1000 });
    const requests = app.metrics.counter({
      name: 'api_history_cache_requests_total',
      help: 'History requests by how the cache served them (hit, miss, bypass)',
      labelNames: ['outcome'],
    });
    // Pre-bound children: no label hashing per request.
    const counters = {
      hit: requests.labels('hit'),
      miss: requests.labels('miss'),
      bypass: requests.labels('bypass'),
    };
    app.metrics.gauge({
      name: 'api_history_cache_bytes',
      help: 'Bytes held by this process for cached history pages',
      collect() {
        this.set(cache.bytes);
      },
    });
    const bumpFailures = app.metrics.counter({
      name: 'api_session_version_bump_failures_total',
      help: 'Committed session changes whose history version could not be bumped in Redis',
    });
    const untrack = trackSessionVersions(app.sharedRedis, {
      onError: (err, tenant, sessionIds) => {
        bumpFailures.inc(sessionIds.length);
        app.log.warn({ err, tenant, sessions: sessionIds.length }, 'session version bump failed');
      },
    });
    const onReady = () => cache.clear();
    app.sharedRedis.on('ready', onReady);
    app.decorate('historyCache', cache);
    app.decorate('countHistory', (outcome: HistoryOutcome) => counters[outcome].inc());
    app.addHook('onClose', async () => {
      untrack();
      app.sharedRedis.off('ready', onReady);
      cache.clear();
    });
  },
  {
    name: 'simptu-history',
    fastify: '5.x',
    dependencies: ['simptu-redis', 'simptu-observability'],
  },
);
