/**
 * A controller in controller-runtime's shape: informers feed keys into a rate-limited work queue;
 * N workers take one key at a time and call `reconcile(key)`, which reads the cache, compares
 * with the world and converges it. Level-triggered: the reconciler never sees the event type,
 * only the key, so a missed or coalesced event is harmless, and a periodic jittered resync
 * re-enqueues every primary object to repair drift nobody was told about.
 *
 * Result handling (controller-runtime's `reconcileHandler`):
 * - throws            → `addRateLimited` (per-key exponential backoff + overall token bucket)
 * - `requeueAfterMs`  → `forget` + `addAfter`
 * - `requeue: true`   → `addRateLimited`
 * - otherwise         → `forget`
 * @see https://github.com/kubernetes-sigs/controller-runtime/blob/main/pkg/internal/controller/controller.go
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import { errorMessage } from './errors.ts';
import { objectKey, type Informer } from './informer.ts';
import { noopLogger, type Logger } from './log.ts';
import type { ControllerMetrics, ReconcileResultLabel } from './metrics.ts';
import { WorkQueue, defaultControllerRateLimiter, type RateLimiter } from './workqueue.ts';

export interface Result {
  /** Run again with rate-limited backoff (prefer `requeueAfterMs` for waits you can size). */
  requeue?: boolean;
  /** Run again after this many ms. */
  requeueAfterMs?: number;
}

/** Reconciles one key; throws for errors (retried with backoff). `signal` aborts on shutdown after the grace period. */
export type Reconcile = (key: string, signal: AbortSignal) => Promise<Result | void>;

/** Maps events of a secondary resource to the primary keys to reconcile. */
export interface Watch<S extends KubernetesObject = KubernetesObject> {
  informer: Informer<S>;
  /** Primary keys affected by `obj` (e.g. its owner, or the tenant named in a label). */
  map(obj: S): string[];
}

/** `Watch.map` for objects that name their primary in a label (e.g. `simptu.io/tenant`). */
export function mapByLabel(
  label: string,
  toKey: (value: string, obj: KubernetesObject) => string = (v) => v,
) {
  return (obj: KubernetesObject): string[] => {
    const v = obj.metadata?.labels?.[label];
    return v ? [toKey(v, obj)] : [];
  };
}

export interface ControllerOptions<T extends KubernetesObject> {
  /** Metric label and queue name, e.g. 'tenant'. */
  name: string;
  /** The primary resource's informer; its keys are the reconcile keys. */
  informer: Informer<T>;
  reconcile: Reconcile;
  watches?: Watch[];
  /** Workers reconciling different keys in parallel. @default 1 */
  concurrency?: number;
  /** Re-enqueue every primary key about this often; 0 disables. @default 600_000 (10 min) */
  resyncPeriodMs?: number;
  /** Each resync interval is `resyncPeriodMs × (1 ± resyncJitter)`. @default 0.1 */
  resyncJitter?: number;
  /** On stop, in-flight reconciles get this long before their signal aborts. @default 30_000 */
  shutdownGraceMs?: number;
  rateLimiter?: RateLimiter;
  metrics?: ControllerMetrics;
  logger?: Logger;
  clock?: Clock;
}

export class Controller<T extends KubernetesObject = KubernetesObject> {
  readonly name: string;
  readonly queue: WorkQueue;
  readonly #opts: ControllerOptions<T>;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #concurrency: number;
  readonly #abort = new AbortController();
  #workers: Promise<void>[] = [];
  #resyncTimer: TimerHandle | undefined;
  #started = false;
  #stopped = false;

  constructor(opts: ControllerOptions<T>) {
    this.#opts = opts;
    this.name = opts.name;
    this.#clock = opts.clock ?? systemClock;
    this.#log = (opts.logger ?? noopLogger).child({ controller: opts.name });
    this.#concurrency = Math.max(1, opts.concurrency ?? 1);
    this.queue = new WorkQueue({
      name: opts.name,
      clock: this.#clock,
      rateLimiter: opts.rateLimiter ?? defaultControllerRateLimiter({ clock: this.#clock }),
      metrics: opts.metrics?.workQueue(opts.name),
    });
    opts.metrics?.initController(opts.name, this.#concurrency);

    const enqueue = (obj: T) => this.queue.add(objectKey(obj));
    opts.informer.addHandler({ onAdd: enqueue, onUpdate: (_old, obj) => enqueue(obj), onDelete: enqueue });
    for (const w of opts.watches ?? []) {
      const enqueueMapped = (obj: KubernetesObject) => {
        for (const key of w.map(obj)) this.queue.add(key);
      };
      w.informer.addHandler({
        onAdd: enqueueMapped,
        // Both: a label moved from one primary to another concerns both.
        onUpdate: (old, obj) => {
          enqueueMapped(old);
          enqueueMapped(obj);
        },
        onDelete: enqueueMapped,
      });
    }
  }

  /**
   * Starts the informers (if not already), waits for them to sync — reconciling from a partial
   * cache would wrongly conclude objects are missing — then starts the workers and the resync.
   * Resolves once workers run; false if stopped before the caches synced.
   */
  async start(signal?: AbortSignal): Promise<boolean> {
    if (this.#started) return true;
    this.#started = true;
    const informers = [this.#opts.informer, ...(this.#opts.watches ?? []).map((w) => w.informer)];
    for (const inf of informers) inf.start();
    const stopSignal = signal ? AbortSignal.any([signal, this.#abort.signal]) : this.#abort.signal;
    const synced = await Promise.all(informers.map((inf) => inf.waitForSync(stopSignal)));
    if (!synced.every(Boolean) || this.#stopped) return false;
    this.#log.info({ workers: this.#concurrency }, 'caches synced; starting workers');
    for (let i = 0; i < this.#concurrency; i++) this.#workers.push(this.#worker());
    this.#scheduleResync();
    return true;
  }

  /** True once started and every informer has synced (a readiness check). */
  hasSynced(): boolean {
    return this.#opts.informer.hasSynced() && (this.#opts.watches ?? []).every((w) => w.informer.hasSynced());
  }

  /**
   * Stops taking new work and waits for in-flight reconciles to finish; after `shutdownGraceMs`
   * their signal aborts. Informers are left running (they may be shared); stop them after.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#resyncTimer) this.#clock.clearTimeout(this.#resyncTimer);
    this.queue.shutDown();
    const grace = setTimeout(
      () => this.#abort.abort(new Error('controller shutdown grace period elapsed')),
      this.#opts.shutdownGraceMs ?? 30_000,
    );
    grace.unref();
    try {
      await Promise.all(this.#workers);
    } finally {
      clearTimeout(grace);
      this.#abort.abort(new Error('controller stopped'));
    }
    this.#log.info({}, 'stopped');
  }

  /** Enqueues every key of the primary cache (what the periodic resync does). */
  resync(): void {
    for (const key of this.#opts.informer.keys()) this.queue.add(key);
  }

  #scheduleResync(): void {
    const period = this.#opts.resyncPeriodMs ?? 600_000;
    if (period <= 0 || this.#stopped) return;
    const jitter = this.#opts.resyncJitter ?? 0.1;
    const delay = period * (1 + jitter * (Math.random() * 2 - 1));
    this.#resyncTimer = this.#clock.setTimeout(() => {
      this.resync();
      this.#scheduleResync();
    }, delay);
  }

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      await this.#process(key);
    }
  }

  async #process(key: string): Promise<void> {
    const metrics = this.#opts.metrics;
    metrics?.activeWorkers.inc({ controller: this.name });
    const started = performance.now();
    let label: ReconcileResultLabel;
    try {
      const result = (await this.#opts.reconcile(key, this.#abort.signal)) ?? {};
      if (result.requeueAfterMs !== undefined && result.requeueAfterMs > 0) {
        this.queue.forget(key);
        this.queue.addAfter(key, result.requeueAfterMs);
        label = 'requeue_after';
      } else if (result.requeue) {
        this.queue.addRateLimited(key);
        label = 'requeue';
      } else {
        this.queue.forget(key);
        label = 'success';
      }
    } catch (err) {
      this.queue.addRateLimited(key);
      label = 'error';
      this.#log.error(
        { key, err: errorMessage(err), retries: this.queue.numRequeues(key) },
        'reconcile failed',
      );
    } finally {
      this.queue.done(key);
      metrics?.activeWorkers.dec({ controller: this.name });
    }
    metrics?.observeReconcile(this.name, label, (performance.now() - started) / 1000);
  }
}
