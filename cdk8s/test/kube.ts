/**
 * The test environment's kubectl and Helm, and scratch namespaces for server-side dry runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const KUBECTL = process.env.K8S_BIN_DIR ? join(process.env.K8S_BIN_DIR, 'kubectl') : 'kubectl';

export function kubectl(args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(KUBECTL, args, { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function suffix(): string {
  return randomBytes(3).toString('hex');
}

/** A namespace enforcing Pod Security "restricted", deleted by the returned function. */
export function scratchNamespace(prefix: string): { name: string; remove: () => void } {
  const name = `${prefix}-${suffix()}`;
  const manifest = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      labels: {
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
    },
  };
  const r = kubectl(['create', '-f', '-'], JSON.stringify(manifest));
  if (r.status !== 0) throw new Error(`creating namespace ${name}: ${r.stderr}`);
  return {
    name,
    remove: () => void kubectl(['delete', 'namespace', name, '--wait=false', '--ignore-not-found']),
  };
}

/** Server-side dry-run apply of a multi-document YAML; returns kubectl's result. */
export function dryRunApply(yaml: string): { status: number; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'simptu-dry-'));
  const file = join(dir, 'manifests.yaml');
  writeFileSync(file, yaml);
  return kubectl([
    'apply',
    '--server-side',
    '--force-conflicts',
    '--dry-run=server',
    '--field-manager=simptu-dry-run',
    '-o',
    'name',
    '-f',
    file,
  ]);
}

let helmPath: string | undefined;
/** Builds (once, cached under .cache/helm) and returns the pinned Helm binary. */
export function helm(): string {
  helmPath ??= execFileSync('bash', [resolve(ROOT, 'hack/helm.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return helmPath;
}

export function runHelm(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(helm(), args, { encoding: 'utf8', maxBuffer: 64 << 20, cwd: ROOT });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
