/**
 * `node bench/realtime/run.ts` (or `bash bench/run.sh realtime`) — the realtime hub benchmark
 * (docs/benchmarks.md "Realtime"). In one run, against a bare `ws` server doing the same socket
 * work (`bare.ts`) as the baseline:
 *
 *   1. memory per idle connection: hub RSS delta / connections at N connections (50k where the
 *      open-files limit allows, else as many as it allows), each socket joined to its own
 *      `user:<sub>` topic with a valid token, heartbeating every 30 s — vs the bare server's;
 *   2. fan-out of one event to 10k sockets joined to one topic (`user:<X>`, 10k devices of one
 *      user): (a) produced the production way, a CloudEvent on the tenant's Kafka domain topic →
 *      ingest → Redis stream (Lua) → pub/sub → fan-out, and (b) the hub's in-process fan-out
 *      alone (`Hub.onBusMessage`) — vs the bare server sending the same frame text to 10k;
 *   3. Kafka → client latency of `agent.token` deltas at 200 concurrent streaming conversations
 *      (20 tokens/s each, `sent_at` in the payload), beside a bare kafkajs consumer of the same
 *      topic in the same window, in its own process, with the hub's consumer settings (the
 *      Kafka floor; `floor-consumer.ts`), and the CPU each process on the path used.
 *
 * Servers and clients are child processes (`hub.ts`, `bare.ts`, `clients.ts`, `floor-consumer.ts`): RSS is the
 * server's own, and client sockets are spread over several 127.0.0.x source addresses. A real
 * tenant is provisioned the way services/realtime/test/support.ts does (scratch platform
 * database, tenant role + schema, wrapped DEK, Kafka topics) and removed at the end, with the
 * run's Redis keys and Kafka consumer groups.
 *
 * Environment (besides DATABASE_URL, REDIS_URL, KAFKA_BROKERS):
 *   BENCH_CONNECTIONS        idle connections wanted @default 50000 (capped by the open-files limit)
 *   BENCH_FANOUT             subscribers of the fan-out topic @default 10000
 *   BENCH_ROUNDS             fan-out rounds per variant (median reported) @default 5
 *   BENCH_CONVERSATIONS      streaming conversations @default 200
 *   BENCH_TOKENS_PER_SECOND  token deltas per conversation per second @default 20
 *   BENCH_LATENCY_SECONDS    latency measurement window (after a 3 s warm-up) @default 20
 *   BENCH_CLIENT_PROCESSES   client processes (at least; more if the limit requires) @default 4
 *   BENCH_PARTITIONS         partitions of the tenant's topics @default 3
 *   BENCH_TIMEOUT_SECONDS    budget of the measurements (cleanup has 120 s more) @default 900
 *   BENCH_PARTS              which measurements, comma-separated @default memory,fanout,latency
 *   BENCH_HUB_SCRIPT         the hub child script @default bench/realtime/hub.ts (A/B runs of
 *                            another build of the hub: a copy of hub.ts importing that build)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { newCloudEvent, startTestIssuer, tenantTopics, type TestIssuer } from '@simptu/common';
import {
  createPlatform,
  hubConfig,
  uniqueTenantName,
  type Platform,
} from '../../services/realtime/test/support.ts';
import type { RealtimeConfig } from '../../services/realtime/src/config.ts';
import {
  fmt,
  parsePrometheus,
  percentile,
  readCpuSeconds,
  readRss,
  sumMetric,
  table,
  type Sample,
} from '../operator/lib.ts';
import { streamLocation } from '../../services/realtime/src/events.ts';
import type { FloorSettings } from './floor-consumer.ts';
import { imageCommand } from '../lib/image.ts';
import { Child, nofileLimits, now, sleep } from './rpc.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const HERE = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const int = (name: string, d: number) => {
  const v = env[name];
  const n = v === undefined || v === '' ? d : Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${name}: invalid positive integer ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};

const WANT_CONNECTIONS = int('BENCH_CONNECTIONS', 50_000);
const FANOUT = int('BENCH_FANOUT', 10_000);
const ROUNDS = int('BENCH_ROUNDS', 5);
const CONVERSATIONS = int('BENCH_CONVERSATIONS', 200);
const TOKENS_PER_SECOND = int('BENCH_TOKENS_PER_SECOND', 20);
/** events per `ingest` round, and rounds (per batch size) */
const INGEST_EVENTS = int('BENCH_INGEST_EVENTS', 8000);
const INGEST_ROUNDS = int('BENCH_INGEST_ROUNDS', 3);
/** `encrypted` (default): tokens as the agent sends them (`payload_enc`); `clear`: `delta` in clear */
const TOKEN_FORMAT = env.BENCH_TOKEN_FORMAT === 'clear' ? 'clear' : 'encrypted';
const LATENCY_SECONDS = int('BENCH_LATENCY_SECONDS', 20);
const MIN_CLIENT_PROCESSES = int('BENCH_CLIENT_PROCESSES', 4);
const PARTITIONS = int('BENCH_PARTITIONS', 3);
const TIMEOUT_SECONDS = int('BENCH_TIMEOUT_SECONDS', 900);
const WARMUP_SECONDS = 3;
const PARTS = new Set((env.BENCH_PARTS ?? 'memory,fanout,latency').split(',').map((x) => x.trim()));
for (const part of PARTS)
  if (!['memory', 'fanout', 'latency', 'ingest'].includes(part)) {
    console.error(`BENCH_PARTS: unknown part ${JSON.stringify(part)} (memory, fanout, latency, ingest)`);
    process.exit(2);
  }
/** open files a server needs besides its sockets (listener, Postgres, Redis, Kafka, stdio, epoll…) */
const SERVER_FD_RESERVE = 256;
const CLIENT_FD_RESERVE = 64;
const HEARTBEAT_MS = 30_000;

const RUN = randomBytes(3).toString('hex');
const log = (msg: string) => console.log(`[bench:realtime ${new Date().toISOString().slice(11, 19)}] ${msg}`);

for (const v of ['DATABASE_URL', 'REDIS_URL', 'KAFKA_BROKERS']) {
  if (!env[v]) {
    console.error(`${v} is not set: run 'make bench', or 'set -a; source .testenv/env; set +a' first`);
    process.exit(2);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits: how many connections fit

const limits = nofileLimits();
const N = Math.min(WANT_CONNECTIONS, limits.hard - SERVER_FD_RESERVE);
const perClientMax = limits.hard - CLIENT_FD_RESERVE;
const CLIENT_PROCESSES = Math.max(MIN_CLIENT_PROCESSES, Math.ceil(Math.max(N, FANOUT) / perClientMax));
const nofileFor = (n: number) => Math.min(limits.hard, Math.max(limits.soft, n));

// ---------------------------------------------------------------------------------------------
// Small helpers

interface Stats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}
function stats(values: ArrayLike<number>): Stats {
  const s = Float64Array.from(values).sort();
  const arr = Array.from(s);
  return {
    n: arr.length,
    p50: percentile(arr, 50),
    p90: percentile(arr, 90),
    p99: percentile(arr, 99),
    p999: percentile(arr, 99.9),
    max: arr.length ? arr[arr.length - 1]! : NaN,
    mean: arr.length ? arr.reduce((a, b) => a + b, 0) / arr.length : NaN,
  };
}
/**
 * A Prometheus histogram's change between two scrapes: count, mean, and quantiles as the upper
 * bound of the bucket they fall in (so "p99 ≤ 5 ms" reads as `p99: 0.005`).
 */
function histogramDelta(after: Sample[], before: Sample[], name: string, match: Record<string, string> = {}) {
  const matches = (x: Sample) => Object.entries(match).every(([k, v]) => x.labels[k] === v);
  const buckets = (xs: Sample[]) =>
    new Map(xs.filter((x) => x.name === `${name}_bucket` && matches(x)).map((x) => [x.labels.le!, x.value]));
  const a = buckets(after);
  const b = buckets(before);
  const count = sumMetric(after, `${name}_count`, match) - sumMetric(before, `${name}_count`, match);
  const sum = sumMetric(after, `${name}_sum`, match) - sumMetric(before, `${name}_sum`, match);
  const les = [...a.keys()].sort(
    (x, y) => Number(x === '+Inf' ? Infinity : x) - Number(y === '+Inf' ? Infinity : y),
  );
  const q = (p: number) => {
    for (const le of les)
      if ((a.get(le) ?? 0) - (b.get(le) ?? 0) >= (p / 100) * count)
        return Number(le === '+Inf' ? Infinity : le);
    return NaN;
  };
  return { count, mean: count ? sum / count : NaN, p50: q(50), p90: q(90), p99: q(99) };
}

/** The pid of a test-environment server (hack/testenv writes .testenv/run/<name>.pid). */
function testenvPid(name: string): number | undefined {
  try {
    const n = Number(readFileSync(join(ROOT, '.testenv/run', `${name}.pid`), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const MiB = 2 ** 20;
const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

/** Splits `items` into `k` nearly equal consecutive slices. */
function split<T>(items: readonly T[], k: number): T[][] {
  const out: T[][] = [];
  const size = Math.ceil(items.length / k);
  for (let i = 0; i < k; i++) out.push(items.slice(i * size, (i + 1) * size));
  return out;
}

async function readyOrExit(c: Child, timeoutMs: number): Promise<void> {
  const r = await Promise.race([
    c.ready.then(() => 'ready' as const),
    c.exited.then(() => 'exited' as const),
    sleep(timeoutMs).then(() => 'timeout' as const),
  ]);
  if (r !== 'ready') throw new Error(`${c.name} did not start (${r}): ${c.stderrTail()}`);
}

// ---------------------------------------------------------------------------------------------
// Clients

interface Entry {
  token: string;
  topic: string;
}
interface ConnectResult {
  joined: number;
  failed: number;
  errors: Record<string, number>;
  ms: number;
}
interface Collected {
  count: number;
  first: number;
  last: number;
  maxStreamSeq: number;
  sample?: string;
}

class ClientPool {
  readonly procs: Child[];
  /** per group (server), the sockets each process holds now */
  readonly counts = new Map<string, number[]>();
  constructor(k: number, perProcess: number) {
    this.procs = Array.from(
      { length: k },
      (_, i) =>
        new Child(`clients-${i}`, join(HERE, 'clients.ts'), {
          nofile: nofileFor(perProcess + CLIENT_FD_RESERVE),
        }),
    );
  }
  async ready() {
    await Promise.all(this.procs.map((p) => readyOrExit(p, 30_000)));
  }
  /** Opens and joins `entries`, spread over the processes (one 127.0.0.x source address each). */
  async connect(
    group: string,
    url: string,
    entries: Entry[],
    concurrencyPerProcess = 64,
  ): Promise<ConnectResult> {
    const parts = split(entries, this.procs.length);
    const t0 = now();
    const rs = await Promise.all(
      this.procs.map((p, i) =>
        p.call<ConnectResult>(
          'connect',
          {
            url,
            group,
            entries: parts[i],
            localAddress: `127.0.0.${2 + (i % 250)}`,
            concurrency: concurrencyPerProcess,
            timeoutMs: 60_000,
            heartbeatMs: HEARTBEAT_MS,
          },
          30 * 60_000,
        ),
      ),
    );
    const counts = this.counts.get(group) ?? this.procs.map(() => 0);
    rs.forEach((r, i) => (counts[i] = (counts[i] ?? 0) + r.joined));
    this.counts.set(group, counts);
    const errors: Record<string, number> = {};
    for (const r of rs) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    return {
      joined: rs.reduce((a, r) => a + r.joined, 0),
      failed: rs.reduce((a, r) => a + r.failed, 0),
      errors,
      ms: now() - t0,
    };
  }
  async arm(group: string, event: string) {
    const counts = this.counts.get(group) ?? [];
    await Promise.all(this.procs.map((p, i) => p.call('arm', { event, group, expected: counts[i] ?? 0 })));
  }
  async collect(timeoutMs = 30_000): Promise<Collected & { samples: string[] }> {
    const rs = await Promise.all(
      this.procs.map((p) => p.call<Collected>('collect', { timeoutMs }, timeoutMs + 10_000)),
    );
    const got = rs.filter((r) => r.count > 0);
    return {
      count: rs.reduce((a, r) => a + r.count, 0),
      first: Math.min(...got.map((r) => r.first)),
      last: Math.max(...got.map((r) => r.last)),
      maxStreamSeq: Math.max(0, ...rs.map((r) => r.maxStreamSeq)),
      samples: rs.map((r) => r.sample).filter((s): s is string => s !== undefined),
    };
  }
  async closeAll(group: string) {
    await Promise.all(this.procs.map((p) => p.call('closeAll', { timeoutMs: 10_000, group }, 120_000)));
    this.counts.delete(group);
  }
  async stop() {
    await Promise.all(this.procs.map((p) => p.stop(5000)));
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

interface ServerInfo {
  port: number;
  connections: number;
  nofile: { soft: number; hard: number };
  mem: NodeJS.MemoryUsage;
}

async function waitConnections(server: Child, n: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = await server.call<ServerInfo>('info');
    if (i.connections === n || Date.now() > deadline) return i.connections;
    await sleep(200);
  }
}

interface MemoryResult {
  connections: number;
  failed: number;
  errors: Record<string, number>;
  connectSeconds: number;
  connectsPerSecond: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  heapUsedBeforeMiB: number;
  heapUsedAfterMiB: number;
  externalDeltaMiB: number;
  perConnectionKiB: number;
  heapPerConnectionKiB: number;
  serverCpuSecondsConnecting: number;
  loadavg: number[];
}

/** RSS after a full GC (twice): the same procedure before and after the connections. */
async function settledMemory(server: Child): Promise<{ rss: number; heapUsed: number; external: number }> {
  await server.call('gc');
  await sleep(1000);
  const mem = await server.call<NodeJS.MemoryUsage>('gc');
  const rss = readRss(server.pid)?.rssMiB ?? mem.rss / MiB;
  return { rss, heapUsed: mem.heapUsed / MiB, external: (mem.external + mem.arrayBuffers) / MiB };
}

async function measureMemory(
  name: string,
  server: Child,
  clients: ClientPool,
  url: string,
  entries: Entry[],
) {
  await sleep(2000);
  const before = await settledMemory(server);
  const cpu0 = readCpuSeconds(server.pid) ?? NaN;
  log(`${name}: RSS ${fmt(before.rss)} MiB before; connecting ${entries.length} sockets`);
  const c = await clients.connect(name, url, entries);
  const cpu1 = readCpuSeconds(server.pid) ?? NaN;
  log(
    `${name}: ${c.joined} joined, ${c.failed} failed in ${fmt(c.ms / 1000)} s` +
      (c.failed ? ` (${JSON.stringify(c.errors)})` : ''),
  );
  await sleep(5000);
  const after = await settledMemory(server);
  const loadavg = load();
  log(`${name}: RSS ${fmt(after.rss)} MiB with ${c.joined} connections (load ${loadavg.join(' ')})`);
  const r: MemoryResult = {
    connections: c.joined,
    failed: c.failed,
    errors: c.errors,
    connectSeconds: c.ms / 1000,
    connectsPerSecond: c.joined / (c.ms / 1000),
    rssBeforeMiB: before.rss,
    rssAfterMiB: after.rss,
    heapUsedBeforeMiB: before.heapUsed,
    heapUsedAfterMiB: after.heapUsed,
    externalDeltaMiB: after.external - before.external,
    perConnectionKiB: ((after.rss - before.rss) * 1024) / c.joined,
    heapPerConnectionKiB: ((after.heapUsed - before.heapUsed) * 1024) / c.joined,
    serverCpuSecondsConnecting: cpu1 - cpu0,
    loadavg,
  };
  await clients.closeAll(name);
  const left = await waitConnections(server, 0, 60_000);
  if (left !== 0) log(`${name}: ${left} connections still open after closing all clients`);
  return r;
}

interface FanoutRound {
  received: number;
  /** trigger → last delivery */
  ms: number;
  /** first → last delivery */
  windowMs: number;
  /** trigger → first delivery */
  firstMs: number;
  deliveriesPerSecond: number;
  windowDeliveriesPerSecond: number;
  /** the server's synchronous send loop (in-process variants) */
  syncMs?: number;
  serverCpuMs: number;
}

/** One fan-out: arm the group's clients, trigger, wait until every subscriber got the frame. */
async function fanoutRound(
  server: Child,
  clients: ClientPool,
  group: string,
  event: string,
  trigger: () => Promise<{ t0: number; syncMs?: number }>,
): Promise<FanoutRound & { sample?: string }> {
  await clients.arm(group, event);
  const cpu0 = readCpuSeconds(server.pid) ?? NaN;
  const t = await trigger();
  const c = await clients.collect();
  const cpu1 = readCpuSeconds(server.pid) ?? NaN;
  const ms = c.last - t.t0;
  return {
    received: c.count,
    ms,
    windowMs: c.last - c.first,
    firstMs: c.first - t.t0,
    deliveriesPerSecond: (c.count / ms) * 1000,
    windowDeliveriesPerSecond: (c.count / Math.max(0.001, c.last - c.first)) * 1000,
    ...(t.syncMs !== undefined ? { syncMs: t.syncMs } : {}),
    serverCpuMs: (cpu1 - cpu0) * 1000,
    sample: c.samples[0],
  };
}

function summarizeRounds(rounds: FanoutRound[]) {
  return {
    medianDeliveriesPerSecond: median(rounds.map((r) => r.deliveriesPerSecond)),
    medianMs: median(rounds.map((r) => r.ms)),
    medianFirstMs: median(rounds.map((r) => r.firstMs)),
    medianWindowMs: median(rounds.map((r) => r.windowMs)),
    medianWindowDeliveriesPerSecond: median(rounds.map((r) => r.windowDeliveriesPerSecond)),
    medianSyncMs: rounds.some((r) => r.syncMs !== undefined)
      ? median(rounds.map((r) => r.syncMs ?? NaN))
      : undefined,
    received: rounds.map((r) => r.received),
    rounds,
  };
}

// ---------------------------------------------------------------------------------------------
// The run

interface Report {
  benchmark: 'realtime';
  run: string;
  startedAt: string;
  finishedAt?: string;
  machine: Record<string, unknown>;
  settings: Record<string, unknown>;
  hub: Record<string, unknown>;
  bare: Record<string, unknown>;
  latency?: Record<string, unknown>;
  /** per Kafka batch size: the hub's CPU and allocation per event (`ingest` part) */
  ingest?: Record<string, { cpuUsPerEvent: number; allocKBPerEvent: number; rounds: unknown[] }>;
  ratios?: Record<string, number>;
  targets?: Record<string, { value: number; target: string; met: boolean }>;
  cleanup?: Record<string, unknown>;
  error?: string;
}

async function main(): Promise<void> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const report: Report = {
    benchmark: 'realtime',
    run: RUN,
    startedAt: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      kernel: os.release(),
      nofile: limits,
      loadavg: { start: load() } as Record<string, number[]>,
    },
    settings: {
      wantConnections: WANT_CONNECTIONS,
      connections: N,
      connectionsCappedBy: N < WANT_CONNECTIONS ? `open-files hard limit ${limits.hard}` : undefined,
      fanout: FANOUT,
      rounds: ROUNDS,
      conversations: CONVERSATIONS,
      tokensPerSecond: TOKENS_PER_SECOND,
      latencySeconds: LATENCY_SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      clientProcesses: CLIENT_PROCESSES,
      partitions: PARTITIONS,
      heartbeatMs: HEARTBEAT_MS,
    },
    hub: {},
    bare: {},
  };
  const loadAt = (k: string) => ((report.machine.loadavg as Record<string, number[]>)[k] = load());

  let issuer: TestIssuer | undefined;
  let platform: Platform | undefined;
  let clients: ClientPool | undefined;
  let hub: Child | undefined;
  let bare: Child | undefined;
  let floor: Child | undefined;
  let hubCfg: RealtimeConfig | undefined;
  const floorGroup = `bench-rt-floor-${RUN}`;
  const tenant = uniqueTenantName('brt');
  let failure: unknown;

  let timedOut = false;
  const budget = setTimeout(() => {
    timedOut = true;
    log(`budget of ${TIMEOUT_SECONDS} s exhausted: stopping`);
    // Kill the children: every pending call rejects and main() unwinds into the cleanup.
    for (const c of [hub, bare, floor, ...(clients?.procs ?? [])]) c?.proc.kill('SIGKILL');
  }, TIMEOUT_SECONDS * 1000);
  process.once('SIGINT', () => {
    log('interrupted: cleaning up (Ctrl-C again exits at once)');
    process.once('SIGINT', () => process.exit(130));
    for (const c of [hub, bare, floor, ...(clients?.procs ?? [])]) c?.proc.kill('SIGKILL');
  });

  try {
    log(
      `run ${RUN}: ${N} idle connections (wanted ${WANT_CONNECTIONS}; open files hard limit ${limits.hard}), ` +
        `fan-out to ${FANOUT}, ${CONVERSATIONS} conversations × ${TOKENS_PER_SECOND} tokens/s; ` +
        `${CLIENT_PROCESSES} client processes; load ${load().join(' ')}`,
    );
    issuer = await startTestIssuer();
    platform = await createPlatform([tenant], { partitions: PARTITIONS });
    const p = platform;
    const fanUser = await p.createCustomer(tenant);
    const conversations: Array<{ customer: string; session: string }> = [];
    for (let i = 0; i < CONVERSATIONS; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, CONVERSATIONS - i) }, async () => {
          const customer = await p.createCustomer(tenant);
          return { customer, session: await p.createSession(tenant, customer) };
        }),
      );
      conversations.push(...batch);
    }
    const sign = (sub: string) =>
      issuer!.signAccessToken({ tenant, sub, roles: ['customer'] }, { expiresIn: '2h' });
    const idleEntries: Entry[] = [];
    for (let i = 0; PARTS.has('memory') && i < N; i += 500) {
      const subs = Array.from({ length: Math.min(500, N - i) }, () => randomUUID());
      const tokens = await Promise.all(subs.map(sign));
      subs.forEach((s, j) => idleEntries.push({ token: tokens[j]!, topic: `user:${s}` }));
    }
    const fanToken = await sign(fanUser);
    const fanTopic = `user:${fanUser}`;
    const fanEntries: Entry[] = Array.from({ length: FANOUT }, () => ({ token: fanToken, topic: fanTopic }));
    const convEntries: Entry[] = await Promise.all(
      conversations.map(async (c) => ({ token: await sign(c.customer), topic: `session:${c.session}` })),
    );
    log(`tenant ${tenant} provisioned, ${N + CONVERSATIONS + 1} tokens signed (load ${load().join(' ')})`);
    loadAt('provisioned');

    clients = new ClientPool(CLIENT_PROCESSES, Math.ceil(Math.max(N, FANOUT) / CLIENT_PROCESSES));
    await clients.ready();

    // ------------------------------------------------------------------ the servers
    hubCfg = hubConfig(p, issuer, {
      logLevel: 'warn',
      databasePoolMax: 10,
      // production defaults (support.ts shortens them for tests)
      presence: { heartbeatMs: 5000, instanceTtlMs: 15_000 },
      registryRefreshMs: 10_000,
      history: { maxCount: 200, maxAgeMs: 600_000, streamTtlMs: 3600_000, dedupTtlMs: 3600_000 },
    });
    hub = new Child('hub', env.BENCH_HUB_SCRIPT ? resolve(env.BENCH_HUB_SCRIPT) : join(HERE, 'hub.ts'), {
      // BENCH_HUB_CPU_PROF=1: a V8 CPU profile of the hub process in bench/results (on exit).
      nodeArgs: [
        '--expose-gc',
        ...(env.BENCH_HUB_CPU_PROF === '1' ? ['--cpu-prof', `--cpu-prof-dir=${resultsDir}`] : []),
        // the image's V8 flags (services/realtime/Dockerfile CMD), then any of the run's own
        ...imageCommand(readFileSync(join(ROOT, 'services/realtime/Dockerfile'), 'utf8')).nodeArgs.slice(
          0,
          -1,
        ),
        ...(env.BENCH_HUB_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean),
      ],
      env: { BENCH_HUB_CONFIG: JSON.stringify(hubCfg) },
      nofile: nofileFor(N + SERVER_FD_RESERVE),
      log: (l) => {
        if (/"level":(40|50|60)/.test(l)) log(`hub: ${l.slice(0, 300)}`);
      },
    });
    bare = new Child('bare', join(HERE, 'bare.ts'), {
      nodeArgs: ['--expose-gc'],
      env: {
        BENCH_BARE_CONFIG: JSON.stringify({
          issuer: issuer.issuer,
          audience: issuer.audience,
          jwksUri: issuer.jwksUri,
          maxPayload: hubCfg.limits.maxFrameBytes,
        }),
      },
      nofile: nofileFor(N + SERVER_FD_RESERVE),
    });
    await readyOrExit(hub, 60_000);
    await readyOrExit(bare, 30_000);
    const hubInfo = await hub.call<ServerInfo>('info');
    const bareInfo = await bare.call<ServerInfo>('info');
    const hubUrl = `ws://127.0.0.1:${hubInfo.port}/socket/websocket?vsn=2.0.0`;
    const bareUrl = `ws://127.0.0.1:${bareInfo.port}/socket/websocket?vsn=2.0.0`;
    report.hub.nofile = hubInfo.nofile;
    report.bare.nofile = bareInfo.nofile;
    log(
      `hub started (pid ${hub.pid}, port ${hubInfo.port}), bare ws server (pid ${bare.pid}, port ${bareInfo.port})`,
    );

    // ------------------------------------------------------------------ 1. idle memory, one server at a time
    if (PARTS.has('memory')) {
      report.hub.memory = await measureMemory('hub', hub, clients, hubUrl, idleEntries);
      loadAt('hubMemory');
      report.bare.memory = await measureMemory('bare', bare, clients, bareUrl, idleEntries);
      loadAt('bareMemory');
    }

    // ------------------------------------------------------------------ 2. fan-out, rounds interleaved
    // 10k sockets of one user on each server, open side by side; the variants take turns (the
    // order rotating each round), so a load swing on this shared machine hits all of them alike.
    if (PARTS.has('fanout')) {
      const fc = await clients.connect('hub', hubUrl, fanEntries);
      log(`hub: ${fc.joined} fan-out subscribers joined in ${fmt(fc.ms / 1000)} s`);
      if (fc.failed) log(`hub: ${fc.failed} fan-out joins failed: ${JSON.stringify(fc.errors)}`);
      const bfc = await clients.connect('bare', bareUrl, fanEntries);
      log(`bare: ${bfc.joined} fan-out subscribers joined in ${fmt(bfc.ms / 1000)} s`);
      await sleep(2000);
      const booking = () => ({ booking_id: randomUUID(), customer_id: fanUser, status: 'confirmed' });
      const viaKafka = () =>
        fanoutRound(hub!, clients!, 'hub', 'booking.created', async () => {
          const t0 = now();
          await p.produce(tenant, 'domain', 'io.simptu.booking.created', booking());
          return { t0 };
        });
      // The first event: a warm-up, and the frame the bare server sends (the same bytes).
      const warm = await viaKafka();
      const sample = warm.sample;
      if (!sample || warm.received !== fc.joined)
        throw new Error(`warm-up fan-out reached ${warm.received} of ${fc.joined}`);
      const redis = new Redis(env.REDIS_URL!);
      const metaKey = `rt:{${tenant}/${fanTopic}}:m`; // streams.ts's stream position
      const epoch = await redis.hget(metaKey, 'epoch');
      const inProcess = () =>
        fanoutRound(hub!, clients!, 'hub', 'booking.created', async () => {
          // Take the next seq in Redis too, so the Kafka events after it keep numbering on.
          const seq = await redis.hincrby(metaKey, 'seq', 1);
          return hub!.call<{ t0: number; syncMs: number }>('localFanout', {
            tenant,
            topic: fanTopic,
            epoch,
            seq,
            event: 'booking.created',
            data: booking(),
          });
        });
      const viaBare = () =>
        fanoutRound(bare!, clients!, 'bare', 'booking.created', () =>
          bare!.call<{ t0: number; syncMs: number }>('broadcast', { topic: fanTopic, text: sample }),
        );
      const variants = { kafkaPath: viaKafka, inProcess, bare: viaBare };
      const rounds: Record<keyof typeof variants, FanoutRound[]> = { kafkaPath: [], inProcess: [], bare: [] };
      const names = Object.keys(variants) as Array<keyof typeof variants>;
      try {
        for (let r = 0; r < ROUNDS; r++) {
          for (let k = 0; k < names.length; k++) {
            const name = names[(r + k) % names.length]!;
            const { sample: _s, ...round } = await variants[name]();
            rounds[name].push(round);
            await sleep(500);
          }
          log(
            `fan-out round ${r + 1}: ` +
              names
                .map((n) => `${n} ${rounds[n].at(-1)!.received}/${fmt(rounds[n].at(-1)!.ms, 0)} ms`)
                .join(', '),
          );
        }
      } finally {
        redis.disconnect();
      }
      report.hub.fanout = {
        subscribers: fc.joined,
        joinSeconds: fc.ms / 1000,
        frameBytes: Buffer.byteLength(sample),
        kafkaPath: summarizeRounds(rounds.kafkaPath),
        inProcess: summarizeRounds(rounds.inProcess),
      };
      report.bare.fanout = {
        subscribers: bfc.joined,
        frameBytes: Buffer.byteLength(sample),
        ...summarizeRounds(rounds.bare),
      };
      await clients.closeAll('hub');
      await clients.closeAll('bare');
      await waitConnections(hub, 0, 60_000);
      await bare.stop();
      bare = undefined;
      loadAt('fanout');
    }

    // ------------------------------------------------------------------ 3. latency
    if (PARTS.has('latency') || PARTS.has('ingest')) {
      const cc = await clients.connect('hub', hubUrl, convEntries, 16);

      if (cc.failed) log(`latency: ${cc.failed} conversation joins failed: ${JSON.stringify(cc.errors)}`);
      log(`latency: ${cc.joined} conversation sockets joined`);

      // ------------------------------------------------------------ 3a. ingest CPU per event
      // The hub's CPU and allocation per token event at fixed Kafka batch sizes, its ingest fed
      // in-process (hub.ts `ingestDrive`): the per-event figures to optimise by, which the
      // latency window's (they move with the batch sizes the machine's load makes) are not.
      if (PARTS.has('ingest')) {
        const sizes = [1, 5, 20];
        const rounds: Record<string, Array<{ cpuUsPerEvent: number; allocKBPerEvent: number }>> = {};
        await hub.call('heapProfStart');
        for (let r = 0; r < INGEST_ROUNDS; r++)
          for (const batch of sizes) {
            const x = await hub.call<{ cpuUsPerEvent: number; allocKBPerEvent: number }>('ingestDrive', {
              tenant,
              sessions: conversations.map((c) => c.session),
              events: INGEST_EVENTS,
              batch,
              format: TOKEN_FORMAT,
            });
            (rounds[batch] ??= []).push(x);
          }
        await hub.call('heapProfStop');
        const median = (v: number[]) =>
          percentile(
            [...v].sort((a, b) => a - b),
            50,
          );
        const ingest = (report.ingest = Object.fromEntries(
          sizes.map((b) => [
            b,
            {
              cpuUsPerEvent: median(rounds[b]!.map((x) => x.cpuUsPerEvent)),
              allocKBPerEvent: median(rounds[b]!.map((x) => x.allocKBPerEvent)),
              rounds: rounds[b]!,
            },
          ]),
        ));
        for (const b of sizes)
          log(
            `ingest: batches of ${b}: ${fmt(ingest[b]!.cpuUsPerEvent, 1)} µs CPU, ` +
              `${fmt(ingest[b]!.allocKBPerEvent, 2)} KB allocated per event ` +
              `(median of ${INGEST_ROUNDS} × ${INGEST_EVENTS}; load ${load().join(' ')})`,
          );
      }
      if (PARTS.has('latency')) {
        // The agent: every conversation a token every 1/TOKENS_PER_SECOND s (staggered), whatever
        // is due sent in one sendBatch — as services/agent's StreamSender batches what its runs
        // emitted while the previous request was in flight. `sent_at` is taken just before.
        const agentTopic = tenantTopics(tenant).agent;
        const period = 1000 / TOKENS_PER_SECOND;
        const due = conversations.map((_, i) => now() + (i / conversations.length) * period);
        const tokenSeq = conversations.map(() => 0);
        const messageIds = conversations.map(() => randomUUID());
        const production = { events: 0, seconds: 0, sendMs: [] as number[] };
        const tokenCipher = TOKEN_FORMAT === 'clear' ? undefined : await p.keyrings.cipher(tenant);
        const produceUntil = async (endAt: number) => {
          const t0 = now();
          while (now() < endAt) {
            const t = now();
            const batch = [];
            for (let i = 0; i < conversations.length; i++) {
              if (due[i]! > t) continue;
              due[i]! += period;
              const session = conversations[i]!.session;
              const id = randomUUID();
              // as services/agent's RunStream writes it: the text encrypted, bound to the event id
              const text: Record<string, unknown> =
                TOKEN_FORMAT === 'clear'
                  ? { delta: 'lorem ' }
                  : { payload_enc: tokenCipher!.encryptText('{"text":"lorem "}', streamLocation(id)) };
              batch.push({
                topic: agentTopic,
                key: session,
                event: newCloudEvent({
                  id,
                  type: 'io.simptu.agent.token',
                  source: '/simptu/agent',
                  tenant,
                  data: {
                    session_id: session,
                    message_id: messageIds[i],
                    seq: ++tokenSeq[i]!,
                    ...text,
                    sent_at: now(),
                  },
                }),
              });
            }
            if (batch.length === 0) {
              await sleep(1);
              continue;
            }
            const s0 = now();
            await p.producer.sendBatch(batch);
            production.sendMs.push(now() - s0);
            production.events += batch.length;
          }
          production.seconds += (now() - t0) / 1000;
        };
        // CPU of every process on the path over a window: where the machine's 2 cores go.
        const cpuNow = (): Record<string, number> => {
          const pids: Record<string, number | undefined> = {
            hub: hub!.pid,
            redis: testenvPid('redis'),
            kafka: testenvPid('kafka'),
            producer: process.pid,
            ...(floor ? { floor: floor.pid } : {}),
            ...Object.fromEntries(clients!.procs.map((c, i) => [`clients${i}`, c.pid])),
          };
          return Object.fromEntries(
            Object.entries(pids).map(([k, pid]) => [
              k,
              pid === undefined ? NaN : (readCpuSeconds(pid) ?? NaN),
            ]),
          );
        };
        const coresBusy = (c0: Record<string, number>, c1: Record<string, number>, seconds: number) => {
          const out: Record<string, number> = {};
          for (const [k, v] of Object.entries(c1)) {
            const name = k.startsWith('clients') ? 'clients' : k;
            out[name] = (out[name] ?? 0) + (v - (c0[k] ?? NaN)) / seconds;
          }
          return out;
        };

        // Window 1, the hub: a warm-up, then LATENCY_SECONDS of events whose frames the clients
        // time, then 3 s for the last frames to arrive.
        await produceUntil(now() + WARMUP_SECONDS * 1000);
        // the hub's histograms and its event-loop lag are taken over the window from here
        const metricsBefore = parsePrometheus(
          await (await fetch(`http://127.0.0.1:${hubInfo.port}/metrics`)).text(),
        );
        await Promise.all(clients.procs.map((c) => c.call('latencyStart')));
        const eventsBefore = production.events;
        production.sendMs = [];
        const t1 = now();
        const cpu1 = cpuNow();
        await hub.call('allocStart');
        await hub.call('heapProfStart');
        await produceUntil(now() + LATENCY_SECONDS * 1000);
        const producedInWindow = production.events - eventsBefore;
        const producedPerSecond = producedInWindow / ((now() - t1) / 1000);
        await sleep(3000);
        const cpu2 = cpuNow();
        const alloc = await hub.call<{ bytes: number; gcs: number }>('allocStop');
        await hub.call('heapProfStop');
        const hubWindowSeconds = (now() - t1) / 1000;
        const per = await Promise.all(
          clients.procs.map((c) =>
            c.call<{ values: Float64Array; frames: number; tokens: number; coalescedFrames: number }>(
              'latencyStop',
            ),
          ),
        );
        const all: number[] = [];
        for (const r of per) for (const v of r.values) all.push(v);
        const framesReceived = per.reduce((a, r) => a + r.frames, 0);
        const metrics = parsePrometheus(
          await (await fetch(`http://127.0.0.1:${hubInfo.port}/metrics`)).text(),
        );
        const sendMs = production.sendMs;
        log(
          `latency: hub p50 ${fmt(stats(all).p50)} p99 ${fmt(stats(all).p99)} ms over ${all.length} frames, ` +
            `${fmt(((cpu2.hub! - cpu1.hub!) * 1e6) / Math.max(1, framesReceived), 0)} µs CPU and ` +
            `${fmt(alloc.bytes / 1024 / Math.max(1, framesReceived), 1)} KB allocated per event ` +
            `(load ${load().join(' ')})`,
        );

        // Window 2, the Kafka floor: a bare kafkajs consumer of the same topic in its own process
        // (as the hub is), with the hub's consumer settings (src/kafka.ts), while the same events
        // keep flowing through the hub to the clients — so it sees the hub's load, and the hub's
        // window above did not carry the floor consumer's CPU.
        const floorSeconds = Math.min(LATENCY_SECONDS, 15);
        let floorLat: ArrayLike<number> = [];
        let cpuFloor: Record<string, number> = {};
        if (env.BENCH_FLOOR !== 'off') {
          const f = (floor = new Child('floor', join(HERE, 'floor-consumer.ts'), {}));
          await readyOrExit(f, 30_000);
          const joined = f.call('start', {
            brokers: env.KAFKA_BROKERS!.split(','),
            topic: agentTopic,
            groupId: floorGroup,
            settings: {
              mode: 'eachBatch',
              autoCommit: false,
              commitIntervalMs: hubCfg.kafkaCommitIntervalMs,
              partitionsConsumedConcurrently: hubCfg.kafkaPartitionsConcurrency,
            } satisfies FloorSettings,
          });
          // keep producing while it joins: the hub must not see a pause
          while (!(await Promise.race([joined.then(() => true), sleep(0).then(() => false)])))
            await produceUntil(now() + 100);
          await produceUntil(now() + WARMUP_SECONDS * 1000);
          await f.call('latencyStart');
          const c0 = cpuNow();
          const t0 = now();
          await produceUntil(now() + floorSeconds * 1000);
          await sleep(1000);
          cpuFloor = coresBusy(c0, cpuNow(), (now() - t0) / 1000);
          floorLat = (await f.call<{ values: Float64Array }>('latencyStop')).values;
          log(
            `latency: Kafka floor p50 ${fmt(stats(floorLat).p50)} p99 ${fmt(stats(floorLat).p99)} ms ` +
              `over ${floorLat.length} records (load ${load().join(' ')})`,
          );
          await f.stop(10_000);
          floor = undefined;
        }

        report.latency = {
          sockets: cc.joined,
          produced: production.events,
          producedPerSecond,
          producedInWindow,
          framesReceived,
          tokensReceived: per.reduce((a, r) => a + r.tokens, 0),
          coalescedFrames: per.reduce((a, r) => a + r.coalescedFrames, 0),
          hubMs: stats(all),
          kafkaFloorMs: stats(floorLat),
          floorSeconds,
          producerSendBatchMs: stats(sendMs),
          hubCpuCoresBusy: (cpu2.hub! - cpu1.hub!) / hubWindowSeconds,
          hubEventsStored: sumMetric(metrics, 'simptu_realtime_events_stored_total'),
          hubEventsDropped: sumMetric(metrics, 'simptu_realtime_events_dropped_total'),
          hubGaps: sumMetric(metrics, 'simptu_realtime_stream_gaps_total'),
          // Stages inside the hub, from its own histograms over the hub's window:
          // records per Kafka batch, and kafkajs hand-over → every script of the batch run in Redis.
          hubIngestBatchRecords: histogramDelta(
            metrics,
            metricsBefore,
            'simptu_realtime_ingest_batch_records',
          ),
          hubIngestBatchSeconds: histogramDelta(
            metrics,
            metricsBefore,
            'simptu_realtime_ingest_batch_seconds',
          ),
          // Where each event's time went inside the hub (its realtime_delivery_stage_seconds):
          // CloudEvent time → kafkajs hand-over; → its pub/sub message back from Redis; → written
          // to its sockets. Quantiles are bucket upper bounds.
          hubStages: Object.fromEntries(
            ['kafka', 'store', 'fanout'].map((stage) => [
              stage,
              histogramDelta(metrics, metricsBefore, 'simptu_realtime_delivery_stage_seconds', { stage }),
            ]),
          ),
          // The hub's event loop and GC over the window (prom-client's default metrics): the lag
          // gauges cover the time since the previous scrape, which was at the window's start.
          hubEventLoopLagMs: {
            p50: sumMetric(metrics, 'nodejs_eventloop_lag_p50_seconds') * 1000,
            p99: sumMetric(metrics, 'nodejs_eventloop_lag_p99_seconds') * 1000,
            max: sumMetric(metrics, 'nodejs_eventloop_lag_max_seconds') * 1000,
          },
          hubGc: Object.fromEntries(
            ['minor', 'major', 'incremental', 'weakcb'].map((kind) => [
              kind,
              histogramDelta(metrics, metricsBefore, 'nodejs_gc_duration_seconds', { kind }),
            ]),
          ),
          // per token frame the clients received in the window (a hub that fell behind has not
          // yet spent the CPU for what it did not deliver)
          hubCpuMsPerEvent: ((cpu2.hub! - cpu1.hub!) * 1000) / Math.max(1, framesReceived),
          // JS heap allocated by the hub over the same window (GCProfiler: freed by each GC + the
          // heap's growth), per token frame, and the GCs it took
          hubAllocKBPerEvent: alloc.bytes / 1024 / Math.max(1, framesReceived),
          hubGcCount: alloc.gcs,
          // cores busy per process: in the hub's window (+ its 3 s drain), and in the floor's
          cpuCoresBusy: coresBusy(cpu1, cpu2, hubWindowSeconds),
          cpuCoresBusyFloorWindow: cpuFloor,
          tokenFormat: TOKEN_FORMAT,
          consumerSettings: {
            partitionsConsumedConcurrently: hubCfg.kafkaPartitionsConcurrency,
            commitIntervalMs: hubCfg.kafkaCommitIntervalMs,
          },
          loadavg: load(),
        };
      }
    }
    await clients.closeAll('hub');
    await hub.stop(30_000);
    hub = undefined;
    await bare?.stop();
    bare = undefined;
    loadAt('end');

    // ------------------------------------------------------------------ ratios
    const hm = report.hub.memory as MemoryResult | undefined;
    const bm = report.bare.memory as MemoryResult | undefined;
    const hf = report.hub.fanout as
      | { kafkaPath: { medianDeliveriesPerSecond: number }; inProcess: { medianDeliveriesPerSecond: number } }
      | undefined;
    const bf = report.bare.fanout as { medianDeliveriesPerSecond: number } | undefined;
    const lat = report.latency as { hubMs: Stats } | undefined;
    report.ratios = {};
    report.targets = {};
    if (hm && bm) {
      const v = hm.perConnectionKiB / bm.perConnectionKiB;
      report.ratios.memoryPerConnection = v;
      report.targets.memoryPerConnection = { value: v, target: '≤ 1.5× bare', met: v <= 1.5 };
    }
    if (hf && bf) {
      const inProc = hf.inProcess.medianDeliveriesPerSecond / bf.medianDeliveriesPerSecond;
      const kafkaPath = hf.kafkaPath.medianDeliveriesPerSecond / bf.medianDeliveriesPerSecond;
      report.ratios.fanoutInProcess = inProc;
      report.ratios.fanoutKafkaPath = kafkaPath;
      report.targets.fanoutInProcess = { value: inProc, target: '≥ 0.7× bare', met: inProc >= 0.7 };
      report.targets.fanoutKafkaPath = { value: kafkaPath, target: '≥ 0.7× bare', met: kafkaPath >= 0.7 };
    }
    if (lat)
      report.targets.latencyP99Ms = { value: lat.hubMs.p99, target: '< 25 ms', met: lat.hubMs.p99 < 25 };
  } catch (err) {
    failure = timedOut ? new Error(`timed out after ${TIMEOUT_SECONDS} s (BENCH_TIMEOUT_SECONDS)`) : err;
  } finally {
    clearTimeout(budget);
    report.cleanup = await cleanup({
      hub,
      bare,
      clients,
      floor,
      platform,
      issuer,
      tenant,
      hubCfg,
      floorGroup,
    });
  }
  report.finishedAt = new Date().toISOString();
  if (failure) report.error = failure instanceof Error ? (failure.stack ?? failure.message) : String(failure);
  const file = join(resultsDir, `realtime-${stamp}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  if (!failure) printTable(report);
  log(`results: ${file}`);
  if (failure) {
    console.error(`bench:realtime failed: ${failure instanceof Error ? failure.message : String(failure)}`);
    process.exit(1);
  }
  process.exit(0);
}

async function cleanup(r: {
  hub?: Child;
  bare?: Child;
  clients?: ClientPool;
  floor?: Child;
  platform?: Platform;
  issuer?: TestIssuer;
  tenant: string;
  hubCfg?: RealtimeConfig;
  floorGroup: string;
}): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await Promise.race([fn(), sleep(60_000).then(() => Promise.reject(new Error('timed out')))]);
    } catch (err) {
      out[what] = `failed: ${err instanceof Error ? err.message : String(err)}`;
      log(`cleanup: ${what} failed: ${String(err)}`);
    }
  };
  await step('floorConsumer', async () => r.floor?.stop(10_000));
  await step('hub', async () => r.hub?.stop(20_000));
  await step('bare', async () => r.bare?.stop(5000));
  await step('clients', async () => r.clients?.stop());
  // Redis: the run's stream, history, dedup and presence keys (all hash-tagged by tenant).
  await step('redis', async () => {
    const redis = new Redis(env.REDIS_URL!);
    try {
      let deleted = 0;
      for (const pattern of [`rt:{${r.tenant}/*`, `rt:i:${r.hubCfg?.instanceId ?? '-'}*`]) {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          if (keys.length) deleted += await redis.del(...keys);
        } while (cursor !== '0');
      }
      out.redisKeysDeleted = deleted;
    } finally {
      redis.disconnect();
    }
  });
  await step('kafkaGroups', async () => {
    if (!r.platform) return;
    const admin = r.platform.kafka.admin();
    await admin.connect();
    try {
      const groups = [r.floorGroup];
      if (r.hubCfg) groups.push(`${r.hubCfg.kafkaGroupPrefix}-${r.hubCfg.instanceId}`);
      const existing = new Set((await admin.listGroups()).groups.map((g) => g.groupId));
      const del = groups.filter((g) => existing.has(g));
      if (del.length) await admin.deleteGroups(del);
      out.kafkaGroupsDeleted = del.length;
    } finally {
      await admin.disconnect();
    }
  });
  await step('platform', async () => r.platform?.close());
  await step('issuer', async () => r.issuer?.close());
  return out;
}

function printTable(report: Report): void {
  const hm = report.hub.memory as MemoryResult | undefined;
  const bm = report.bare.memory as MemoryResult | undefined;
  const hf = report.hub.fanout as
    (Record<string, ReturnType<typeof summarizeRounds>> & { subscribers: number }) | undefined;
  const bf = report.bare.fanout as (ReturnType<typeof summarizeRounds> & { subscribers: number }) | undefined;
  const lat = report.latency as
    | {
        hubMs: Stats;
        kafkaFloorMs: Stats;
        producedPerSecond: number;
        sockets: number;
        hubCpuCoresBusy: number;
        hubCpuMsPerEvent: number;
        hubAllocKBPerEvent?: number;
        hubGcCount?: number;
        cpuCoresBusy: Record<string, number>;
        cpuCoresBusyFloorWindow: Record<string, number>;
        hubIngestBatchRecords: { mean: number; p99: number };
        hubIngestBatchSeconds: { mean: number; p50: number; p99: number };
        hubStages?: Record<string, { mean: number; p50: number; p90: number; p99: number }>;
        hubEventLoopLagMs?: { p50: number; p99: number; max: number };
        hubGc?: Record<string, { count: number; mean: number; p99: number }>;
      }
    | undefined;
  const r = report.ratios ?? {};
  const t = report.targets ?? {};
  const ok = (k: string) => (t[k]!.met ? 'met' : 'NOT met');
  const kps = (x: number) => `${fmt(x / 1000, 1)}k/s`;
  const rows: string[][] = [];
  if (hm && bm)
    rows.push(
      [`Idle connections (joined)`, String(hm.connections), String(bm.connections), '', ''],
      [
        `Connect + join rate`,
        `${fmt(hm.connectsPerSecond, 0)}/s`,
        `${fmt(bm.connectsPerSecond, 0)}/s`,
        '',
        '',
      ],
      [
        `RSS before → after (MiB)`,
        `${fmt(hm.rssBeforeMiB, 0)} → ${fmt(hm.rssAfterMiB, 0)}`,
        `${fmt(bm.rssBeforeMiB, 0)} → ${fmt(bm.rssAfterMiB, 0)}`,
        '',
        '',
      ],
      [
        `Memory per idle connection (RSS)`,
        `${fmt(hm.perConnectionKiB, 2)} KiB`,
        `${fmt(bm.perConnectionKiB, 2)} KiB`,
        `${fmt(r.memoryPerConnection, 2)}×`,
        `≤ 1.5× ${ok('memoryPerConnection')}`,
      ],
      [
        `  of which JS heap`,
        `${fmt(hm.heapPerConnectionKiB, 2)} KiB`,
        `${fmt(bm.heapPerConnectionKiB, 2)} KiB`,
        '',
        '',
      ],
    );
  if (hf && bf)
    rows.push(
      [
        `Fan-out to ${hf.subscribers}: in-process (median)`,
        kps(hf.inProcess!.medianDeliveriesPerSecond),
        kps(bf.medianDeliveriesPerSecond),
        `${fmt(r.fanoutInProcess, 2)}×`,
        `≥ 0.7× ${ok('fanoutInProcess')}`,
      ],
      [
        `  trigger → last delivery`,
        `${fmt(hf.inProcess!.medianMs, 0)} ms`,
        `${fmt(bf.medianMs, 0)} ms`,
        '',
        '',
      ],
      [
        `  server send loop (sync)`,
        `${fmt(hf.inProcess!.medianSyncMs, 0)} ms`,
        `${fmt(bf.medianSyncMs, 0)} ms`,
        '',
        '',
      ],
      [
        `Fan-out: Kafka→ingest→Redis→fan-out`,
        kps(hf.kafkaPath!.medianDeliveriesPerSecond),
        kps(bf.medianDeliveriesPerSecond),
        `${fmt(r.fanoutKafkaPath, 2)}×`,
        `≥ 0.7× ${ok('fanoutKafkaPath')}`,
      ],
      [
        `  produce → first / last delivery`,
        `${fmt(hf.kafkaPath!.medianFirstMs, 0)} / ${fmt(hf.kafkaPath!.medianMs, 0)} ms`,
        '',
        '',
        '',
      ],
    );
  if (lat)
    rows.push(
      [
        `Token latency, ${lat.sockets} conv. @ ${fmt(lat.producedPerSecond, 0)} ev/s p50/p99`,
        `${fmt(lat.hubMs.p50, 1)} / ${fmt(lat.hubMs.p99, 1)} ms`,
        `Kafka alone (next window) ${fmt(lat.kafkaFloorMs.p50, 1)} / ${fmt(lat.kafkaFloorMs.p99, 1)} ms`,
        '',
        `p99 < 25 ms ${ok('latencyP99Ms')}`,
      ],
      [
        `  p90 / p99.9 / max`,
        `${fmt(lat.hubMs.p90, 1)} / ${fmt(lat.hubMs.p999, 1)} / ${fmt(lat.hubMs.max, 1)} ms`,
        `${fmt(lat.kafkaFloorMs.p90, 1)} / ${fmt(lat.kafkaFloorMs.p999, 1)} / ${fmt(lat.kafkaFloorMs.max, 1)} ms`,
        '',
        '',
      ],
      [
        `  hub ingest batch: records mean; kafkajs → Redis done mean / p99 ≤`,
        `${fmt(lat.hubIngestBatchRecords.mean, 1)}; ${fmt(lat.hubIngestBatchSeconds.mean * 1000, 2)} / ${fmt(lat.hubIngestBatchSeconds.p99 * 1000, 1)} ms`,
        '',
        '',
        '',
      ],
      ...(lat.hubStages
        ? [
            [
              `  hub stages p50 / p99 ≤ (kafka → hand-over; → Redis back; → sockets)`,
              ['kafka', 'store', 'fanout']
                .map((k) => lat.hubStages![k]!)
                .map((h) => `${fmt(h.p50 * 1000, 1)} / ${fmt(h.p99 * 1000, 1)}`)
                .join('; ') + ' ms',
              '',
              '',
              '',
            ],
          ]
        : []),
      ...(lat.hubEventLoopLagMs && lat.hubGc
        ? [
            [
              `  hub event-loop lag p99 / max; GC pauses minor n × mean, major+incr. n × mean`,
              `${fmt(lat.hubEventLoopLagMs.p99, 1)} / ${fmt(lat.hubEventLoopLagMs.max, 1)} ms; ` +
                `${lat.hubGc.minor!.count} × ${fmt(lat.hubGc.minor!.mean * 1000, 1)} ms, ` +
                `${lat.hubGc.major!.count + lat.hubGc.incremental!.count} × ` +
                `${fmt((((lat.hubGc.major!.mean || 0) * lat.hubGc.major!.count + (lat.hubGc.incremental!.mean || 0) * lat.hubGc.incremental!.count) * 1000) / Math.max(1, lat.hubGc.major!.count + lat.hubGc.incremental!.count), 1)} ms`,
              '',
              '',
              '',
            ],
          ]
        : []),
      [
        `  hub CPU: cores busy / ms per event; JS heap allocated per event, GCs`,
        `${fmt(lat.hubCpuCoresBusy, 2)} / ${fmt(lat.hubCpuMsPerEvent, 3)}; ` +
          `${fmt(lat.hubAllocKBPerEvent ?? NaN, 1)} KB, ${lat.hubGcCount ?? NaN}`,
        '',
        '',
        '',
      ],
      [
        `  cores busy, hub window | floor window`,
        Object.entries(lat.cpuCoresBusy)
          .map(([k, v]) => `${k} ${fmt(v, 2)}`)
          .join(', '),
        Object.entries(lat.cpuCoresBusyFloorWindow)
          .map(([k, v]) => `${k} ${fmt(v, 2)}`)
          .join(', '),
        '',
        '',
      ],
    );
  console.log(
    '\n' +
      table(['Figure', 'Hub', 'Bare ws', 'Ratio', 'Target'], rows) +
      `\nload average: ${JSON.stringify(report.machine.loadavg)}\n`,
  );
}

await main();
