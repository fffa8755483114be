import { afterEach, describe, expect, it } from 'vitest';
import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import {
  Informer,
  LAST_APPLIED_ANNOTATION,
  objectKey,
  slimObject,
  watchError,
} from '../../src/controller/informer.ts';
import { kubeWatch, type WatchEvent } from '../../src/controller/client.ts';
import { isGone } from '../../src/controller/errors.ts';
import { serverSideApply } from '../../src/controller/apply.ts';
import { NS, deleteConfigMaps, eventually, kubeConfig, suffix } from './support.ts';

const LABEL = 'test.simptu.io/informer';

describe('Informer (real kube-apiserver)', () => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const run = suffix();
  const informers: Informer[] = [];

  afterEach(async () => {
    await Promise.all(informers.splice(0).map((i) => i.stop()));
    await deleteConfigMaps(kc, LABEL, run);
  });

  function cm(name: string, data: Record<string, string>, labelValue = run): V1ConfigMap {
    return {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: NS, labels: { [LABEL]: labelValue } },
      data,
    };
  }

  it('lists, then follows creates, updates and deletes of objects matching its label selector only', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: cm(`pre-${run}`, { a: '1' }) });
    await core.createNamespacedConfigMap({
      namespace: NS,
      body: cm(`other-${run}`, { a: '1' }, `${run}-other`),
    });

    const inf = new Informer<V1ConfigMap>(kc, {
      apiVersion: 'v1',
      plural: 'configmaps',
      namespace: NS,
      labelSelector: `${LABEL}=${run}`,
    });
    informers.push(inf as Informer);
    const seen: string[] = [];
    inf.addHandler({
      onAdd: (o) => seen.push(`add ${o.metadata?.name}`),
      onUpdate: (_old, o) => seen.push(`update ${o.metadata?.name} ${o.data?.a}`),
      onDelete: (o) => seen.push(`delete ${o.metadata?.name}`),
    });
    expect(inf.hasSynced()).toBe(false);
    inf.start();
    expect(await inf.waitForSync()).toBe(true);
    expect(inf.keys()).toEqual([`${NS}/pre-${run}`]); // the other label value is out of scope
    expect(seen).toEqual([`add pre-${run}`]);

    await core.createNamespacedConfigMap({ namespace: NS, body: cm(`new-${run}`, { a: '1' }) });
    await eventually(() => inf.get(`${NS}/new-${run}`), 10_000, 'add');
    await core.patchNamespacedConfigMap({
      namespace: NS,
      name: `new-${run}`,
      body: [{ op: 'replace', path: '/data/a', value: '2' }],
    });
    await eventually(() => inf.get(`${NS}/new-${run}`)?.data?.a === '2', 10_000, 'update');
    await core.deleteNamespacedConfigMap({ namespace: NS, name: `pre-${run}` });
    await eventually(() => !inf.get(`${NS}/pre-${run}`), 10_000, 'delete');
    await core.deleteNamespacedConfigMap({ namespace: NS, name: `other-${run}` });

    expect(seen).toEqual([`add pre-${run}`, `add new-${run}`, `update new-${run} 2`, `delete pre-${run}`]);
    expect(inf.list().map(objectKey)).toEqual([`${NS}/new-${run}`]);
  });

  it('strips managedFields and freezes cached objects', async () => {
    // SSA writes managedFields for sure.
    await serverSideApply(kc, cm(`mf-${run}`, { a: '1' }), { fieldManager: 'informer-test' });
    const inf = new Informer<V1ConfigMap>(kc, {
      apiVersion: 'v1',
      plural: 'configmaps',
      namespace: NS,
      labelSelector: `${LABEL}=${run}`,
    });
    informers.push(inf as Informer);
    inf.start();
    await inf.waitForSync();
    const obj = inf.get(`${NS}/mf-${run}`);
    expect(obj).toBeDefined();
    expect(obj?.kind).toBe('ConfigMap');
    expect(obj?.apiVersion).toBe('v1');
    expect(obj?.metadata && 'managedFields' in obj.metadata).toBe(false);
    expect(Object.isFrozen(obj)).toBe(true);
    expect(() => {
      (obj!.data as Record<string, string>).a = 'mutated';
    }).toThrow(TypeError);
    expect(inf.get(`${NS}/mf-${run}`)?.data?.a).toBe('1');

    // Objects arriving by watch are treated the same way.
    await serverSideApply(kc, cm(`mf-${run}`, { a: '2' }), { fieldManager: 'informer-test' });
    const updated = await eventually(() =>
      inf.get(`${NS}/mf-${run}`)?.data?.a === '2' ? inf.get(`${NS}/mf-${run}`) : undefined,
    );
    expect('managedFields' in (updated.metadata ?? {})).toBe(false);
    expect(Object.isFrozen(updated.metadata)).toBe(true);
  });

  it('metadataOnly and transform cache only what readers use, from the list and the watch alike', async () => {
    const hash = 'simptu.io/spec-hash';
    const put = (h: string) =>
      serverSideApply(
        kc,
        {
          ...cm(`slim-${run}`, { big: 'x'.repeat(4096) }),
          metadata: {
            name: `slim-${run}`,
            namespace: NS,
            labels: { [LABEL]: run },
            annotations: { [hash]: h, [LAST_APPLIED_ANNOTATION]: JSON.stringify({ data: { big: 'x' } }) },
          },
        },
        { fieldManager: 'informer-test' },
      );
    await put('h1');
    const ref = { apiVersion: 'v1', plural: 'configmaps', namespace: NS, labelSelector: `${LABEL}=${run}` };
    const metaOnly = new Informer(kc, { ...ref, kind: 'ConfigMap', metadataOnly: true });
    const slim = new Informer(kc, { ...ref, transform: slimObject() });
    informers.push(metaOnly, slim);
    const deleted: string[] = [];
    for (const inf of [metaOnly, slim]) {
      inf.addHandler({ onDelete: (o) => deleted.push(`${o.kind} ${o.metadata?.name}`) });
      inf.start();
      await inf.waitForSync();
    }
    const key = `${NS}/slim-${run}`;
    const check = (obj: Record<string, unknown> | undefined, h: string) => {
      expect(obj).toMatchObject({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: `slim-${run}`,
          namespace: NS,
          labels: { [LABEL]: run },
          annotations: { [hash]: h },
        },
      });
      expect(Object.keys(obj!).sort()).toEqual(['apiVersion', 'kind', 'metadata']); // no data
      expect((obj!.metadata as { resourceVersion?: string }).resourceVersion).toBeTruthy();
      expect('managedFields' in (obj!.metadata as object)).toBe(false);
      expect(Object.isFrozen(obj)).toBe(true);
    };
    check(metaOnly.get(key) as unknown as Record<string, unknown>, 'h1');
    check(slim.get(key) as unknown as Record<string, unknown>, 'h1');
    // the transform drops kubectl's copy; metadata-only reads keep annotations as they are
    expect(slim.get(key)?.metadata?.annotations?.[LAST_APPLIED_ANNOTATION]).toBeUndefined();
    expect(metaOnly.get(key)?.metadata?.annotations?.[LAST_APPLIED_ANNOTATION]).toBeDefined();

    await put('h2');
    for (const inf of [metaOnly, slim]) {
      const updated = await eventually(() =>
        inf.get(key)?.metadata?.annotations?.[hash] === 'h2' ? inf.get(key) : undefined,
      );
      check(updated as unknown as Record<string, unknown>, 'h2');
    }
    await core.deleteNamespacedConfigMap({ namespace: NS, name: `slim-${run}` });
    await eventually(() => !metaOnly.get(key) && !slim.get(key), 10_000, 'delete');
    expect(deleted).toEqual([`ConfigMap slim-${run}`, `ConfigMap slim-${run}`]);
  });

  it('resumes a watch the server closed (timeoutSeconds) without losing events', async () => {
    const inf = new Informer<V1ConfigMap>(kc, {
      apiVersion: 'v1',
      plural: 'configmaps',
      namespace: NS,
      labelSelector: `${LABEL}=${run}`,
      watchTimeoutSeconds: 1,
    });
    informers.push(inf as Informer);
    const adds: string[] = [];
    inf.addHandler({ onAdd: (o) => adds.push(o.metadata?.name ?? '') });
    inf.start();
    await inf.waitForSync();
    // Write objects across several server-side watch closes.
    const names: string[] = [];
    for (let i = 0; i < 12; i++) {
      const name = `w${i}-${run}`;
      names.push(name);
      await core.createNamespacedConfigMap({ namespace: NS, body: cm(name, { i: String(i) }) });
      await new Promise((r) => setTimeout(r, 250));
    }
    await eventually(() => names.every((n) => inf.get(`${NS}/${n}`)), 15_000, 'all objects');
    expect(inf.stats.watches).toBeGreaterThan(1); // the watch really was closed and resumed
    expect(inf.stats.lists).toBe(1); // …from its resourceVersion, not by relisting
    expect([...adds].sort()).toEqual([...names].sort()); // each add seen exactly once
  });

  it('after stop + start resumes from its resourceVersion and sees what changed meanwhile', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: cm(`gone-${run}`, { a: '1' }) });
    const inf = new Informer<V1ConfigMap>(kc, {
      apiVersion: 'v1',
      plural: 'configmaps',
      namespace: NS,
      labelSelector: `${LABEL}=${run}`,
    });
    informers.push(inf as Informer);
    const deletes: string[] = [];
    inf.addHandler({ onDelete: (o) => deletes.push(o.metadata?.name ?? '') });
    inf.start();
    await inf.waitForSync();
    await inf.stop();
    await core.deleteNamespacedConfigMap({ namespace: NS, name: `gone-${run}` });
    expect(inf.get(`${NS}/gone-${run}`)).toBeDefined(); // stopped: the cache is stale
    inf.start();
    await eventually(() => !inf.get(`${NS}/gone-${run}`), 10_000, 'delete seen after restart');
    expect(deletes).toEqual([`gone-${run}`]);
    expect(inf.stats.lists).toBe(1);
  });

  it('a watch from a compacted resourceVersion yields the 410 the informer relists on', async () => {
    // The informer can't be pointed at a stale RV from outside, so check the two halves it
    // relies on: the server's answer and our classification of it.
    const events: WatchEvent[] = [];
    await kubeWatch(
      kc,
      `/api/v1/namespaces/${NS}/configmaps`,
      { resourceVersion: '1', timeoutSeconds: 2 },
      (ev) => events.push(ev),
    );
    expect(events[0]?.type).toBe('ERROR');
    expect(isGone(watchError(events[0]!.object))).toBe(true);
  });
});
