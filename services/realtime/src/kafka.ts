/**
 * The hub's Kafka consumer settings and why (the benchmark's bare "Kafka floor" consumer uses
 * the same ones, so the floor is what kafkajs itself costs with them). Measured with
 * `bench/realtime/floor.ts` (docs/benchmarks.md "Realtime"):
 *
 * - **No offset commit per batch.** kafkajs with `autoCommit` (its default) sends an
 *   OffsetCommit after EVERY partition batch and awaits it before the next batch — and the
 *   broker's group coordinator holds each commit for `group.coordinator.append.linger.ms`
 *   (5 ms by default in Kafka 4.x) before it answers (~6 ms round trip here). With 3 partitions
 *   handled one after the other that is ≥ 15 ms on every fetch cycle, and every record waits
 *   for the cycle in progress: ~20 ms p50 for a bare consumer, ~1.5 ms without. The hub's
 *   offsets matter little (every event is de-duplicated by id in Redis, and a new instance
 *   starts at the end): it commits at most every `commitIntervalMs`, and when it stops.
 * - **Partitions handled concurrently** (`partitionsConsumedConcurrently`): one fetch returns a
 *   batch per partition; handled one after the other, each waits for the previous one's Redis
 *   round trip (and a bare consumer's tail doubles). Records of ONE partition (so of one
 *   conversation) still go in order.
 * - Fetch settings stay kafkajs' defaults (`minBytes` 1: a fetch returns as soon as anything is
 *   there). TCP_NODELAY on the broker connections made no measurable difference: kafkajs writes
 *   a request in one write and waits for its response, so Nagle's algorithm has nothing to hold.
 * @see https://kafka.js.org/docs/consuming#a-name-auto-commit-a-autocommit
 * @see https://kafka.apache.org/documentation/#brokerconfigs_group.coordinator.append.linger.ms
 */
import type { ConsumerRunConfig } from 'kafkajs';

export interface IngestKafkaSettings {
  /** partitions whose batches are handled at the same time */
  partitionsConcurrency: number;
  /** consumed offsets are committed at most this often (never after every batch) */
  commitIntervalMs: number;
}

export const DEFAULT_INGEST_KAFKA_SETTINGS: IngestKafkaSettings = {
  partitionsConcurrency: 8,
  commitIntervalMs: 5000,
};

/**
 * kafkajs `consumer.run` options (without the handler) for these settings: offsets resolved by
 * the handler, committed by its `commitOffsetsIfNecessary()` at most every `commitIntervalMs`.
 */
export function consumerRunOptions(
  s: IngestKafkaSettings,
): Pick<
  ConsumerRunConfig,
  'autoCommit' | 'autoCommitInterval' | 'partitionsConsumedConcurrently' | 'eachBatchAutoResolve'
> {
  return {
    autoCommit: false,
    autoCommitInterval: s.commitIntervalMs,
    partitionsConsumedConcurrently: s.partitionsConcurrency,
    eachBatchAutoResolve: false,
  };
}
