/**
 * Opt-in per-turn stage timestamps, to see where a slow first token spent its time
 * (docs/benchmarks.md, "Where the slowest turns wait"). With `SIMPTU_AGENT_TURN_TRACE=<file>`
 * (config `turnTrace`; main.ts calls `enableTurnTrace`) the agent records for each inbound record the wall-clock time (ms, sub-millisecond) of
 *
 *   produced  the record's Kafka timestamp (the producer's clock: same machine in the benchmark)
 *   fetched   handed to the keyed consumer by kafkajs
 *   slot      a run slot (and so a database connection) acquired
 *   ready     the one query before the model answered (preamble, marker, lock, session, checkpoint)
 *   token     the first token handed to the stream sender
 *   done      the record's transaction committed
 *
 * and writes them as JSON (`[[key, {stage: ms}], …]`) to `<file>` on SIGUSR2, going on running.
 * Off by default; then each `mark` is one optional call on `undefined`. At most 200,000 records
 * are kept (the first ones); a stage's first mark wins (a retried record keeps its first times).
 */
import { writeFileSync } from 'node:fs';

export type TurnStage = 'produced' | 'fetched' | 'slot' | 'ready' | 'token' | 'done';

const MAX_RECORDS = 200_000;

export class TurnTrace {
  readonly #rows = new Map<string, Partial<Record<TurnStage, number>>>();

  /** The key of a record: its topic, partition and offset. */
  static key(topic: string, partition: number, offset: string): string {
    return `${topic}/${partition}/${offset}`;
  }

  mark(key: string, stage: TurnStage, at: number = performance.timeOrigin + performance.now()): void {
    let row = this.#rows.get(key);
    if (!row) {
      if (this.#rows.size >= MAX_RECORDS) return;
      this.#rows.set(key, (row = {}));
    }
    row[stage] ??= at;
  }

  get size(): number {
    return this.#rows.size;
  }

  write(file: string): void {
    writeFileSync(file, JSON.stringify([...this.#rows]));
  }
}

/** The process's trace, once `enableTurnTrace` was called (a live binding for importers). */
export let turnTrace: TurnTrace | undefined;

/** Starts recording; SIGUSR2 writes what was recorded so far to `file`. */
export function enableTurnTrace(file: string): TurnTrace {
  if (turnTrace) return turnTrace;
  const t = (turnTrace = new TurnTrace());
  process.on('SIGUSR2', () => t.write(file));
  return t;
}
