import { afterEach, describe, it, expect } from 'vitest';
import { Registry, Counter } from 'prom-client';
import { HealthServer } from './health.ts';

describe('HealthServer', () => {
  const servers: HealthServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  async function start(s: HealthServer): Promise<string> {
    servers.push(s);
    const port = await s.start();
    return `http://127.0.0.1:${port}`;
  }

  it('healthz is ok while alive; readyz follows its checks', async () => {
    const probes = new HealthServer({ host: '127.0.0.1' });
    let synced = false;
    probes.addReadyCheck('informers', () => synced || 'tenants not synced');
    probes.addReadyCheck('database', async () => {
      if (!synced) throw new Error('connection refused');
    });
    const base = await start(probes);

    const h = await fetch(`${base}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.text()).toBe('ok\n');

    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(500);
    const body = await notReady.text();
    expect(body).toContain('[-]informers failed: tenants not synced');
    expect(body).toContain('[-]database failed: connection refused');
    expect(body).toContain('[+]ping ok');

    synced = true;
    const ready = await fetch(`${base}/readyz?verbose`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe('[+]ping ok\n[+]informers ok\n[+]database ok\nok\n');

    expect((await fetch(`${base}/metrics`)).status).toBe(404); // probes server only
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('a hanging check fails readiness after its timeout instead of hanging the probe', async () => {
    const probes = new HealthServer({ host: '127.0.0.1', checkTimeoutMs: 50 });
    probes.addReadyCheck('stuck', () => new Promise<void>(() => {}));
    const base = await start(probes);
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(500);
    expect(await res.text()).toContain('[-]stuck failed: timed out after 50 ms');
  });

  it('serves the registry as Prometheus text on the metrics server', async () => {
    const registry = new Registry();
    new Counter({ name: 'demo_total', help: 'demo', registers: [registry] }).inc(3);
    const base = await start(new HealthServer({ host: '127.0.0.1', registry }));
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toContain('demo_total 3');
    expect((await fetch(`${base}/healthz`)).status).toBe(404); // metrics server only
  });
});
