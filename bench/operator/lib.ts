/**
 * Small, dependency-free helpers of the operator benchmark: a request-counting API-server proxy,
 * Prometheus text parsing, RSS sampling, bounded waits and a bounded-concurrency runner.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';

// What the image runs: bench/lib/image.ts (shared with bench/realtime).
export { imageCommand } from '../lib/image.ts';

// ---------------------------------------------------------------------------------------------
// Time and concurrency

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class BenchTimeoutError extends Error {
  constructor(what: string, ms: number, detail?: string) {
    super(`timed out after ${Math.round(ms / 1000)} s waiting for ${what}${detail ? `: ${detail}` : ''}`);
    this.name = 'BenchTimeoutError';
  }
}

/**
 * Polls `check` every `intervalMs` until it returns `{ done: true }` or `timeoutMs` passes; the
 * last `detail` goes into the timeout message, so a stuck wait says what it was stuck on.
 */
export async function waitFor(
  what: string,
  check: () => Promise<{ done: boolean; detail?: string }>,
  opts: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let detail: string | undefined;
  for (;;) {
    opts.signal?.throwIfAborted();
    const r = await check();
    if (r.done) return;
    detail = r.detail;
    if (Date.now() >= deadline) throw new BenchTimeoutError(what, opts.timeoutMs, detail);
    await sleep(opts.intervalMs ?? 500);
  }
}

/** Runs `fn` over `items` with at most `concurrency` in flight; the first failure rejects. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return out;
}

/** Wall-clock seconds of `fn`. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses the Prometheus text exposition format (samples only; HELP/TYPE lines skipped).
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    const body = m[3];
    if (body) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      for (let l = re.exec(body); l; l = re.exec(body))
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = Number(m[4]);
    if (!Number.isNaN(value) || m[4] === 'NaN') out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** Sum of every sample of `name` whose labels include `match`. */
export function sumMetric(
  samples: readonly Sample[],
  name: string,
  match: Record<string, string> = {},
): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

/** Per-label-value sums of `name`, e.g. writes per `backend`. */
export function metricBy(samples: readonly Sample[], name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples)
    if (s.name === name) out[s.labels[label] ?? ''] = (out[s.labels[label] ?? ''] ?? 0) + s.value;
  return out;
}

export function diffCounts(
  after: Record<string, number>,
  before: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

export const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------------------------
// API-server requests: classification and a counting proxy

/**
 * `VERB resource[/subresource]` of an API-server request, with the verbs the API server's own
 * metrics use (LIST, WATCH, GET, CREATE=POST, PATCH, UPDATE=PUT, DELETE).
 * @see https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris
 */
export function classifyRequest(method: string, url: string): string {
  const u = new URL(url, 'http://x');
  const seg = u.pathname.split('/').filter(Boolean);
  let rest: string[];
  if (seg[0] === 'api') rest = seg.slice(2);
  else if (seg[0] === 'apis') rest = seg.slice(3);
  else return `${method} ${u.pathname}`; // /metrics, /version, /openapi…
  let resource: string | undefined;
  let name: string | undefined;
  let sub: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && !['status', 'finalize'].includes(rest[2]!)) {
    [resource, name, sub] = [rest[2], rest[3], rest[4]];
  } else {
    [resource, name, sub] = [rest[0], rest[1], rest[2]];
  }
  const what = `${resource ?? ''}${sub ? `/${sub}` : ''}`;
  const verb = (() => {
    switch (method) {
      case 'GET':
        return u.searchParams.get('watch') === 'true' || u.searchParams.get('watch') === '1'
          ? 'WATCH'
          : name
            ? 'GET'
            : 'LIST';
      case 'POST':
        return 'CREATE';
      case 'PUT':
        return 'UPDATE';
      default:
        return method;
    }
  })();
  return `${verb} ${what}`;
}

export interface CountingProxy {
  /** http://127.0.0.1:<port> */
  url: string;
  /** requests so far, by `VERB resource` (a copy) */
  counts(): Record<string, number>;
  close(): Promise<void>;
}

/**
 * A plain-HTTP, localhost-only proxy in front of the API server that counts every request it
 * forwards, authenticating upstream with `kc`'s current user (token or client certificate) and
 * CA. Pointing only the operator at it attributes requests to the operator exactly, which the
 * API server's own `apiserver_request_total` cannot (it has no per-client label, and other
 * clients — this benchmark, the controller manager, parallel tests — share it). Watches are
 * streamed through untouched.
 */
export async function startCountingProxy(kc: KubeConfig): Promise<CountingProxy> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const target = new URL(cluster.server);
  const base: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(base);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 64 });
  const counts: Record<string, number> = {};
  const server = http.createServer((req, res) => {
    const key = classifyRequest(req.method ?? 'GET', req.url ?? '/');
    counts[key] = (counts[key] ?? 0) + 1;
    const headers = { ...req.headers, host: target.host };
    const up = https.request(
      {
        ...base,
        agent,
        hostname: target.hostname,
        port: target.port || 443,
        path: req.url,
        method: req.method,
        headers: { ...headers, ...(base.headers as Record<string, string> | undefined) },
      },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`bench proxy: ${err.message}`);
    });
    // The client gave up (watch closed, operator stopping): close the upstream request too.
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts: () => ({ ...counts }),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agent.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Process memory

/** VmRSS and VmHWM (peak RSS) of a process in MiB, from /proc/<pid>/status (Linux). */
export function readRss(pid: number): { rssMiB: number; hwmMiB: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds (user + system) a process has used, from /proc/<pid>/stat. Clock ticks are
 * USER_HZ, 100 on every mainstream Linux architecture.
 * @see https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
 */
export function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at state (field 3).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime (14), stime (15)
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Output

export function fmt(n: number | undefined, digits = 1): string {
  if (n === undefined || Number.isNaN(n)) return 'n/a';
  return n.toFixed(digits);
}

/** A plain-text table with aligned columns. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
