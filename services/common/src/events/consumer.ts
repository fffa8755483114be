/**
 * Idempotent consumption of tenant topics (DESIGN §6). For each record, in ONE `withTenant`
 * transaction of the event's tenant:
 *
 *     INSERT INTO processed_events (consumer, event_id) … ON CONFLICT DO NOTHING
 *     → inserted: run the handler (its writes commit together with the marker)
 *     → existed:  a redelivery or re-publication; skip
 *
 * and only after COMMIT the record's offset is committed. With `markInHandler` the handler
 * writes that marker itself, before anything else — e.g. inlined in one round trip with its own
 * first statements (`EventContext.marker`) — and stops when it was there; a handler that returns
 * without writing it fails the record. A crash before COMMIT redelivers and
 * re-applies nothing half-done; a crash after COMMIT but before the offset commit redelivers
 * and is skipped. So every event is applied exactly once, whatever Kafka or the outbox relay
 * redelivers.
 *
 * Isolation: the tenant of the topic, the `simptu-tenant` header and the event's `tenant`
 * must all agree before any tenant transaction is opened; a record that fails that (or can't
 * be decoded) is rejected — logged, reported to `onRejected`, its offset committed, never
 * handled. A handler that throws rolls back and the record is retried (kafkajs retry, then a
 * consumer restart): a partition never skips past a record that failed transiently.
 *
 * Concurrency: `partitionsConsumedConcurrently` partitions are handled at the same time (each
 * holds one pool connection for its transaction); records of ONE partition are always handled
 * one after another in offset order, so per-key order (key → partition) is kept. While a handler
 * runs, the consumer heartbeats the group every `heartbeatIntervalMs`: kafkajs only heartbeats
 * between records by itself, so a handler longer than the session timeout (an LLM turn) would
 * otherwise get the member evicted, its partitions reassigned and the record handled twice
 * (the second time skipped as a duplicate, but the work and the rebalance are wasted). When the
 * member did lose its membership anyway (a rebalance during the handler), the refused offset
 * commit makes the consumer rejoin the group rather than crash.
 * @see https://kafka.js.org/docs/consuming#a-name-each-message-a-eachmessage
 * @see https://kafka.js.org/docs/consuming#a-name-concurrent-processing-a-partition-aware-concurrency
 * @see https://kafka.js.org/docs/consuming#a-name-manual-commits-a-manual-committing
 */
import type { Consumer, ConsumerConfig, Kafka, KafkaMessage } from 'kafkajs';
import type pg from 'pg';
import { runWithContext } from '../context.ts';
import { quoteLiteral } from '../db/identifiers.ts';
import { tenantDbRef, tenantTransaction, withTenant, type TenantDbRef } from '../db/tenant-db.ts';
import { isUuid } from '../domain/context.ts';
import type { Logger } from '../logger.ts';
import { fromKafkaRecord, topicTenant, type CloudEvent } from './cloudevents.ts';

export interface EventContext {
  /** the tenant transaction; write through it so the writes commit with the processed marker */
  client: pg.PoolClient;
  tenant: TenantDbRef;
  topic: string;
  partition: number;
  offset: string;
  key: string | undefined;
  /**
   * Only with `markInHandler`: the event's processed marker, which the handler must write
   * (`write()`, or `inlineSql` sent with its own first statements and then `written()`) before
   * anything else, and stop doing work when it was already there (a duplicate).
   */
  marker?: ProcessedMarker;
  /**
   * Only with `deferBegin`: the preamble's statements to start the handler's first query with
   * (`TENANT_PREAMBLE_RESULTS` results), or `''` once taken (tenant-db.ts `takeBegin`).
   */
  takeBegin?: () => string;
}

export type EventHandler = (event: CloudEvent, ctx: EventContext) => Promise<void>;

const MARKER_SQL = `INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`;

/** An event's processed marker left to the handler (`markInHandler`). */
export interface ProcessedMarker {
  readonly consumer: string;
  readonly eventId: string;
  /**
   * The marker's INSERT as one statement without parameters, for a handler that sends it in
   * one simple-protocol round trip with its own statements (its rowCount: 1 inserted, 0 a
   * duplicate); undefined unless the event id is a UUID (only then is it inlined).
   */
  readonly inlineSql: string | undefined;
  /** Writes it now (one statement); false when it was there already: a duplicate. */
  write(): Promise<boolean>;
  /** Reports the outcome of `inlineSql` sent by the handler itself. */
  written(inserted: boolean): void;
}

export type ProcessOutcome = 'applied' | 'duplicate' | 'rejected';

export interface RejectedRecord {
  topic: string;
  partition: number;
  offset: string;
  reason: string;
}

export interface EventConsumerOptions {
  kafka: Kafka;
  groupId: string;
  /** the name in `processed_events.consumer`; @default groupId */
  consumerName?: string;
  /** tenant topics (`simptu.t.<name>.<kind>`), names or patterns */
  topics: Array<string | RegExp>;
  /** @default false: a new group starts at the end */
  fromBeginning?: boolean;
  /** the services' login-role pool */
  pool: pg.Pool;
  handler: EventHandler;
  /** where a tenant's schema/role is; undefined → rejected (unknown tenant). @default tenantDbRef */
  resolveTenant?: (tenant: string) => TenantDbRef | undefined | Promise<TenantDbRef | undefined>;
  onRejected?: (r: RejectedRecord) => void;
  logger?: Logger;
  /** extra kafkajs consumer settings (`sessionTimeout`, `heartbeatInterval`, `rebalanceTimeout` …) */
  consumerConfig?: Partial<ConsumerConfig>;
  /**
   * Partitions handled at the same time (kafkajs `partitionsConsumedConcurrently`); records of
   * one partition stay sequential. Keep it at most the pool's size. @default 1
   */
  partitionsConsumedConcurrently?: number;
  /**
   * How often to heartbeat the group while a handler runs; 0 = only between records (kafkajs'
   * own behaviour). kafkajs sends at most one heartbeat per `consumerConfig.heartbeatInterval`
   * whatever this says. @default consumerConfig.heartbeatInterval ?? 3000
   */
  heartbeatIntervalMs?: number;
  /**
   * When the consumed offset is committed to Kafka, always only after the record's tenant
   * transaction committed. `record`: after each record (one Kafka round trip per record, on the
   * partition's critical path). `batch`: kafkajs auto-commit — after each fetched batch and at
   * least every 5 s; a crash redelivers the rest of a batch, which the processed markers skip.
   * @default 'record'
   * @see https://kafka.js.org/docs/consuming#a-name-auto-commit-a-autocommit
   */
  offsetCommit?: 'record' | 'batch';
  /**
   * The handler writes the processed marker itself (`EventContext.marker`), e.g. in the same
   * round trip as its first statements, instead of the consumer before calling it. It must do
   * so on every path before any other write, and do nothing more when it was a duplicate; a
   * handler that returns without writing it fails the record (rolled back, retried).
   * @default false
   */
  markInHandler?: boolean;
  /**
   * With `markInHandler`: the handler also sends the transaction's preamble (BEGIN, SET LOCAL
   * ROLE …) itself, in its first round trip — `EventContext.takeBegin()` prepended to its first
   * simple-protocol query (`marker.write()` sends it first on its own when it was not taken).
   * One round trip less per record (`withTenant`'s `deferBegin`). @default false
   */
  deferBegin?: boolean;
}

/** kafkajs' default `heartbeatInterval`. */
const KAFKAJS_HEARTBEAT_INTERVAL_MS = 3000;

const MEMBERSHIP_ERRORS: readonly string[] = [
  'REBALANCE_IN_PROGRESS',
  'NOT_COORDINATOR_FOR_GROUP',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
];

/**
 * The broker's error (kafkajs `KafkaJSProtocolError`, found through `cause`) when it says this
 * member is no longer (or not yet again) part of the group's generation; undefined otherwise.
 * @see https://github.com/tulios/kafkajs/blob/master/src/consumer/runner.js (rejoins on these types)
 */
function membershipError(err: unknown): (Error & { type: string }) | undefined {
  for (
    let e = err, depth = 0;
    e && typeof e === 'object' && depth < 5;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && MEMBERSHIP_ERRORS.includes(type)) return e as Error & { type: string };
  }
  return undefined;
}

export class EventConsumer {
  readonly #o: EventConsumerOptions;
  readonly #name: string;
  #consumer: Consumer | undefined;

  constructor(options: EventConsumerOptions) {
    this.#o = options;
    this.#name = options.consumerName ?? options.groupId;
  }

  /** Joins the group and starts consuming; resolves once running. */
  async start(): Promise<void> {
    if (this.#consumer) return;
    const consumer = this.#o.kafka.consumer({ groupId: this.#o.groupId, ...this.#o.consumerConfig });
    this.#consumer = consumer;
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: this.#o.topics, fromBeginning: this.#o.fromBeginning ?? false });
      const perRecord = (this.#o.offsetCommit ?? 'record') === 'record';
      await consumer.run({
        // `batch`: kafkajs resolves a record's offset only when eachMessage returned, i.e. after
        // the tenant transaction committed, and commits resolved offsets after each batch.
        autoCommit: !perRecord,
        autoCommitInterval: 5000,
        partitionsConsumedConcurrently: Math.max(1, this.#o.partitionsConsumedConcurrently ?? 1),
        eachMessage: async ({ topic, partition, message, heartbeat }) => {
          const stopBeating = this.#keepAlive(heartbeat, topic, partition, message.offset);
          try {
            await this.process(topic, partition, message);
          } finally {
            stopBeating();
          }
          if (!perRecord) return;
          // After the tenant transaction committed: the next offset to read.
          await consumer
            .commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }])
            .catch((err: unknown) => {
              // kafkajs wraps a commit refused for a lost membership (evicted after a session
              // timeout, or a rebalance during the handler) in a KafkaJSNonRetriableError, which
              // its runner treats as a crash and never restarts. Rethrown as the broker's error,
              // the runner rejoins the group instead; the record is redelivered and skipped as a
              // duplicate (its processed marker committed).
              const cause = membershipError(err);
              if (cause)
                this.#o.logger?.warn(
                  { topic, partition, offset: message.offset, type: cause.type },
                  'offset commit refused: rejoining the group',
                );
              throw cause ?? err;
            });
        },
      });
    } catch (err) {
      this.#consumer = undefined;
      await consumer.disconnect().catch(() => undefined);
      throw err;
    }
  }

  /** Heartbeats while one record is handled; returns the function that stops it. */
  #keepAlive(heartbeat: () => Promise<void>, topic: string, partition: number, offset: string): () => void {
    const every =
      this.#o.heartbeatIntervalMs ??
      this.#o.consumerConfig?.heartbeatInterval ??
      KAFKAJS_HEARTBEAT_INTERVAL_MS;
    if (every <= 0) return () => undefined;
    let stopped = false;
    const timer = setInterval(() => {
      // kafkajs shares one in-flight heartbeat among callers and skips it when the last one is
      // younger than its heartbeatInterval, so concurrent partitions don't multiply requests.
      heartbeat().catch((err: unknown) => {
        if (stopped) return;
        if (membershipError(err)) {
          // The group is rebalancing: this member rejoins after the handler returns (the offset
          // commit then fails and the record is redelivered, to be skipped as a duplicate).
          stopped = true;
          clearInterval(timer);
          this.#o.logger?.warn({ topic, partition, offset, err }, 'rebalance while handling a record');
        } else this.#o.logger?.debug({ topic, partition, offset, err }, 'heartbeat during a handler failed');
      });
    }, every);
    timer.unref();
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }

  async stop(): Promise<void> {
    const c = this.#consumer;
    this.#consumer = undefined;
    await c?.disconnect();
  }

  /**
   * Handles one record (everything but the offset commit). Exposed so tests and replay tools
   * can feed records directly.
   */
  async process(
    topic: string,
    partition: number,
    message: Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>,
  ): Promise<ProcessOutcome> {
    const reject = (reason: string): ProcessOutcome => {
      const r = { topic, partition, offset: message.offset, reason };
      this.#o.logger?.error(r, 'event rejected');
      this.#o.onRejected?.(r);
      return 'rejected';
    };
    const decoded = fromKafkaRecord(message);
    if (!decoded.ok) return reject(decoded.error);
    const { event, key } = decoded;
    const owner = topicTenant(topic);
    if (owner === undefined) return reject(`topic ${topic} is not a tenant topic`);
    if (owner !== event.tenant) return reject(`event of tenant ${event.tenant} on topic of tenant ${owner}`);
    const ref = await (this.#o.resolveTenant ?? tenantDbRef)(event.tenant);
    if (!ref || ref.name !== event.tenant) return reject(`unknown tenant ${event.tenant}`);

    return runWithContext({ tenant: event.tenant, requestId: event.id }, () =>
      withTenant(
        this.#o.pool,
        ref,
        async (client): Promise<ProcessOutcome> => {
          const ctx: EventContext = { client, tenant: ref, topic, partition, offset: message.offset, key };
          const duplicate = (): ProcessOutcome => {
            this.#o.logger?.debug({ eventId: event.id, type: event.type }, 'duplicate event skipped');
            return 'duplicate';
          };
          if (!this.#o.markInHandler) {
            const r = await client.query(MARKER_SQL, [this.#name, event.id]);
            if (r.rowCount === 0) return duplicate();
            await this.#o.handler(event, ctx);
            return 'applied';
          }
          let inserted: boolean | undefined;
          const tx = this.#o.deferBegin ? tenantTransaction(client) : undefined;
          if (tx) ctx.takeBegin = () => tx.takeBegin();
          ctx.marker = {
            consumer: this.#name,
            eventId: event.id,
            inlineSql: isUuid(event.id)
              ? `INSERT INTO processed_events (consumer, event_id) VALUES (${quoteLiteral(this.#name)}, ${quoteLiteral(event.id)}) ON CONFLICT DO NOTHING`
              : undefined,
            write: async () => {
              if (inserted !== undefined) return inserted;
              await tx?.ensureBegun();
              const r = await client.query(MARKER_SQL, [this.#name, event.id]);
              return (inserted = r.rowCount !== 0);
            },
            written: (ok) => void (inserted = ok),
          };
          await this.#o.handler(event, ctx);
          if (inserted === undefined)
            throw new Error(
              `handler of ${this.#name} did not write the processed marker of event ${event.id}`,
            );
          return inserted ? 'applied' : duplicate();
        },
        this.#o.markInHandler && this.#o.deferBegin ? { deferBegin: true } : {},
      ),
    );
  }
}
