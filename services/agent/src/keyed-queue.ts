/**
 * The building blocks of per-key concurrency (keyed-consumer.ts), free of Kafka so they can be
 * tested on their own:
 *
 *  - `KeyedQueue`: tasks of one key run one after another in the order they were queued; tasks
 *    of different keys run concurrently.
 *  - `Semaphore`: at most N tasks hold a slot at once (a run holds a database connection).
 *  - `OffsetTracker`: the offsets of one partition handed out for processing, completed in any
 *    order; `committable` is the offset Kafka may store for the group — every record below it
 *    is done, so a crash redelivers at most records already done (skipped by their processed
 *    markers) and never skips one that is not.
 */

/** Runs tasks of one key in queue order; different keys concurrently. */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<void>>();

  /** Queues `task` behind the key's earlier tasks (whether they succeeded or failed). */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key);
    const result = prev ? prev.then(task) : task();
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** keys with a task queued or running */
  get size(): number {
    return this.#tails.size;
  }
}

/** A counting semaphore; waiters are served first come, first served. */
export class Semaphore {
  #free: number;
  readonly #waiters: Array<() => void> = [];

  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new TypeError('slots must be an integer >= 1');
    this.#free = slots;
  }

  /** Resolves with the function that gives the slot back (call it exactly once). */
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiters.push(r));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    };
  }

  get available(): number {
    return this.#free;
  }
}

/**
 * One partition's offsets in flight. Offsets are added in increasing order (the order Kafka
 * delivers them) and completed in any order.
 */
export class OffsetTracker {
  /** offsets added and not yet below the watermark, in order; `#head` is the first live one */
  #offsets: bigint[] = [];
  #head = 0;
  readonly #done = new Set<bigint>();
  /** one past the highest offset added */
  #next: bigint | undefined;

  /**
   * Tracks `offset`. Returns false (and tracks nothing) when it is not above every offset added
   * so far — a redelivery of a record this tracker already has.
   */
  add(offset: string): boolean {
    const o = BigInt(offset);
    if (this.#next !== undefined && o < this.#next) return false;
    this.#offsets.push(o);
    this.#next = o + 1n;
    return true;
  }

  /** Marks `offset` done; returns whether the watermark moved. */
  done(offset: string): boolean {
    const o = BigInt(offset);
    if (this.#head >= this.#offsets.length || o < this.#offsets[this.#head]!) return false;
    this.#done.add(o);
    const before = this.#head;
    while (this.#head < this.#offsets.length && this.#done.delete(this.#offsets[this.#head]!)) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#offsets.length) {
      this.#offsets = this.#offsets.slice(this.#head);
      this.#head = 0;
    }
    return this.#head !== before;
  }

  /**
   * The offset to commit (Kafka's "next record to read"): the lowest offset not done, or one past
   * the highest when all are done; undefined before the first `add`.
   */
  get committable(): string | undefined {
    const o = this.#head < this.#offsets.length ? this.#offsets[this.#head] : this.#next;
    return o?.toString();
  }

  /** offsets added and not done */
  get pending(): number {
    return this.#offsets.length - this.#head - this.#done.size;
  }
}
