import { afterEach, describe, expect, it } from 'vitest';
import { CoreV1Api, EventsV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { EventRecorder } from '../../src/controller/events.ts';
import { kubeRequest } from '../../src/controller/client.ts';
import { NS, kubeConfig, suffix } from './support.ts';

interface RawEvent {
  metadata: { name: string; namespace: string };
  reason: string;
  note: string;
  type: string;
  reportingController: string;
  regarding: { kind: string; name: string; namespace?: string; uid?: string };
  series?: { count: number; lastObservedTime: string };
}

describe('EventRecorder (real kube-apiserver)', () => {
  const kc = kubeConfig();
  const eventsApi = kc.makeApiClient(EventsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const controllers: string[] = [];
  const configMaps: string[] = [];

  afterEach(async () => {
    for (const c of controllers.splice(0)) {
      for (const e of await ours(c))
        await eventsApi.deleteNamespacedEvent({ name: e.metadata.name, namespace: e.metadata.namespace });
    }
    for (const name of configMaps.splice(0)) await core.deleteNamespacedConfigMap({ name, namespace: NS });
  });

  /** Every event written by reporting controller `c` (a unique name per test). */
  async function ours(c: string): Promise<RawEvent[]> {
    const list = await kubeRequest<{ items: RawEvent[] }>(kc, '/apis/events.k8s.io/v1/events');
    return list.items.filter((e) => e.reportingController === c);
  }

  function recorder(minPatchIntervalMs?: number) {
    const c = `test.simptu.io/rec-${suffix()}`;
    controllers.push(c);
    return {
      c,
      rec: new EventRecorder(kc, { reportingController: c, reportingInstance: 'test', minPatchIntervalMs }),
    };
  }

  it('aggregates a hot loop of identical events into one Event series (cluster-scoped object → default)', async () => {
    const { c, rec } = recorder();
    const ns = await core.readNamespace({ name: 'kube-public' }); // a cluster-scoped object
    for (let i = 0; i < 200; i++)
      rec.record(ns, 'Warning', 'ProvisioningFailed', 'Reconcile', 'database unreachable');
    await rec.flush();
    const events = await ours(c);
    expect(events).toHaveLength(1);
    const [e] = events;
    expect(e?.metadata.namespace).toBe('default');
    expect(e?.series?.count).toBe(200);
    expect(e?.series?.lastObservedTime).toMatch(/\.\d{6}Z$/);
    expect(e?.regarding).toMatchObject({ kind: 'Namespace', name: 'kube-public', uid: ns.metadata?.uid });
    expect(e).toMatchObject({ type: 'Warning', reason: 'ProvisioningFailed', note: 'database unreachable' });
    // A burst costs one create and at most a couple of series patches, not 200 writes.
    expect(rec.stats.creates).toBe(1);
    expect(rec.stats.patches).toBeLessThanOrEqual(2);
    expect(rec.stats.failures).toBe(0);
  });

  it('keeps distinct events apart and puts namespaced objects’ events in their namespace', async () => {
    const { c, rec } = recorder(0);
    const name = `ev-${suffix()}`;
    const cm: V1ConfigMap = await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name }, data: {} },
    });
    configMaps.push(name);
    const obj = { ...cm, apiVersion: 'v1', kind: 'ConfigMap' };
    rec.record(obj, 'Normal', 'Provisioned', 'Reconcile', 'all good');
    rec.record(obj, 'Normal', 'Provisioned', 'Reconcile', 'all good');
    rec.record(obj, 'Warning', 'Degraded', 'Reconcile', 'topic missing');
    await rec.flush();
    const events = (await ours(c)).sort((a, b) => a.reason.localeCompare(b.reason));
    expect(events.map((e) => [e.reason, e.metadata.namespace, e.series?.count ?? 1])).toEqual([
      ['Degraded', NS, 1],
      ['Provisioned', NS, 2],
    ]);
    expect(events[0]?.regarding).toMatchObject({
      kind: 'ConfigMap',
      name,
      namespace: NS,
      uid: cm.metadata?.uid,
    });
  });
});
