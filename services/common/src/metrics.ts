/**
 * Prometheus metrics (DESIGN §10). One registry per service (not prom-client's global one, so
 * tests and several components in one process don't collide), Node/process default metrics
 * under their standard names (so stock dashboards work), and every Simptu metric named
 * `simptu_<subsystem>_<name>` with base units in the name (`_seconds`, `_bytes`, `_total`).
 * @see https://prometheus.io/docs/practices/naming/
 * @see https://github.com/siimon/prom-client#usage
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import client from 'prom-client';

export const METRIC_PREFIX = 'simptu_';
const NAME_RE = /^[a-z][a-z0-9_]*$/;

/** `outbox_published_total` → `simptu_outbox_published_total` (idempotent). */
export function metricName(name: string): string {
  const full = name.startsWith(METRIC_PREFIX) ? name : METRIC_PREFIX + name;
  if (!NAME_RE.test(full)) throw new TypeError(`invalid metric name ${JSON.stringify(name)}`);
  return full;
}

export interface MetricsOptions {
  /** added as the `service` label on every series */
  service: string;
  /** collect Node.js/process default metrics; @default true */
  defaultMetrics?: boolean;
  /** more labels on every series */
  labels?: Record<string, string>;
}

type Cfg<C> = Omit<C, 'registers'>;

export interface Metrics {
  readonly registry: client.Registry;
  counter<L extends string>(cfg: Cfg<client.CounterConfiguration<L>>): client.Counter<L>;
  gauge<L extends string>(cfg: Cfg<client.GaugeConfiguration<L>>): client.Gauge<L>;
  histogram<L extends string>(cfg: Cfg<client.HistogramConfiguration<L>>): client.Histogram<L>;
  /** the exposition text and its content type */
  expose(): Promise<{ contentType: string; body: string }>;
}

/**
 * A registry with the `simptu_` naming convention enforced: `metrics.counter({name:
 * 'outbox_published_total', …})` registers `simptu_outbox_published_total`. Asking for the
 * same name twice returns the existing metric (modules may be initialised more than once).
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new client.Registry();
  registry.setDefaultLabels({ service: options.service, ...options.labels });
  if (options.defaultMetrics ?? true) client.collectDefaultMetrics({ register: registry });
  const get = <M>(name: string, make: () => M): M =>
    (registry.getSingleMetric(name) as M | undefined) ?? make();
  return {
    registry,
    counter(cfg) {
      const name = metricName(cfg.name);
      return get(name, () => new client.Counter({ ...cfg, name, registers: [registry] }));
    },
    gauge(cfg) {
      const name = metricName(cfg.name);
      return get(name, () => new client.Gauge({ ...cfg, name, registers: [registry] }));
    },
    histogram(cfg) {
      const name = metricName(cfg.name);
      return get(name, () => new client.Histogram({ ...cfg, name, registers: [registry] }));
    },
    async expose() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** A node:http handler for `GET /metrics`. */
export function metricsHandler(metrics: Pick<Metrics, 'expose'>) {
  return async (_req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const { contentType, body } = await metrics.expose();
      res.writeHead(200, { 'content-type': contentType }).end(body);
    } catch {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
    }
  };
}
