/**
 * `node bench/agent/run.ts` (or `bash bench/run.sh agent`) — the agent benchmark (docs/benchmarks.md).
 *
 *   1. provisions one dental tenant the operator's way (the agent's test fixture: scratch
 *      platform database, NOINHERIT login role, NOLOGIN tenant role + migrated schema, wrapped
 *      data key, 3-partition topics, registry row with the builtin model), a catalog and a
 *      knowledge base;
 *   2. graph throughput: scripted 3-turn conversations (greeting; prices → `list_treatments`;
 *      parking → `search_faq`) through the agent's graph with the builtin model, every turn in
 *      its own `withTenant` transaction under the tenant role (session row lock, tools on the
 *      tenant's data), with
 *        - the durable checkpointer: `TenantCheckpointSaver` (Postgres, tenant schema, every
 *          value AES-256-GCM encrypted, on the turn's transaction, pruning in its write), and
 *        - the baseline in the same run: the same graph and transaction with LangGraph's
 *          in-memory `MemorySaver`,
 *      in alternating rounds; the figure is the median of the per-round ratios (durable ÷
 *      memory), the cost of durability;
 *   3. end to end through Kafka: the agent as BENCH_AGENT_REPLICAS child processes (`node
 *      services/agent/src/main.ts`, pool mode, its defaults, one consumer group — as the chart
 *      ships it: 2 replicas sharing the tenant's inbound partitions), measured once every replica
 *      is in the group (its description: Stable, each replica's partitions) and has answered a
 *      warm-up turn; BENCH_AGENT_CONVERSATIONS conversations at once, each sending
 *      its next message (stored like the API does, then produced to the inbound topic) when
 *      the reply to the previous one arrived plus a think time; latency = first
 *      `io.simptu.agent.token` event consumed − the inbound record produced, split at the token
 *      event's CloudEvents `time` (set by the agent when it emits it; same machine, same clock)
 *      into the agent's side and Kafka delivery; the agents' CPU (user/system, summed over the
 *      replicas) per turn, each replica's RSS and turns (by the inbound record's partition and
 *      the group's assignment; fewer partitions than replicas, or an uneven split, is reported);
 *   4. prints a table, writes bench/results/agent-<timestamp>.json, removes everything.
 *
 * Environment: DATABASE_URL, REDIS_URL, KAFKA_BROKERS (the test environment), and
 *   BENCH_AGENT_ROUNDS              graph rounds per side @default 5
 *   BENCH_AGENT_ROUND_SECONDS       length of a graph round @default 4
 *   BENCH_AGENT_GRAPH_CONCURRENCY   conversations in flight in the graph phase @default 4
 *   BENCH_AGENT_REPLICAS            agent processes (one consumer group) in the Kafka phase @default 2
 *                                   (the chart's agent replicas, the HPA minimum)
 *   BENCH_AGENT_CONVERSATIONS       concurrent conversations through Kafka @default 50
 *   BENCH_AGENT_TURNS               messages per conversation through Kafka @default 16 (800 turns:
 *                                   the p99 is the 8th slowest, not the 4th of 400)
 *   BENCH_AGENT_REPEATS             the measurement repeated with the same agents @default 3: the
 *                                   p99 of one 800-turn run swings by 2× between runs on a shared
 *                                   2-core machine; the figure is over all repetitions, each one's
 *                                   p99 is printed too
 *   BENCH_AGENT_WARMUP              passes of the same load before measuring, reported (p99) but not
 *                                   counted @default 1: the first minute after the replicas start
 *                                   (V8 still compiling the hot paths, heaps and Kafka's new
 *                                   partitions settling) is consistently slower than the steady
 *                                   state the target is about
 *   BENCH_AGENT_THINK_MS            pause between a reply and the next message @default 1000
 *   BENCH_AGENT_THINK_DIST          fixed | exponential (mean THINK_MS) @default fixed
 *   BENCH_AGENT_SEED                seed of the exponential think times @default 1
 *   BENCH_AGENT_TOKEN_WINDOW_MS     the agent's SIMPTU_AGENT_TOKEN_WINDOW_MS @default 50 (its default)
 *   BENCH_AGENT_PARTITIONS_CONCURRENTLY  the agent's SIMPTU_AGENT_KAFKA_PARTITIONS_CONCURRENTLY @default 4
 *   BENCH_AGENT_CONCURRENT_RUNS     the agent's SIMPTU_AGENT_CONCURRENT_RUNS @default 8 (its default)
 *   BENCH_AGENT_DB_POOL_MAX         the agent's SIMPTU_AGENT_DATABASE_POOL_MAX (runs are capped at
 *                                   it − 2) @default unset (its default, 10)
 *   BENCH_AGENT_OUTBOX_DIRECT       the agent's SIMPTU_AGENT_OUTBOX_DIRECT (false: replies through
 *                                   relay passes, as before session 6) @default unset (its default, true)
 *   BENCH_ONLY                      comma list of graph,kafka @default both
 *   BENCH_AGENT_PROFILE             1: run the child agent with --cpu-prof (bench/results/)
 *   BENCH_AGENT_TRACE               1: the agents record per-turn stage times (SIMPTU_AGENT_TURN_TRACE,
 *                                   services/agent/src/turn-trace.ts); the report adds where the
 *                                   measured turns spent their time up to the first token, and the
 *                                   slowest ones stage by stage
 *   BENCH_AGENT_TRACE_DUMP          with BENCH_AGENT_TRACE=1: a file to write the measured turns'
 *                                   stage times to (JSON), e.g. to see when the slow ones happened
 *   BENCH_AGENT_NODE_ARGS           extra node options for the child agent (space-separated)
 *   BENCH_AGENT_MAIN                the child agent's entry point (A/B runs against another copy)
 *                                   @default services/agent/src/main.ts
 *   BENCH_TIMEOUT_SECONDS           budget before cleanup @default 420
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HumanMessage } from '@langchain/core/messages';
import { MemorySaver, type BaseCheckpointSaver } from '@langchain/langgraph';
import kafkajs from 'kafkajs';
import pg from 'pg';
import {
  appendMessage,
  createCustomer,
  createSession,
  EventProducer,
  fromKafkaRecord,
  getSession,
  messageBodyLocation,
  newCloudEvent,
  tenantTopics,
  withTenant,
} from '@simptu/common';
import { Mutex, TenantCheckpointSaver, DEFAULT_RETENTION } from '../../services/agent/src/checkpoint.ts';
import { buildAgentGraph } from '../../services/agent/src/graph.ts';
import { BuiltinChatModel } from '../../services/agent/src/model/builtin.ts';
import { allowedTools } from '../../services/agent/src/tools/index.ts';
import type { TenantContext } from '../../services/agent/src/tools/types.ts';
import {
  createTestPlatform,
  provisionTenant,
  uniqueTenantName,
  type TestPlatform,
  type TestTenant,
} from '../../services/agent/test/fixture.ts';
import { seedCatalog } from '../../services/agent/test/support.ts';
import { fmt, percentile, readRss, sleep, table } from '../operator/lib.ts';
import { describeAgentGroup, sameAssignment, waitForGroup, type GroupView } from './replicas.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const env = process.env;
const int = (name: string, d: number) => {
  const v = env[name];
  const n = v === undefined || v === '' ? d : Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`bench:agent: invalid integer ${name}=${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};
const ROUNDS = Math.max(1, int('BENCH_AGENT_ROUNDS', 5));
const ROUND_SECONDS = Math.max(1, int('BENCH_AGENT_ROUND_SECONDS', 4));
const GRAPH_CONCURRENCY = Math.max(1, int('BENCH_AGENT_GRAPH_CONCURRENCY', 4));
const REPLICAS = Math.max(1, int('BENCH_AGENT_REPLICAS', 2));
const CONVERSATIONS = Math.max(1, int('BENCH_AGENT_CONVERSATIONS', 50));
const TURNS = Math.max(1, int('BENCH_AGENT_TURNS', 16));
const REPEATS = Math.max(1, int('BENCH_AGENT_REPEATS', 3));
const WARMUP = int('BENCH_AGENT_WARMUP', 1);
const THINK_MS = int('BENCH_AGENT_THINK_MS', 1000);
const THINK_DIST = env.BENCH_AGENT_THINK_DIST || 'fixed';
if (THINK_DIST !== 'exponential' && THINK_DIST !== 'fixed') {
  console.error(
    `bench:agent: BENCH_AGENT_THINK_DIST must be exponential or fixed, not ${JSON.stringify(THINK_DIST)}`,
  );
  process.exit(2);
}
const TOKEN_WINDOW_MS = int('BENCH_AGENT_TOKEN_WINDOW_MS', 50);
const PARTITIONS_CONCURRENTLY = Math.max(1, int('BENCH_AGENT_PARTITIONS_CONCURRENTLY', 4));
const CONCURRENT_RUNS = Math.max(1, int('BENCH_AGENT_CONCURRENT_RUNS', 8));
const TIMEOUT_SECONDS = int('BENCH_TIMEOUT_SECONDS', 420);
const ONLY = new Set((env.BENCH_ONLY ?? 'graph,kafka').split(',').map((s) => s.trim()));
const PROFILE = env.BENCH_AGENT_PROFILE === '1';
const TRACE = env.BENCH_AGENT_TRACE === '1';
const NODE_ARGS = (env.BENCH_AGENT_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const AGENT_MAIN = env.BENCH_AGENT_MAIN || 'services/agent/src/main.ts';
const TZ = 'Europe/Bucharest';
const SCRIPT = ['Hello!', 'What are your prices?', 'Is there parking near you?'];
/** The Kafka phase cycles through these; which of them use a tool is reported separately. */
const KAFKA_SCRIPT: Array<{ text: string; tool: boolean }> = [
  { text: 'Hello!', tool: false },
  { text: 'What are your prices?', tool: true },
  { text: 'Is there parking near you?', tool: true },
  { text: 'Thank you!', tool: false },
];

const log = (msg: string) => console.log(`bench:agent: ${msg}`);
/** mulberry32: a small seeded PRNG, so runs draw the same think times */
const random = (() => {
  let a = int('BENCH_AGENT_SEED', 1) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
})();
/**
 * A conversation's pause before its next message. `exponential` (mean THINK_MS; the textbook
 * closed workload: each customer's next message is memoryless, arrivals as a whole are
 * Poisson-like) or `fixed`. A fixed pause keeps conversations whose replies arrived together
 * (one relay batch, one fetch) in lockstep for the whole run: they send together again one
 * pause later, and the bursts feed themselves — a pattern of the benchmark, not of customers.
 */
const thinkTime = () => (THINK_DIST === 'fixed' ? THINK_MS : Math.round(-THINK_MS * Math.log(1 - random())));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** user and system CPU seconds of a process (/proc/<pid>/stat utime, stime) */
function readCpu(pid: number): { user: number; system: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
  } catch {
    return undefined;
  }
}
/**
 * user + system CPU seconds of the PostgreSQL backends connected to `database` (their process
 * titles read `postgres: <user> <database> …`): the database work the turns cause, apart from
 * other databases' on the same server.
 */
function readDbBackendsCpu(database: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.startsWith('postgres: ') || cmd.split(/\s+/)[2] !== database) continue;
      const cpu = readCpu(Number(pid));
      if (cpu) out.set(Number(pid), cpu.user + cpu.system);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
/** CPU seconds the backends spent between two readings (backends that started meanwhile: all of theirs) */
function backendsCpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let s = 0;
  for (const [pid, v] of after) s += v - (before.get(pid) ?? 0);
  return s;
}
/** busy and total CPU ticks of the whole machine (/proc/stat, all cores) */
function readMachineCpu(): { busy: number; total: number } | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, x) => a + x, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}
function summary(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? NaN,
  };
}

// ---------------------------------------------------------------------------------------------
// Graph throughput: durable vs in-memory checkpointer

interface GraphSide {
  name: 'postgres' | 'memory';
  conversations: number;
  turns: number;
  seconds: number;
  turnMs: number[];
  cpuSeconds: number;
}

async function graphTurn(
  pool: pg.Pool,
  t: TestTenant,
  tenant: TenantContext,
  sessionId: string,
  text: string,
  durable: boolean,
  memory: MemorySaver,
): Promise<void> {
  const cipher = await t.cipher();
  await withTenant(pool, t.ref, async (client) => {
    const ctx = { client, cipher, timeZone: TZ };
    // What the runtime does per inbound message (runtime.ts #handle/runTurn), minus Kafka.
    await client.query('SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE', [sessionId]);
    const session = await getSession(ctx, sessionId);
    const lock = new Mutex();
    const inboundId = randomUUID();
    const checkpointer: BaseCheckpointSaver = durable
      ? new TenantCheckpointSaver(client, lock, t.ref.schema, cipher, sessionId, DEFAULT_RETENTION)
      : memory;
    const graph = buildAgentGraph({
      model: new BuiltinChatModel({}),
      tools: allowedTools('dental'),
      policy: {},
      tenant,
      session: { id: session.id, customerId: session.customerId, channel: session.channel },
      inboundId,
      untrusted: false,
      db: (fn) => lock.run(() => fn(ctx)),
      now: () => new Date(),
      hooks: { onToken: () => undefined, onToolCall: () => undefined, onToolResult: () => undefined },
      checkpointer,
    });
    await client.query('SAVEPOINT agent_run');
    const out = await graph.invoke(
      {
        messages: [new HumanMessage({ content: text, id: inboundId })],
        context: {
          tenant: t.name,
          businessType: 'dental',
          customerId: session.customerId,
          channel: session.channel,
          state: session.state,
        },
        inboundId,
        handoffReason: null,
        modelCalls: 0,
      },
      { configurable: { thread_id: sessionId }, durability: 'exit', recursionLimit: 30 },
    );
    if (out.messages.length < 2) throw new Error('graph produced no answer');
    // (pruning: the durable saver's retention, in its checkpoint write, as in the runtime)
    // (like the runtime, the savepoint is not released: COMMIT ends it)
  });
}

async function graphRound(
  side: 'postgres' | 'memory',
  seconds: number,
  next: () => string,
  turn: (sessionId: string, text: string, durable: boolean) => Promise<void>,
): Promise<GraphSide> {
  const turnMs: number[] = [];
  let conversations = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  const worker = async () => {
    while (performance.now() < until) {
      const sessionId = next();
      for (const text of SCRIPT) {
        const s = performance.now();
        await turn(sessionId, text, side === 'postgres');
        turnMs.push(performance.now() - s);
      }
      conversations++;
    }
  };
  await Promise.all(Array.from({ length: GRAPH_CONCURRENCY }, worker));
  const cpu = process.cpuUsage(cpu0);
  return {
    name: side,
    conversations,
    turns: turnMs.length,
    seconds: (performance.now() - t0) / 1000,
    turnMs,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

// ---------------------------------------------------------------------------------------------
// End to end through Kafka

interface ReplicaFigures {
  clientId: string;
  /** the inbound topic's partitions the replica held while measuring */
  partitions: number[];
  turns: number;
  cpuSeconds: number;
  rssMiB: number | undefined;
}

interface KafkaFigures {
  conversations: number;
  turns: number;
  seconds: number;
  firstTokenMs: number[];
  /** each repetition's first-token p99 */
  repetitionP99Ms: number[];
  /** each warm-up pass's first-token p99 (not counted) */
  warmupP99Ms: number[];
  firstTokenToolMs: number[];
  firstTokenPlainMs: number[];
  replyMs: number[];
  /** produce → the first token event's `time` (the agent's side) */
  agentSideMs: number[];
  /** the first token event's `time` → consumed (producer, broker, consumer) */
  deliveryMs: number[];
  agentCpuSeconds: number;
  agentCpuUserSeconds: number;
  agentCpuSystemSeconds: number;
  /** the sum over the replicas */
  agentRssMiB: number | undefined;
  replicas: ReplicaFigures[];
  /** partitions of the tenant's inbound topic */
  inboundPartitions: number;
  /** the group's assignment changed while measuring (the per-replica turns are then approximate) */
  rebalanced: boolean;
  /** CPU of the PostgreSQL backends of the benchmark's database (the agent's and the benchmark's) */
  dbCpuSeconds: number;
  /** BENCH_AGENT_TRACE: the measured turns' stages (turn-trace.ts) */
  trace?: TraceFigures;
  /** cores busy on the whole machine while measuring (everything: agent, PostgreSQL, Kafka, this process, others) */
  machineBusyCores: number | undefined;
}

async function main(): Promise<void> {
  const run = randomBytes(3).toString('hex');
  const report: Record<string, unknown> = {
    benchmark: 'agent',
    startedAt: new Date().toISOString(),
    settings: {
      rounds: ROUNDS,
      roundSeconds: ROUND_SECONDS,
      graphConcurrency: GRAPH_CONCURRENCY,
      replicas: REPLICAS,
      conversations: CONVERSATIONS,
      turns: TURNS,
      thinkMs: THINK_MS,
      thinkDistribution: THINK_DIST,
      repeats: REPEATS,
      warmup: WARMUP,
      tokenWindowMs: TOKEN_WINDOW_MS,
      partitionsConcurrently: PARTITIONS_CONCURRENTLY,
      concurrentRuns: CONCURRENT_RUNS,
      partitions: 3,
      only: [...ONLY],
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
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of cleanups.reverse())
      await c().catch((err: unknown) => console.error('bench:agent: cleanup:', err));
  };
  const budget = setTimeout(() => {
    console.error(`bench:agent: out of time after ${TIMEOUT_SECONDS} s (BENCH_TIMEOUT_SECONDS); cleaning up`);
    void cleanup().finally(() => process.exit(1));
  }, TIMEOUT_SECONDS * 1000);
  // Interrupted (Ctrl-C, or `kill` from a script): clean up too — the agent replicas are child
  // processes that would otherwise run on, orphaned, and load the next measurement.
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)
    process.once(signal, () => void cleanup().finally(() => process.exit(code)));

  const rows: string[][] = [];
  let failed: unknown;
  try {
    log('provisioning a tenant (scratch platform database, tenant schema/role/key, topics, registry row)');
    const platform: TestPlatform = await createTestPlatform();
    cleanups.push(() => platform.close());
    const t = await provisionTenant(platform, uniqueTenantName('bench-ag'), {
      businessType: 'dental',
      timezone: TZ,
      displayName: 'Bench Dental',
    });
    cleanups.push(() => t.deprovision());
    await seedCatalog(t, {
      kind: 'treatment',
      services: [
        { name: 'Cleaning', durationMinutes: 30, priceCents: 20000 },
        { name: 'Whitening', durationMinutes: 60, priceCents: 90000 },
      ],
      resource: { kind: 'chair', name: 'Chair 1' },
    });
    await t.adminQuery(
      `INSERT INTO ${t.table('knowledge_base')} (question, answer, keywords) VALUES
         ('Do you have parking?', 'Yes, free parking behind the clinic.', '{parking,car}'),
         ('When are you open?', 'Every day 08:00-20:00.', '{hours,open}')`,
    );
    const tenant: TenantContext = {
      name: t.name,
      displayName: 'Bench Dental',
      businessType: 'dental',
      locale: 'en-US',
      timeZone: TZ,
    };
    // The agent's own pool size default (SIMPTU_AGENT_DATABASE_POOL_MAX = 10).
    const pool = new pg.Pool({ connectionString: platform.appUrl, max: 10 });
    pool.on('error', () => undefined);
    cleanups.push(() => pool.end());
    loadavg.provisioned = os.loadavg();

    if (ONLY.has('graph')) {
      // Fresh sessions for every conversation, made up front so both sides pay the same.
      // (One set-based INSERT as the tenant role: createSession one by one would take minutes.)
      const estimate = ROUNDS * 2 * ROUND_SECONDS * 500 + 200;
      log(`creating ${estimate} sessions`);
      const sessions = await t.run(async (ctx) => {
        const c = await createCustomer(ctx, { displayName: 'Bench', phone: '+40712345678' });
        const { rows } = await ctx.client.query<{ id: string }>(
          `INSERT INTO sessions (id, customer_id, channel) SELECT gen_random_uuid(), $1, 'web' FROM generate_series(1, $2) RETURNING id`,
          [c.id, estimate],
        );
        return rows.map((r) => r.id);
      });
      let cursor = 0;
      const next = () => {
        const id = sessions[cursor++];
        if (!id) throw new Error('out of pre-created sessions: raise the estimate');
        return id;
      };
      const memory = new MemorySaver();
      const turn = (sessionId: string, text: string, durable: boolean) =>
        graphTurn(pool, t, tenant, sessionId, text, durable, memory);
      log('graph warm-up');
      for (const durable of [true, false])
        for (let i = 0; i < 3; i++) for (const text of SCRIPT) await turn(next(), text, durable);

      const sides: GraphSide[] = [];
      const ratios: number[] = [];
      const cpuRatios: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const order: Array<'postgres' | 'memory'> =
          r % 2 === 0 ? ['postgres', 'memory'] : ['memory', 'postgres'];
        const got: Partial<Record<'postgres' | 'memory', GraphSide>> = {};
        for (const side of order) got[side] = await graphRound(side, ROUND_SECONDS, next, turn);
        const p = got.postgres!;
        const m = got.memory!;
        ratios.push(p.conversations / p.seconds / (m.conversations / m.seconds));
        cpuRatios.push(p.conversations / p.cpuSeconds / (m.conversations / m.cpuSeconds));
        sides.push(p, m);
        log(
          `round ${r + 1}/${ROUNDS}: postgres ${fmt(p.conversations / p.seconds)} conv/s, memory ${fmt(m.conversations / m.seconds)} conv/s, ratio ${fmt(ratios[ratios.length - 1], 2)}`,
        );
      }
      const agg = (name: 'postgres' | 'memory') => {
        const s = sides.filter((x) => x.name === name);
        const conv = s.reduce((a, x) => a + x.conversations, 0);
        const secs = s.reduce((a, x) => a + x.seconds, 0);
        const cpu = s.reduce((a, x) => a + x.cpuSeconds, 0);
        return {
          conversations: conv,
          conversationsPerSecond: conv / secs,
          medianRoundConversationsPerSecond: median(s.map((x) => x.conversations / x.seconds)),
          turnsPerSecond: s.reduce((a, x) => a + x.turns, 0) / secs,
          cpuMsPerConversation: (cpu * 1000) / conv,
          turnLatencyMs: summary(s.flatMap((x) => x.turnMs)),
        };
      };
      const pg_ = agg('postgres');
      const mem = agg('memory');
      const ratio = median(ratios);
      const checkpointRows = await t.adminQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${t.table('checkpoints')}`,
      );
      report.graph = {
        postgres: pg_,
        memory: mem,
        ratio,
        roundRatios: ratios,
        cpuRatio: median(cpuRatios),
        target: 0.5,
        met: ratio >= 0.5,
        checkpointsInSchema: checkpointRows.rows[0]!.n,
      };
      rows.push(
        ['graph, Postgres checkpointer (conv/s, median round)', fmt(pg_.medianRoundConversationsPerSecond)],
        ['graph, MemorySaver (conv/s, median round)', fmt(mem.medianRoundConversationsPerSecond)],
        ['turn p50 / p99, Postgres (ms)', `${fmt(pg_.turnLatencyMs.p50)} / ${fmt(pg_.turnLatencyMs.p99)}`],
        ['turn p50 / p99, MemorySaver (ms)', `${fmt(mem.turnLatencyMs.p50)} / ${fmt(mem.turnLatencyMs.p99)}`],
        [
          'CPU per conversation, Postgres / memory (ms)',
          `${fmt(pg_.cpuMsPerConversation)} / ${fmt(mem.cpuMsPerConversation)}`,
        ],
        [
          `ratio durable / memory (median of ${ROUNDS}; target >= 0.5)`,
          `${fmt(ratio, 2)} ${ratio >= 0.5 ? 'met' : 'NOT met'} (${ratios.map((x) => fmt(x, 2)).join(', ')})`,
        ],
        ['ratio per CPU-second (median)', fmt(median(cpuRatios), 2)],
      );
      loadavg.graph = os.loadavg();
    }

    if (ONLY.has('kafka')) {
      const k = await kafkaPhase(platform, t, pool, run, cleanups);
      report.kafka = {
        ...k,
        firstTokenMs: summary(k.firstTokenMs),
        firstTokenToolMs: summary(k.firstTokenToolMs),
        firstTokenPlainMs: summary(k.firstTokenPlainMs),
        replyMs: summary(k.replyMs),
        agentSideMs: summary(k.agentSideMs),
        deliveryMs: summary(k.deliveryMs),
        turnsPerSecond: k.turns / k.seconds,
        agentCpuMsPerTurn: (k.agentCpuSeconds * 1000) / k.turns,
        agentCpuUserMsPerTurn: (k.agentCpuUserSeconds * 1000) / k.turns,
        agentCpuSystemMsPerTurn: (k.agentCpuSystemSeconds * 1000) / k.turns,
        dbCpuMsPerTurn: (k.dbCpuSeconds * 1000) / k.turns,
        target: { p99Ms: 100 },
      };
      const ft = summary(k.firstTokenMs);
      rows.push(
        [
          `Kafka: ${CONVERSATIONS} conversations x ${TURNS} messages${REPEATS > 1 ? ` x ${REPEATS} repetitions` : ''}, think ${THINK_DIST === 'fixed' ? '' : 'mean '}${THINK_MS} ms${REPLICAS > 1 ? `, ${REPLICAS} agent replicas` : ''}${env.BENCH_AGENT_OUTBOX_DIRECT === 'false' ? ', replies via relay passes' : ''}`,
          `${k.turns} turns in ${fmt(k.seconds)} s (${fmt(k.turns / k.seconds)}/s)`,
        ],
        [
          'first token p50 / p90 / p99 / max (ms; target p99 < 100)',
          `${fmt(ft.p50)} / ${fmt(ft.p90)} / ${fmt(ft.p99)} / ${fmt(ft.max)} ${ft.p99 < 100 ? 'met' : 'NOT met'}`,
        ],
        ...(REPEATS > 1
          ? [['  p99 of each repetition (ms)', k.repetitionP99Ms.map((x) => fmt(x)).join(', ')]]
          : []),
        ...(k.warmupP99Ms.length > 0
          ? [['  p99 of the warm-up (not counted; ms)', k.warmupP99Ms.map((x) => fmt(x)).join(', ')]]
          : []),
        [
          '  without a tool p50 / p99 (ms)',
          `${fmt(summary(k.firstTokenPlainMs).p50)} / ${fmt(summary(k.firstTokenPlainMs).p99)}`,
        ],
        [
          '  with one tool p50 / p99 (ms)',
          `${fmt(summary(k.firstTokenToolMs).p50)} / ${fmt(summary(k.firstTokenToolMs).p99)}`,
        ],
        [
          '  produce → token emitted by the agent p50 / p99 (ms)',
          `${fmt(summary(k.agentSideMs).p50)} / ${fmt(summary(k.agentSideMs).p99)}`,
        ],
        [
          '  token emitted → consumed p50 / p99 (ms)',
          `${fmt(summary(k.deliveryMs).p50)} / ${fmt(summary(k.deliveryMs).p99)}`,
        ],
        [
          'final reply (outbox) p50 / p99 (ms)',
          `${fmt(summary(k.replyMs).p50)} / ${fmt(summary(k.replyMs).p99)}`,
        ],
        [
          `machine CPU busy while measuring (cores of ${os.cpus().length}; everything)`,
          fmt(k.machineBusyCores, 2),
        ],
        [
          REPLICAS === 1
            ? 'agent CPU per turn, user + system (ms) / RSS (MiB)'
            : `agent CPU per turn, sum of ${REPLICAS} replicas, user + system (ms) / RSS per replica (MiB)`,
          `${fmt((k.agentCpuSeconds * 1000) / k.turns)} (${fmt((k.agentCpuUserSeconds * 1000) / k.turns)} + ${fmt((k.agentCpuSystemSeconds * 1000) / k.turns)}) / ${k.replicas.map((r) => fmt(r.rssMiB, 0)).join(', ')}`,
        ],
        ...(REPLICAS === 1
          ? []
          : k.replicas.map((r, i) => [
              `  replica ${i} (inbound partitions ${r.partitions.join(',') || 'none'}): turns / CPU`,
              `${r.turns} (${fmt((100 * r.turns) / k.turns, 0)} %) / ${fmt(r.cpuSeconds, 2)} s`,
            ])),
        ...(REPLICAS > 1 && k.inboundPartitions % REPLICAS !== 0
          ? [
              [
                `  NOTE: the tenant's inbound topic has ${k.inboundPartitions} partitions for ${REPLICAS} replicas`,
                k.inboundPartitions < REPLICAS
                  ? `${REPLICAS - k.inboundPartitions} replica(s) idle`
                  : `uneven split at best (${Math.ceil(k.inboundPartitions / REPLICAS)}:${Math.floor(k.inboundPartitions / REPLICAS)} partitions)`,
              ],
            ]
          : []),
        ...(k.rebalanced
          ? [['  WARNING: the consumer group rebalanced while measuring', 'per-replica turns approximate']]
          : []),
        [
          "PostgreSQL backends' CPU per turn, the benchmark database's (ms; agent + benchmark)",
          fmt((k.dbCpuSeconds * 1000) / k.turns),
        ],
        ...(k.trace
          ? [
              [
                `turn trace: ${k.trace.turns} turns, produced → first token p50 / p90 / p99 / max (ms)`,
                `${fmt(k.trace.total.p50)} / ${fmt(k.trace.total.p90)} / ${fmt(k.trace.total.p99)} / ${fmt(k.trace.total.max)}`,
              ],
              ...k.trace.steps.map((s) => [
                `  ${s.name}`,
                `${fmt(s.p50)} / ${fmt(s.p90)} / ${fmt(s.p99)} / ${fmt(s.max)}`,
              ]),
              ...k.trace.slowest.map((x) => [
                `  slow turn on replica ${x.replica}: ${fmt(x.total)} ms =`,
                x.steps
                  .slice(0, 4)
                  .map((v) => fmt(v))
                  .join(' + '),
              ]),
            ]
          : []),
      );
      loadavg.kafka = os.loadavg();
    }
  } catch (err) {
    failed = err;
  } finally {
    loadavg.end = os.loadavg();
    await cleanup();
    clearTimeout(budget);
  }
  report.finishedAt = new Date().toISOString();
  if (failed) report.error = failed instanceof Error ? (failed.stack ?? failed.message) : String(failed);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const file = join(ROOT, 'bench/results', `agent-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  rows.push([
    'load average start → end (1 min)',
    `${fmt(loadavg.start![0], 2)} → ${fmt(loadavg.end![0], 2)}`,
  ]);
  console.log(table(['figure', 'value'], rows));
  console.log(`bench:agent: wrote ${file}`);
  if (failed) {
    console.error(`bench:agent: failed: ${failed instanceof Error ? failed.message : String(failed)}`);
    process.exit(1);
  }
  process.exit(0);
}

async function kafkaPhase(
  platform: TestPlatform,
  t: TestTenant,
  pool: pg.Pool,
  run: string,
  cleanups: Array<() => Promise<unknown>>,
): Promise<KafkaFigures> {
  const brokers = (env.KAFKA_BROKERS ?? '').split(',');
  const kafka = new kafkajs.Kafka({
    clientId: `bench-agent-${run}`,
    brokers,
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const topics = tenantTopics(t.name);
  const groupId = `bench-agent-${run}`;
  const admin = kafka.admin();
  await admin.connect();
  cleanups.push(async () => {
    const groups = (await admin.listGroups()).groups
      .map((g) => g.groupId)
      .filter((g) => g.startsWith(groupId));
    if (groups.length) await admin.deleteGroups(groups).catch(() => undefined);
    await admin.disconnect();
  });

  // The watcher: what the API's agent-stream consumer would see.
  const firstToken = new Map<string, number>();
  /** run id → [token event time (agent clock, ms since epoch), consumed (Date.now())] */
  const firstTokenWall = new Map<string, [number, number]>();
  const replyAt = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const watcher = kafka.consumer({ groupId: `${groupId}-watch`, maxWaitTimeInMs: 100 });
  await watcher.connect();
  cleanups.push(() => watcher.disconnect());
  await watcher.subscribe({ topics: [topics.agent], fromBeginning: true });
  let watcherJoined = false;
  watcher.on(watcher.events.GROUP_JOIN, () => (watcherJoined = true));
  await watcher.run({
    partitionsConsumedConcurrently: 3,
    eachMessage: async ({ message }) => {
      const now = performance.now();
      const d = fromKafkaRecord(message);
      if (!d.ok) return;
      const data = d.event.data as { run_id?: string; in_reply_to?: string };
      if (d.event.type === 'io.simptu.agent.token' && data.run_id && !firstToken.has(data.run_id)) {
        firstToken.set(data.run_id, now);
        firstTokenWall.set(data.run_id, [Date.parse(d.event.time), Date.now()]);
      }
      if (d.event.type === 'io.simptu.agent.message' && data.in_reply_to) {
        replyAt.set(data.in_reply_to, now);
        waiters.get(data.in_reply_to)?.();
      }
    },
  });
  for (let i = 0; i < 300 && !watcherJoined; i++) await sleep(100);

  // The agent, as deployed: REPLICAS child processes with its defaults, one consumer group.
  const resultsDir = join(ROOT, 'bench/results');
  // One replica keeps the agent's default client id; several get one each (told apart in the group).
  const clientIds = Array.from({ length: REPLICAS }, (_, i) =>
    REPLICAS === 1 ? 'simptu-agent' : `bench-agent-${run}-r${i}`,
  );
  const traceFiles = clientIds.map((_, i) => join(resultsDir, `agent-trace-${run}-r${i}.json`));
  const children = clientIds.map((clientId, i) => {
    const child: ChildProcess = spawn(
      process.execPath,
      [
        ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${resultsDir}`] : []),
        ...NODE_ARGS,
        resolve(ROOT, AGENT_MAIN),
      ],
      {
        cwd: ROOT,
        env: {
          PATH: env.PATH ?? '',
          SIMPTU_AGENT_DATABASE_URL: platform.appUrl,
          SIMPTU_AGENT_REDIS_URL: env.REDIS_URL ?? '',
          SIMPTU_AGENT_REDIS_PREFIX: `bench:agent:${run}:`,
          SIMPTU_AGENT_KAFKA_BROKERS: env.KAFKA_BROKERS ?? '',
          ...(REPLICAS > 1 ? { SIMPTU_AGENT_KAFKA_CLIENT_ID: clientId } : {}),
          SIMPTU_AGENT_KEK: platform.kekBase64,
          SIMPTU_AGENT_GROUP_ID: groupId,
          SIMPTU_AGENT_METRICS_PORT: '0',
          SIMPTU_AGENT_LOG_LEVEL: env.SIMPTU_LOG_LEVEL ?? 'warn',
          ...(TRACE ? { SIMPTU_AGENT_TURN_TRACE: traceFiles[i]! } : {}),
          SIMPTU_AGENT_TOKEN_WINDOW_MS: String(TOKEN_WINDOW_MS),
          SIMPTU_AGENT_KAFKA_PARTITIONS_CONCURRENTLY: String(PARTITIONS_CONCURRENTLY),
          SIMPTU_AGENT_CONCURRENT_RUNS: String(CONCURRENT_RUNS),
          ...(env.BENCH_AGENT_OUTBOX_DIRECT
            ? { SIMPTU_AGENT_OUTBOX_DIRECT: env.BENCH_AGENT_OUTBOX_DIRECT }
            : {}),
          ...(env.BENCH_AGENT_DB_POOL_MAX
            ? { SIMPTU_AGENT_DATABASE_POOL_MAX: env.BENCH_AGENT_DB_POOL_MAX }
            : {}),
        },
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    return { clientId, child, exited };
  });
  // Every replica is stopped (in parallel), whatever happened.
  cleanups.push(() =>
    Promise.all(
      children.map(async ({ child, exited }) => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await Promise.race([exited, sleep(15_000)]);
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        }
      }),
    ),
  );
  const anyExited = Promise.race(children.map((c) => c.exited));
  const exitedOne = () => {
    const c = children.find((x) => x.child.exitCode !== null || x.child.signalCode !== null);
    return c
      ? `agent ${c.clientId} exited (code ${c.child.exitCode ?? c.child.signalCode}) before the measurement`
      : undefined;
  };

  const producer = new EventProducer({ kafka });
  await producer.connect();
  cleanups.push(() => producer.disconnect());

  const conversations = await t.run(async (ctx) => {
    const out: string[] = [];
    for (let i = 0; i < CONVERSATIONS; i++) {
      const c = await createCustomer(ctx, {
        displayName: `Bench ${i}`,
        phone: `+4073${String(i).padStart(7, '0')}`,
      });
      out.push((await createSession(ctx, { customerId: c.id, channel: 'web' })).id);
    }
    return out;
  });

  /** Stores the message like the API's sessions route, then produces it; returns the produce time. */
  const cipher = await t.cipher();
  const say = async (
    sessionId: string,
    text: string,
  ): Promise<{ id: string; sentAt: number; sentAtWall: number; partition: number | undefined }> => {
    const ev = await withTenant(pool, t.ref, async (client) => {
      const ctx = { client, cipher, timeZone: TZ };
      const m = await appendMessage(ctx, sessionId, { role: 'user', body: text });
      return newCloudEvent({
        type: 'io.simptu.message.received',
        source: '/simptu/api',
        tenant: t.name,
        subject: sessionId,
        data: {
          session_id: sessionId,
          message_id: m.id,
          seq: m.seq,
          role: 'user',
          channel: 'web',
          body_enc: ctx.cipher.encryptText(text, messageBodyLocation(m.id)),
        },
      });
    });
    const id = (ev.data as { message_id: string }).message_id;
    const sentAt = performance.now();
    const sentAtWall = Date.now();
    const meta = await producer.forTenant(t.name).send(topics.inbound, ev, sessionId);
    return { id, sentAt, sentAtWall, partition: meta[0]?.partition };
  };
  const waitReply = (id: string, timeoutMs: number) =>
    new Promise<boolean>((resolveWait) => {
      if (replyAt.has(id)) return resolveWait(true);
      const timer = setTimeout(() => {
        waiters.delete(id);
        resolveWait(false);
      }, timeoutMs);
      waiters.set(id, () => {
        clearTimeout(timer);
        waiters.delete(id);
        resolveWait(true);
      });
    });

  const inboundPartitions =
    (await admin.fetchTopicMetadata({ topics: [topics.inbound] })).topics[0]?.partitions.length ?? 0;
  log(
    `waiting for ${REPLICAS} agent${REPLICAS > 1 ? 's' : ''} to join the consumer group (${inboundPartitions} inbound partitions)`,
  );
  let group = await waitForGroup(
    admin,
    groupId,
    topics.inbound,
    clientIds,
    inboundPartitions,
    120_000,
    exitedOne,
  );
  /** inbound partition → replica (client id), from the group's assignment */
  let owner = new Map<number, string>();
  const setOwners = (g: GroupView) => {
    owner = new Map([...g.members].flatMap(([c, ps]) => ps.map((p) => [p, c] as const)));
  };
  setOwners(group);
  const warmTurns = async (sessionId: string): Promise<string | undefined> => {
    let replica: string | undefined;
    for (const text of ['Hello!', 'What are your prices?', 'Is there parking near you?']) {
      const w = await say(sessionId, text);
      replica = w.partition === undefined ? undefined : owner.get(w.partition);
      const answered = await Promise.race([
        waitReply(w.id, replica === undefined ? 120_000 : 60_000),
        anyExited.then(() => 'exited' as const),
      ]);
      if (answered === 'exited') throw new Error(exitedOne() ?? 'an agent exited');
      if (!answered) throw new Error(`no warm-up reply (replica ${replica ?? '?'})`);
    }
    return replica;
  };
  // A short warm-up at low concurrency (JIT, pools), not measured: the first conversation's, and,
  // with several replicas, sessions of their own until every replica that holds a partition
  // has answered (a replica without a partition is idle, reported below).
  const warmed = new Set<string>();
  const first = await warmTurns(conversations[0]!);
  if (first) warmed.add(first);
  const holders = new Set(owner.values());
  for (let i = 0; i < 64 && [...holders].some((c) => !warmed.has(c)); i++) {
    const sessionId = await t.run(async (ctx) => {
      const c = await createCustomer(ctx, {
        displayName: `Warm ${i}`,
        phone: `+4074${String(i).padStart(7, '0')}`,
      });
      return (await createSession(ctx, { customerId: c.id, channel: 'web' })).id;
    });
    const r = await warmTurns(sessionId);
    if (r) warmed.add(r);
  }
  if ([...holders].some((c) => !warmed.has(c)))
    throw new Error(`replicas not warmed up: ${[...holders].filter((c) => !warmed.has(c)).join(', ')}`);
  // The group again: a replica that joined late would have moved partitions meanwhile.
  group = await waitForGroup(admin, groupId, topics.inbound, clientIds, inboundPartitions, 60_000, exitedOne);
  setOwners(group);
  log(`group ${group.groupId}: ${[...group.members].map(([c, ps]) => `${c} [${ps.join(',')}]`).join(', ')}`);

  log(
    `measuring: ${CONVERSATIONS} conversations x ${TURNS} messages x ${REPEATS} (after ${WARMUP} warm-up pass${WARMUP === 1 ? '' : 'es'}), think time ${THINK_DIST === 'fixed' ? '' : 'mean '}${THINK_MS} ms`,
  );
  /** one pass of every conversation: TURNS messages each; what it measured goes to `into` */
  interface Pass {
    firstTokenMs: number[];
    firstTokenToolMs: number[];
    firstTokenPlainMs: number[];
    replyMs: number[];
    agentSideMs: number[];
    deliveryMs: number[];
    /** client id → turns on the partitions it holds */
    turnsBy: Map<string, number>;
    missing: number;
    /** message text → replies that came without any token event */
    noToken: Map<string, number>;
  }
  const newPass = (): Pass => ({
    firstTokenMs: [],
    firstTokenToolMs: [],
    firstTokenPlainMs: [],
    replyMs: [],
    agentSideMs: [],
    deliveryMs: [],
    turnsBy: new Map(clientIds.map((c) => [c, 0])),
    missing: 0,
    noToken: new Map(),
  });
  const converse = (pass: number, into: Pass) =>
    Promise.all(
      conversations.map(async (sessionId, c) => {
        // Spread the starts over one think time, as real conversations don't start in lockstep.
        await sleep(Math.floor((THINK_MS * c) / CONVERSATIONS));
        for (let i = 0; i < TURNS; i++) {
          const step = KAFKA_SCRIPT[(pass * TURNS + i + c) % KAFKA_SCRIPT.length]!;
          const { id, sentAt, sentAtWall, partition } = await say(sessionId, step.text);
          const replica = partition === undefined ? undefined : owner.get(partition);
          if (replica !== undefined) into.turnsBy.set(replica, (into.turnsBy.get(replica) ?? 0) + 1);
          if (!(await waitReply(id, 60_000))) {
            into.missing++;
            continue;
          }
          const ft = firstToken.get(id);
          if (ft === undefined) into.noToken.set(step.text, (into.noToken.get(step.text) ?? 0) + 1);
          if (ft !== undefined) {
            into.firstTokenMs.push(ft - sentAt);
            (step.tool ? into.firstTokenToolMs : into.firstTokenPlainMs).push(ft - sentAt);
          }
          into.replyMs.push(replyAt.get(id)! - sentAt);
          const wall = firstTokenWall.get(id);
          if (wall) {
            into.agentSideMs.push(wall[0] - sentAtWall);
            into.deliveryMs.push(wall[1] - wall[0]);
          }
          if (THINK_MS > 0) await sleep(thinkTime());
        }
      }),
    );
  // Warm-up passes: the same load, measured and printed but not counted (see BENCH_AGENT_WARMUP).
  const warmupP99Ms: number[] = [];
  for (let w = 0; w < WARMUP; w++) {
    const pass = newPass();
    await converse(w, pass);
    warmupP99Ms.push(summary(pass.firstTokenMs).p99);
    log(`warm-up ${w + 1}/${WARMUP} (not counted): first token p99 ${fmt(warmupP99Ms[w])} ms`);
  }

  const dbName = decodeURIComponent(new URL(platform.appUrl).pathname.slice(1));
  const cpus0 = children.map(({ child }) => readCpu(child.pid!) ?? { user: 0, system: 0 });
  const db0 = readDbBackendsCpu(dbName);
  const machine0 = readMachineCpu();
  const t0 = performance.now();
  const wall0 = Date.now();
  const measured = newPass();
  const repetitionP99Ms: number[] = [];
  for (let rep = 0; rep < REPEATS; rep++) {
    const from = measured.firstTokenMs.length;
    await converse(WARMUP + rep, measured);
    repetitionP99Ms.push(summary(measured.firstTokenMs.slice(from)).p99);
    if (REPEATS > 1) log(`repetition ${rep + 1}/${REPEATS}: first token p99 ${fmt(repetitionP99Ms[rep])} ms`);
  }
  const {
    firstTokenMs,
    firstTokenToolMs,
    firstTokenPlainMs,
    replyMs,
    agentSideMs,
    deliveryMs,
    turnsBy,
    missing,
    noToken,
  } = measured;
  const seconds = (performance.now() - t0) / 1000;
  const wall1 = Date.now();
  const trace = TRACE ? await collectTrace(children, traceFiles, wall0, wall1) : undefined;
  const cpus1 = children.map(({ child }, i) => readCpu(child.pid!) ?? cpus0[i]!);
  const groupAfter = await describeAgentGroup(admin, groupId, topics.inbound).catch(() => undefined);
  const rebalanced = !sameAssignment(group, groupAfter);
  const dbCpuSeconds = backendsCpuDelta(db0, readDbBackendsCpu(dbName));
  const machine1 = readMachineCpu();
  const machineBusyCores =
    machine0 && machine1
      ? ((machine1.busy - machine0.busy) / (machine1.total - machine0.total)) * os.cpus().length
      : undefined;
  const agentCpuUserSeconds = cpus1.reduce((a, c, i) => a + c.user - cpus0[i]!.user, 0);
  const agentCpuSystemSeconds = cpus1.reduce((a, c, i) => a + c.system - cpus0[i]!.system, 0);
  const replicas: ReplicaFigures[] = children.map(({ clientId, child }, i) => ({
    clientId,
    partitions: group.members.get(clientId) ?? [],
    turns: turnsBy.get(clientId) ?? 0,
    cpuSeconds: cpus1[i]!.user - cpus0[i]!.user + cpus1[i]!.system - cpus0[i]!.system,
    rssMiB: readRss(child.pid!)?.rssMiB,
  }));
  const rss = replicas.map((r) => r.rssMiB);
  const agentRssMiB = rss.some((x) => x === undefined) ? undefined : rss.reduce<number>((a, x) => a + x!, 0);
  if (missing > 0) throw new Error(`${missing} replies missing after 60 s`);
  if (firstTokenMs.length !== CONVERSATIONS * TURNS * REPEATS)
    throw new Error(
      `token events missing: ${firstTokenMs.length} of ${CONVERSATIONS * TURNS * REPEATS} (replies without one, by message: ${JSON.stringify(Object.fromEntries(noToken))})`,
    );
  return {
    conversations: CONVERSATIONS,
    turns: CONVERSATIONS * TURNS * REPEATS,
    seconds,
    firstTokenMs,
    repetitionP99Ms,
    warmupP99Ms,
    firstTokenToolMs,
    firstTokenPlainMs,
    replyMs,
    agentSideMs,
    deliveryMs,
    agentCpuSeconds: agentCpuUserSeconds + agentCpuSystemSeconds,
    agentCpuUserSeconds,
    agentCpuSystemSeconds,
    agentRssMiB,
    replicas,
    inboundPartitions,
    rebalanced,
    dbCpuSeconds,
    machineBusyCores,
    ...(trace ? { trace } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// BENCH_AGENT_TRACE: where the measured turns spent their time (services/agent/src/turn-trace.ts)

type Stage = 'produced' | 'fetched' | 'slot' | 'ready' | 'token' | 'done';
/** consecutive stages up to the first token, and the rest of the turn */
const TRACE_STEPS: Array<{ name: string; from: Stage; to: Stage }> = [
  { name: 'Kafka to the agent (produced → fetched)', from: 'produced', to: 'fetched' },
  { name: 'waiting for a run slot (fetched → slot)', from: 'fetched', to: 'slot' },
  { name: 'connection + the query before the model (slot → ready)', from: 'slot', to: 'ready' },
  { name: 'graph to the first token (ready → token)', from: 'ready', to: 'token' },
  { name: 'rest of the turn, to COMMIT (token → done)', from: 'token', to: 'done' },
];

interface TraceFigures {
  turns: number;
  /** produced → token */
  total: ReturnType<typeof summary>;
  steps: Array<{ name: string } & ReturnType<typeof summary>>;
  /** the slowest turns (produced → token), their steps in TRACE_STEPS order (ms) */
  slowest: Array<{ replica: number; total: number; steps: number[] }>;
}

async function collectTrace(
  children: Array<{ child: ChildProcess }>,
  files: string[],
  from: number,
  to: number,
): Promise<TraceFigures | undefined> {
  const rows: Array<{ replica: number; t: Record<Stage, number> }> = [];
  for (const [i, { child }] of children.entries()) {
    rmSync(files[i]!, { force: true });
    child.kill('SIGUSR2');
    for (let n = 0; n < 100 && !existsSync(files[i]!); n++) await sleep(100);
    let parsed: Array<[string, Partial<Record<Stage, number>>]>;
    try {
      parsed = JSON.parse(readFileSync(files[i]!, 'utf8')) as typeof parsed;
    } catch {
      await sleep(300); // written but not complete yet
      parsed = JSON.parse(readFileSync(files[i]!, 'utf8')) as typeof parsed;
    }
    rmSync(files[i]!, { force: true });
    for (const [, t] of parsed)
      if (
        TRACE_STEPS.every((s) => t[s.from] !== undefined && t[s.to] !== undefined) &&
        t.produced! >= from &&
        t.produced! <= to
      )
        rows.push({ replica: i, t: t as Record<Stage, number> });
  }
  if (env.BENCH_AGENT_TRACE_DUMP) writeFileSync(env.BENCH_AGENT_TRACE_DUMP, JSON.stringify(rows));
  if (rows.length === 0) return undefined;
  const total = (r: (typeof rows)[number]) => r.t.token - r.t.produced;
  rows.sort((a, b) => total(b) - total(a));
  return {
    turns: rows.length,
    total: summary(rows.map(total)),
    steps: TRACE_STEPS.map((s) => ({ name: s.name, ...summary(rows.map((r) => r.t[s.to] - r.t[s.from])) })),
    slowest: rows.slice(0, 10).map((r) => ({
      replica: r.replica,
      total: total(r),
      steps: TRACE_STEPS.map((s) => r.t[s.to] - r.t[s.from]),
    })),
  };
}

void main();
