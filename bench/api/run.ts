/**
 * `node bench/api/run.ts` (or `bash bench/run.sh api`) — the API benchmark (docs/benchmarks.md).
 *
 *   1. provisions a real tenant the way the operator does (the API's test support: scratch
 *      platform database, NOINHERIT login role, wrapped data key, schema + migrations, topics,
 *      registry row), a test token issuer (local JWKS), and builds the API with `buildApp`,
 *      listening on a free loopback port — with the rate limits raised out of the way
 *      (BENCH_RATE_LIMIT per minute, default 10^9) so they can't distort the figures;
 *   2. starts a bare fastify hello-world on another free loopback port of the same process: the
 *      baseline, measured in the same run, before and after the API figures;
 *   3. drives each with autocannon from a child process (bench/api/load.ts; its own core) at
 *      BENCH_CONNECTIONS connections for BENCH_DURATION_SECONDS:
 *        - `GET /v1/sessions/:id/messages?limit=50` — a 50-message encrypted session's history,
 *          as a client re-reading it sees it: from the history cache (docs/api.md "History
 *          cache"; validated against the session's version in Redis on every request);
 *        - the same on a second API instance with the history cache off
 *          (`cache.historyMaxBytes: 0`): the database path every cache miss takes;
 *        - `POST /v1/bookings` — every request a distinct free 5-minute slot (opening hours
 *          00:00–24:00 every day), so a correct API answers 201 to all of them;
 *   4. times `FieldCipher.encrypt` of a ~100-byte body with its AAD against a bare
 *      `createCipheriv('aes-256-gcm')` loop (random nonce, AAD, tag);
 *   5. prints a table, writes bench/results/api-<timestamp>.json, and removes everything.
 *
 * Environment: DATABASE_URL, REDIS_URL, KAFKA_BROKERS (the test environment), and
 *   BENCH_CONNECTIONS          autocannon connections @default 50
 *   BENCH_DURATION_SECONDS     per measurement @default 10
 *   BENCH_WARMUP_SECONDS       unmeasured load before each measurement @default 3
 *   BENCH_HISTORY_MESSAGES     messages in the session @default 50
 *   BENCH_CRYPTO_ITERATIONS    encryptions per round (5 rounds each) @default 20000
 *   BENCH_RATE_LIMIT           the API's per-principal/tenant/anonymous limits per minute @default 1e9
 *   BENCH_DB_POOL              the API's connections per pool @default 10 (the config default)
 *   BENCH_TIMEOUT_SECONDS      overall budget before cleanup @default 300
 *   BENCH_ONLY                 comma list of baseline,history,history-db,domain,bookings,crypto: measure only those
 *                              (without the baseline no ratios)
 *   BENCH_CPU_PROFILE          a directory: each HTTP measurement (not its warm-up) writes the V8 CPU
 *                              profile of this process (the servers) to <dir>/<name>.cpuprofile —
 *                              open it in Chrome DevTools, or sum it up per function
 */
import { fork } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { createCipheriv, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import {
  createCustomer,
  listMessages,
  messageBodyLocation,
  startTestIssuer,
  withTenant,
  type TestIssuer,
} from '@simptu/common';
import { buildApp } from '../../services/api/src/app.ts';
import {
  createTestPlatform,
  provisionTenant,
  testApiConfig,
  tokenFor,
  type TestPlatform,
  type TestTenant,
} from '../../services/api/test/support/index.ts';
import { fmt, table } from '../operator/lib.ts';
import type { LoadResult, LoadSpec } from './load.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const env = process.env;
const int = (v: string | undefined, d: number) => {
  const n = v === undefined || v === '' ? d : Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`invalid integer ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};

const CONNECTIONS = int(env.BENCH_CONNECTIONS, 50);
const DURATION = int(env.BENCH_DURATION_SECONDS, 10);
const WARMUP = int(env.BENCH_WARMUP_SECONDS, 3);
const HISTORY_MESSAGES = int(env.BENCH_HISTORY_MESSAGES, 50);
const CRYPTO_ITERATIONS = int(env.BENCH_CRYPTO_ITERATIONS, 20_000);
const RATE_LIMIT = int(env.BENCH_RATE_LIMIT, 1_000_000_000);
const DB_POOL = int(env.BENCH_DB_POOL, 10);
const TIMEOUT_SECONDS = int(env.BENCH_TIMEOUT_SECONDS, 300);
const CPU_PROFILE_DIR = env.BENCH_CPU_PROFILE ? resolve(env.BENCH_CPU_PROFILE) : undefined;
const ONLY = new Set(
  (env.BENCH_ONLY ?? 'baseline,history,history-db,domain,bookings,crypto').split(',').map((s) => s.trim()),
);
type Measured = LoadResult & { warmupStatusCodes: Record<string, number>; serverCpuUsPerRequest: number };
const SKIPPED: Measured = {
  serverCpuUsPerRequest: NaN,
  requestsPerSecond: NaN,
  requests: 0,
  latencyMs: { p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN },
  statusCodes: {},
  errors: 0,
  timeouts: 0,
  nextIndex: 0,
  warmupStatusCodes: {},
};

/** Targets (docs/benchmarks.md). */
const TARGET_HISTORY_RATIO = 0.25;
const TARGET_P99_MS = 20;

const log = (msg: string) => console.log(`[bench:api ${new Date().toISOString().slice(11, 19)}] ${msg}`);

for (const v of ['DATABASE_URL', 'REDIS_URL', 'KAFKA_BROKERS']) {
  if (!env[v]) {
    console.error(`${v} is not set: run 'make bench', or 'set -a; source .testenv/env; set +a' first`);
    process.exit(2);
  }
}

// ---------------------------------------------------------------------------------------------

function load(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolveLoad, reject) => {
    const child = fork(fileURLToPath(new URL('./load.ts', import.meta.url)), [], { stdio: 'inherit' });
    let result: LoadResult | undefined;
    child.once('message', (r: LoadResult) => (result = r));
    child.once('error', reject);
    child.once('exit', (code) =>
      result ? resolveLoad(result) : reject(new Error(`load generator exited with ${code} and no result`)),
    );
    child.send(spec);
  });
}

/** Warm-up (not in the figures; its status counts are kept in `warmupStatusCodes`), then the measurement. */
async function measure(
  name: string,
  spec: Omit<LoadSpec, 'durationSeconds' | 'connections'>,
): Promise<Measured> {
  let booking = spec.booking;
  let warmupStatusCodes: Record<string, number> = {};
  if (WARMUP > 0) {
    const w = await load({ ...spec, connections: CONNECTIONS, durationSeconds: WARMUP });
    warmupStatusCodes = w.statusCodes;
    if (booking) booking = { ...booking, firstIndex: w.nextIndex };
  }
  const profiler = CPU_PROFILE_DIR ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  // CPU of this process (the servers; the load generator is a child process) per request: far
  // less sensitive to other load on the machine than requests per second.
  const cpu0 = process.cpuUsage();
  const r0 = await load({
    ...spec,
    ...(booking ? { booking } : {}),
    connections: CONNECTIONS,
    durationSeconds: DURATION,
  });
  const cpu = process.cpuUsage(cpu0);
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    mkdirSync(CPU_PROFILE_DIR!, { recursive: true });
    const file = join(CPU_PROFILE_DIR!, `${name.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    log(`${name}: CPU profile ${file}`);
  }
  const r = { ...r0, serverCpuUsPerRequest: r0.requests ? (cpu.user + cpu.system) / r0.requests : NaN };
  log(
    `${name}: ${fmt(r.requestsPerSecond, 0)} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, ` +
      `server CPU ${fmt(r.serverCpuUsPerRequest, 0)} µs/request, ` +
      `status ${JSON.stringify(r.statusCodes)}${r.errors ? `, ${r.errors} errors` : ''}`,
  );
  return { ...r, warmupStatusCodes };
}

async function helloWorld(): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false });
  app.get('/hello', async () => ({ hello: 'world' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/hello` };
}

/**
 * CPU microseconds per operation of each of `fns`: rounds of `iterations` calls, the functions
 * taking turns (so drifting load on the machine hits all alike), the best of 4 rounds after a
 * warm-up round. CPU time (`process.cpuUsage`), not wall time: on a loaded machine wall time
 * mostly measures the wait for a core.
 */
function cpuPerOp(iterations: number, fns: ReadonlyArray<(i: number) => void>): number[] {
  const best = fns.map(() => Infinity);
  for (let round = 0; round < 5; round++)
    fns.forEach((fn, k) => {
      const c0 = process.cpuUsage();
      for (let i = 0; i < iterations; i++) fn(i);
      const c = process.cpuUsage(c0);
      if (round > 0) best[k] = Math.min(best[k]!, (c.user + c.system) / iterations);
    });
  return best;
}

async function cryptoFigures(platform: TestPlatform, tenant: TestTenant) {
  const cipher = await platform.keyrings.cipher(tenant.name);
  const body = Buffer.from(
    'Hello, I would like to book a check-up next Tuesday morning, around 10 if possible. Thanks!!!!!!',
  );
  const ids = Array.from({ length: 1024 }, () => randomUUID());
  // The same work without the envelope: a random key, random 96-bit nonce, an AAD of the same
  // length (tenant|table|column|row id|version), tag.
  const key = randomBytes(32);
  const aads = ids.map((id) => Buffer.from(`${tenant.name}|messages|body|${id}|1`));
  const sealed = ids.map((id) => cipher.encrypt(body, messageBodyLocation(id)));
  const [fieldUs, rawUs, decryptUs] = cpuPerOp(CRYPTO_ITERATIONS, [
    (i) => cipher.encrypt(body, messageBodyLocation(ids[i & 1023]!)),
    (i) => {
      const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
      c.setAAD(aads[i & 1023]!);
      c.update(body);
      c.final();
      c.getAuthTag();
    },
    // what the history does per message
    (i) => cipher.decrypt(sealed[i & 1023]!, messageBodyLocation(ids[i & 1023]!)),
  ]) as [number, number, number];
  return {
    bodyBytes: body.length,
    iterations: CRYPTO_ITERATIONS,
    fieldCipherUs: fieldUs,
    rawAesGcmUs: rawUs,
    fieldCipherDecryptUs: decryptUs,
  };
}

/**
 * The history's database work alone, without HTTP, token or rate limits: `listMessages` in a
 * tenant transaction (`withTenant`: the one-query preamble BEGIN + SET LOCAL ROLE + SET LOCAL
 * search_path + set_config, the session and its messages in one query, COMMIT) with decryption,
 * from CONNECTIONS concurrent loops over a pool of the API's size, on the API's login role. The
 * ceiling the database path (a cache miss) can approach.
 */
async function domainHistory(platform: TestPlatform, tenant: TestTenant, sessionId: string, limit: number) {
  const pool = new pg.Pool({ connectionString: platform.appUrl, max: DB_POOL });
  const cipher = await platform.keyrings.cipher(tenant.name);
  const latencies: number[] = [];
  try {
    const loop = async (until: number, record: boolean) => {
      while (Date.now() < until) {
        const t0 = performance.now();
        await withTenant(pool, tenant.ref, (client) =>
          listMessages({ client, cipher, timeZone: 'UTC' }, sessionId, { limit }),
        );
        if (record) latencies.push(performance.now() - t0);
      }
    };
    const warmEnd = Date.now() + WARMUP * 1000;
    await Promise.all(Array.from({ length: CONNECTIONS }, () => loop(warmEnd, false)));
    const t0 = Date.now();
    await Promise.all(Array.from({ length: CONNECTIONS }, () => loop(t0 + DURATION * 1000, true)));
    const seconds = (Date.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    const q = (p: number) =>
      Math.round(latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)]!);
    return {
      transactionsPerSecond: latencies.length / seconds,
      latencyMs: { p50: q(0.5), p99: q(0.99), max: Math.round(latencies[latencies.length - 1]!) },
    };
  } finally {
    await pool.end();
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const report: Record<string, unknown> = {
    benchmark: 'api',
    startedAt: new Date().toISOString(),
    settings: {
      connections: CONNECTIONS,
      durationSeconds: DURATION,
      warmupSeconds: WARMUP,
      historyMessages: HISTORY_MESSAGES,
      cryptoIterations: CRYPTO_ITERATIONS,
      rateLimitPerMinute: RATE_LIMIT,
      databasePoolMax: DB_POOL,
    },
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      loadavg: { start: os.loadavg() } as Record<string, number[]>,
    },
  };
  const loadavg = (report.machine as { loadavg: Record<string, number[]> }).loadavg;

  const cleanups: Array<() => Promise<unknown>> = [];
  const budget = setTimeout(() => {
    console.error(`bench:api: out of time after ${TIMEOUT_SECONDS} s (BENCH_TIMEOUT_SECONDS); cleaning up`);
    void cleanup().finally(() => process.exit(1));
  }, TIMEOUT_SECONDS * 1000);
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error('cleanup:', err));
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

  try {
    log('provisioning a tenant (operator reconcilers) and building the API');
    const platform = await createTestPlatform();
    cleanups.push(() => platform.close());
    const issuer: TestIssuer = await startTestIssuer();
    cleanups.push(() => issuer.close());
    const tenant = await provisionTenant(platform, `bench-api-${randomBytes(3).toString('hex')}`, {
      timezone: 'UTC',
    });
    cleanups.push(() => tenant.deprovision());

    const config = testApiConfig(platform, issuer, {
      databasePoolMax: DB_POOL,
      // Raised for the benchmark: 50 connections from one principal would otherwise hit the
      // per-principal limit (600/min) within a second and measure 429s.
      rateLimit: { perPrincipal: RATE_LIMIT, perTenant: RATE_LIMIT, anonymous: RATE_LIMIT },
      // The production default (the test support uses 0 so tests see registry changes at once).
      cache: { registryTtlMs: 5000 },
      logLevel: 'warn',
    });
    const app = await buildApp(config);
    cleanups.push(() => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    // The same API with the history cache off: what a cache miss costs (no relay or consumers of
    // its own; the first instance runs them).
    const dbApp = await buildApp({
      ...config,
      cache: { ...config.cache, historyMaxBytes: 0 },
      events: { ...config.events, relay: false, consumers: false },
    });
    cleanups.push(() => dbApp.close());
    await dbApp.listen({ host: '127.0.0.1', port: 0 });
    const dbBase = `http://127.0.0.1:${(dbApp.server.address() as AddressInfo).port}`;
    const hello = await helloWorld();
    cleanups.push(() => hello.app.close());

    // Fixtures through the API itself.
    const staff = await tokenFor(issuer, tenant, { roles: ['owner'], expiresIn: '1h' });
    const customer = await tenant.run((ctx) => createCustomer(ctx, { displayName: 'Bench Customer' }));
    const customerToken = await tokenFor(issuer, tenant, {
      sub: customer.id,
      roles: ['customer'],
      expiresIn: '1h',
    });
    const call = async (method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await res.json()) as Record<string, unknown>;
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    const session = await call('POST', '/v1/sessions', customerToken, {});
    for (let i = 0; i < HISTORY_MESSAGES; i++)
      await call('POST', `/v1/sessions/${session.id as string}/messages`, customerToken, {
        body: `Message ${i}: hello, I would like to book a check-up next week, in the morning if possible.`,
      });
    const historyPath = `/v1/sessions/${session.id as string}/messages?limit=${Math.min(100, HISTORY_MESSAGES)}`;
    const check = await call('GET', historyPath, customerToken);
    if ((check.items as unknown[]).length !== Math.min(100, HISTORY_MESSAGES))
      throw new Error(`history returned ${(check.items as unknown[]).length} messages`);

    const service = await call('POST', '/v1/catalog/services', staff, {
      kind: 'treatment',
      name: 'Bench slot',
      durationMinutes: 5,
      priceCents: 100,
      currency: 'EUR',
    });
    const resource = await call('POST', '/v1/catalog/resources', staff, {
      kind: 'chair',
      name: 'Bench chair',
    });
    await call('PUT', `/v1/catalog/services/${service.id as string}/resources`, staff, {
      resourceIds: [resource.id],
    });
    await call('PUT', '/v1/catalog/opening-hours', staff, {
      hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '00:00', closes: '24:00' })),
    });
    // Slots from tomorrow 00:00 UTC on, 5 minutes apart: 288 a day, all distinct.
    const tomorrow = new Date();
    tomorrow.setUTCHours(24, 0, 0, 0);
    loadavg.provisioned = os.loadavg();
    log(
      `tenant ${tenant.name} ready; load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );

    // Measurements: hello, history (cached, then the database path), bookings, hello (the
    // baseline before and after).
    const baseline = ONLY.has('baseline');
    const helloBefore = !baseline
      ? SKIPPED
      : await measure('hello-world (before)', { url: hello.url, method: 'GET', headers: {} });
    const history = !ONLY.has('history')
      ? SKIPPED
      : await measure('history', {
          url: base + historyPath,
          method: 'GET',
          headers: { authorization: `Bearer ${customerToken}` },
        });
    const historyDb = !ONLY.has('history-db')
      ? SKIPPED
      : await measure('history, cache off', {
          url: dbBase + historyPath,
          method: 'GET',
          headers: { authorization: `Bearer ${customerToken}` },
        });
    const bookings = !ONLY.has('bookings')
      ? SKIPPED
      : await measure('bookings', {
          url: `${base}/v1/bookings`,
          method: 'POST',
          headers: { authorization: `Bearer ${staff}`, 'content-type': 'application/json' },
          booking: {
            serviceId: service.id as string,
            customerId: customer.id,
            baseMs: tomorrow.getTime(),
            slotMinutes: 5,
            firstIndex: 0,
          },
        });
    const helloAfter = !baseline
      ? SKIPPED
      : await measure('hello-world (after)', { url: hello.url, method: 'GET', headers: {} });
    const domain = !ONLY.has('domain')
      ? undefined
      : await domainHistory(platform, tenant, session.id as string, Math.min(100, HISTORY_MESSAGES));
    if (domain)
      log(
        `history without HTTP (listMessages in withTenant): ${fmt(domain.transactionsPerSecond, 0)} tx/s, ` +
          `p50 ${domain.latencyMs.p50} ms, p99 ${domain.latencyMs.p99} ms`,
      );
    loadavg.measured = os.loadavg();
    const crypto = ONLY.has('crypto')
      ? await cryptoFigures(platform, tenant)
      : { bodyBytes: 0, iterations: 0, fieldCipherUs: NaN, rawAesGcmUs: NaN, fieldCipherDecryptUs: NaN };
    log(
      `FieldCipher.encrypt ${fmt(crypto.fieldCipherUs, 2)} µs CPU/op, raw AES-256-GCM ${fmt(crypto.rawAesGcmUs, 2)} µs CPU/op`,
    );

    // Bookings actually written = the 201s (the exclusion constraint would refuse a double).
    const stored = await tenant.adminQuery<{ n: string }>(
      `SELECT count(*)::text AS n FROM ${tenant.table('bookings')}`,
    );
    const helloRps = (helloBefore.requestsPerSecond + helloAfter.requestsPerSecond) / 2;
    const created = bookings.statusCodes['201'] ?? 0;
    const bookingTotal = Object.values(bookings.statusCodes).reduce((s, n) => s + n, 0);
    const figures = {
      helloWorld: {
        before: helloBefore,
        after: helloAfter,
        meanRequestsPerSecond: helloRps,
        meanServerCpuUsPerRequest: (helloBefore.serverCpuUsPerRequest + helloAfter.serverCpuUsPerRequest) / 2,
      },
      history: {
        ...history,
        ratioToHelloWorld: history.requestsPerSecond / helloRps,
        withoutHttp: domain,
      },
      historyCacheOff: {
        ...historyDb,
        ratioToHelloWorld: historyDb.requestsPerSecond / helloRps,
        ratioToWithoutHttp: domain ? historyDb.requestsPerSecond / domain.transactionsPerSecond : undefined,
      },
      bookings: {
        ...bookings,
        ratioToHelloWorld: bookings.requestsPerSecond / helloRps,
        createdRate: bookingTotal ? created / bookingTotal : 0,
        rowsInTable: Number(stored.rows[0]!.n),
      },
      crypto: { ...crypto, ratio: crypto.fieldCipherUs / crypto.rawAesGcmUs },
    };
    report.figures = figures;
    report.targets = {
      historyRatio: {
        target: TARGET_HISTORY_RATIO,
        value: figures.history.ratioToHelloWorld,
        met: figures.history.ratioToHelloWorld >= TARGET_HISTORY_RATIO,
      },
      historyP99Ms: {
        target: TARGET_P99_MS,
        value: history.latencyMs.p99,
        met: history.latencyMs.p99 < TARGET_P99_MS,
      },
      bookingsP99Ms: {
        target: TARGET_P99_MS,
        value: bookings.latencyMs.p99,
        met: bookings.latencyMs.p99 < TARGET_P99_MS,
      },
    };

    const cpuHello = (helloBefore.serverCpuUsPerRequest + helloAfter.serverCpuUsPerRequest) / 2;
    const row = (name: string, r: Measured, ratio: number | undefined) => [
      name,
      fmt(r.requestsPerSecond, 0),
      ratio === undefined ? '1' : fmt(ratio, 3),
      String(r.latencyMs.p50),
      String(r.latencyMs.p99),
      String(r.latencyMs.max),
      fmt(r.serverCpuUsPerRequest, 0),
      fmt(r.serverCpuUsPerRequest / cpuHello, 1),
    ];
    console.log(
      '\n' +
        table(
          [
            `API benchmark (${CONNECTIONS} connections, ${DURATION} s each)`,
            'req/s',
            'ratio',
            'p50 ms',
            'p99 ms',
            'max ms',
            'CPU µs/req',
            '× hello CPU',
          ],
          [
            row('hello-world (bare fastify), before', helloBefore, helloBefore.requestsPerSecond / helloRps),
            row(
              `GET history (${HISTORY_MESSAGES} encrypted messages)`,
              history,
              figures.history.ratioToHelloWorld,
            ),
            row(
              'GET history, cache off (database path)',
              historyDb,
              figures.historyCacheOff.ratioToHelloWorld,
            ),
            row('POST /v1/bookings (distinct slots)', bookings, figures.bookings.ratioToHelloWorld),
            row('hello-world (bare fastify), after', helloAfter, helloAfter.requestsPerSecond / helloRps),
          ],
        ) +
        '\n',
    );
    console.log(
      table(
        ['figure', 'value', 'target'],
        [
          [
            'history / hello-world throughput',
            fmt(figures.history.ratioToHelloWorld, 3),
            `≥ ${TARGET_HISTORY_RATIO} ${report.targets && (report.targets as Record<string, { met: boolean }>).historyRatio!.met ? '✅' : '❌'}`,
          ],
          [
            'history p99 at 50 connections',
            `${history.latencyMs.p99} ms`,
            `< ${TARGET_P99_MS} ms ${history.latencyMs.p99 < TARGET_P99_MS ? '✅' : '❌'}`,
          ],
          [
            'history without HTTP (domain + db only)',
            domain ? `${fmt(domain.transactionsPerSecond, 0)} tx/s, p99 ${domain.latencyMs.p99} ms` : 'n/a',
            domain
              ? `cache-off API reaches ${fmt(historyDb.requestsPerSecond / domain.transactionsPerSecond, 2)} of it`
              : '',
          ],
          [
            'bookings p99 at 50 connections',
            `${bookings.latencyMs.p99} ms`,
            `< ${TARGET_P99_MS} ms ${bookings.latencyMs.p99 < TARGET_P99_MS ? '✅' : '❌'}`,
          ],
          [
            'bookings answered 201',
            `${created} / ${bookingTotal} (${fmt(100 * figures.bookings.createdRate, 1)} %)`,
            '100 %',
          ],
          [
            'booking rows written',
            String(figures.bookings.rowsInTable),
            `201s incl. warm-up ${created + (bookings.warmupStatusCodes['201'] ?? 0)} + ≤ ${2 * CONNECTIONS} in flight at the stops`,
          ],
          [`FieldCipher.encrypt (${crypto.bodyBytes} B, AAD), CPU`, `${fmt(crypto.fieldCipherUs, 2)} µs`, ''],
          [
            `FieldCipher.decrypt × ${HISTORY_MESSAGES} (one history page)`,
            `${fmt(crypto.fieldCipherDecryptUs * HISTORY_MESSAGES, 0)} µs`,
            `of ${fmt(historyDb.serverCpuUsPerRequest, 0)} µs CPU per cache-off history request`,
          ],
          ['raw createCipheriv aes-256-gcm', `${fmt(crypto.rawAesGcmUs, 2)} µs`, ''],
          ['FieldCipher / raw', fmt(figures.crypto.ratio, 2), ''],
          [
            'load average (start → end)',
            `${loadavg.start![0]!.toFixed(2)} → ${loadavg.measured![0]!.toFixed(2)}`,
            `${os.cpus().length} CPUs`,
          ],
        ],
      ) + '\n',
    );
  } catch (err) {
    report.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error('bench:api failed:', err);
    process.exitCode = 1;
  } finally {
    clearTimeout(budget);
    log('cleaning up');
    await cleanup();
  }
  loadavg.end = os.loadavg();
  const file = join(resultsDir, `api-${stamp}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  log(`results: ${file}`);
}

await main();
