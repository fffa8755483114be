/**
 * Every synthesized manifest of every environment is accepted by the real kube-apiserver of the
 * test environment (server-side dry run), and every pod template passes Pod Security "restricted"
 * admission (dry-run Pods in a namespace that enforces it).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Yaml } from 'cdk8s';
import { ENVIRONMENTS, synthPlatform, type Manifest } from '../src/index.ts';
import { dryRunApply, kubectl, scratchNamespace } from './kube.ts';

const cleanups: Array<() => void> = [];
afterAll(() => cleanups.forEach((c) => c()));

/** A Pod built from a workload's pod template, for Pod Security admission. */
export function podsOf(docs: readonly Manifest[], namespace: string): Manifest[] {
  return docs
    .filter((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet')
    .map((d) => {
      const spec = d.spec as {
        template: {
          metadata: Record<string, unknown>;
          spec: { volumes?: unknown[] } & Record<string, unknown>;
        };
        volumeClaimTemplates?: Array<{ metadata: { name: string } }>;
      };
      const template = spec.template;
      // A StatefulSet's claims become volumes of its pods; stand in with emptyDirs.
      const claims = (spec.volumeClaimTemplates ?? []).map((c) => ({ name: c.metadata.name, emptyDir: {} }));
      return {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `${d.metadata.name}-${d.kind.toLowerCase()}`,
          namespace,
          labels: template.metadata.labels,
        },
        spec: { ...template.spec, volumes: [...(template.spec.volumes ?? []), ...claims] },
      } as Manifest;
    });
}

describe.each(Object.keys(ENVIRONMENTS))('environment %s', (env) => {
  it('every object is accepted by the API server (server-side dry run)', () => {
    const ns = scratchNamespace(`dry-${env}`);
    cleanups.push(ns.remove);
    const docs = synthPlatform({ ...ENVIRONMENTS[env]!, namespace: ns.name, createNamespace: false });
    const r = dryRunApply(Yaml.stringify(...docs));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(docs.length);
    // The Namespace object as the environment declares it.
    const nsDoc = synthPlatform(ENVIRONMENTS[env]!).filter((d) => d.kind === 'Namespace');
    if (ENVIRONMENTS[env]!.createNamespace) {
      expect(nsDoc).toHaveLength(1);
      expect(dryRunApply(Yaml.stringify(...nsDoc)).status).toBe(0);
    }
  });

  it('every pod template passes Pod Security "restricted" admission', () => {
    const ns = scratchNamespace(`psa-${env}`);
    cleanups.push(ns.remove);
    const docs = synthPlatform({ ...ENVIRONMENTS[env]!, namespace: ns.name, createNamespace: false });
    const pods = podsOf(docs, ns.name);
    // Pods are admitted only with their ServiceAccount present.
    const sas = docs.filter((d) => d.kind === 'ServiceAccount');
    expect(kubectl(['apply', '-f', '-'], Yaml.stringify(...sas)).status).toBe(0);
    expect(pods.length).toBeGreaterThanOrEqual(env === 'dev-kind' ? 5 : 5);
    const r = kubectl(['create', '--dry-run=server', '-o', 'name', '-f', '-'], Yaml.stringify(...pods));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

it('the Pod Security check can fail: a privileged pod is refused in the same kind of namespace', () => {
  const ns = scratchNamespace('psa-neg');
  cleanups.push(ns.remove);
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'bad', namespace: ns.name },
    spec: { containers: [{ name: 'c', image: 'busybox', securityContext: { privileged: true } }] },
  };
  const r = kubectl(['create', '--dry-run=server', '-f', '-'], JSON.stringify(pod));
  expect(r.status).not.toBe(0);
  expect(r.stderr).toMatch(/violates PodSecurity "restricted/);
});
