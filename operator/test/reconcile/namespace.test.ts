import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { TENANT_LABEL } from '@simptu/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, KIND, type Tenant } from '../../src/api/types.ts';
import {
  desiredNamespaceObjects,
  kubeObjectClient,
  namespaceReconciler,
  refOf,
  type NamespaceDeps,
  type ObjectClient,
} from '../../src/reconcile/namespace.ts';

function counter() {
  const counts: Record<string, number> = {};
  return { counts, inc: (b: string, n = 1) => void (counts[b] = (counts[b] ?? 0) + n) };
}

function tenant(): Tenant {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: `ns-${randomBytes(5).toString('hex')}`, generation: 1 },
    spec: {
      displayName: 'NS test',
      businessType: 'gym',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 1, retentionHours: 1 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: false,
    },
  };
}

let kube: ObjectClient;
const created: string[] = [];

beforeAll(() => {
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG ?? '');
  kube = kubeObjectClient(kc);
});

afterAll(async () => {
  for (const ns of created)
    await kube.delete({ apiVersion: 'v1', kind: 'Namespace', name: ns }).catch(() => undefined);
});

async function waitFor<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('namespace reconciler (real kube-apiserver)', () => {
  it('creates the namespace objects, then does zero writes, and repairs a deleted policy', async () => {
    const t = tenant();
    const ns = `tenant-${t.metadata.name}`;
    created.push(ns);
    const writes = counter();
    const deps: NamespaceDeps = { kube, writes, platformNamespace: 'simptu-system' };

    const first = await namespaceReconciler.reconcile(t, deps);
    expect(first).toMatchObject({ kind: 'ready', reason: 'NamespaceReady' });
    const desired = desiredNamespaceObjects(t, deps);
    expect(writes.counts.namespace).toBe(desired.length);
    for (const obj of desired) {
      const live = await kube.get(refOf(obj));
      expect(live, `${obj.kind} ${obj.metadata.name}`).toBeDefined();
      expect(live!.metadata.labels?.[TENANT_LABEL]).toBe(t.metadata.name);
    }
    const liveNs = await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: ns });
    expect(liveNs!.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');

    const second = await namespaceReconciler.reconcile(t, deps);
    expect(second).toMatchObject({ kind: 'ready', reason: 'NamespaceReady' });
    expect(writes.counts.namespace).toBe(desired.length);

    const policy = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      name: 'default-deny',
      namespace: ns,
    };
    expect(await kube.delete(policy)).toBe(true);
    expect(await kube.get(policy)).toBeUndefined();
    const third = await namespaceReconciler.reconcile(t, deps);
    expect(third).toMatchObject({ kind: 'ready', reason: 'NamespaceReady' });
    expect(writes.counts.namespace).toBe(desired.length + 1);
    expect(await kube.get(policy)).toBeDefined();

    // A changed option re-applies exactly the affected object.
    const moved = await namespaceReconciler.reconcile(t, { ...deps, platformNamespace: 'elsewhere' });
    expect(moved).toMatchObject({ kind: 'ready', reason: 'NamespaceReady' });
    expect(writes.counts.namespace).toBe(desired.length + 2); // exactly one more object written
    // `from` must survive the round trip: client-node's typed serializer used to drop it (see kubeObjectClient)
    expect(await kube.get({ ...policy, name: 'allow-from-platform' })).toMatchObject({
      spec: {
        ingress: [
          { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'elsewhere' } } }] },
        ],
      },
    });
  });

  it('refuses a namespace that belongs to another tenant', async () => {
    const t = tenant();
    const ns = `tenant-${t.metadata.name}`;
    created.push(ns);
    await kube.apply({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, labels: { [TENANT_LABEL]: 'someone-else' } },
    });
    const writes = counter();
    const r = await namespaceReconciler.reconcile(t, { kube, writes });
    expect(r).toMatchObject({ kind: 'blocked', reason: 'NamespaceConflict' });
    expect(writes.counts.namespace).toBeUndefined();
    // ...and its finalizer leaves it alone
    expect(await namespaceReconciler.finalize(t, { kube, writes })).toMatchObject({
      kind: 'ready',
      reason: 'NamespaceNotOwned',
    });
    expect(await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: ns })).toBeDefined();
  });

  it('finalize deletes the namespace and reports progressing until it is gone', async () => {
    const t = tenant();
    const ns = `tenant-${t.metadata.name}`;
    created.push(ns);
    const writes = counter();
    const deps: NamespaceDeps = { kube, writes, pollMs: 100 };
    expect((await namespaceReconciler.reconcile(t, deps)).kind).toBe('ready');
    const before = writes.counts.namespace!;

    const first = await namespaceReconciler.finalize(t, deps);
    expect(first).toMatchObject({ kind: 'progressing', reason: 'NamespaceTerminating', requeueAfterMs: 100 });
    expect(writes.counts.namespace).toBe(before + 1);
    // while Terminating, reconcile does not try to recreate anything inside it
    const during = await namespaceReconciler.reconcile(t, deps);
    if (during.kind === 'progressing') expect(during.reason).toBe('NamespaceTerminating');

    // kube-controller-manager's namespace controller empties and removes it
    const done = await waitFor(
      async () => {
        const r = await namespaceReconciler.finalize(t, deps);
        return r.kind === 'ready' ? r : undefined;
      },
      50_000,
      `namespace ${ns} to be deleted`,
    );
    expect(done.reason).toBe('NamespaceDeleted');
    expect(writes.counts.namespace).toBe(before + 1);
  });
});
