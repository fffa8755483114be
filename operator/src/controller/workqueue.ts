/**
 * A per-key de-duplicating, delaying, rate-limited work queue with the semantics of client-go's
 * `workqueue` (the one controller-runtime uses):
 *
 * - a key is queued at most once however often it is added (`dirty` set);
 * - a key being processed is never handed to a second worker; if it is added while processing,
 *   it is queued again when the worker calls `done(key)` (`processing` set);
 * - `addAfter` delays an add (the earliest requested time wins), `addRateLimited` delays by the
 *   rate limiter, `forget` resets the per-item backoff.
 *
 * @see https://pkg.go.dev/k8s.io/client-go/util/workqueue
 * @see https://github.com/kubernetes/client-go/blob/master/util/workqueue/queue.go
 */
import { systemClock, type Clock, type TimerHandle } from './clock.ts';

/** Decides how long an item waits before it is retried. */
export interface RateLimiter {
  /** Delay in ms before `item` may be processed again; records a failure for it. */
  when(item: string): number;
  /** Clears the failure history of `item` (after a success). */
  forget(item: string): void;
  /** How many times `item` has been rate-limited since its last `forget`. */
  numRequeues(item: string): number;
  /** Items with a failure history (per-item state held); bounded by the keys failing now. */
  tracked?(): number;
}

/** Per-item exponential backoff: `baseDelayMs * 2^failures`, capped at `maxDelayMs`. */
export class ItemExponentialFailureRateLimiter implements RateLimiter {
  readonly #failures = new Map<string, number>();
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;

  constructor(baseDelayMs = 5, maxDelayMs = 1_000_000) {
    this.#baseDelayMs = baseDelayMs;
    this.#maxDelayMs = maxDelayMs;
  }

  when(item: string): number {
    const exp = this.#failures.get(item) ?? 0;
    this.#failures.set(item, exp + 1);
    // 2^exp overflows to Infinity long before it matters; min() caps it.
    return Math.min(this.#baseDelayMs * 2 ** exp, this.#maxDelayMs);
  }

  forget(item: string): void {
    this.#failures.delete(item);
  }

  numRequeues(item: string): number {
    return this.#failures.get(item) ?? 0;
  }

  tracked(): number {
    return this.#failures.size;
  }
}

/**
 * Overall token bucket (like golang.org/x/time/rate): `qps` tokens per second, at most `burst`
 * stored. Each `when()` reserves one token and returns how long until it is available, so a
 * storm of failures across many keys is spread out instead of hammering the API server.
 */
export class BucketRateLimiter implements RateLimiter {
  readonly #qps: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;

  constructor(qps = 10, burst = 100, clock: Clock = systemClock) {
    if (!(qps > 0) || !(burst >= 1))
      throw new Error(`BucketRateLimiter: need qps > 0 and burst >= 1 (got ${qps}, ${burst})`);
    this.#qps = qps;
    this.#burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  when(): number {
    const now = this.#clock.now();
    const elapsed = Math.max(0, now - this.#last) / 1000;
    this.#last = now;
    this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#qps) - 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#qps) * 1000);
  }

  forget(): void {}

  numRequeues(): number {
    return 0;
  }
}

/** The longest delay of several limiters; requeue counts from the first that has any. */
export class MaxOfRateLimiter implements RateLimiter {
  readonly #limiters: readonly RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.#limiters = limiters;
  }

  when(item: string): number {
    // Every limiter must see the failure (each keeps its own state), so no short-circuit.
    return this.#limiters.reduce((max, l) => Math.max(max, l.when(item)), 0);
  }

  forget(item: string): void {
    for (const l of this.#limiters) l.forget(item);
  }

  numRequeues(item: string): number {
    return this.#limiters.reduce((max, l) => Math.max(max, l.numRequeues(item)), 0);
  }

  tracked(): number {
    return this.#limiters.reduce((sum, l) => sum + (l.tracked?.() ?? 0), 0);
  }
}

export interface RateLimiterOptions {
  /** @default 5 */
  baseDelayMs?: number;
  /** @default 1_000_000 (1000 s) */
  maxDelayMs?: number;
  /** @default 10 */
  qps?: number;
  /** @default 100 */
  burst?: number;
  clock?: Clock;
}

/** controller-runtime's default: max(per-item exponential 5 ms…1000 s, bucket 10 qps / 100 burst). */
export function defaultControllerRateLimiter(opts: RateLimiterOptions = {}): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialFailureRateLimiter(opts.baseDelayMs ?? 5, opts.maxDelayMs ?? 1_000_000),
    new BucketRateLimiter(opts.qps ?? 10, opts.burst ?? 100, opts.clock ?? systemClock),
  );
}

/**
 * Hooks for the client-go workqueue metrics (`workqueue_*{name}`); see metrics.ts for the
 * Prometheus implementation. Durations are in seconds.
 */
export interface WorkQueueMetrics {
  setDepth(depth: number): void;
  incAdds(): void;
  observeQueueDuration(seconds: number): void;
  observeWorkDuration(seconds: number): void;
  incRetries(): void;
  /** Gives the metrics a probe to pull `unfinished_work_seconds` / `longest_running_processor_seconds` on scrape. */
  bindInProgress(probe: () => InProgressStats): void;
}

export interface InProgressStats {
  unfinishedWorkSeconds: number;
  longestRunningProcessorSeconds: number;
}

export interface WorkQueueOptions {
  /** The `name` label of the metrics. @default 'workqueue' */
  name?: string;
  /** @default defaultControllerRateLimiter() */
  rateLimiter?: RateLimiter;
  clock?: Clock;
  metrics?: WorkQueueMetrics;
}

export class WorkQueue {
  readonly name: string;
  readonly #clock: Clock;
  readonly #rateLimiter: RateLimiter;
  readonly #metrics: WorkQueueMetrics | undefined;

  /** Keys ready to be handed out, in order. Each key at most once. */
  #queue: string[] = [];
  /** Keys that need processing (queued, or re-added while processing). */
  readonly #dirty = new Set<string>();
  /** Keys handed to a worker and not yet `done`, with the time they were handed out. */
  readonly #processing = new Map<string, number>();
  /** When each dirty key was first added (for queue_duration). */
  readonly #addedAt = new Map<string, number>();
  /** Delayed adds: key → earliest ready time and its timer. */
  readonly #waiting = new Map<string, { readyAt: number; timer: TimerHandle }>();
  /** Workers blocked in get(). */
  #getters: Array<(key: string | undefined) => void> = [];
  #shuttingDown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.name = opts.name ?? 'workqueue';
    this.#clock = opts.clock ?? systemClock;
    this.#rateLimiter = opts.rateLimiter ?? defaultControllerRateLimiter({ clock: this.#clock });
    this.#metrics = opts.metrics;
    this.#metrics?.bindInProgress(() => this.inProgress());
  }

  /** Marks `key` as needing processing. No-op if already queued or after shutdown. */
  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#metrics?.incAdds();
    this.#dirty.add(key);
    this.#addedAt.set(key, this.#clock.now());
    if (this.#processing.has(key)) return; // re-queued by done()
    this.#enqueue(key);
  }

  /** Adds `key` after `ms`. If it is already waiting, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.#clock.now() + ms;
    const existing = this.#waiting.get(key);
    if (existing) {
      if (existing.readyAt <= readyAt) return;
      this.#clock.clearTimeout(existing.timer);
    }
    const timer = this.#clock.setTimeout(() => {
      this.#waiting.delete(key);
      this.add(key);
    }, ms);
    this.#waiting.set(key, { readyAt, timer });
  }

  /** Adds `key` when the rate limiter allows (a retry after failure). */
  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.#metrics?.incRetries();
    this.addAfter(key, this.#rateLimiter.when(key));
  }

  /** Stops tracking failures of `key` (call after it was processed successfully). */
  forget(key: string): void {
    this.#rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.#rateLimiter.numRequeues(key);
  }

  /**
   * Waits for the next key and marks it processing; the caller must call `done(key)`.
   * Resolves `undefined` once the queue is shut down and drained of ready keys.
   */
  get(): Promise<string | undefined> {
    if (this.#queue.length > 0) return Promise.resolve(this.#take());
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Marks `key` as processed; if it was added meanwhile, queues it again. */
  done(key: string): void {
    const started = this.#processing.get(key);
    if (started === undefined) return;
    this.#processing.delete(key);
    this.#metrics?.observeWorkDuration((this.#clock.now() - started) / 1000);
    if (this.#dirty.has(key)) this.#enqueue(key);
  }

  /**
   * Stops accepting adds, cancels delayed adds and wakes blocked workers with `undefined`.
   * Keys already queued are still handed out; workers stop when get() returns undefined.
   */
  shutDown(): void {
    this.#shuttingDown = true;
    for (const { timer } of this.#waiting.values()) this.#clock.clearTimeout(timer);
    this.#waiting.clear();
    const getters = this.#getters;
    this.#getters = [];
    for (const g of getters) g(undefined);
  }

  shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Number of keys ready to be handed out (not counting delayed or processing ones). */
  len(): number {
    return this.#queue.length;
  }

  /** Number of keys handed out and not yet done. */
  processingCount(): number {
    return this.#processing.size;
  }

  /** Number of delayed adds pending. */
  waitingCount(): number {
    return this.#waiting.size;
  }

  /**
   * Per-key state held, by kind. Every entry goes when its key is handed out, done, fired or
   * forgotten, so an idle queue whose keys all succeeded holds none, whatever the number of keys
   * it has seen (a thousand tenants must not cost a thousand entries at steady state).
   */
  tracked(): { dirty: number; processing: number; waiting: number; failing: number } {
    return {
      dirty: Math.max(this.#dirty.size, this.#addedAt.size, this.#queue.length),
      processing: this.#processing.size,
      waiting: this.#waiting.size,
      failing: this.#rateLimiter.tracked?.() ?? 0,
    };
  }

  inProgress(): InProgressStats {
    const now = this.#clock.now();
    let total = 0;
    let longest = 0;
    for (const started of this.#processing.values()) {
      const s = (now - started) / 1000;
      total += s;
      longest = Math.max(longest, s);
    }
    return { unfinishedWorkSeconds: total, longestRunningProcessorSeconds: longest };
  }

  #enqueue(key: string): void {
    const getter = this.#getters.shift();
    if (getter) {
      // Hand the key straight to a blocked worker; it never sits in #queue.
      this.#queue.push(key);
      getter(this.#take());
      return;
    }
    this.#queue.push(key);
    this.#metrics?.setDepth(this.#queue.length);
  }

  #take(): string {
    const key = this.#queue.shift() as string;
    this.#metrics?.setDepth(this.#queue.length);
    this.#dirty.delete(key);
    this.#processing.set(key, this.#clock.now());
    const added = this.#addedAt.get(key);
    this.#addedAt.delete(key);
    if (added !== undefined) this.#metrics?.observeQueueDuration((this.#clock.now() - added) / 1000);
    return key;
  }
}
