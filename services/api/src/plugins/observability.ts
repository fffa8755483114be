/**
 * Health, readiness and metrics (DESIGN §10): `/healthz` (the process runs), `/readyz` (Postgres
 * and Redis answer; fails while draining on shutdown), `/metrics` (Prometheus: request counts and
 * latency by method, route pattern and status, plus process metrics). Route patterns, not URLs,
 * label the series so ids don't explode cardinality.
 * @see https://prometheus.io/docs/practices/naming/
 */
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { createMetrics, Health, type HealthCheck, type Metrics } from '@simptu/common';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
    health: Health;
  }
}

export interface ObservabilityPluginOptions {
  metrics?: Metrics;
}

export default fp(
  async (app: FastifyInstance, opts: ObservabilityPluginOptions) => {
    const metrics = opts.metrics ?? createMetrics({ service: 'api' });
    const requests = metrics.counter({
      name: 'http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
    });
    const duration = metrics.histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by method, route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    });
    const readiness: HealthCheck[] = [
      { name: 'postgres', check: async () => void (await app.db.query('SELECT 1')) },
      { name: 'redis', check: async () => void (await app.redis.ping()) },
    ];
    const health = new Health({ liveness: [], readiness });
    app.decorate('metrics', metrics);
    app.decorate('health', health);

    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      if (route === '/metrics') return;
      const labels = { method: request.method, route, status: String(reply.statusCode) };
      requests.inc(labels);
      duration.observe(labels, reply.elapsedTime / 1000);
    });

    const probe = (which: 'live' | 'ready') => async (_req: unknown, reply: FastifyReply) => {
      const r = await (which === 'live' ? health.live() : health.ready());
      return reply.code(r.status === 'ok' ? 200 : 503).send(r);
    };
    app.get('/healthz', { schema: { hide: true }, logLevel: 'warn' }, probe('live'));
    app.get('/readyz', { schema: { hide: true }, logLevel: 'warn' }, probe('ready'));
    app.get('/metrics', { schema: { hide: true }, logLevel: 'warn' }, async (_req, reply) => {
      const { contentType, body } = await metrics.expose();
      return reply.type(contentType).send(body);
    });
  },
  { name: 'simptu-observability', fastify: '5.x', dependencies: ['simptu-db', 'simptu-redis'] },
);
