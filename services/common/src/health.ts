/**
 * Liveness and readiness (DESIGN §10), in the Kubernetes sense:
 * - `/healthz` (liveness): is this process able to make progress at all? Only cheap,
 *   local checks — a failing dependency must NOT fail liveness, or Kubernetes restarts every
 *   pod when Postgres blips.
 * - `/readyz` (readiness): should traffic come here now? Dependencies (Postgres, Kafka,
 *   Redis, JWKS) and draining on shutdown.
 * Each check has a timeout; a check that hangs counts as failed. `?verbose` adds the error
 * messages (kube-apiserver does the same), which are otherwise not shown.
 * @see https://kubernetes.io/docs/reference/using-api/health-checks/
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface HealthCheck {
  name: string;
  /** resolves when healthy; rejects (or exceeds `timeoutMs`) when not */
  check: (signal: AbortSignal) => Promise<unknown>;
  /** @default 2000 */
  timeoutMs?: number;
}

export type HealthStatus = 'ok' | 'fail';

export interface CheckResult {
  status: HealthStatus;
  durationMs: number;
  error?: string;
}

export interface HealthResult {
  status: HealthStatus;
  checks: Record<string, CheckResult>;
}

async function runOne(c: HealthCheck): Promise<CheckResult> {
  const started = performance.now();
  const timeoutMs = c.timeoutMs ?? 2000;
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    await Promise.race([Promise.resolve().then(() => c.check(ac.signal)), timeout]);
    return { status: 'ok', durationMs: Math.round(performance.now() - started) };
  } catch (err) {
    return {
      status: 'fail',
      durationMs: Math.round(performance.now() - started),
      error: err instanceof Error ? err.message : String(err),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs checks concurrently; `fail` when any fails. */
export async function runChecks(checks: readonly HealthCheck[]): Promise<HealthResult> {
  const results = await Promise.all(checks.map(runOne));
  const out: Record<string, CheckResult> = {};
  checks.forEach((c, i) => (out[c.name] = results[i]!));
  return { status: results.every((r) => r.status === 'ok') ? 'ok' : 'fail', checks: out };
}

export interface HealthOptions {
  liveness?: HealthCheck[];
  readiness?: HealthCheck[];
}

export class Health {
  readonly #liveness: HealthCheck[];
  readonly #readiness: HealthCheck[];
  #draining = false;

  constructor(options: HealthOptions = {}) {
    for (const list of [options.liveness ?? [], options.readiness ?? []]) {
      const names = list.map((c) => c.name);
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup !== undefined) throw new TypeError(`duplicate health check ${JSON.stringify(dup)}`);
    }
    this.#liveness = [...(options.liveness ?? [])];
    this.#readiness = [...(options.readiness ?? [])];
  }

  /** Marks the process as shutting down: readiness fails from now on, liveness is unaffected. */
  drain(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  live(): Promise<HealthResult> {
    return runChecks(this.#liveness);
  }

  async ready(): Promise<HealthResult> {
    const r = await runChecks(this.#readiness);
    if (!this.#draining) return r;
    return {
      status: 'fail',
      checks: { ...r.checks, shutdown: { status: 'fail', durationMs: 0, error: 'draining' } },
    };
  }
}

/**
 * A node:http handler for `GET /healthz` and `GET /readyz`: 200 when ok, 503 when not, a JSON
 * body `{status, checks: {name: {status, durationMs[, error]}}}` (errors with `?verbose`).
 * Returns false for other paths, so it can sit in front of another handler.
 */
export function healthHandler(health: Health) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let result: HealthResult;
    if (url.pathname === '/healthz' || url.pathname === '/livez') result = await health.live();
    else if (url.pathname === '/readyz') result = await health.ready();
    else return false;
    const verbose = url.searchParams.has('verbose');
    const checks = Object.fromEntries(
      Object.entries(result.checks).map(([k, v]) => [
        k,
        verbose ? v : { status: v.status, durationMs: v.durationMs },
      ]),
    );
    res
      .writeHead(result.status === 'ok' ? 200 : 503, {
        'content-type': 'application/json',
        'cache-control': 'no-store',
      })
      .end(JSON.stringify({ status: result.status, checks }));
    return true;
  };
}
