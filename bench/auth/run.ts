/**
 * `node bench/auth/run.ts` (or `make bench`) — the SSO benchmark (docs/benchmarks.md, "Auth").
 *
 *   1. provisions what the SSO needs, as its tests do: a scratch platform database with one
 *      active tenant, the service's own NOINHERIT login role, a random KEK and a unique Redis
 *      prefix; starts the SSO as a child process (`node services/auth/src/main.ts`) and registers
 *      a service client with `createServiceClient`;
 *   2. issuance: client-credentials tokens per second through the SSO over HTTP (autocannon,
 *      several connections, form body + HTTP Basic client authentication) against raw jose
 *      `SignJWT` (ES256, the same header and claim set) in this process — ratio; and, as a
 *      diagnostic, a bare node:http + SignJWT endpoint (bare-signer.ts) under the same load;
 *   3. verification: tokens per second through the common verifier (`createAccessTokenVerifier`
 *      against the SSO's real JWKS, warmed up) against raw jose `jwtVerify` with the same public
 *      key held locally and the same checks — ratio (target ≥ 0.8);
 *   4. cleans up (SSO stopped, database and role dropped, Redis keys deleted), prints a table and
 *      writes bench/results/auth-<timestamp>.json.
 *
 * Each comparison alternates the sides round by round (rotating which goes first) and takes the
 * median of the per-round ratios, so load from elsewhere on the machine lands on both sides;
 * verification also reports tokens per CPU-second, which that load moves least.
 *
 * Environment: DATABASE_URL, REDIS_URL (the test environment), and
 *   BENCH_AUTH_CONNECTIONS     autocannon connections to the token endpoint @default 8
 *   BENCH_AUTH_CONCURRENCY     in-process operations in flight (SignJWT, verify) @default 8
 *   BENCH_AUTH_ROUNDS          rounds per side of each comparison @default 3
 *   BENCH_AUTH_ROUND_SECONDS   length of one round @default 5
 *   BENCH_AUTH_SLICE_MS        verification alternates slices this long (ROUNDS × ROUND_SECONDS per side) @default 500
 *   BENCH_TIMEOUT_SECONDS      budget of everything before cleanup @default 300
 *   BENCH_AUTH_PROFILE         1: run the SSO with `--cpu-prof` (profile in bench/results/)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import {
  decodeJwt,
  decodeProtectedHeader,
  generateKeyPair,
  importJWK,
  jwtVerify,
  SignJWT,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
} from 'jose';
import pg from 'pg';
import {
  createAccessTokenVerifier,
  createScratchDatabase,
  LocalKms,
  migratePlatform,
  quoteIdent,
  quoteLiteral,
  tenantDbRef,
  tenantId,
  type ScratchDatabase,
} from '@simptu/common';
import { createServiceClient } from '../../services/auth/src/clients.ts';
import { cleanUpAndReport, machineInfo, resultFiles } from '../lib/run-report.ts';
import { fmt, parsePrometheus, readCpuSeconds, readRss, sleep, sumMetric, table } from '../operator/lib.ts';
import {
  autocannon,
  basicAuth,
  compare,
  interleave,
  measureRate,
  median,
  type AutocannonResult,
  type Comparison,
} from './lib.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const env = process.env;
const int = (name: string, d: number, min = 1) => {
  const v = env[name];
  const n = v === undefined || v === '' ? d : Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`${name}: expected an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};

const CONNECTIONS = int('BENCH_AUTH_CONNECTIONS', 8);
const CONCURRENCY = int('BENCH_AUTH_CONCURRENCY', 8);
const ROUNDS = int('BENCH_AUTH_ROUNDS', 3);
const ROUND_SECONDS = int('BENCH_AUTH_ROUND_SECONDS', 5);
const SLICE_MS = int('BENCH_AUTH_SLICE_MS', 500, 50);
const TIMEOUT_SECONDS = int('BENCH_TIMEOUT_SECONDS', 300);
const CLEANUP_SECONDS = 60;
const PROFILE = env.BENCH_AUTH_PROFILE === '1';
/** target of the brief: the verifier keeps ≥ 80 % of raw jose's throughput */
const VERIFY_TARGET = 0.8;

const RUN = randomBytes(3).toString('hex');
const TENANT = `bench-${RUN}`;
const LOGIN_ROLE = `bench_${RUN}_auth`;
const CLIENT_ID = `bench-${RUN}-svc`;
const REDIS_PREFIX = `simptu:bench:auth:${RUN}:`;
/** RFC 8707 resource indicator and `aud` of API tokens (the SSO's defaults) */
const API_RESOURCE = 'https://api.simptu.io';
const API_AUDIENCE = 'simptu-api';

const log = (msg: string) => console.log(`[bench:auth ${new Date().toISOString().slice(11, 19)}] ${msg}`);

for (const v of ['DATABASE_URL', 'REDIS_URL']) {
  if (!env[v]) {
    console.error(`${v} is not set: run 'make bench', or 'set -a; source .testenv/env; set +a' first`);
    process.exit(2);
  }
}

// The whole run's budget: a timeout or Ctrl-C rejects `stopped`, which every phase races.
let stop!: (err: Error) => void;
const stopped = new Promise<never>((_, reject) => (stop = reject));
stopped.catch(() => undefined);
const budgetTimer = setTimeout(
  () => stop(new Error(`ran out of time (BENCH_TIMEOUT_SECONDS=${TIMEOUT_SECONDS})`)),
  TIMEOUT_SECONDS * 1000,
);
process.once('SIGINT', () => {
  stop(new Error('interrupted (SIGINT)'));
  process.once('SIGINT', () => process.exit(130));
});
const phase = <T>(p: Promise<T>) => Promise.race([p, stopped]);

// ---------------------------------------------------------------------------------------------
// Provisioning

interface Resources {
  scratch?: ScratchDatabase;
  roleCreated?: boolean;
  sso?: SsoProcess;
  bare?: { child: ChildProcess; exited: Promise<number | null>; port: number };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * As `services/auth/test/support.ts` does it: platform schema, one active tenant row (client
 * credentials need nothing of the tenant's own schema), and the service's NOINHERIT login role
 * with exactly the grants the SSO needs (it creates and owns schema `auth` itself at start-up).
 */
async function provisionDatabase(res: Resources): Promise<{ serviceUrl: string; admin: pg.Pool }> {
  res.scratch = await createScratchDatabase(env.DATABASE_URL!, 'simptu_bench_auth');
  const admin = new pg.Pool({ connectionString: res.scratch.url, max: 2 });
  await migratePlatform(admin);
  const password = randomBytes(12).toString('hex');
  await admin.query(
    `CREATE ROLE ${quoteIdent(LOGIN_ROLE)} LOGIN NOINHERIT PASSWORD ${quoteLiteral(password)}`,
  );
  res.roleCreated = true;
  await admin.query(`GRANT CREATE ON DATABASE ${quoteIdent(res.scratch.name)} TO ${quoteIdent(LOGIN_ROLE)}`);
  await admin.query(`GRANT USAGE ON SCHEMA platform TO ${quoteIdent(LOGIN_ROLE)}`);
  await admin.query(`GRANT SELECT ON platform.tenants, platform.tenant_keys TO ${quoteIdent(LOGIN_ROLE)}`);
  await admin.query(
    `INSERT INTO platform.tenants (name, tenant_id, display_name, business_type, database_name, schema_name)
     VALUES ($1, $2, $3, 'dental', $4, $5)`,
    [TENANT, tenantId(TENANT), 'Benchmark clinic', res.scratch.name, tenantDbRef(TENANT).schema],
  );
  const url = new URL(res.scratch.url);
  url.username = LOGIN_ROLE;
  url.password = password;
  return { serviceUrl: url.toString(), admin };
}

// ---------------------------------------------------------------------------------------------
// The SSO child process

interface SsoProcess {
  child: ChildProcess;
  issuer: string;
  exited: Promise<number | null>;
}

async function startSso(serviceUrl: string, kek: string, logFile: string): Promise<SsoProcess> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  // Only our SIMPTU_AUTH_* variables: the config loader rejects unknown ones.
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env))
    if (v !== undefined && !k.startsWith('SIMPTU_AUTH_')) childEnv[k] = v;
  Object.assign(childEnv, {
    SIMPTU_AUTH_PORT: String(port),
    SIMPTU_AUTH_HOST: '127.0.0.1',
    SIMPTU_AUTH_ISSUER: issuer,
    SIMPTU_AUTH_DATABASE_URL: serviceUrl,
    SIMPTU_AUTH_REDIS_URL: env.REDIS_URL!,
    SIMPTU_AUTH_REDIS_PREFIX: REDIS_PREFIX,
    SIMPTU_AUTH_KEK: kek,
    SIMPTU_AUTH_COOKIE_KEYS: randomBytes(32).toString('base64url'),
    SIMPTU_AUTH_API_RESOURCE: API_RESOURCE,
    SIMPTU_AUTH_API_AUDIENCE: API_AUDIENCE,
    SIMPTU_AUTH_KEYS_ALG: 'ES256',
    SIMPTU_AUTH_LOG_LEVEL: 'warn',
  });
  const out = createWriteStream(logFile);
  const profile = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', dirname(logFile)] : [];
  const child = spawn(process.execPath, [...profile, join(ROOT, 'services/auth/src/main.ts')], {
    cwd: ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`the SSO exited with code ${child.exitCode}; see ${logFile}`);
    const ok = await fetch(`${issuer}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`the SSO was not ready within 60 s; see ${logFile}`);
    await sleep(200);
  }
  return { child, issuer, exited };
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
  if (!done) {
    log(`child ${child.pid} did not stop within 15 s: SIGKILL`);
    child.kill('SIGKILL');
    await exited;
  }
}

/** The diagnostic bare HTTP signer (bare-signer.ts) as a child process, like the SSO. */
async function startBareSigner(
  spec: { authorization: string; header: JWTHeaderParameters; claims: JWTPayload; ttlSec: number },
  logFile: string,
): Promise<NonNullable<Resources['bare']>> {
  const child = spawn(process.execPath, [join(ROOT, 'bench/auth/bare-signer.ts')], {
    cwd: ROOT,
    env: { ...env, BARE_SIGNER_SPEC: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.stderr!.pipe(createWriteStream(logFile, { flags: 'a' }));
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error('the bare signer did not start within 30 s')), 30_000);
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      const line = buf.split('\n')[0];
      if (buf.includes('\n')) {
        clearTimeout(timer);
        resolvePort((JSON.parse(line!) as { port: number }).port);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the bare signer exited with code ${code}; see ${logFile}`));
    });
  });
  return { child, exited, port };
}

/** Committed transactions in the scratch database so far (each SSO query outside a transaction is one). */
async function xactCommits(database: string): Promise<number> {
  const c = new pg.Client({ connectionString: env.DATABASE_URL });
  await c.connect();
  try {
    // Backends flush their statistics at most once a second (PostgreSQL ≥ 15 cumulative stats).
    await sleep(1500);
    const { rows } = await c.query<{ n: string }>(
      'SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = $1',
      [database],
    );
    return Number(rows[0]?.n ?? NaN);
  } finally {
    await c.end();
  }
}

async function ssoMetric(issuer: string, name: string, match: Record<string, string>): Promise<number> {
  const res = await fetch(`${issuer}/metrics`);
  return sumMetric(parsePrometheus(await res.text()), name, match);
}

// ---------------------------------------------------------------------------------------------
// Cleanup: idempotent, reports what is left.

async function redisKeys(redis: Redis): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${REDIS_PREFIX}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

async function cleanup(res: Resources): Promise<Record<string, number>> {
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await Promise.race([
        fn(),
        sleep(CLEANUP_SECONDS * 1000).then(() => {
          throw new Error(`timed out after ${CLEANUP_SECONDS} s`);
        }),
      ]);
    } catch (err) {
      log(`cleanup: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  if (res.bare) await step('stopping the bare signer', () => stopChild(res.bare!.child, res.bare!.exited));
  if (res.sso) await step('stopping the SSO', () => stopChild(res.sso!.child, res.sso!.exited));
  const redis = new Redis(env.REDIS_URL!, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await step('redis keys', async () => {
    await redis.connect();
    const keys = await redisKeys(redis);
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  });
  if (res.scratch) await step('scratch database', () => res.scratch!.drop());
  const leftovers = { databases: 0, roles: 0, redisKeys: 0 };
  const c = new pg.Client({ connectionString: env.DATABASE_URL });
  await step('login role and leftover check', async () => {
    await c.connect();
    if (res.roleCreated) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(LOGIN_ROLE)}`);
    if (res.scratch)
      leftovers.databases = (
        await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [res.scratch.name])
      ).rowCount!;
    leftovers.roles = (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [LOGIN_ROLE])).rowCount!;
  });
  await c.end().catch(() => undefined);
  await step('redis leftover check', async () => {
    leftovers.redisKeys = (await redisKeys(redis)).length;
  });
  redis.disconnect();
  return leftovers;
}

// ---------------------------------------------------------------------------------------------
// The measurements

const cpuOfSelf = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

interface IssuanceRound {
  tokens: number;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
  serverCpuSeconds: number;
  /** this process (autocannon) */
  clientCpuSeconds: number;
}

async function main(): Promise<number> {
  const res: Resources = {};
  const { logFile, reportFile } = resultFiles(ROOT, 'auth');
  const loadavg: Record<string, number[]> = { start: os.loadavg() };
  const report: Record<string, unknown> = {
    benchmark: 'auth',
    run: RUN,
    date: new Date().toISOString(),
    machine: machineInfo(loadavg),
    config: {
      connections: CONNECTIONS,
      concurrency: CONCURRENCY,
      rounds: ROUNDS,
      roundSeconds: ROUND_SECONDS,
      timeoutSeconds: TIMEOUT_SECONDS,
      alg: 'ES256',
    },
  };
  let failure: unknown;
  try {
    log(
      `run ${RUN}: ${ROUNDS} rounds × ${ROUND_SECONDS} s per side, ${CONNECTIONS} connections, ${CONCURRENCY} in flight in-process; SSO log ${logFile}`,
    );

    // --- provisioning -------------------------------------------------------------------------
    const kek = randomBytes(32).toString('base64');
    const kms = LocalKms.fromBase64(kek);
    const { serviceUrl, admin } = await phase(provisionDatabase(res));
    let client: { clientId: string; clientSecret: string };
    try {
      res.sso = await phase(startSso(serviceUrl, kek, logFile));
      // after start-up: the SSO created schema `auth` (it owns it); the superuser may write into it
      client = await phase(
        createServiceClient(admin, kms, {
          clientId: CLIENT_ID,
          tenant: TENANT,
          roles: ['staff'],
          description: 'bench',
        }),
      );
    } finally {
      await admin.end();
    }
    const { issuer } = res.sso;
    const ssoPid = res.sso.child.pid!;
    log(`SSO up at ${issuer} (pid ${ssoPid}); service client ${client.clientId} for tenant ${TENANT}`);

    // --- one token, checked end to end ----------------------------------------------------------
    const tokenUrl = `${issuer}/token`;
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      resource: API_RESOURCE,
      scope: 'api',
    }).toString();
    const authorization = basicAuth(client.clientId, client.clientSecret);
    const tokenRes = await phase(
      fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
        body: form,
      }),
    );
    if (tokenRes.status !== 200)
      throw new Error(`token endpoint answered ${tokenRes.status}: ${await tokenRes.text()}`);
    const { access_token: ssoToken } = (await tokenRes.json()) as { access_token: string };
    const ssoHeader = decodeProtectedHeader(ssoToken);
    const ssoPayload = decodeJwt(ssoToken);
    if (ssoHeader.alg !== 'ES256' || ssoHeader.typ !== 'at+jwt')
      throw new Error(`unexpected token header ${JSON.stringify(ssoHeader)}`);

    const verifier = createAccessTokenVerifier({ issuer, audience: API_AUDIENCE, jwksUri: `${issuer}/jwks` });
    const claims = await phase(verifier.verify(ssoToken));
    if (claims.tenant !== TENANT || claims.sub !== CLIENT_ID || claims.roles.join() !== 'staff')
      throw new Error(`the SSO's token says ${JSON.stringify(claims)}`);

    // The baseline's local key: the SSO's own public key, imported once.
    const jwks = (await phase(fetch(`${issuer}/jwks`).then((r) => r.json()))) as { keys: JWK[] };
    const publicJwk = jwks.keys.find((k) => k.kid === ssoHeader.kid);
    if (!publicJwk) throw new Error(`kid ${ssoHeader.kid} is not in the SSO's JWKS`);
    const localKey = await importJWK(publicJwk, 'ES256');
    const verifyOptions = {
      issuer,
      audience: API_AUDIENCE,
      algorithms: ['ES256', 'RS256'],
      typ: 'at+jwt',
      clockTolerance: 30,
      requiredClaims: ['exp', 'sub'],
    };
    await jwtVerify(ssoToken, localKey, verifyOptions);

    // Raw SignJWT: an ES256 key of its own, the SSO token's header fields and claim set.
    const { privateKey } = await generateKeyPair('ES256');
    const { iss, aud, sub, iat: _iat, exp: _exp, jti: _jti, ...extra } = ssoPayload;
    const ttl = (ssoPayload.exp ?? 0) - (ssoPayload.iat ?? 0);
    const rawSign = () =>
      new SignJWT({ ...extra } as JWTPayload)
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: ssoHeader.kid })
        .setIssuer(iss!)
        .setAudience(aud!)
        .setSubject(sub!)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime(`${ttl}s`)
        .sign(privateKey);
    const sample = decodeJwt(await rawSign());
    const keysOf = (p: object) => Object.keys(p).sort().join(',');
    if (keysOf(sample) !== keysOf(ssoPayload))
      throw new Error(`claim sets differ: raw ${keysOf(sample)} vs SSO ${keysOf(ssoPayload)}`);
    report.token = { header: ssoHeader, claims: Object.keys(ssoPayload).sort(), bytes: ssoToken.length };

    // --- issuance -------------------------------------------------------------------------------
    res.bare = await phase(
      startBareSigner(
        {
          authorization,
          header: { alg: 'ES256', typ: 'at+jwt', kid: ssoHeader.kid! },
          claims: { ...extra, iss, aud, sub },
          ttlSec: ttl,
        },
        logFile,
      ),
    );
    const bareUrl = `http://127.0.0.1:${res.bare.port}/token`;
    const cannon = (url: string, duration: number) =>
      autocannon({
        url,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
        body: form,
        connections: CONNECTIONS,
        duration,
        timeout: 10,
      });
    const checked = (what: string, r: AutocannonResult) => {
      if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0)
        throw new Error(
          `${what}: ${r.non2xx} non-2xx answers, ${r.errors} errors, ${r.timeouts} timeouts; see ${logFile}`,
        );
      return r;
    };
    log('warming up the token endpoints (2 s each)');
    checked('SSO warm-up', await phase(cannon(tokenUrl, 2)));
    checked('bare signer warm-up', await phase(cannon(bareUrl, 2)));
    const issuedBefore = await ssoMetric(issuer, 'simptu_auth_http_requests_total', {
      route: '/token',
      status: '200',
    });
    const commitsBefore = await xactCommits(res.scratch!.name);
    const ssoRounds: IssuanceRound[] = [];
    /** CPU seconds per token of raw SignJWT, per round */
    const signCpu: number[] = [];
    const bareRounds: IssuanceRound[] = [];
    const httpRound = async (url: string, pid: number, into: IssuanceRound[], what: string) => {
      const cpu0 = readCpuSeconds(pid) ?? NaN;
      const self0 = cpuOfSelf();
      const r = checked(what, await cannon(url, ROUND_SECONDS));
      const round: IssuanceRound = {
        tokens: r['2xx'],
        seconds: r.duration,
        perSecond: r['2xx'] / r.duration,
        latencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
        serverCpuSeconds: (readCpuSeconds(pid) ?? NaN) - cpu0,
        clientCpuSeconds: cpuOfSelf() - self0,
      };
      into.push(round);
      return round.perSecond;
    };
    log(
      `issuance: SSO over HTTP, raw SignJWT in-process, bare HTTP signer; ${ROUNDS} rounds × ${ROUND_SECONDS} s each`,
    );
    const issuanceRates = await phase(
      interleave(
        ROUNDS,
        [
          ['sso', () => httpRound(tokenUrl, ssoPid, ssoRounds, 'SSO token endpoint')],
          [
            'signJwt',
            async () => {
              const r = await measureRate(rawSign, {
                concurrency: CONCURRENCY,
                durationMs: ROUND_SECONDS * 1000,
              });
              signCpu.push(r.cpuSeconds / r.ops);
              return r.perSecond;
            },
          ],
          ['bareHttp', () => httpRound(bareUrl, res.bare!.child.pid!, bareRounds, 'bare signer')],
        ],
        (r, x) =>
          log(
            `  round ${r}: SSO ${fmt(x.sso, 0)}, raw SignJWT ${fmt(x.signJwt, 0)}, bare HTTP signer ${fmt(x.bareHttp, 0)} tokens/s`,
          ),
      ),
    );
    const issuedAfter = await ssoMetric(issuer, 'simptu_auth_http_requests_total', {
      route: '/token',
      status: '200',
    });
    const pgTransactionsPerToken =
      ((await xactCommits(res.scratch!.name)) - commitsBefore) / (issuedAfter - issuedBefore);
    await stopChild(res.bare.child, res.bare.exited);
    const issuance = compare(issuanceRates.sso, issuanceRates.signJwt);
    const bareVsSign = compare(issuanceRates.bareHttp, issuanceRates.signJwt);
    const ssoVsBare = compare(issuanceRates.sso, issuanceRates.bareHttp);
    loadavg.afterIssuance = os.loadavg();

    // --- verification ---------------------------------------------------------------------------
    const jwksBefore = await ssoMetric(issuer, 'simptu_auth_http_requests_total', { route: '/jwks' });
    const viaVerifier = () => verifier.verify(ssoToken);
    const viaJose = () => jwtVerify(ssoToken, localKey, verifyOptions);
    log('warming up both verifiers (1 s each)');
    await phase(measureRate(viaVerifier, { concurrency: CONCURRENCY, durationMs: 1000 }));
    await phase(measureRate(viaJose, { concurrency: CONCURRENCY, durationMs: 1000 }));
    // Many short slices, alternating: on a shared machine this pairs like with like far better
    // than a few long rounds (the two sides differ by a few percent; the load by much more).
    const slices = Math.max(1, Math.round((ROUNDS * ROUND_SECONDS * 1000) / SLICE_MS));
    log(
      `verification: common verifier vs raw jwtVerify, ${slices} alternating slices of ${SLICE_MS} ms each`,
    );
    const perCpu = { verifier: [] as number[], jose: [] as number[] };
    const slice = async (k: 'verifier' | 'jose', op: () => Promise<unknown>) => {
      const r = await measureRate(op, { concurrency: CONCURRENCY, durationMs: SLICE_MS });
      perCpu[k].push(r.perCpuSecond);
      return r.perSecond;
    };
    const verifyRates = await phase(
      interleave(slices, [
        ['verifier', () => slice('verifier', viaVerifier)],
        ['jose', () => slice('jose', viaJose)],
      ]),
    );
    const verification = compare(verifyRates.verifier, verifyRates.jose);
    /** the same comparison in tokens per CPU-second: what each side costs, whatever the neighbours do */
    const verificationCpu = compare(perCpu.verifier, perCpu.jose);
    const jwksFetches =
      (await ssoMetric(issuer, 'simptu_auth_http_requests_total', { route: '/jwks' })) - jwksBefore;
    log(
      `  verifier ${fmt(verification.subjectMedian, 0)} tokens/s, raw jwtVerify ${fmt(verification.baselineMedian, 0)} tokens/s (medians of ${slices} slices)`,
    );
    loadavg.end = os.loadavg();

    // --- report ---------------------------------------------------------------------------------
    const summarize = (rounds: IssuanceRound[]) => {
      const sum = (f: (r: IssuanceRound) => number) => rounds.reduce((a, r) => a + f(r), 0);
      const seconds = sum((r) => r.seconds);
      const tokens = sum((r) => r.tokens);
      return {
        rounds,
        tokens,
        serverCpuMsPerToken: (sum((r) => r.serverCpuSeconds) / tokens) * 1000,
        /** cores the server process kept busy (1 = its event loop's ceiling, plus its thread pool) */
        serverCores: sum((r) => r.serverCpuSeconds) / seconds,
        /** cores this process (autocannon) kept busy */
        clientCores: sum((r) => r.clientCpuSeconds) / seconds,
      };
    };
    const sso = summarize(ssoRounds);
    const bare = summarize(bareRounds);
    const verificationMet = verification.ratio >= VERIFY_TARGET;
    const signCpuMsPerToken = median(signCpu) * 1000;
    report.issuance = {
      ssoVsSignJwt: issuance,
      diagnostics: { bareHttpVsSignJwt: bareVsSign, ssoVsBareHttp: ssoVsBare },
      sso: {
        ...sso,
        /** the SSO's own count of 200s on /token during the measured rounds (autocannon stops counting at the window's end) */
        ssoCounted200: issuedAfter - issuedBefore,
        /**
         * PostgreSQL transactions (a statement outside a transaction counts one) per token issued.
         * Approximate: idle backends flush their statistics up to 10 s late, so it may read low.
         */
        pgTransactionsPerToken,
        rss: readRss(ssoPid),
      },
      bareHttp: bare,
      signJwtCpuMsPerToken: signCpuMsPerToken,
    };
    report.verification = {
      verifierVsJwtVerify: verification,
      verifierVsJwtVerifyPerCpuSecond: verificationCpu,
      sliceMs: SLICE_MS,
      jwksFetchesDuringMeasurement: jwksFetches,
      target: VERIFY_TARGET,
      met: verificationMet,
    };
    report.targets = { [`verification ratio >= ${VERIFY_TARGET}`]: verificationMet };

    const spread = (c: Comparison) =>
      `${fmt(Math.min(...c.roundRatios), 2)}–${fmt(Math.max(...c.roundRatios), 2)}`;
    const lat = (rounds: IssuanceRound[]) =>
      `${fmt(median(rounds.map((r) => r.latencyMs.p50)), 0)} / ${fmt(median(rounds.map((r) => r.latencyMs.p99)), 0)}`;
    const rows: string[][] = [
      ['SSO client-credentials tokens over HTTP', fmt(issuance.subjectMedian, 0), 'tokens/s'],
      ['  latency p50 / p99 (median of rounds)', lat(ssoRounds), 'ms'],
      [
        '  SSO CPU per token / cores busy',
        `${fmt(sso.serverCpuMsPerToken, 2)} ms / ${fmt(sso.serverCores, 2)}`,
        '',
      ],
      ['  autocannon 2xx / SSO-counted 200', `${sso.tokens} / ${issuedAfter - issuedBefore}`, ''],
      ['  PostgreSQL transactions per token (approx.)', fmt(pgTransactionsPerToken, 2), ''],
      ['raw jose SignJWT ES256, same claims, in-process', fmt(issuance.baselineMedian, 0), 'tokens/s'],
      ['  CPU per token', fmt(signCpuMsPerToken, 3), 'ms'],
      [`ratio SSO / raw SignJWT (rounds ${spread(issuance)})`, fmt(issuance.ratio, 3), ''],
      ['diagnostic: bare node:http + SignJWT signer', fmt(bareVsSign.subjectMedian, 0), 'tokens/s'],
      [
        '  latency p50 / p99; CPU per token / cores busy',
        `${lat(bareRounds)} ms; ${fmt(bare.serverCpuMsPerToken, 2)} ms / ${fmt(bare.serverCores, 2)}`,
        '',
      ],
      ['  ratio bare HTTP / raw SignJWT', fmt(bareVsSign.ratio, 3), ''],
      ['  ratio SSO / bare HTTP', fmt(ssoVsBare.ratio, 3), ''],
      ['common verifier, SSO JWKS (median)', fmt(verification.subjectMedian, 0), 'tokens/s'],
      ['raw jose jwtVerify, local key (median)', fmt(verification.baselineMedian, 0), 'tokens/s'],
      [
        `ratio verifier / raw jwtVerify (slices ${spread(verification)})`,
        fmt(verification.ratio, 3),
        `(target ≥ ${VERIFY_TARGET}: ${verificationMet ? 'met' : 'NOT met'})`,
      ],
      [
        '  per CPU-second: verifier / raw jwtVerify',
        `${fmt(verificationCpu.subjectMedian, 0)} / ${fmt(verificationCpu.baselineMedian, 0)}`,
        'tokens/CPU-s',
      ],
      [`  ratio per CPU-second (slices ${spread(verificationCpu)})`, fmt(verificationCpu.ratio, 3), ''],
      ['JWKS fetches during the verification slices', String(jwksFetches), ''],
    ];
    console.log('\n' + table(['auth benchmark', 'value', 'unit'], rows) + '\n');
    if (Math.abs(verification.ratio - verificationCpu.ratio) > 0.1)
      console.log(
        `note: the throughput ratio (${fmt(verification.ratio, 2)}) and the per-CPU-second ratio (${fmt(verificationCpu.ratio, 2)}) disagree: other load took CPU from one side more than the other; the per-CPU-second ratio is the steadier one (more slices: BENCH_AUTH_ROUNDS, BENCH_AUTH_ROUND_SECONDS)`,
      );
    console.log(
      `machine: ${os.cpus().length} cores; 1-min load average at start ${fmt(loadavg.start![0], 2)}, after issuance ${fmt(loadavg.afterIssuance![0], 2)}, at the end ${fmt(loadavg.end![0], 2)}`,
    );
  } catch (err) {
    failure = err;
    console.error(`\n[bench:auth] FAILED: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    clearTimeout(budgetTimer);
  }
  return cleanUpAndReport({ log, cleanup: () => cleanup(res), report, failure, file: reportFile });
}

setTimeout(
  () => {
    console.error(`[bench:auth] hard timeout: exiting; check for leftovers named *${RUN}*`);
    process.exit(1);
  },
  (TIMEOUT_SECONDS + 3 * CLEANUP_SECONDS + 30) * 1000,
).unref();

process.exitCode = await main();
process.exit(process.exitCode);
