import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Health, healthHandler, runChecks } from './health.ts';

describe('health', () => {
  it('runs checks concurrently with timeouts', async () => {
    let aborted = false;
    const started = Date.now();
    const r = await runChecks([
      { name: 'ok', check: async () => undefined },
      { name: 'broken', check: async () => Promise.reject(new Error('connection refused')) },
      {
        name: 'hangs',
        timeoutMs: 50,
        check: (signal) =>
          new Promise((resolve) => {
            signal.addEventListener('abort', () => {
              aborted = true;
              resolve(undefined);
            });
          }),
      },
    ]);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(r.status).toBe('fail');
    expect(r.checks.ok!.status).toBe('ok');
    expect(r.checks.broken).toMatchObject({ status: 'fail', error: 'connection refused' });
    expect(r.checks.hangs).toMatchObject({ status: 'fail', error: 'timed out after 50 ms' });
    expect(aborted).toBe(true);
    expect((await runChecks([])).status).toBe('ok');
  });

  it('keeps liveness up when a dependency fails, and fails readiness while draining', async () => {
    let dbUp = true;
    const h = new Health({
      liveness: [{ name: 'eventloop', check: async () => undefined }],
      readiness: [
        { name: 'postgres', check: async () => (dbUp ? undefined : Promise.reject(new Error('down'))) },
      ],
    });
    expect((await h.ready()).status).toBe('ok');
    dbUp = false;
    expect((await h.ready()).status).toBe('fail');
    expect((await h.live()).status).toBe('ok');
    dbUp = true;
    h.drain();
    expect(await h.ready()).toMatchObject({ status: 'fail', checks: { shutdown: { status: 'fail' } } });
    expect(
      () =>
        new Health({
          readiness: [
            { name: 'x', check: async () => 1 },
            { name: 'x', check: async () => 1 },
          ],
        }),
    ).toThrow(/duplicate/);
  });

  describe('healthHandler over HTTP', () => {
    let server: Server | undefined;
    afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

    it('answers /healthz and /readyz, hides errors unless verbose, passes other paths on', async () => {
      const h = new Health({
        readiness: [
          { name: 'kafka', check: async () => Promise.reject(new Error('broker at 10.0.0.1 down')) },
        ],
      });
      const handle = healthHandler(h);
      server = createServer(async (req, res) => {
        if (!(await handle(req, res))) res.writeHead(404).end();
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const live = await fetch(`${base}/healthz`);
      expect(live.status).toBe(200);
      expect(await live.json()).toEqual({ status: 'ok', checks: {} });
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      const body = await ready.text();
      expect(JSON.parse(body)).toMatchObject({ status: 'fail', checks: { kafka: { status: 'fail' } } });
      expect(body).not.toContain('10.0.0.1');
      expect(await (await fetch(`${base}/readyz?verbose`)).json()).toMatchObject({
        checks: { kafka: { error: 'broker at 10.0.0.1 down' } },
      });
      expect((await fetch(`${base}/other`)).status).toBe(404);
    });
  });
});
