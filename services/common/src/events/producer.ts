/**
 * Sends CloudEvents to Kafka with an idempotent producer (DESIGN §6): the broker de-duplicates
 * the producer's own retries per partition (`enable.idempotence`), one request in flight keeps
 * order on retries, acks from all in-sync replicas. (Re-publication after a crash is a new
 * send: consumers de-duplicate by event id, see consumer.ts.)
 *
 * Tenant isolation at the Kafka hop (DESIGN §10): an event goes only to its own tenant's topics
 * (`simptu.t.<tenant>.*`), and a producer bound to a tenant refuses every other tenant's events
 * and the platform topic. Refusals are `TOPIC_TENANT_MISMATCH` errors, before anything is sent.
 * @see https://kafka.js.org/docs/producing#options
 * @see https://kafka.apache.org/documentation/#producerconfigs_enable.idempotence
 */
import kafkajs, {
  type Kafka,
  type KafkaConfig,
  type Message,
  type Producer,
  type RecordMetadata,
  type logCreator,
} from 'kafkajs';
import { CommonErrors } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { isValidTenantName, PLATFORM_TOPIC } from '../names.ts';
import { toKafkaRecord, topicTenant, type CloudEvent } from './cloudevents.ts';

// kafkajs is CommonJS: its runtime values live on the default export.
const { Kafka: KafkaClient, Partitioners, logLevel } = kafkajs;

/** kafkajs log lines → pino, at the matching level. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ level, log }) => {
      const { message, ...extra } = log;
      // Expected: we bound retries on purpose (see EventProducerOptions.retries).
      if (message.startsWith('Limiting retries for the idempotent producer')) return;
      const child = { kafka: extra };
      if (level === logLevel.ERROR) logger.error(child, message);
      else if (level === logLevel.WARN) logger.warn(child, message);
      else if (level === logLevel.INFO) logger.info(child, message);
      else logger.debug(child, message);
    };
}

export interface KafkaOptions {
  clientId: string;
  brokers: string[];
  logger?: Logger;
  /** @default 3000 */
  connectionTimeout?: number;
  /** extra kafkajs client settings (ssl, sasl, retry, …) */
  config?: Partial<KafkaConfig>;
}

/** A kafkajs client with our defaults. `brokers` from `KAFKA_BROKERS` (comma-separated host:port). */
export function createKafka(options: KafkaOptions): Kafka {
  return new KafkaClient({
    clientId: options.clientId,
    brokers: options.brokers,
    connectionTimeout: options.connectionTimeout ?? 3000,
    ...(options.logger ? { logCreator: kafkaLogCreator(options.logger) } : { logLevel: logLevel.WARN }),
    ...options.config,
  });
}

export interface OutgoingEvent {
  topic: string;
  event: CloudEvent;
  /** Kafka key: conversation or aggregate id (per-key order) */
  key: string;
}

/** The refusal reason when `event` may not go to `topic` from a producer bound to `boundTenant`. */
export function topicTenantMismatch(
  topic: string,
  event: CloudEvent,
  boundTenant?: string,
): string | undefined {
  if (boundTenant !== undefined && event.tenant !== boundTenant)
    return `producer bound to tenant ${boundTenant} refuses an event of tenant ${event.tenant}`;
  if (topic === PLATFORM_TOPIC) {
    return boundTenant === undefined
      ? undefined
      : `producer bound to tenant ${boundTenant} may not write ${PLATFORM_TOPIC}`;
  }
  const owner = topicTenant(topic);
  if (owner === undefined) return `topic ${topic} is neither a tenant topic nor the platform topic`;
  if (owner !== event.tenant)
    return `event of tenant ${event.tenant} may not go to topic ${topic} of tenant ${owner}`;
  return undefined;
}

export interface EventSender {
  readonly tenant: string | undefined;
  send(topic: string, event: CloudEvent, key: string): Promise<RecordMetadata[]>;
  /** Sends in one request per broker; order within a topic+key is the array order. */
  sendBatch(events: readonly OutgoingEvent[]): Promise<RecordMetadata[]>;
}

export interface EventProducerOptions {
  kafka: Kafka;
  /** bind to one tenant: events of any other tenant (and the platform topic) are refused */
  tenant?: string;
  /**
   * kafkajs retries before a send fails; @default 5. Deliberately bounded (kafkajs would retry an
   * idempotent producer forever and warn about anything less): a failed send surfaces to the
   * caller — the outbox keeps the event — and the producer is recreated with a fresh producer id.
   */
  retries?: number;
}

export class EventProducer implements EventSender {
  readonly tenant: string | undefined;
  readonly #kafka: Kafka;
  readonly #retries: number;
  #producer: Producer | undefined;
  #connecting: Promise<Producer> | undefined;

  constructor(options: EventProducerOptions) {
    if (options.tenant !== undefined && !isValidTenantName(options.tenant))
      throw new TypeError(`invalid tenant name ${JSON.stringify(options.tenant)}`);
    this.#kafka = options.kafka;
    this.tenant = options.tenant;
    this.#retries = options.retries ?? 5;
    // kafkajs refuses an idempotent producer without retries.
    if (!Number.isInteger(this.#retries) || this.#retries < 1)
      throw new TypeError('retries must be an integer >= 1');
  }

  /** Connects (once; concurrent callers share the attempt). Sends connect on demand too. */
  async connect(): Promise<void> {
    await this.#connected();
  }

  /**
   * Drops the connection and the producer id. After a failed send an idempotent producer's
   * sequence numbers are uncertain; the next send starts a fresh producer.
   */
  async disconnect(): Promise<void> {
    const p = this.#producer;
    this.#producer = undefined;
    this.#connecting = undefined;
    await p?.disconnect().catch(() => undefined);
  }

  get connected(): boolean {
    return this.#producer !== undefined;
  }

  /** A view of this producer (same connection) bound to `tenant`. */
  forTenant(tenant: string): EventSender {
    if (this.tenant !== undefined && tenant !== this.tenant)
      throw new CommonErrors.TOPIC_TENANT_MISMATCH({
        message: `producer bound to tenant ${this.tenant} cannot serve ${tenant}`,
      });
    if (!isValidTenantName(tenant)) throw new TypeError(`invalid tenant name ${JSON.stringify(tenant)}`);
    return {
      tenant,
      send: (topic, event, key) => this.#send([{ topic, event, key }], tenant),
      sendBatch: (events) => this.#send(events, tenant),
    };
  }

  send(topic: string, event: CloudEvent, key: string): Promise<RecordMetadata[]> {
    return this.#send([{ topic, event, key }], this.tenant);
  }

  sendBatch(events: readonly OutgoingEvent[]): Promise<RecordMetadata[]> {
    return this.#send(events, this.tenant);
  }

  async #send(events: readonly OutgoingEvent[], boundTenant: string | undefined): Promise<RecordMetadata[]> {
    // Check everything (and encode, which validates) before sending anything.
    const byTopic = new Map<string, Message[]>();
    for (const { topic, event, key } of events) {
      const problem = topicTenantMismatch(topic, event, boundTenant);
      if (problem) throw new CommonErrors.TOPIC_TENANT_MISMATCH({ message: problem });
      const list = byTopic.get(topic) ?? [];
      list.push(toKafkaRecord(event, key));
      byTopic.set(topic, list);
    }
    if (byTopic.size === 0) return [];
    const producer = await this.#connected();
    try {
      return await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    } catch (err) {
      await this.disconnect();
      throw err;
    }
  }

  #connected(): Promise<Producer> {
    if (this.#producer) return Promise.resolve(this.#producer);
    if (!this.#connecting) {
      const producer = this.#kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        // Murmur2, the Java client's partitioner: the same key lands on the same partition
        // whichever client produced it.
        createPartitioner: Partitioners.DefaultPartitioner,
        retry: { retries: this.#retries },
      });
      this.#connecting = producer.connect().then(
        () => {
          this.#producer = producer;
          this.#connecting = undefined;
          return producer;
        },
        async (err: unknown) => {
          this.#connecting = undefined;
          await producer.disconnect().catch(() => undefined);
          throw err;
        },
      );
    }
    return this.#connecting;
  }
}
