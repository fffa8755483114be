/**
 * `node bench/operator/run.ts` (or `make bench`) — the operator benchmark (docs/benchmarks.md).
 *
 *   1. starts the operator as a child process (`node operator/src/main.ts`) on a scratch platform
 *      database, behind a request-counting proxy to the API server, managing only this run's
 *      Tenants (label selector `simptu.io/bench-run=<run>`);
 *   2. creates N Tenants and measures: time until all are Ready, tenants/s, API-server requests
 *      per tenant, the operator's RSS, and its writes per minute at steady state;
 *   3. deletes them (deletionPolicy Delete) and measures how long the operator takes to remove
 *      namespaces, schemas and topics;
 *   4. measures the raw limits of the backend paths with the same clients and no operator, and
 *      prints the operator's throughput as a ratio of the slowest;
 *   5. cleans up, prints a table and writes bench/results/operator-<timestamp>.json.
 *
 * Environment: KUBECONFIG, DATABASE_URL, KAFKA_BROKERS (the test environment), and
 *   N                          tenants @default 200
 *   BENCH_WORKERS              operator workers (SIMPTU_WORKERS) @default 4
 *   BENCH_RAW_CONCURRENCY      tenants in flight on the raw API-server and Postgres paths @default BENCH_WORKERS
 *   BENCH_CREATE_CONCURRENCY   parallel Tenant creates @default 8
 *   BENCH_STEADY_SECONDS       steady-state window once the operator is idle @default 60
 *   BENCH_SETTLE_SECONDS       longest wait, after all are Ready, for the work queue to drain @default 120
 *   BENCH_KAFKA_BATCH          tenants per createTopics call on the raw Kafka path @default 10
 *   BENCH_TIMEOUT_SECONDS      overall budget before cleanup @default 600 + 3·N
 *   BENCH_ALLOW_OTHER_OPERATOR set to 1 to run although the default operator lease is held
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { createScratchDatabase, PLATFORM_NAMESPACE, quoteIdent, type ScratchDatabase } from '@simptu/common';
import type { Tenant } from '../../operator/src/api/types.ts';
import { kubeRequest } from '../../operator/src/controller/client.ts';
import { statusCode } from '../../operator/src/controller/errors.ts';
import { cleanUpAndReport, machineInfo, resultFiles } from '../lib/run-report.ts';
import {
  benchTenant,
  deleteNamespaces,
  kafkaLimit,
  namespaceLimit,
  kafkaPerTopic,
  postgresLimit,
  type LimitResult,
} from './limits.ts';
import {
  BenchTimeoutError,
  diffCounts,
  fmt,
  imageCommand,
  mapLimit,
  metricBy,
  parsePrometheus,
  percentile,
  readCpuSeconds,
  readRss,
  sleep,
  startCountingProxy,
  sumMetric,
  table,
  total,
  waitFor,
  type CountingProxy,
} from './lib.ts';

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

const N = int(env.N, 200);
const WORKERS = int(env.BENCH_WORKERS, 4);
const RAW_CONCURRENCY = int(env.BENCH_RAW_CONCURRENCY, WORKERS);
const CREATE_CONCURRENCY = int(env.BENCH_CREATE_CONCURRENCY, 8);
const STEADY_SECONDS = int(env.BENCH_STEADY_SECONDS, 60);
const SETTLE_SECONDS = int(env.BENCH_SETTLE_SECONDS, 120);
const KAFKA_BATCH = int(env.BENCH_KAFKA_BATCH, 10);
const TIMEOUT_SECONDS = int(env.BENCH_TIMEOUT_SECONDS, 600 + 3 * N);
/** cleanup gets its own budget, so a timed-out run still leaves nothing behind */
const CLEANUP_SECONDS = 180 + N;

const RUN = randomBytes(3).toString('hex');
const RUN_LABEL = 'simptu.io/bench-run';
const TENANT_PREFIX = `bench-${RUN}-`;
const RAW_PREFIX = `braw-${RUN}-`;
const APP_ROLE = `bench_${RUN}_app`;
const KEK_SECRET = `bench-${RUN}-kek`;
const LEASE = `bench-${RUN}`;
const TENANTS_PATH = '/apis/simptu.io/v1alpha1/tenants';

const log = (msg: string) => console.log(`[bench:operator ${new Date().toISOString().slice(11, 19)}] ${msg}`);

for (const v of ['KUBECONFIG', 'DATABASE_URL', 'KAFKA_BROKERS']) {
  if (!env[v]) {
    console.error(`${v} is not set: run 'make bench', or 'set -a; source .testenv/env; set +a' first`);
    process.exit(2);
  }
}
if (N < 1) {
  console.error('N must be at least 1');
  process.exit(2);
}

const kc = new KubeConfig();
kc.loadFromDefault();
const brokers = env.KAFKA_BROKERS!.split(',').map((s) => s.trim());
const tenantNames = Array.from({ length: N }, (_, i) => `${TENANT_PREFIX}${i}`);
const rawNames = Array.from({ length: N }, (_, i) => `${RAW_PREFIX}${i}`);
/** the diagnostic Kafka path needs fresh topic names (same prefix, so cleanup finds them) */
const diagNames = Array.from({ length: N }, (_, i) => `${RAW_PREFIX}d${i}`);

/** The whole run's budget; every wait checks it. */
const budget = new AbortController();
const budgetTimer = setTimeout(
  () =>
    budget.abort(
      new BenchTimeoutError('the whole benchmark (BENCH_TIMEOUT_SECONDS)', TIMEOUT_SECONDS * 1000),
    ),
  TIMEOUT_SECONDS * 1000,
);
const remainingMs = (startedAt: number) => Math.max(1000, startedAt + TIMEOUT_SECONDS * 1000 - Date.now());
const START = Date.now();
// Ctrl-C: stop waiting and clean up (a second Ctrl-C exits at once).
process.once('SIGINT', () => {
  budget.abort(new Error('interrupted (SIGINT)'));
  process.once('SIGINT', () => process.exit(130));
});

// ---------------------------------------------------------------------------------------------
// Small clients

async function apiserverRequestTotal(): Promise<number> {
  const text = await kubeRequest<string>(kc, '/metrics');
  return sumMetric(parsePrometheus(String(text)), 'apiserver_request_total');
}

async function listBenchTenants(): Promise<Tenant[]> {
  // 429 "storage is (re)initializing" while someone re-applies the CRD: wait it out (a few seconds).
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await kubeRequest<{ items: Tenant[] }>(kc, TENANTS_PATH, {
        query: { labelSelector: `${RUN_LABEL}=${RUN}` },
      });
      return r.items;
    } catch (err) {
      if (statusCode(err) !== 429 || attempt >= 30) throw err;
      await sleep(1000);
    }
  }
}

const isReady = (t: Tenant) =>
  t.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function operatorMetrics(port: number) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return parsePrometheus(await res.text());
}

async function listNamespacesWithPrefix(prefix: string): Promise<string[]> {
  const r = await kubeRequest<{ items: Array<{ metadata: { name: string } }> }>(kc, '/api/v1/namespaces');
  return r.items.map((i) => i.metadata.name).filter((n) => n.startsWith(prefix));
}

// ---------------------------------------------------------------------------------------------
// The operator child process

interface OperatorProcess {
  child: ChildProcess;
  metricsPort: number;
  logFile: string;
  exited: Promise<number | null>;
  peakRssMiB: number;
  stopSampling(): void;
}

async function startOperatorProcess(
  proxy: CountingProxy,
  databaseUrl: string,
  tmp: string,
  logFile: string,
): Promise<OperatorProcess> {
  // The operator talks to the API server only through the counting proxy; the proxy holds the credentials.
  const kubeconfig = join(tmp, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      // client-node refuses plain HTTP unless TLS verification is off; the proxy is on loopback.
      clusters: [{ name: 'bench-proxy', cluster: { server: proxy.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'bench', user: {} }],
      contexts: [{ name: 'bench', context: { cluster: 'bench-proxy', user: 'bench' } }],
      'current-context': 'bench',
    }),
  );
  const out = createWriteStream(logFile);
  // As the image runs it (its CMD: Node's flags and the script, relative to the WORKDIR).
  const image = imageCommand(readFileSync(join(ROOT, 'operator/Dockerfile'), 'utf8'));
  const child = spawn(process.execPath, image.nodeArgs, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...env,
      ...image.env,
      KUBECONFIG: kubeconfig,
      SIMPTU_DATABASE_URL: databaseUrl,
      SIMPTU_KAFKA_BROKERS: brokers.join(','),
      SIMPTU_TENANT_SELECTOR: `${RUN_LABEL}=${RUN}`,
      SIMPTU_LEASE_NAME: LEASE,
      SIMPTU_KEK_SECRET: KEK_SECRET,
      SIMPTU_KEK_CREATE_IF_MISSING: 'true',
      SIMPTU_APP_ROLE: APP_ROLE,
      SIMPTU_DEDICATED_AGENT_READINESS: 'applied',
      SIMPTU_WORKERS: String(WORKERS),
      SIMPTU_METRICS_PORT: '0',
      SIMPTU_PROBE_PORT: '0',
      SIMPTU_LOG_LEVEL: env.SIMPTU_LOG_LEVEL ?? 'info',
    },
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.stderr!.pipe(out, { end: false });
  let metricsPort = 0;
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    out.write(line + '\n');
    if (metricsPort === 0 && line.includes('"operator started"')) {
      try {
        metricsPort = (JSON.parse(line) as { metricsPort: number }).metricsPort;
      } catch {
        /* not JSON: keep waiting */
      }
    }
  });
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  await waitFor(
    'the operator to start (its "operator started" log line)',
    async () => {
      if (exitCode !== undefined)
        throw new Error(`the operator exited with code ${exitCode} during start-up; see ${logFile}`);
      return { done: metricsPort !== 0 };
    },
    { timeoutMs: 60_000, intervalMs: 200, signal: budget.signal },
  );
  const proc: OperatorProcess = {
    child,
    metricsPort,
    logFile,
    exited,
    peakRssMiB: 0,
    stopSampling: () => undefined,
  };
  // VmHWM holds the peak too, but sampling also catches what the high-water mark can't: when it happened.
  const sampler = setInterval(() => {
    const m = child.pid ? readRss(child.pid) : undefined;
    if (m) proc.peakRssMiB = Math.max(proc.peakRssMiB, m.rssMiB, m.hwmMiB);
  }, 250);
  proc.stopSampling = () => clearInterval(sampler);
  return proc;
}

async function stopOperatorProcess(op: OperatorProcess): Promise<void> {
  if (op.child.exitCode !== null || op.child.signalCode !== null) return;
  op.child.kill('SIGTERM');
  const done = await Promise.race([op.exited.then(() => true), sleep(35_000).then(() => false)]);
  if (!done) {
    log('the operator did not stop within 35 s: SIGKILL');
    op.child.kill('SIGKILL');
    await op.exited;
  }
  op.stopSampling();
}

// ---------------------------------------------------------------------------------------------
// Preflight

/**
 * An operator without a tenant selector (make dev, a deployed one) would reconcile this run's
 * Tenants too — against another database, fighting ours over their status. It holds the default
 * lease; a run that sees it renewed is void. Checked before the run and throughout it.
 */
async function checkNoOtherOperator(): Promise<void> {
  if (env.BENCH_ALLOW_OTHER_OPERATOR === '1') return;
  const lease = await kubeRequest<{
    spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
  }>(kc, `/apis/coordination.k8s.io/v1/namespaces/${PLATFORM_NAMESPACE}/leases/simptu-operator`).catch(
    () => undefined,
  );
  const spec = lease?.spec;
  if (
    spec?.holderIdentity &&
    spec.renewTime &&
    Date.now() - Date.parse(spec.renewTime) < (spec.leaseDurationSeconds ?? 15) * 1000 * 2
  ) {
    throw new Error(
      `another operator (${spec.holderIdentity}) holds the lease ${PLATFORM_NAMESPACE}/simptu-operator and would reconcile this run's Tenants too, which voids the figures. Stop it (make dev?) and run the benchmark alone (BENCH_ALLOW_OTHER_OPERATOR=1 skips this check)`,
    );
  }
}

/** `checkNoOtherOperator` at most every 5 s, for the polling loops. */
let lastGuard = 0;
async function guard(): Promise<void> {
  if (Date.now() - lastGuard < 5000) return;
  lastGuard = Date.now();
  await checkNoOtherOperator();
}

async function preflight(): Promise<void> {
  try {
    await kubeRequest(kc, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tenants.simptu.io');
  } catch {
    throw new Error("the Tenant CRD is not installed: run 'kubectl apply --server-side -f crds/' first");
  }
  await checkNoOtherOperator();
}

// ---------------------------------------------------------------------------------------------
// Cleanup: idempotent, works whether or not the operator is still alive.

interface Resources {
  scratch?: ScratchDatabase;
  proxy?: CountingProxy;
  op?: OperatorProcess;
  tmp?: string;
}

async function deleteTopicsWithPrefixes(prefixes: string[]): Promise<number> {
  const kafka = new Kafka({ clientId: 'simptu-bench-cleanup', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((t) => prefixes.some((p) => t.startsWith(p)));
    for (let i = 0; i < topics.length; i += 100)
      await admin.deleteTopics({ topics: topics.slice(i, i + 100), timeout: 30_000 });
    return topics.length;
  } finally {
    await admin.disconnect();
  }
}

async function benchRoles(): Promise<string[]> {
  const c = new pg.Client({ connectionString: env.DATABASE_URL });
  await c.connect();
  try {
    const { rows } = await c.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE rolname LIKE $1 OR rolname LIKE $2 OR rolname = $3`,
      [`t_bench_${RUN}_%`, `t_braw_${RUN}_%`, APP_ROLE],
    );
    return rows.map((r) => r.rolname);
  } finally {
    await c.end();
  }
}

async function cleanup(res: Resources): Promise<Record<string, number>> {
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      log(`cleanup: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const deadline = Date.now() + CLEANUP_SECONDS * 1000;
  const left = () => Math.max(5_000, deadline - Date.now());

  // Tenants: the operator removes what they own while it runs; without it, take the finalizers off.
  await step('tenants', async () => {
    const remaining = await listBenchTenants();
    if (remaining.length === 0) return;
    log(`cleanup: deleting ${remaining.length} leftover tenants`);
    await mapLimit(remaining, 8, (t) =>
      kubeRequest(kc, `${TENANTS_PATH}/${t.metadata.name}`, { method: 'DELETE' }).catch(() => undefined),
    );
    const alive = res.op && res.op.child.exitCode === null && res.op.child.signalCode === null;
    if (alive) {
      await waitFor(
        'the operator to finalize the leftover tenants',
        async () => ({ done: (await listBenchTenants()).length === 0 }),
        {
          timeoutMs: Math.min(left(), 60_000 + N * 1000),
          intervalMs: 1000,
        },
      ).catch((err: unknown) => log(`cleanup: ${(err as Error).message}; removing finalizers`));
    }
    for (const t of await listBenchTenants()) {
      await kubeRequest(kc, `${TENANTS_PATH}/${t.metadata.name}`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: { metadata: { finalizers: null } },
      }).catch(() => undefined);
    }
  });
  if (res.op) await step('operator', () => stopOperatorProcess(res.op!));
  await step('proxy', async () => res.proxy?.close());

  // What the operator (or the raw paths) may have left: namespaces, topics, roles.
  await step('namespaces', async () => {
    const names = [
      ...(await listNamespacesWithPrefix(`tenant-${TENANT_PREFIX}`)),
      ...(await listNamespacesWithPrefix(`tenant-${RAW_PREFIX}`)),
    ];
    await mapLimit(names, 8, (ns) =>
      kubeRequest(kc, `/api/v1/namespaces/${ns}`, { method: 'DELETE' }).catch(() => undefined),
    );
    if (names.length > 0) {
      log(`cleanup: waiting for ${names.length} namespaces to be deleted by the namespace controller`);
      await waitFor(
        'the namespace controller to delete the benchmark namespaces',
        async () => {
          const n =
            (await listNamespacesWithPrefix(`tenant-${TENANT_PREFIX}`)).length +
            (await listNamespacesWithPrefix(`tenant-${RAW_PREFIX}`)).length;
          return { done: n === 0, detail: `${n} left` };
        },
        { timeoutMs: left(), intervalMs: 2000 },
      );
    }
  });
  await step('topics', () =>
    deleteTopicsWithPrefixes([`simptu.t.${TENANT_PREFIX}`, `simptu.t.${RAW_PREFIX}`]),
  );
  await step('KEK secret and lease', async () => {
    for (const path of [
      `/api/v1/namespaces/${PLATFORM_NAMESPACE}/secrets/${KEK_SECRET}`,
      `/apis/coordination.k8s.io/v1/namespaces/${PLATFORM_NAMESPACE}/leases/${LEASE}`,
    ]) {
      await kubeRequest(kc, path, { method: 'DELETE' }).catch(() => undefined);
    }
  });
  // Roles are cluster-wide; their privileges live only in the scratch database, so dropping it first frees them.
  await step('scratch database', async () => res.scratch?.drop());
  await step('roles', async () => {
    const roles = await benchRoles();
    const c = new pg.Client({ connectionString: env.DATABASE_URL });
    await c.connect();
    try {
      // Tenant roles first: the app role is a member of each.
      for (const r of roles.sort((a, b) => (a === APP_ROLE ? 1 : b === APP_ROLE ? -1 : 0)))
        await c.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`);
    } finally {
      await c.end();
    }
  });
  if (res.tmp) rmSync(res.tmp, { recursive: true, force: true });

  // What is left, for the report (all zero on a clean run).
  const leftovers: Record<string, number> = {};
  await step('leftover check', async () => {
    leftovers.tenants = (await listBenchTenants()).length;
    leftovers.namespaces =
      (await listNamespacesWithPrefix(`tenant-${TENANT_PREFIX}`)).length +
      (await listNamespacesWithPrefix(`tenant-${RAW_PREFIX}`)).length;
    leftovers.roles = (await benchRoles()).length;
    const kafka = new Kafka({ clientId: 'simptu-bench-check', brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    leftovers.topics = (await admin.listTopics()).filter(
      (t) => t.startsWith(`simptu.t.${TENANT_PREFIX}`) || t.startsWith(`simptu.t.${RAW_PREFIX}`),
    ).length;
    await admin.disconnect();
  });
  return leftovers;
}

// ---------------------------------------------------------------------------------------------
// The run

async function main(): Promise<number> {
  await preflight();
  const res: Resources = {};
  const { logFile, reportFile } = resultFiles(ROOT, 'operator');
  const report: Record<string, unknown> = {
    benchmark: 'operator',
    run: RUN,
    date: new Date().toISOString(),
    // load averages at start, after provisioning and after the raw limits
    machine: machineInfo({ start: os.loadavg() }),
    config: {
      N,
      workers: WORKERS,
      rawConcurrency: RAW_CONCURRENCY,
      createConcurrency: CREATE_CONCURRENCY,
      steadySeconds: STEADY_SECONDS,
      kafkaBatchTenants: KAFKA_BATCH,
      timeoutSeconds: TIMEOUT_SECONDS,
      // the operator's command line, from operator/Dockerfile's CMD
      operatorCommand: [
        'node',
        ...imageCommand(readFileSync(join(ROOT, 'operator/Dockerfile'), 'utf8')).nodeArgs,
      ],
    },
  };
  let failure: unknown;
  try {
    log(
      `run ${RUN}: N=${N}, workers=${WORKERS}, raw concurrency=${RAW_CONCURRENCY}, create concurrency=${CREATE_CONCURRENCY}, operator log ${logFile}`,
    );
    res.scratch = await createScratchDatabase(env.DATABASE_URL!, 'simptu_bench');
    res.proxy = await startCountingProxy(kc);
    res.tmp = mkdtempSync(join(os.tmpdir(), 'simptu-bench-'));
    res.op = await startOperatorProcess(res.proxy, res.scratch.url, res.tmp, logFile);
    const op = res.op;
    await waitFor(
      'the operator to become leader',
      async () => ({
        done: sumMetric(await operatorMetrics(op.metricsPort), 'leader_election_master_status') >= 1,
      }),
      { timeoutMs: 60_000, intervalMs: 200, signal: budget.signal },
    );
    await sleep(2000); // let the informers' initial LIST/WATCH settle before the baseline
    const idleRss = readRss(op.child.pid!)?.rssMiB;
    log(`operator up (pid ${op.child.pid}, metrics :${op.metricsPort}, idle RSS ${fmt(idleRss)} MiB)`);

    // --- create N tenants -----------------------------------------------------------------------
    const before = { proxy: res.proxy.counts(), apiserver: await apiserverRequestTotal(), reconciles: 0 };
    const cpu0 = readCpuSeconds(op.child.pid!) ?? NaN;
    const createdAt = new Map<string, number>();
    const readyAt = new Map<string, number>();
    const t0 = Date.now();
    await mapLimit(tenantNames, CREATE_CONCURRENCY, async (name) => {
      budget.signal.throwIfAborted();
      const t = benchTenant(name, { [RUN_LABEL]: RUN });
      await kubeRequest(kc, TENANTS_PATH, {
        method: 'POST',
        body: {
          apiVersion: t.apiVersion,
          kind: t.kind,
          metadata: t.metadata,
          spec: {
            displayName: t.spec.displayName,
            businessType: t.spec.businessType,
            isolation: t.spec.isolation,
            agent: { model: { provider: 'builtin' } },
            kafka: t.spec.kafka,
            deletionPolicy: 'Delete',
          },
        },
      });
      createdAt.set(name, Date.now());
    });
    const createSeconds = (Date.now() - t0) / 1000;
    log(
      `created ${N} tenants in ${fmt(createSeconds)} s (${fmt(N / createSeconds)} creates/s); waiting for Ready`,
    );
    let lastProgress = 0;
    await waitFor(
      `all ${N} tenants to be Ready (budget BENCH_TIMEOUT_SECONDS=${TIMEOUT_SECONDS})`,
      async () => {
        await guard();
        const items = await listBenchTenants();
        const now = Date.now();
        for (const t of items)
          if (isReady(t) && !readyAt.has(t.metadata.name)) readyAt.set(t.metadata.name, now);
        if (now - lastProgress > 10_000) {
          lastProgress = now;
          log(`  ${readyAt.size}/${N} Ready`);
        }
        const stuck = items.find((t) => !isReady(t));
        const cond = stuck?.status?.conditions?.find((c) => c.type === 'Ready');
        return {
          done: readyAt.size >= N,
          detail: `${readyAt.size}/${N} Ready; e.g. ${stuck?.metadata.name}: ${cond ? `${cond.reason}: ${cond.message}` : 'no status yet'}`,
        };
      },
      { timeoutMs: remainingMs(START), intervalMs: 500, signal: budget.signal },
    );
    const tReady = Math.max(...readyAt.values());
    const readySeconds = (tReady - t0) / 1000;
    const cpuProvisioning = (readCpuSeconds(op.child.pid!) ?? NaN) - cpu0;
    const afterReady = { proxy: res.proxy.counts(), apiserver: await apiserverRequestTotal() };
    (report.machine as { loadavg: Record<string, number[]> }).loadavg.provisioned = os.loadavg();
    const opMetricsReady = await operatorMetrics(op.metricsPort);
    const latencies = tenantNames
      .map((n) => (readyAt.get(n)! - createdAt.get(n)!) / 1000)
      .sort((a, b) => a - b);
    const operatorRequests = diffCounts(afterReady.proxy, before.proxy);
    const provisioning = {
      createSeconds,
      secondsUntilAllReady: readySeconds,
      tenantsPerSecond: N / readySeconds,
      readyLatencySeconds: {
        p50: percentile(latencies, 50),
        p90: percentile(latencies, 90),
        p99: percentile(latencies, 99),
        max: latencies.at(-1),
      },
      operatorRequestsPerTenant: total(operatorRequests) / N,
      operatorRequestsByVerb: Object.fromEntries(
        Object.entries(operatorRequests).sort(([, a], [, b]) => b - a),
      ),
      apiserverRequestsPerTenantAllClients: (afterReady.apiserver - before.apiserver) / N,
      writesPerTenant: Object.fromEntries(
        Object.entries(metricBy(opMetricsReady, 'simptu_operator_backend_writes_total', 'backend')).map(
          ([k, v]) => [k, v / N],
        ),
      ),
      operatorCpuSecondsPerTenant: cpuProvisioning / N,
      /** cores the operator kept busy on average while provisioning (1 = one core, its event loop's ceiling) */
      operatorCpuCores: cpuProvisioning / ((Date.now() - t0) / 1000),
      reconcilesPerTenant: sumMetric(opMetricsReady, 'controller_runtime_reconcile_total') / N,
      /** throughput ≈ workers / this when the work queue is never empty */
      meanReconcileSeconds:
        sumMetric(opMetricsReady, 'controller_runtime_reconcile_time_seconds_sum') /
        sumMetric(opMetricsReady, 'controller_runtime_reconcile_time_seconds_count'),
      reconcileErrors: sumMetric(opMetricsReady, 'controller_runtime_reconcile_errors_total'),
    };
    log(`all ${N} Ready after ${fmt(readySeconds)} s: ${fmt(provisioning.tenantsPerSecond, 2)} tenants/s`);

    // --- settling: the work queue drains (reconciles its own writes' watch events trigger) -----
    const settle0 = Date.now();
    const settleWrites0 = metricBy(opMetricsReady, 'simptu_operator_backend_writes_total', 'backend');
    const settleProxy0 = afterReady.proxy;
    let lastReconciles = -1;
    let quietSince = Date.now();
    let settled = true;
    await waitFor(
      "the operator's work queue to drain (no reconcile for 5 s)",
      async () => {
        await guard();
        const mm = await operatorMetrics(op.metricsPort);
        const rec = sumMetric(mm, 'controller_runtime_reconcile_total');
        const depth = sumMetric(mm, 'workqueue_depth');
        if (rec !== lastReconciles || depth > 0) {
          lastReconciles = rec;
          quietSince = Date.now();
        }
        return { done: Date.now() - quietSince >= 5000, detail: `queue depth ${depth}` };
      },
      { timeoutMs: SETTLE_SECONDS * 1000, intervalMs: 500, signal: budget.signal },
    ).catch((err: unknown) => {
      if (!(err instanceof BenchTimeoutError)) throw err;
      settled = false;
      log(`the operator did not go idle within ${SETTLE_SECONDS} s: measuring the steady window anyway`);
    });
    const settling = {
      settled,
      /** from the last tenant Ready until the work queue stayed empty for 5 s (the 5 s included) */
      seconds: (Date.now() - settle0) / 1000,
      writesByBackend: diffCounts(
        metricBy(await operatorMetrics(op.metricsPort), 'simptu_operator_backend_writes_total', 'backend'),
        settleWrites0,
      ),
      apiRequests: total(diffCounts(res.proxy.counts(), settleProxy0)),
    };
    log(
      `settled after ${fmt(settling.seconds)} s (writes meanwhile: ${JSON.stringify(settling.writesByBackend)})`,
    );

    // --- steady state -------------------------------------------------------------------------
    log(`steady state: watching for ${STEADY_SECONDS} s`);
    const writesBefore = metricBy(
      await operatorMetrics(op.metricsPort),
      'simptu_operator_backend_writes_total',
      'backend',
    );
    const proxyBefore = res.proxy.counts();
    const reconcilesBefore = sumMetric(
      await operatorMetrics(op.metricsPort),
      'controller_runtime_reconcile_total',
    );
    const s0 = Date.now();
    while (Date.now() - s0 < STEADY_SECONDS * 1000) {
      budget.signal.throwIfAborted();
      await guard();
      await sleep(Math.min(1000, s0 + STEADY_SECONDS * 1000 - Date.now()));
    }
    const steadyMinutes = (Date.now() - s0) / 60_000;
    const m = await operatorMetrics(op.metricsPort);
    const steadyWrites = diffCounts(
      metricBy(m, 'simptu_operator_backend_writes_total', 'backend'),
      writesBefore,
    );
    const steadyRequests = diffCounts(res.proxy.counts(), proxyBefore);
    const stillReady = (await listBenchTenants()).filter(isReady).length;
    const steady = {
      seconds: steadyMinutes * 60,
      writesPerMinute: total(steadyWrites) / steadyMinutes,
      writesByBackend: steadyWrites,
      apiRequestsPerMinute: total(steadyRequests) / steadyMinutes,
      apiRequestsByVerb: steadyRequests,
      reconcilesPerMinute:
        (sumMetric(m, 'controller_runtime_reconcile_total') - reconcilesBefore) / steadyMinutes,
      tenantsStillReady: stillReady,
      rssMiB: readRss(op.child.pid!)?.rssMiB,
    };

    // --- deletion -------------------------------------------------------------------------------
    log(`deleting ${N} tenants (deletionPolicy Delete: the operator drops namespaces, schemas, topics)`);
    const d0 = Date.now();
    await mapLimit(tenantNames, CREATE_CONCURRENCY, (name) =>
      kubeRequest(kc, `${TENANTS_PATH}/${name}`, { method: 'DELETE' }),
    );
    await waitFor(
      `the operator to finalize all ${N} tenants (budget BENCH_TIMEOUT_SECONDS=${TIMEOUT_SECONDS})`,
      async () => {
        await guard();
        const n = (await listBenchTenants()).length;
        return { done: n === 0, detail: `${n} left` };
      },
      { timeoutMs: remainingMs(START), intervalMs: 1000, signal: budget.signal },
    );
    const deletion = { seconds: (Date.now() - d0) / 1000, tenantsPerSecond: N / ((Date.now() - d0) / 1000) };
    log(`all finalized after ${fmt(deletion.seconds)} s`);
    const operatorSummary = {
      idleRssMiB: idleRss,
      peakRssMiB: Math.max(op.peakRssMiB, readRss(op.child.pid!)?.hwmMiB ?? 0),
      steadyRssMiB: steady.rssMiB,
    };
    await stopOperatorProcess(op);

    // --- raw limits ---------------------------------------------------------------------------
    log(`raw limits: ${N} namespaces with children (concurrency ${RAW_CONCURRENCY})`);
    const limits: LimitResult[] = [];
    const diagnostics: LimitResult[] = [];
    limits.push(await namespaceLimit(kc, rawNames, RAW_CONCURRENCY));
    await deleteNamespaces(kc, rawNames, RAW_CONCURRENCY); // the namespace controller finishes during the next two
    budget.signal.throwIfAborted();
    log(`raw limits: ${N} tenant schemas (concurrency ${RAW_CONCURRENCY})`);
    const pool = new pg.Pool({ connectionString: res.scratch.url, max: RAW_CONCURRENCY });
    try {
      await pool.query(
        `DO $$ BEGIN CREATE ROLE ${quoteIdent(APP_ROLE)} LOGIN NOINHERIT; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
      );
      limits.push(await postgresLimit(pool, rawNames, APP_ROLE, RAW_CONCURRENCY));
    } finally {
      await pool.end();
    }
    budget.signal.throwIfAborted();
    log(`raw limits: ${N * 3} topics (batches of ${KAFKA_BATCH * 3})`);
    // NOTHING: the transient metadata errors of new topics are retried in kafkaLimit; real failures throw.
    const kafka = new Kafka({ clientId: 'simptu-bench', brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    try {
      limits.push(await kafkaLimit(admin, rawNames, KAFKA_BATCH));
      // Diagnostic only (the operator now creates a tenant's topics in one request): a failure
      // here, e.g. Kafka's transient metadata errors for just-deleted names, must not cost the run.
      log(`diagnostic: ${N * 3} topics one per call (concurrency ${RAW_CONCURRENCY})`);
      try {
        diagnostics.push(await kafkaPerTopic(admin, diagNames, RAW_CONCURRENCY));
      } catch (err) {
        log(`diagnostic skipped: ${err instanceof Error ? err.message : String(err)}`);
      }
    } finally {
      await admin.disconnect();
    }
    (report.machine as { loadavg: Record<string, number[]> }).loadavg.rawLimits = os.loadavg();
    const slowest = limits.reduce((a, b) => (b.tenantsPerSecond < a.tenantsPerSecond ? b : a));
    const ratio = provisioning.tenantsPerSecond / slowest.tenantsPerSecond;

    report.operator = { provisioning, settling, steady, deletion, memory: operatorSummary };
    report.limits = limits;
    report.diagnostics = diagnostics;
    report.ratio = {
      operatorTenantsPerSecond: provisioning.tenantsPerSecond,
      slowestPath: slowest.path,
      slowestTenantsPerSecond: slowest.tenantsPerSecond,
      ratio,
    };
    report.targets = {
      'throughput ratio >= 0.5': ratio >= 0.5,
      'steady-state writes/min == 0': steady.writesPerMinute === 0,
    };

    // --- print --------------------------------------------------------------------------------
    const rows: string[][] = [
      ['tenants', String(N), ''],
      ['time until all Ready', fmt(readySeconds), 's'],
      ['operator throughput', fmt(provisioning.tenantsPerSecond, 2), 'tenants/s'],
      [
        'create → Ready p50 / p90 / max',
        `${fmt(provisioning.readyLatencySeconds.p50)} / ${fmt(provisioning.readyLatencySeconds.p90)} / ${fmt(provisioning.readyLatencySeconds.max)}`,
        's',
      ],
      ['API requests per tenant (operator, via proxy)', fmt(provisioning.operatorRequestsPerTenant), 'req'],
      [
        'API requests per tenant (apiserver, all clients)',
        fmt(provisioning.apiserverRequestsPerTenantAllClients),
        'req',
      ],
      [
        'reconciles per tenant / mean reconcile time',
        `${fmt(provisioning.reconcilesPerTenant)} / ${fmt(provisioning.meanReconcileSeconds * 1000, 0)} ms`,
        '',
      ],
      [
        'operator CPU per tenant / cores busy',
        `${fmt(provisioning.operatorCpuSecondsPerTenant * 1000, 0)} ms / ${fmt(provisioning.operatorCpuCores, 2)}`,
        '',
      ],
      [
        `settling after all Ready${settling.settled ? '' : ' (NOT idle)'}`,
        `${fmt(settling.seconds)} s, ${total(settling.writesByBackend)} writes`,
        '',
      ],
      ['reconcile errors', String(provisioning.reconcileErrors), ''],
      [
        'operator RSS idle / peak / steady',
        `${fmt(operatorSummary.idleRssMiB)} / ${fmt(operatorSummary.peakRssMiB)} / ${fmt(operatorSummary.steadyRssMiB)}`,
        'MiB',
      ],
      [`steady-state writes (${fmt(steady.seconds, 0)} s)`, fmt(steady.writesPerMinute), 'writes/min'],
      ['steady-state API requests', fmt(steady.apiRequestsPerMinute), 'req/min'],
      ['deletion of all tenants', `${fmt(deletion.seconds)} (${fmt(deletion.tenantsPerSecond, 2)}/s)`, 's'],
      ...limits.map((l) => [`raw limit: ${l.path} — ${l.unit}`, fmt(l.tenantsPerSecond, 2), 'tenants/s']),
      ...diagnostics.map((l) => [`${l.path}: ${l.unit}`, fmt(l.tenantsPerSecond, 2), 'tenants/s']),
      [`ratio operator / slowest (${slowest.path})`, fmt(ratio, 2), '(target ≥ 0.5)'],
    ];
    console.log('\n' + table(['operator benchmark', 'value', 'unit'], rows) + '\n');
    const la = (report.machine as { loadavg: Record<string, number[]> }).loadavg;
    console.log(
      `machine: ${os.cpus().length} cores; 1-min load average at start ${fmt(la.start?.[0], 2)}, after provisioning ${fmt(la.provisioned?.[0], 2)}, after the raw limits ${fmt(la.rawLimits?.[0], 2)}`,
    );
    console.log('operator API requests per tenant, by verb:');
    for (const [k, v] of Object.entries(provisioning.operatorRequestsByVerb))
      console.log(`  ${k.padEnd(40)} ${fmt(v / N, 2)}`);
    console.log(
      `writes per tenant by backend: ${JSON.stringify(Object.fromEntries(Object.entries(provisioning.writesPerTenant).map(([k, v]) => [k, Number(v.toFixed(2))])))}`,
    );
    if (Object.keys(steadyWrites).length > 0)
      console.log(`steady-state writes by backend: ${JSON.stringify(steadyWrites)}`);
    console.log(`steady-state API requests: ${JSON.stringify(steadyRequests)}`);
  } catch (err) {
    failure = err;
    console.error(`\n[bench:operator] FAILED: ${err instanceof Error ? err.message : String(err)}`);
    if (res.op) console.error(`[bench:operator] operator log: ${res.op.logFile}`);
  } finally {
    clearTimeout(budgetTimer);
  }
  return cleanUpAndReport({ log, cleanup: () => cleanup(res), report, failure, file: reportFile });
}

// A hard stop above everything: the budget, then the cleanup's own budget.
setTimeout(
  () => {
    console.error(
      '[bench:operator] hard timeout (benchmark + cleanup budget exceeded): exiting; check for leftovers named *-' +
        RUN +
        '-*',
    );
    process.exit(1);
  },
  (TIMEOUT_SECONDS + CLEANUP_SECONDS + 60) * 1000,
).unref();

process.exitCode = await main();
// kafkajs and pg may keep sockets briefly; don't wait for them.
process.exit(process.exitCode);
