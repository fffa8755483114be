/**
 * Cache invalidation by domain events (DESIGN §7: "Redis cache … invalidated by domain events").
 * The API invalidates its cache after its own writes, but bookings (and catalog changes) are
 * also written by other services — the agent's booking tools — whose only trace reaching this
 * process is their domain event on `simptu.t.<name>.domain`. This consumer reads the domain
 * topics of the active tenants and calls `invalidateForEvent` (cache.ts) for
 * `io.simptu.booking.*` and `io.simptu.catalog.*`, so the availability cache changes as soon as
 * the event is relayed instead of after the TTL.
 *
 * No processed-event de-duplication and no database: invalidating is idempotent (it bumps a
 * generation counter), so a redelivered event costs one extra cache miss and nothing else.
 * The cache lives in the shared Redis, so ONE consumer group serves every API instance
 * (`<prefix>.cache-invalidation`). The tenant whose cache is invalidated is the TOPIC's tenant,
 * and a record whose event names another tenant is ignored (DESIGN §10: isolation at every hop).
 *
 * Topics: kafkajs resolves subscriptions when a consumer starts, so on a change of the tenant set
 * (`sync`, called by the events plugin's periodic refresh) the consumer restarts with the new
 * list; committed offsets carry over, new topics start at the earliest offset.
 * @see https://kafka.js.org/docs/consuming
 */
import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import { fromKafkaRecord, tenantTopics, topicTenant, type Logger } from '@simptu/common';
import { areasForEvent, invalidateForEvent, type CacheDeps } from '../cache.ts';
import type { TenantInfo } from '../types.ts';

export interface DomainEventsOptions {
  kafka: Kafka;
  /** consumer group prefix; the group is `<prefix>.cache-invalidation` */
  groupPrefix: string;
  redis: CacheDeps['redis'];
  logger?: Logger;
}

export type InvalidationOutcome = 'invalidated' | 'ignored' | 'rejected';

/**
 * One record → the invalidation it calls for. Exposed for tests and tools; the consumer feeds
 * every record through it.
 */
export async function handleDomainRecord(
  deps: Pick<CacheDeps, 'redis' | 'log'>,
  topic: string,
  message: Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>,
): Promise<InvalidationOutcome> {
  const tenant = topicTenant(topic);
  const decoded = fromKafkaRecord(message);
  if (tenant === undefined || !decoded.ok) {
    deps.log?.warn({ topic, offset: message.offset }, 'undecodable domain record ignored by the cache');
    return 'rejected';
  }
  const { event } = decoded;
  if (event.tenant !== tenant) {
    deps.log?.warn(
      { topic, offset: message.offset, eventTenant: event.tenant },
      'domain event of another tenant ignored',
    );
    return 'rejected';
  }
  if (areasForEvent(event.type).length === 0) return 'ignored';
  await invalidateForEvent(deps, tenant, event.type);
  return 'invalidated';
}

/** Keeps one consumer subscribed to the domain topics of the active tenants. */
export class DomainEventsConsumer {
  readonly #o: DomainEventsOptions;
  #consumer: Consumer | undefined;
  #topics = '';
  #chain: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: DomainEventsOptions) {
    this.#o = options;
  }

  /** Brings the subscription in line with `tenants` (serialized; safe to call often). */
  sync(tenants: readonly TenantInfo[]): Promise<void> {
    const run = this.#chain.then(() => this.#sync(tenants));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #sync(tenants: readonly TenantInfo[]): Promise<void> {
    if (this.#stopped) return;
    const topics = tenants.map((t) => tenantTopics(t.name).domain).sort();
    const key = topics.join(',');
    if (this.#consumer && key === this.#topics) return;
    await this.#stopConsumer();
    this.#topics = key;
    if (topics.length === 0) return;
    const consumer = this.#o.kafka.consumer({ groupId: `${this.#o.groupPrefix}.cache-invalidation` });
    const log = this.#o.logger;
    const deps = { redis: this.#o.redis, ...(log ? { log } : {}) };
    try {
      await consumer.connect();
      await consumer.subscribe({ topics, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ topic, message }) => {
          await handleDomainRecord(deps, topic, message);
        },
      });
    } catch (err) {
      this.#topics = '';
      await consumer.disconnect().catch(() => undefined);
      throw err;
    }
    this.#consumer = consumer;
  }

  async #stopConsumer(): Promise<void> {
    const c = this.#consumer;
    this.#consumer = undefined;
    await c?.disconnect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#chain;
    await this.#stopConsumer();
  }
}
