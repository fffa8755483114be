import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiextensionsV1Api, CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import {
  applyStatus,
  isAlreadyExists,
  isConflict,
  isNotFound,
  patchStatus,
  serverSideApply,
} from '../../src/controller/apply.ts';
import { kubeRequest, resourcePath } from '../../src/controller/client.ts';
import { NS, eventually, kubeConfig, suffix } from './support.ts';

const kc = kubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const run = suffix();

async function expectRejects(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('serverSideApply (real kube-apiserver)', () => {
  const name = `ssa-${run}`;
  afterAll(async () => {
    await core.deleteNamespacedConfigMap({ namespace: NS, name }).catch(() => undefined);
  });

  const intent = (data: Record<string, string>): V1ConfigMap => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: NS, labels: { 'app.kubernetes.io/managed-by': 'simptu-test' } },
    data,
  });

  it('dry-run validates without persisting', async () => {
    const out = await serverSideApply(kc, intent({ a: '1' }), { fieldManager: 'simptu-test', dryRun: true });
    expect(out.data).toEqual({ a: '1' });
    expect(isNotFound(await expectRejects(core.readNamespacedConfigMap({ namespace: NS, name })))).toBe(true);
  });

  it('creates, is a no-op when applied again unchanged, and updates on change', async () => {
    const first = await serverSideApply(kc, intent({ a: '1' }), { fieldManager: 'simptu-test' });
    const rv = first.metadata?.resourceVersion;
    expect(rv).toBeTruthy();
    const again = await serverSideApply(kc, intent({ a: '1' }), { fieldManager: 'simptu-test' });
    expect(again.metadata?.resourceVersion).toBe(rv); // nothing written
    const changed = await serverSideApply(kc, intent({ a: '2' }), { fieldManager: 'simptu-test' });
    expect(changed.metadata?.resourceVersion).not.toBe(rv);
    expect(changed.data).toEqual({ a: '2' });
    expect(
      changed.metadata?.managedFields?.some((f) => f.manager === 'simptu-test' && f.operation === 'Apply'),
    ).toBe(true);
  });

  it('force takes over fields another manager owns; dropping a field removes it', async () => {
    await serverSideApply(kc, { ...intent({}), data: { other: 'x' } }, { fieldManager: 'someone-else' });
    const err = await expectRejects(
      serverSideApply(kc, intent({ other: 'mine' }), { fieldManager: 'simptu-test', force: false }),
    );
    expect(isConflict(err)).toBe(true); // an SSA field conflict is a 409 Conflict
    const forced = await serverSideApply(kc, intent({ a: '2', other: 'mine' }), {
      fieldManager: 'simptu-test',
    });
    expect(forced.data).toEqual({ a: '2', other: 'mine' });
    const dropped = await serverSideApply(kc, intent({ other: 'mine' }), { fieldManager: 'simptu-test' });
    expect(dropped.data).toEqual({ other: 'mine' });
  });
});

describe('error helpers with client-node ApiException', () => {
  it('classify NotFound, AlreadyExists and Conflict from the real server', async () => {
    const name = `err-${run}`;
    const notFound = await expectRejects(core.readNamespacedConfigMap({ namespace: NS, name }));
    expect([isNotFound(notFound), isConflict(notFound), isAlreadyExists(notFound)]).toEqual([
      true,
      false,
      false,
    ]);

    const created = await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name }, data: { a: '1' } },
    });
    try {
      const exists = await expectRejects(
        core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name } } }),
      );
      expect([isNotFound(exists), isConflict(exists), isAlreadyExists(exists)]).toEqual([false, false, true]);

      await core.replaceNamespacedConfigMap({ namespace: NS, name, body: { ...created, data: { a: '2' } } });
      const stale = await expectRejects(
        core.replaceNamespacedConfigMap({ namespace: NS, name, body: { ...created, data: { a: '3' } } }),
      );
      expect([isNotFound(stale), isConflict(stale), isAlreadyExists(stale)]).toEqual([false, true, false]);
    } finally {
      await core.deleteNamespacedConfigMap({ namespace: NS, name });
    }
  });
});

describe('patchStatus / applyStatus on a custom resource (real kube-apiserver)', () => {
  const group = 'test.simptu.io';
  const plural = `widgets${run}`;
  const kind = `Widget${run}`;
  const crdName = `${plural}.${group}`;
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const ref = { apiVersion: `${group}/v1`, plural };

  interface Widget {
    apiVersion: string;
    kind: string;
    metadata: { name: string; resourceVersion?: string; generation?: number };
    spec?: { size?: number };
    status?: { observedGeneration?: number; phase?: string; seen?: string[]; note?: string };
  }

  beforeAll(async () => {
    // Raw JSON on purpose: client-node's typed serializer silently drops the
    // `x-kubernetes-*` keys of V1JSONSchemaProps given in their wire spelling.
    await kubeRequest(kc, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      method: 'POST',
      body: {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: crdName },
        spec: {
          group,
          scope: 'Cluster',
          names: { plural, singular: plural.replace(/s$/, ''), kind, listKind: `${kind}List` },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                    status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                  },
                },
              },
            },
          ],
        },
      },
    });
    await eventually(
      async () => {
        const crd = await ext.readCustomResourceDefinition({ name: crdName });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      30_000,
      'CRD established',
    );
    // Served once discovery has it.
    await eventually(() => kubeRequest(kc, resourcePath(ref)).then(() => true), 30_000, 'CRD served');
  });

  afterAll(async () => {
    await ext.deleteCustomResourceDefinition({ name: crdName });
  });

  async function create(name: string): Promise<Widget> {
    return kubeRequest<Widget>(kc, resourcePath(ref), {
      method: 'POST',
      body: { apiVersion: ref.apiVersion, kind, metadata: { name }, spec: { size: 1 } },
    });
  }

  it('writes the status subresource, skips unchanged writes, and retries on conflict with the latest object', async () => {
    const name = `w-${suffix()}`;
    const w = await create(name);
    const r1 = await patchStatus<Widget>(
      kc,
      { ...ref, name },
      (cur) => ({ ...cur.status, observedGeneration: cur.metadata.generation, phase: 'Ready' }),
      { fieldManager: 'simptu-test' },
    );
    expect(r1).toMatchObject({ written: true, conflicts: 0 });
    expect(r1.object.status).toEqual({ observedGeneration: w.metadata.generation, phase: 'Ready' });
    expect(r1.object.spec).toEqual({ size: 1 }); // spec untouched by a status write

    const r2 = await patchStatus<Widget>(kc, { ...ref, name }, (cur) => ({ ...cur.status, phase: 'Ready' }));
    expect(r2.written).toBe(false);
    expect(r2.object.metadata.resourceVersion).toBe(r1.object.metadata.resourceVersion);

    // Another writer changes status between our read and our write: 409, re-read, re-mutate.
    let calls = 0;
    const r3 = await patchStatus<Widget>(kc, { ...ref, name }, async (cur) => {
      calls++;
      if (calls === 1) {
        await kubeRequest(kc, `${resourcePath(ref, name)}/status`, {
          method: 'PATCH',
          contentType: 'application/merge-patch+json',
          body: { status: { note: 'from another writer' } },
        });
      }
      return { ...cur.status, seen: [...(cur.status?.seen ?? []), 'x'] };
    });
    expect(calls).toBe(2);
    expect(r3.conflicts).toBe(1);
    // The other writer's field survived because the retry mutated the fresh object.
    expect(r3.object.status).toEqual({
      observedGeneration: w.metadata.generation,
      phase: 'Ready',
      note: 'from another writer',
      seen: ['x'],
    });

    await kubeRequest(kc, resourcePath(ref, name), { method: 'DELETE' });
    expect(isNotFound(await expectRejects(patchStatus<Widget>(kc, { ...ref, name }, () => ({}))))).toBe(true);
  });

  it('applyStatus server-side applies status under a field manager', async () => {
    const name = `w-${suffix()}`;
    await create(name);
    const a = await applyStatus<Widget>(
      kc,
      { ...ref, name, kind },
      { phase: 'Provisioning' },
      { fieldManager: 'simptu-test' },
    );
    expect(a.status).toEqual({ phase: 'Provisioning' });
    const again = await applyStatus<Widget>(
      kc,
      { ...ref, name, kind },
      { phase: 'Provisioning' },
      { fieldManager: 'simptu-test' },
    );
    expect(again.metadata.resourceVersion).toBe(a.metadata.resourceVersion);
    await kubeRequest(kc, resourcePath(ref, name), { method: 'DELETE' });
  });
});
