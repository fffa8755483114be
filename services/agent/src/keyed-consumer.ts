/**
 * The common `EventConsumer` (one `withTenant` transaction per record with its processed marker,
 * tenant checks) with **per-key** instead of per-partition ordering: records of different keys
 * (conversations) of ONE partition are handled at the same time, records of one key strictly one
 * after another in offset order.
 *
 * Why: a tenant's inbound topic has few partitions (3 by default) and many conversations; with
 * per-partition order a turn waits for every earlier turn of any conversation that hashed to
 * its partition (head-of-line blocking), and time to first token under a burst is queueing.
 *
 * How (kafkajs `eachBatch`, manual offsets):
 *  - each fetched record joins the queue of its key (`queueKey`, default the record key) and the
 *    batch callback returns at once, so fetching goes on; a run holds one of `maxConcurrent`
 *    slots (it holds a database connection); at most `maxInFlight` records are queued or running
 *    before fetching waits (heartbeating meanwhile);
 *  - offsets: records complete out of order, so a partition's committed offset is its
 *    **watermark** — the lowest offset not yet done (`OffsetTracker`). Everything below it has
 *    its tenant transaction committed; a crash redelivers from the watermark, records done
 *    above it find their processed marker and are skipped: still exactly once;
 *  - a handler that throws (a transient failure; the transaction rolled back) is retried with
 *    back-off in place, holding up only its own key — never skipped;
 *  - a rebalance (or a consumer restart) starts a new generation: kafkajs fetches again from
 *    the committed watermarks, queued records of the old generation are dropped (they come
 *    again), runs in progress finish (a redelivered copy queues behind them on the same key and
 *    is skipped as a duplicate), and only the new generation's watermarks are committed;
 *  - `stop()` stops fetching, lets runs in progress finish, commits, then leaves the group.
 *
 * Safe across instances too: a record redelivered to another member while this one still runs
 * it blocks on the processed-marker insert until this transaction ends, then is skipped.
 * @see https://kafka.js.org/docs/consuming#a-name-each-batch-a-eachbatch
 * @see https://kafka.js.org/docs/consuming#a-name-manual-commits-a-manual-committing
 */
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { EventConsumer, type EventConsumerOptions } from '@simptu/common';
import { KeyedQueue, OffsetTracker, Semaphore } from './keyed-queue.ts';
import { TurnTrace, turnTrace } from './turn-trace.ts';

type Record_ = Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>;

export interface KeyedConsumerOptions extends Omit<EventConsumerOptions, 'offsetCommit'> {
  /** records handled at the same time across all partitions (each holds a pool connection); @default 8 */
  maxConcurrent?: number;
  /** records queued or running before fetching waits; @default 4 × maxConcurrent */
  maxInFlight?: number;
  /**
   * How soon a partition's watermark is committed once it moved: 0 = at once (one commit
   * request in flight at a time, later moves coalesced into the next); @default 1000
   */
  commitIntervalMs?: number;
  /** first/maximum back-off between attempts of a failing record; @default 200 / 30000 */
  retryMinMs?: number;
  retryMaxMs?: number;
}

const KAFKAJS_HEARTBEAT_INTERVAL_MS = 3000;

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export class KeyedEventConsumer extends EventConsumer {
  readonly #ko: KeyedConsumerOptions;
  readonly #queues = new KeyedQueue();
  readonly #slots: Semaphore;
  readonly #maxInFlight: number;
  #consumer: Consumer | undefined;
  /** bumped on every rebalance/restart; work of an older generation is never committed */
  #generation = 0;
  /** the current generation's partitions */
  #trackers = new Map<string, { topic: string; partition: number; tracker: OffsetTracker }>();
  readonly #committed = new Map<string, string>();
  #inFlight = 0;
  readonly #tasks = new Set<Promise<void>>();
  /** woken when a record completes (room for more) */
  #roomWaiters: Array<() => void> = [];
  /** woken only by stop() (retry back-off) */
  #stopWaiters: Array<() => void> = [];
  #stopping = false;
  #commitTimer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #flushAgain = false;

  constructor(options: KeyedConsumerOptions) {
    super(options);
    this.#ko = options;
    const max = Math.max(1, options.maxConcurrent ?? 8);
    this.#slots = new Semaphore(max);
    this.#maxInFlight = Math.max(max, options.maxInFlight ?? 4 * max);
  }

  /**
   * The queue a record joins: records of one queue are handled one after another in offset
   * order. Default: its key (a conversation's session id), else its partition.
   */
  queueKey(topic: string, partition: number, message: Record_): string {
    const key = message.key?.toString();
    return key ? `${topic}\u0000k\u0000${key}` : `${topic}\u0000p\u0000${partition}`;
  }

  /** records queued or running */
  get inFlight(): number {
    return this.#inFlight;
  }

  override async start(): Promise<void> {
    if (this.#consumer) return;
    const o = this.#ko;
    const consumer = o.kafka.consumer({ groupId: o.groupId, ...o.consumerConfig });
    this.#consumer = consumer;
    this.#stopping = false;
    const newGeneration = () => {
      this.#generation++;
      this.#trackers = new Map();
      this.#committed.clear();
    };
    consumer.on(consumer.events.REBALANCING, newGeneration);
    consumer.on(consumer.events.GROUP_JOIN, newGeneration);
    consumer.on(consumer.events.CRASH, newGeneration);
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: o.topics, fromBeginning: o.fromBeginning ?? false });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.max(1, o.partitionsConsumedConcurrently ?? 1),
        eachBatch: (payload) => this.#onBatch(payload),
      });
    } catch (err) {
      this.#consumer = undefined;
      await consumer.disconnect().catch(() => undefined);
      throw err;
    }
  }

  /** Stops fetching, lets the runs in progress finish, commits, leaves the group. */
  override async stop(): Promise<void> {
    const c = this.#consumer;
    if (!c) return;
    this.#stopping = true;
    for (const list of [this.#roomWaiters, this.#stopWaiters]) for (const f of list.splice(0)) f();
    const topics = this.#ko.topics.filter((t): t is string => typeof t === 'string');
    try {
      if (topics.length > 0) c.pause(topics.map((topic) => ({ topic })));
    } catch {
      // not running (a crash): nothing is fetched anyway
    }
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    await this.commitOffsets();
    this.#consumer = undefined;
    await c.disconnect();
  }

  /**
   * Commits every partition's watermark that moved since its last commit (now, not waiting for
   * `commitIntervalMs`); resolves when that commit was answered. Failures are logged, not thrown
   * (the next commit carries the watermark again).
   */
  commitOffsets(): Promise<void> {
    if (this.#flushing) {
      this.#flushAgain = true;
      return this.#flushing;
    }
    this.#flushing = (async () => {
      try {
        do {
          this.#flushAgain = false;
          await this.#commitOnce();
        } while (this.#flushAgain);
      } finally {
        this.#flushing = undefined;
      }
    })();
    return this.#flushing;
  }

  async #commitOnce(): Promise<void> {
    const c = this.#consumer;
    if (!c) return;
    const generation = this.#generation;
    const offsets: Array<{ topic: string; partition: number; offset: string }> = [];
    for (const [k, { topic, partition, tracker }] of this.#trackers) {
      const offset = tracker.committable;
      if (offset !== undefined && this.#committed.get(k) !== offset)
        offsets.push({ topic, partition, offset });
    }
    if (offsets.length === 0) return;
    try {
      await c.commitOffsets(offsets);
      if (generation === this.#generation)
        for (const x of offsets) this.#committed.set(tpKey(x.topic, x.partition), x.offset);
    } catch (err) {
      // A rebalance refuses the commit (the new generation commits its own watermarks).
      this.#ko.logger?.warn({ err, offsets }, 'offset commit failed; retried with the next one');
    }
  }

  #commitSoon(): void {
    const every = this.#ko.commitIntervalMs ?? 1000;
    if (every <= 0) {
      void this.commitOffsets();
      return;
    }
    this.#commitTimer ??= setTimeout(() => {
      this.#commitTimer = undefined;
      void this.commitOffsets();
    }, every);
    this.#commitTimer.unref();
  }

  /** Resolves after `ms`, or earlier when something in `waiters` is called. */
  #nap(ms: number, waiters: Array<() => void>): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      waiters.push(done);
    });
  }

  async #onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { topic, partition } = batch;
    const generation = this.#generation;
    const live = () => isRunning() && !isStale() && !this.#stopping && generation === this.#generation;
    const every =
      this.#ko.heartbeatIntervalMs ??
      this.#ko.consumerConfig?.heartbeatInterval ??
      KAFKAJS_HEARTBEAT_INTERVAL_MS;
    for (const message of batch.messages) {
      // Back-pressure: wait for room, heartbeating so the group keeps this member.
      while (live() && this.#inFlight >= this.#maxInFlight) {
        await this.#nap(every > 0 ? every : KAFKAJS_HEARTBEAT_INTERVAL_MS, this.#roomWaiters);
        if (every > 0) await heartbeat().catch(() => undefined);
      }
      if (!live()) return;
      const k = tpKey(topic, partition);
      let entry = this.#trackers.get(k);
      if (!entry?.tracker.add(message.offset)) {
        // First record of the partition, or the position moved back (a redelivery): track afresh
        // from here. Safe: the position only moves back to a committed watermark, below every
        // record still running, and a redelivered copy of a running record queues behind it on
        // its key, so the new watermark passes it only once it is done.
        this.#trackers.set(k, (entry = { topic, partition, tracker: new OffsetTracker() }));
        this.#committed.delete(k);
        entry.tracker.add(message.offset);
      }
      if (turnTrace) {
        const key = TurnTrace.key(topic, partition, message.offset);
        turnTrace.mark(key, 'produced', Number(message.timestamp));
        turnTrace.mark(key, 'fetched');
      }
      this.#dispatch(generation, entry.tracker, topic, partition, message);
      resolveOffset(message.offset);
    }
  }

  #dispatch(
    generation: number,
    tracker: OffsetTracker,
    topic: string,
    partition: number,
    message: Record_,
  ): void {
    this.#inFlight++;
    const task = this.#queues
      .run(this.queueKey(topic, partition, message), async () => {
        if (!(await this.#handle(generation, topic, partition, message))) return;
        if (tracker.done(message.offset) && generation === this.#generation) this.#commitSoon();
      })
      .catch((err: unknown) =>
        this.#ko.logger?.error(
          { err, topic, partition, offset: message.offset },
          'keyed consumer task failed',
        ),
      )
      .finally(() => {
        this.#inFlight--;
        this.#tasks.delete(task);
        this.#roomWaiters.shift()?.();
      });
    this.#tasks.add(task);
  }

  /** Handles one record, retrying failures; false when given up (stopping or a new generation). */
  async #handle(generation: number, topic: string, partition: number, message: Record_): Promise<boolean> {
    const current = () => !this.#stopping && generation === this.#generation;
    const min = this.#ko.retryMinMs ?? 200;
    const max = this.#ko.retryMaxMs ?? 30_000;
    for (let attempt = 0; ; attempt++) {
      if (!current()) return false;
      const release = await this.#slots.acquire();
      turnTrace?.mark(TurnTrace.key(topic, partition, message.offset), 'slot');
      try {
        if (!current()) return false;
        await this.process(topic, partition, message);
        turnTrace?.mark(TurnTrace.key(topic, partition, message.offset), 'done');
        return true;
      } catch (err) {
        this.#ko.logger?.warn(
          { err, topic, partition, offset: message.offset, attempt },
          'record failed; retrying it (its conversation waits)',
        );
      } finally {
        release();
      }
      if (!current()) return false;
      await this.#nap(Math.min(max, min * 2 ** Math.min(attempt, 20)), this.#stopWaiters);
    }
  }
}
