/**
 * The image builds without Docker: for each Dockerfile, the files its COPY steps take from the
 * build context (honouring .dockerignore's exclusions) are copied into a scratch directory, its
 * `RUN npm ci …` runs there, the image's CMD starts from it against the test environment, and the
 * image's own HEALTHCHECK command must pass. What this proves: the image carries every file and
 * production dependency the service needs to start (a missing COPY or a devDependency used at
 * run time fails here).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureAppRole } from '../../operator/src/reconcile/database.ts';
import { createScratchDatabase, migratePlatform, quoteIdent, type ScratchDatabase } from '@simptu/common';

const ROOT = resolve(import.meta.dirname, '../..');
const KUBECTL = process.env.K8S_BIN_DIR ? join(process.env.K8S_BIN_DIR, 'kubectl') : 'kubectl';
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
}, 60_000);

interface Dockerfile {
  copies: Array<{ src: string[]; dest: string }>;
  runs: string[];
  cmd: string[];
  healthcheck: string[];
}

/** The steps of a Dockerfile that matter here (line continuations joined). */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const out: Dockerfile = { copies: [], runs: [], cmd: [], healthcheck: [] };
  for (const line of lines) {
    const [instr, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    switch (instr!.toUpperCase()) {
      case 'COPY': {
        if (/--from=/.test(args)) break; // from the deps stage: the same scratch directory here
        const parts = args.split(/\s+/).filter((a) => !a.startsWith('--'));
        out.copies.push({ src: parts.slice(0, -1), dest: parts.at(-1)! });
        break;
      }
      case 'RUN':
        out.runs.push(args);
        break;
      case 'CMD':
        out.cmd = JSON.parse(args) as string[];
        break;
      case 'HEALTHCHECK':
        out.healthcheck = JSON.parse(args.slice(args.indexOf('CMD') + 3).trim()) as string[];
        break;
    }
  }
  return out;
}

/** .dockerignore's patterns, as used in this repository (names and suffixes). */
function ignored(path: string): boolean {
  const name = basename(path);
  return (
    ['node_modules', 'dist', 'test', '.git'].includes(name) ||
    name.endsWith('.test.ts') ||
    name.endsWith('.tsbuildinfo')
  );
}

/** Docker COPY semantics: a directory's contents go into dest; a file into dest/ or as dest. */
function copyStep(ctx: string, app: string, src: string, dest: string): void {
  const from = resolve(ctx, src);
  if (!existsSync(from)) throw new Error(`COPY ${src}: not in the build context`);
  const to = resolve(app, dest);
  if (statSync(from).isDirectory()) {
    cpSync(from, to, { recursive: true, filter: (p) => p === from || !ignored(p) });
  } else {
    const target = dest.endsWith('/') || dest === '.' || dest === './' ? join(to, basename(src)) : to;
    mkdirSync(dirname(target), { recursive: true });
    cpSync(from, target);
  }
}

function build(dockerfile: string): { app: string; spec: Dockerfile } {
  const spec = parseDockerfile(readFileSync(resolve(ROOT, dockerfile), 'utf8'));
  const app = mkdtempSync(join(tmpdir(), 'simptu-image-'));
  cleanups.push(() => rmSync(app, { recursive: true, force: true }));
  for (const c of spec.copies) for (const s of c.src) copyStep(ROOT, app, s, c.dest);
  for (const run of spec.runs) {
    // The repository's Node 22 npm, as node:22-slim has.
    const r = spawnSync('sh', ['-c', run], {
      cwd: app,
      encoding: 'utf8',
      env: process.env,
      maxBuffer: 64 << 20,
    });
    if (r.status !== 0) throw new Error(`RUN ${run} failed:\n${r.stderr}`);
  }
  // The repository's dependency patches (patches/) are in the image too, e.g. kafkajs#1556.
  const queue = join(app, 'node_modules/kafkajs/src/network/requestQueue/index.js');
  if (existsSync(queue)) expect(readFileSync(queue, 'utf8')).toContain('tulios/kafkajs#1556');
  return { app, spec };
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/** Starts CMD from the scratch image directory; resolves once the HEALTHCHECK command passes. */
async function startAndCheck(app: string, spec: Dockerfile, env: Record<string, string>): Promise<void> {
  // Only what the Deployment would set: no inherited DATABASE_URL & co. from the test process.
  const baseEnv = { PATH: process.env.PATH!, HOME: tmpdir(), NODE_ENV: 'production', ...env };
  const [bin, ...args] = spec.cmd;
  expect(bin).toBe('node');
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: app,
    env: baseEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  cleanups.push(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
  const [hcBin, ...hcArgs] = spec.healthcheck;
  expect(hcBin).toBe('node');
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}:\n${output}`);
    const hc = spawnSync(process.execPath, hcArgs, { env: baseEnv, encoding: 'utf8' });
    if (hc.status === 0) return;
    if (Date.now() > deadline) throw new Error(`HEALTHCHECK never passed:\n${output}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function scratchDb(): Promise<ScratchDatabase> {
  const db = await createScratchDatabase(process.env.DATABASE_URL!, 'simptu_img');
  cleanups.push(() => db.drop().catch(() => undefined));
  return db;
}

const kek = randomBytes(32).toString('base64');

async function dropRole(role: string): Promise<void> {
  const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  try {
    await c.query(`DROP OWNED BY ${quoteIdent(role)}`).catch(() => undefined);
    await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).catch(() => undefined);
  } finally {
    await c.end();
  }
}

describe('images (built without Docker)', () => {
  it('operator: COPY + npm ci --omit=dev, CMD starts, HEALTHCHECK passes', async () => {
    const { app, spec } = build('operator/Dockerfile');
    expect(existsSync(join(app, 'services/common/migrations'))).toBe(true);
    expect(existsSync(join(app, 'node_modules/vitest'))).toBe(false); // --omit=dev
    const shard = randomBytes(3).toString('hex');
    const ns = `img-${shard}`;
    execFileSync(KUBECTL, ['create', 'namespace', ns]);
    cleanups.push(() => spawnSync(KUBECTL, ['delete', 'namespace', ns, '--wait=false']));
    // The KEK Secret as hack/kind/kek.sh creates it: raw bytes under kek, base64 text under kek-base64.
    const kekFile = join(mkdtempSync(join(tmpdir(), 'simptu-kek-')), 'kek');
    writeFileSync(kekFile, Buffer.from(kek, 'base64'));
    execFileSync(KUBECTL, [
      '-n',
      ns,
      'create',
      'secret',
      'generic',
      'simptu-kek',
      `--from-literal=kek-base64=${kek}`,
      `--from-file=kek=${kekFile}`,
    ]);
    rmSync(kekFile);
    const db = await scratchDb();
    const appRole = `app_img_${shard}`;
    cleanups.push(() => dropRole(appRole));
    await startAndCheck(app, spec, {
      KUBECONFIG: process.env.KUBECONFIG!,
      SIMPTU_DATABASE_URL: db.url,
      SIMPTU_KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
      SIMPTU_PLATFORM_NAMESPACE: ns,
      SIMPTU_KEK_SECRET: 'simptu-kek',
      SIMPTU_APP_ROLE: appRole,
      SIMPTU_APP_ROLE_PASSWORD: `pw-${shard}-secret`,
      SIMPTU_LEADER_ELECTION: 'false',
      // A selector no tenant carries: this operator must not touch other tests' tenants.
      SIMPTU_TENANT_SELECTOR: `simptu.io/test-shard=${shard}`,
      SIMPTU_METRICS_PORT: String(await freePort()),
      SIMPTU_PROBE_PORT: String(await freePort()),
      SIMPTU_LOG_LEVEL: 'warn',
    });
  }, 240_000);

  it.each([
    ['api', 'services/api/Dockerfile', 'SIMPTU_API_'],
    ['realtime', 'services/realtime/Dockerfile', 'SIMPTU_REALTIME_'],
    ['agent', 'services/agent/Dockerfile', 'SIMPTU_AGENT_'],
  ] as const)(
    '%s: COPY + npm ci --omit=dev, CMD starts, HEALTHCHECK passes',
    async (service, dockerfile, p) => {
      const { app, spec } = build(dockerfile);
      const db = await scratchDb();
      // The operator owns the platform schema; in a cluster it has migrated it before any service starts.
      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      await migratePlatform(pool);
      // …and created the services' NOINHERIT login role, which the services insist on.
      const role = `app_img_${randomBytes(3).toString('hex')}`;
      const password = `pw-${role}`;
      await ensureAppRole(pool, role, password);
      await pool.end();
      cleanups.push(() => dropRole(role));
      const url = new URL(db.url);
      url.username = role;
      url.password = password;
      const common = {
        [service === 'agent' ? 'SIMPTU_AGENT_METRICS_PORT' : `${p}PORT`]: String(await freePort()),
        [`${p}DATABASE_URL`]: url.toString(),
        [`${p}REDIS_URL`]: process.env.REDIS_URL!,
        [`${p}KAFKA_BROKERS`]: process.env.KAFKA_BROKERS!,
        [`${p}LOG_LEVEL`]: 'warn',
        ...(service === 'agent'
          ? {}
          : {
              [`${p}AUTH_ISSUER`]: 'http://127.0.0.1:9/issuer',
              [`${p}AUTH_JWKS_URI`]: 'http://127.0.0.1:9/jwks',
            }),
      };
      const own: Record<string, string> =
        service === 'api'
          ? {
              SIMPTU_API_KEK: kek,
              SIMPTU_API_REDIS_PREFIX: `img:${randomBytes(3).toString('hex')}:`,
              SIMPTU_API_EVENTS_RELAY: 'false',
              SIMPTU_API_EVENTS_CONSUMERS: 'false',
            }
          : service === 'realtime'
            ? { SIMPTU_REALTIME_KEK_BASE64: kek, SIMPTU_REALTIME_OUTBOX_RELAY: 'false' }
            : {
                SIMPTU_AGENT_MODE: 'pool',
                SIMPTU_AGENT_KEK: kek,
                SIMPTU_AGENT_GROUP_ID: `img-${randomBytes(3).toString('hex')}`,
              };
      await startAndCheck(app, spec, { ...common, ...own });
    },
    240_000,
  );

  it('auth: COPY + npm ci --omit=dev, CMD starts, HEALTHCHECK passes', async () => {
    const { app, spec } = build('services/auth/Dockerfile');
    const db = await scratchDb();
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    await migratePlatform(pool);
    await pool.end();
    // The SSO migrates its own `auth` schema at start; here with the scratch database's owner.
    await startAndCheck(app, spec, {
      SIMPTU_AUTH_PORT: String(await freePort()),
      SIMPTU_AUTH_DATABASE_URL: db.url,
      SIMPTU_AUTH_REDIS_URL: process.env.REDIS_URL!,
      SIMPTU_AUTH_REDIS_PREFIX: `img:${randomBytes(3).toString('hex')}:`,
      SIMPTU_AUTH_ISSUER: 'http://127.0.0.1:3001',
      SIMPTU_AUTH_KEK: kek,
      SIMPTU_AUTH_COOKIE_KEYS: randomBytes(24).toString('hex'),
      SIMPTU_AUTH_LOG_LEVEL: 'warn',
    });
  }, 240_000);
});
