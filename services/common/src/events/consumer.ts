/**
 * Idempotent consumption of tenant topics (DESIGN §6). For each record, in ONE `withTenant`
 * transaction of the event's tenant:
 *
 *     INSERT INTO processed_events (consumer, event_id) … ON CONFLICT DO NOTHING
 *     → inserted: run the handler (its writes commit together with the marker)
 *     → existed:  a redelivery or re-publication; skip
 *
 * and only after COMMIT the record's offset is committed. A crash before COMMIT redelivers and
 * re-applies nothing half-done; a crash after COMMIT but before the offset commit redelivers
 * and is skipped. So every event is applied exactly once, whatever Kafka or the outbox relay
 * redelivers.
 *
 * Isolation: the tenant of the topic, the `simptu-tenant` header and the event's `tenant`
 * must all agree before any tenant transaction is opened; a record that fails that (or can't
 * be decoded) is rejected — logged, reported to `onRejected`, its offset committed, never
 * handled. A handler that throws rolls back and the record is retried (kafkajs retry, then a
 * consumer restart): a partition never skips past a record that failed transiently.
 * @see https://kafka.js.org/docs/consuming#a-name-each-message-a-eachmessage
 * @see https://kafka.js.org/docs/consuming#a-name-manual-commits-a-manual-committing
 */
import type { Consumer, ConsumerConfig, Kafka, KafkaMessage } from 'kafkajs';
import type pg from 'pg';
import { runWithContext } from '../context.ts';
import { tenantDbRef, withTenant, type TenantDbRef } from '../db/tenant-db.ts';
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
}

export type EventHandler = (event: CloudEvent, ctx: EventContext) => Promise<void>;

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
  /** extra kafkajs consumer settings */
  consumerConfig?: Partial<ConsumerConfig>;
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
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message }) => {
          await this.process(topic, partition, message);
          // After the tenant transaction committed: the next offset to read.
          await consumer.commitOffsets([
            { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
          ]);
        },
      });
    } catch (err) {
      this.#consumer = undefined;
      await consumer.disconnect().catch(() => undefined);
      throw err;
    }
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
      withTenant(this.#o.pool, ref, async (client) => {
        const r = await client.query(
          `INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
          [this.#name, event.id],
        );
        if (r.rowCount === 0) {
          this.#o.logger?.debug({ eventId: event.id, type: event.type }, 'duplicate event skipped');
          return 'duplicate';
        }
        await this.#o.handler(event, { client, tenant: ref, topic, partition, offset: message.offset, key });
        return 'applied';
      }),
    );
  }
}
