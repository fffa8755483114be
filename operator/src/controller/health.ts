/**
 * The operator's HTTP endpoints, as controller-runtime's manager serves them: `/metrics`
 * (Prometheus text) on the metrics port (default 8080) and `/healthz` + `/readyz` on the probe
 * port (default 8081). One small class; instantiate it once per port.
 *
 * `/healthz` answers 200 while the process can serve (liveness: restarting would not help
 * otherwise); `/readyz` runs every registered readiness check (informers synced, database
 * reachable…) and answers 500 with the failing ones. `?verbose` lists each check like the
 * kube-apiserver does.
 * @see https://kubernetes.io/docs/reference/using-api/health-checks/
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** Resolves (or returns) when healthy; throws / rejects / returns a string reason when not. */
export type Check = () => void | string | boolean | Promise<void | string | boolean>;

export interface HealthServerOptions {
  /** @default 0 (any free port) */
  port?: number;
  /** @default '0.0.0.0' */
  host?: string;
  /** Serve `/metrics` from this registry. */
  registry?: Registry;
  /** Serve `/healthz` and `/readyz`. @default true when no registry is given */
  probes?: boolean;
  /** Per-check time limit. @default 5000 */
  checkTimeoutMs?: number;
}

export class HealthServer {
  readonly #opts: HealthServerOptions;
  readonly #healthz = new Map<string, Check>();
  readonly #readyz = new Map<string, Check>();
  #server: Server | undefined;

  constructor(opts: HealthServerOptions = {}) {
    this.#opts = opts;
    this.#healthz.set('ping', () => undefined);
  }

  /** Adds a liveness check (keep these trivial: a failing one gets the pod restarted). */
  addHealthCheck(name: string, check: Check): void {
    this.#healthz.set(name, check);
  }

  /** Adds a readiness check (e.g. `informer.hasSynced()`, a `SELECT 1`). */
  addReadyCheck(name: string, check: Check): void {
    this.#readyz.set(name, check);
  }

  /** Starts listening; resolves the bound port. */
  async start(): Promise<number> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      });
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#opts.port ?? 0, this.#opts.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const probes = this.#opts.probes ?? !this.#opts.registry;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url.pathname === '/metrics' && this.#opts.registry) {
      const body = await this.#opts.registry.metrics();
      res.writeHead(200, { 'content-type': this.#opts.registry.contentType }).end(body);
      return;
    }
    if (probes && (url.pathname === '/healthz' || url.pathname === '/livez' || url.pathname === '/readyz')) {
      const checks =
        url.pathname === '/readyz' ? new Map([...this.#healthz, ...this.#readyz]) : this.#healthz;
      await this.#report(checks, url.searchParams.has('verbose'), res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  async #report(checks: Map<string, Check>, verbose: boolean, res: ServerResponse): Promise<void> {
    const results = await Promise.all(
      [...checks].map(async ([name, check]) => ({ name, failure: await this.#run(check) })),
    );
    const failed = results.filter((r) => r.failure !== undefined);
    const lines = results.map((r) =>
      r.failure === undefined ? `[+]${r.name} ok` : `[-]${r.name} failed: ${r.failure}`,
    );
    const ok = failed.length === 0;
    const body = verbose || !ok ? `${lines.join('\n')}\n${ok ? 'ok' : 'check failed'}\n` : 'ok\n';
    res
      .writeHead(ok ? 200 : 500, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
      .end(body);
  }

  /** undefined = passed; otherwise the reason it failed. */
  async #run(check: Check): Promise<string | undefined> {
    const timeoutMs = this.#opts.checkTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        Promise.resolve().then(check),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      if (result === false) return 'not ready';
      if (typeof result === 'string') return result;
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timer);
    }
  }
}
