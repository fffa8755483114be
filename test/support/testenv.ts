/**
 * Reading the test environment contract (DESIGN §9): `.testenv/env` holds shell lines
 * `KEY=value`; a `PATH=dir:$PATH` line puts the folder holding kubectl first.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const TESTENV_ENV_FILE = resolve(ROOT, '.testenv', 'env');

export function parseEnvFile(text: string, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    const value = line
      .slice(eq + 1)
      .replace(/\$\{?(\w+)\}?/g, (_, name: string) => out[name] ?? base[name] ?? '');
    out[key] = value;
  }
  return out;
}

export function readTestEnv(file = TESTENV_ENV_FILE): Record<string, string> {
  return parseEnvFile(readFileSync(file, 'utf8'));
}

export const REQUIRED_KEYS = ['KUBECONFIG', 'DATABASE_URL', 'REDIS_URL', 'KAFKA_BROKERS', 'PATH'] as const;

/** A value every integration test needs; fails with a hint instead of a confusing connection error. */
export function requireEnv(key: string): string {
  const value = process.env[key];
  if (!value) throw new Error(`${key} is not set: run the tests through 'make test' (or 'make testenv-up')`);
  return value;
}
