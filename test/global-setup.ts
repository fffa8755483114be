/**
 * vitest global setup: brings the real test environment up when `.testenv/env` is absent or any
 * component is down (hack/testenv/up.sh is idempotent and only restarts what died), then exports
 * its addresses to the test workers, which are forked after this runs and inherit process.env.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ROOT, REQUIRED_KEYS, TESTENV_ENV_FILE, readTestEnv } from './support/testenv.ts';

export default function setup(): void {
  // SIMPTU_TESTENV_SKIP=1: pure unit tests only, e.g. `SIMPTU_TESTENV_SKIP=1 vitest run operator/src`.
  if (process.env.SIMPTU_TESTENV_SKIP === '1') {
    if (existsSync(TESTENV_ENV_FILE)) Object.assign(process.env, readTestEnv());
    return;
  }
  {
    const r = spawnSync('bash', [resolve(ROOT, 'hack/testenv/up.sh')], { stdio: 'inherit', cwd: ROOT });
    if (r.status !== 0)
      throw new Error(`the test environment did not come up (exit ${r.status}); see .testenv/logs/`);
  }
  const env = readTestEnv();
  for (const key of REQUIRED_KEYS) {
    if (!env[key])
      throw new Error(`.testenv/env has no ${key}; run 'make testenv-up' and check .testenv/logs/`);
  }
  Object.assign(process.env, env);
}
