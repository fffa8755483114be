import { describe, expect, it } from 'vitest';
import { createMetrics, metricName } from './metrics.ts';

describe('metrics', () => {
  it('prefixes names, labels every series with the service, and collects default metrics', async () => {
    const m = createMetrics({ service: 'api' });
    const c = m.counter({ name: 'bookings_created_total', help: 'Bookings created', labelNames: ['tenant'] });
    c.inc({ tenant: 'smile-dental' });
    expect(m.counter({ name: 'simptu_bookings_created_total', help: 'again' })).toBe(c); // same metric
    m.histogram({ name: 'http_request_duration_seconds', help: 'x', buckets: [0.1, 1] }).observe(0.2);
    const { contentType, body } = await m.expose();
    expect(contentType).toMatch(/^text\/plain/);
    expect(body).toContain('simptu_bookings_created_total{tenant="smile-dental",service="api"} 1');
    expect(body).toContain('simptu_http_request_duration_seconds_bucket{le="1",service="api"} 1');
    expect(body).toMatch(/^process_cpu_user_seconds_total\{service="api"\}/m);
  });

  it('keeps registries apart and refuses bad names', async () => {
    const a = createMetrics({ service: 'a', defaultMetrics: false });
    const b = createMetrics({ service: 'b', defaultMetrics: false });
    a.gauge({ name: 'queue_depth', help: 'x' }).set(3);
    expect((await b.expose()).body).not.toContain('queue_depth');
    expect(() => metricName('Bad-Name')).toThrow(TypeError);
    expect(metricName('x_total')).toBe('simptu_x_total');
  });
});
