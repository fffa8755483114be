/**
 * The controller end to end against the real kube-apiserver, with a toy controller: for every
 * ConfigMap labelled `test.simptu.io/ctl=<run>` it server-side applies an "output" ConfigMap
 * `<name>-out` carrying the input's data and a label naming its input (the watch maps it back).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { Controller, mapByLabel, type Reconcile } from '../../src/controller/controller.ts';
import { Informer, splitKey } from '../../src/controller/informer.ts';
import { serverSideApply } from '../../src/controller/apply.ts';
import { isNotFound } from '../../src/controller/errors.ts';
import { ControllerMetrics } from '../../src/controller/metrics.ts';
import { FakeClock } from '../../src/controller/clock.ts';
import { defaultControllerRateLimiter } from '../../src/controller/workqueue.ts';
import { NS, deleteConfigMaps, eventually, kubeConfig, suffix } from './support.ts';

const IN = 'test.simptu.io/ctl';
const OUT = 'test.simptu.io/ctl-out';
const FROM = 'test.simptu.io/from';

describe('Controller (real kube-apiserver)', () => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const cleanups: Array<() => Promise<void>> = [];

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function setup(
    opts: {
      reconcileHook?: (key: string, signal: AbortSignal) => Promise<void> | void;
      resyncPeriodMs?: number;
      clock?: FakeClock;
      metrics?: ControllerMetrics;
      concurrency?: number;
    } = {},
  ) {
    const run = suffix();
    const inputs = new Informer<V1ConfigMap>(kc, {
      apiVersion: 'v1',
      plural: 'configmaps',
      namespace: NS,
      labelSelector: `${IN}=${run}`,
    });
    const outputs = new Informer<V1ConfigMap>(kc, {
      apiVersion: 'v1',
      plural: 'configmaps',
      namespace: NS,
      labelSelector: `${OUT}=${run}`,
    });
    const calls: string[] = [];
    const reconcile: Reconcile = async (key, signal) => {
      calls.push(key);
      await opts.reconcileHook?.(key, signal);
      const { namespace, name } = splitKey(key);
      const input = inputs.get(key);
      if (!input) {
        await core
          .deleteNamespacedConfigMap({ namespace: namespace ?? NS, name: `${name}-out` })
          .catch((err: unknown) => {
            if (!isNotFound(err)) throw err;
          });
        return;
      }
      await serverSideApply(
        kc,
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: `${name}-out`, namespace, labels: { [OUT]: run, [FROM]: name } },
          data: { ...input.data },
        },
        { fieldManager: 'toy-controller' },
      );
    };
    const ctl = new Controller<V1ConfigMap>({
      name: `toy-${run}`,
      informer: inputs,
      reconcile,
      watches: [{ informer: outputs, map: mapByLabel(FROM, (v) => `${NS}/${v}`) }],
      concurrency: opts.concurrency ?? 2,
      resyncPeriodMs: opts.resyncPeriodMs ?? 0,
      metrics: opts.metrics,
      clock: opts.clock,
      // Short backoff so retries happen within the test.
      rateLimiter: defaultControllerRateLimiter({ baseDelayMs: 50, clock: opts.clock }),
    });
    cleanups.push(async () => {
      await ctl.stop();
      await Promise.all([inputs.stop(), outputs.stop()]);
      await deleteConfigMaps(kc, IN, run);
      await deleteConfigMaps(kc, OUT, run);
    });
    const input = (name: string, data: Record<string, string>): V1ConfigMap => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: NS, labels: { [IN]: run } },
      data,
    });
    const output = async (name: string) => {
      try {
        return await core.readNamespacedConfigMap({ namespace: NS, name: `${name}-out` });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    };
    return { run, ctl, inputs, outputs, calls, input, output };
  }

  it('reconciles creates and updates, and repairs drift of what it owns via a watch', async () => {
    const metrics = new ControllerMetrics({ defaultMetrics: false });
    const t = setup({ metrics });
    const n = `a-${t.run}`;
    await core.createNamespacedConfigMap({ namespace: NS, body: t.input(n, { v: '1' }) });
    expect(await t.ctl.start()).toBe(true);
    expect(t.ctl.hasSynced()).toBe(true);
    await eventually(async () => (await t.output(n))?.data?.v === '1', 10_000, 'output created');

    await core.patchNamespacedConfigMap({
      namespace: NS,
      name: n,
      body: [{ op: 'replace', path: '/data/v', value: '2' }],
    });
    await eventually(async () => (await t.output(n))?.data?.v === '2', 10_000, 'output updated');

    // Someone deletes our output: the output watch maps it back to its input and we recreate it.
    await core.deleteNamespacedConfigMap({ namespace: NS, name: `${n}-out` });
    await eventually(async () => (await t.output(n))?.data?.v === '2', 10_000, 'output repaired');

    // Input deleted: its output goes too.
    await core.deleteNamespacedConfigMap({ namespace: NS, name: n });
    await eventually(async () => !(await t.output(n)), 10_000, 'output deleted');

    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      new RegExp(`controller_runtime_reconcile_total\\{controller="toy-${t.run}",result="success"\\} [1-9]`),
    );
    expect(text).toContain(`controller_runtime_max_concurrent_reconciles{controller="toy-${t.run}"} 2`);
    expect(text).toMatch(new RegExp(`workqueue_adds_total\\{name="toy-${t.run}"\\} [1-9]`));
  });

  it('retries a failing key with growing backoff, then forgets its failures', async () => {
    const metrics = new ControllerMetrics({ defaultMetrics: false });
    const attempts: number[] = [];
    const t = setup({
      metrics,
      reconcileHook: (key) => {
        if (!key.includes('flaky')) return;
        attempts.push(performance.now());
        if (attempts.length <= 3) throw new Error(`transient failure ${attempts.length}`);
      },
    });
    const n = `flaky-${t.run}`;
    await core.createNamespacedConfigMap({ namespace: NS, body: t.input(n, { v: 'x' }) });
    await t.ctl.start();
    await eventually(async () => (await t.output(n))?.data?.v === 'x', 15_000, 'output after retries');
    expect(attempts.length).toBeGreaterThanOrEqual(4);
    // Backoff 50, 100, 200 ms: each gap is at least its delay (lower bounds cannot flake).
    const gaps = attempts.slice(1, 4).map((t1, i) => t1 - (attempts[i] as number));
    expect(gaps[0]).toBeGreaterThanOrEqual(45);
    expect(gaps[1]).toBeGreaterThanOrEqual(95);
    expect(gaps[2]).toBeGreaterThanOrEqual(195);
    expect(t.ctl.queue.numRequeues(`${NS}/${n}`)).toBe(0); // forgotten after success
    const text = await metrics.registry.metrics();
    expect(text).toContain(`controller_runtime_reconcile_errors_total{controller="toy-${t.run}"} 3`);
    expect(text).toContain(`workqueue_retries_total{name="toy-${t.run}"} 3`);
  });

  it('periodic resync re-enqueues every cached key without any change', async () => {
    const clock = new FakeClock();
    const t = setup({ clock, resyncPeriodMs: 60_000 });
    const names = [`r1-${t.run}`, `r2-${t.run}`];
    for (const n of names)
      await core.createNamespacedConfigMap({ namespace: NS, body: t.input(n, { v: '1' }) });
    await t.ctl.start();
    const keys = names.map((n) => `${NS}/${n}`);
    const count = (k: string) => t.calls.filter((c) => c === k).length;
    await eventually(
      () => keys.every((k) => count(k) >= 1) && t.ctl.queue.processingCount() === 0,
      10_000,
      'initial reconciles',
    );
    // Our outputs' own events map back to the inputs; let them settle so counts are stable.
    await eventually(
      async () => {
        const before = t.calls.length;
        await new Promise((r) => setTimeout(r, 300));
        return t.calls.length === before && t.ctl.queue.len() === 0 && t.ctl.queue.processingCount() === 0;
      },
      10_000,
      'quiet',
    );
    const before = keys.map(count);
    clock.advance(54_000 - 1); // earliest possible resync is period × 0.9
    await new Promise((r) => setTimeout(r, 200));
    expect(keys.map(count)).toEqual(before);
    clock.advance(66_000 - 54_000 + 1); // latest is period × 1.1
    await eventually(
      () => keys.every((k, i) => count(k) === (before[i] as number) + 1),
      10_000,
      'resync reconciles',
    );
  });

  it('requeueAfterMs runs the key again after that delay; requeue: true backs off', async () => {
    const clock = new FakeClock();
    const metrics = new ControllerMetrics({ defaultMetrics: false });
    let afterCalls = 0;
    let requeueCalls = 0;
    // Only the informers and cleanup of setup() are used; this controller returns results.
    const t = setup({ clock });
    const n1 = `after-${t.run}`;
    const n2 = `again-${t.run}`;
    await core.createNamespacedConfigMap({ namespace: NS, body: t.input(n1, { v: '1' }) });
    await core.createNamespacedConfigMap({ namespace: NS, body: t.input(n2, { v: '1' }) });
    const ctl = new Controller<V1ConfigMap>({
      name: `results-${t.run}`,
      informer: t.inputs,
      clock,
      metrics,
      rateLimiter: defaultControllerRateLimiter({ baseDelayMs: 1000, clock }),
      reconcile: async (key) => {
        if (key.includes('after-')) {
          afterCalls++;
          return { requeueAfterMs: 30_000 };
        }
        requeueCalls++;
        return requeueCalls <= 2 ? { requeue: true } : {};
      },
    });
    cleanups.push(() => ctl.stop());
    await ctl.start();
    await eventually(
      () => afterCalls === 1 && requeueCalls === 1 && ctl.queue.processingCount() === 0,
      10_000,
      'first reconciles',
    );
    expect(ctl.queue.numRequeues(`${NS}/${n2}`)).toBe(1);
    clock.advance(999);
    await new Promise((r) => setTimeout(r, 100));
    expect(requeueCalls).toBe(1);
    clock.advance(1); // 1 s backoff
    await eventually(
      () => requeueCalls === 2 && ctl.queue.processingCount() === 0,
      10_000,
      'requeue after backoff',
    );
    clock.advance(2000); // 2 s backoff: third call succeeds and forgets
    await eventually(() => requeueCalls === 3 && ctl.queue.processingCount() === 0, 10_000, 'third call');
    expect(ctl.queue.numRequeues(`${NS}/${n2}`)).toBe(0);
    expect(afterCalls).toBe(1);
    clock.advance(30_000 - 3000); // 30 s after the first reconcile
    await eventually(() => afterCalls === 2, 10_000, 'requeue after 30 s');
    const text = await metrics.registry.metrics();
    expect(text).toContain(
      `controller_runtime_reconcile_total{controller="results-${t.run}",result="requeue_after"} 2`,
    );
    expect(text).toContain(
      `controller_runtime_reconcile_total{controller="results-${t.run}",result="requeue"} 2`,
    );
  });

  it('stops gracefully: waits for the in-flight reconcile, takes no new work', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inFlightSignal: AbortSignal | undefined;
    let finished = 0;
    const t = setup({
      concurrency: 1,
      reconcileHook: async (key, signal) => {
        if (!key.includes('slow')) return;
        inFlightSignal = signal;
        await gate;
        finished++;
      },
    });
    const n = `slow-${t.run}`;
    await core.createNamespacedConfigMap({ namespace: NS, body: t.input(n, { v: '1' }) });
    await t.ctl.start();
    await eventually(() => inFlightSignal, 10_000, 'reconcile in flight');

    let stopped = false;
    const stopping = t.ctl.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(stopped).toBe(false); // still waiting for the reconcile
    expect(inFlightSignal?.aborted).toBe(false); // within the grace period
    const callsBefore = t.calls.length;
    await core.createNamespacedConfigMap({ namespace: NS, body: t.input(`late-${t.run}`, { v: '1' }) });
    release();
    await stopping;
    expect(finished).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(t.calls.length).toBe(callsBefore); // nothing reconciled after stop
  });
});
