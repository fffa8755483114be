/**
 * Server push from Kafka (DESIGN §7): consumes every active tenant's `agent` and `domain`
 * topics, maps each CloudEvent to channel pushes (`events.ts`) and stores + publishes them per
 * topic through the `StreamBus`.
 *
 * Scale-out choice: every hub instance consumes with ITS OWN consumer group
 * (`<prefix>-<instanceId>`), so each sees every event; the bus's Lua script numbers and
 * publishes an event once per (topic, event id), whichever instance gets there first, and all
 * instances deliver from the Redis publish. No group rebalances when instances come and go
 * (a dead instance stalls nothing), at the cost of N reads of each record. Each partition is
 * handled sequentially and records of one conversation share a key (→ partition), so per
 * topic the seq order is the Kafka order on every instance.
 *
 * The topic list comes from the registry; when it changes the consumer is restarted with the
 * new subscription (kafkajs can't change a running subscription). Topics added later are read
 * from their beginning (their events were produced after the tenant was provisioned);
 * the first subscription starts at the end.
 * @see https://kafka.js.org/docs/consuming
 */
import type { Consumer, Kafka } from 'kafkajs';
import { consumerRunOptions, DEFAULT_INGEST_KAFKA_SETTINGS, type IngestKafkaSettings } from './kafka.ts';
import { fromKafkaRecord, tenantTopics, topicTenant, type FieldCipher, type Logger } from '@simptu/common';
import {
  decryptBody,
  decryptStream,
  messageBodyLocation,
  routeEvent,
  streamLocation,
  type DropReason,
} from './events.ts';
import type { TenantInfo } from './registry.ts';
import type { PublishItem, StreamBus } from './streams.ts';
import { topicKey } from './topics.ts';
import { encodeEntry, sealEntry, type EntryPayload } from './entry.ts';

/** A Kafka record as kafkajs hands it over. */
export interface IncomingMessage {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, unknown>;
}

/** records whose scripts are pipelined at once (bounds memory and the time between heartbeats) */
const BATCH_CHUNK = 500;

export interface IngestOptions {
  kafka: Kafka;
  groupId: string;
  bus: StreamBus;
  cipher: (tenant: string) => Promise<FieldCipher>;
  /** the active tenants now */
  tenants: () => TenantInfo[];
  logger?: Logger;
  onDropped?: (reason: DropReason | 'undecodable' | 'tenant_mismatch' | 'unknown_tenant') => void;
  onStored?: () => void;
  /** per event: seconds from its CloudEvent time to kafkajs handing it over (the `kafka` stage) */
  onReceived?: (seconds: number) => void;
  /** after every batch handled: its records and how long it took (kafkajs hand-over → Redis done) */
  onBatch?: (records: number, seconds: number) => void;
  /** consumer settings (see kafka.ts); @default 8 partitions at once, commits every 5 s */
  settings?: Partial<IngestKafkaSettings>;
}

export class Ingest {
  readonly #o: IngestOptions;
  #consumer: Consumer | undefined;
  /** per partition, the next offset to read after what was stored: committed when stopping */
  #stored = new Map<string, { topic: string; partition: number; offset: string }>();
  #topics = new Set<string>();
  #started = false;
  #restarting: Promise<void> = Promise.resolve();
  #ready: Promise<void> = Promise.resolve();

  constructor(options: IngestOptions) {
    this.#o = options;
  }

  /** Resolves when the consumer has joined its group with the current topics. */
  whenReady(): Promise<void> {
    return this.#ready;
  }

  get topics(): string[] {
    return [...this.#topics].sort();
  }

  /** (Re)subscribes when the tenants' topic set changed. Serialized. */
  sync(): Promise<void> {
    this.#restarting = this.#restarting
      .then(() => this.#sync())
      .catch((err) => {
        this.#o.logger?.error({ err }, 'realtime ingest: resubscribe failed');
      });
    return this.#restarting;
  }

  async #sync(): Promise<void> {
    const want = new Set<string>();
    for (const t of this.#o.tenants()) {
      const tt = tenantTopics(t.name);
      want.add(tt.agent);
      want.add(tt.domain);
    }
    // Only topics that exist: subscribing to a missing one fails the whole consumer.
    const admin = this.#o.kafka.admin();
    await admin.connect();
    let existing: Set<string>;
    try {
      existing = new Set(await admin.listTopics());
    } finally {
      await admin.disconnect();
    }
    for (const t of want) if (!existing.has(t)) want.delete(t);
    const same = want.size === this.#topics.size && [...want].every((t) => this.#topics.has(t));
    if (same && this.#consumer) return;
    const added = [...want].filter((t) => !this.#topics.has(t));
    const kept = [...want].filter((t) => this.#topics.has(t));
    await this.#stopConsumer();
    this.#topics = want;
    if (want.size === 0) return;
    const consumer = this.#o.kafka.consumer({
      groupId: this.#o.groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      allowAutoTopicCreation: false,
    });
    let joined!: () => void;
    this.#ready = new Promise<void>((r) => (joined = r));
    consumer.on(consumer.events.GROUP_JOIN, () => joined());
    await consumer.connect();
    // First subscription: from the end (history in Redis covers reconnecting clients). Later
    // additions: from the beginning, so a new tenant's first events are not skipped.
    const fromStart = this.#started ? added : [];
    const fromEnd = this.#started ? kept : [...want];
    if (fromEnd.length > 0) await consumer.subscribe({ topics: fromEnd, fromBeginning: false });
    if (fromStart.length > 0) await consumer.subscribe({ topics: fromStart, fromBeginning: true });
    this.#started = true;
    await consumer.run({
      // A partition's records a batch at a time, stored by one Redis script run in one round
      // trip (see handleBatch); several partitions at once. Offsets are resolved per chunk
      // handled (a batch cut short by a rebalance or stop commits no more than what was
      // stored) and committed at most every commitIntervalMs — kafkajs' autoCommit would send
      // and await an OffsetCommit after every batch (see kafka.ts). What an uncommitted offset
      // redelivers after a restart of this consumer is de-duplicated by event id in Redis.
      ...consumerRunOptions({ ...DEFAULT_INGEST_KAFKA_SETTINGS, ...this.#o.settings }),
      eachBatch: async ({
        batch,
        heartbeat,
        isRunning,
        isStale,
        resolveOffset,
        commitOffsetsIfNecessary,
      }) => {
        for (let i = 0; i < batch.messages.length && isRunning() && !isStale(); i += BATCH_CHUNK) {
          const chunk = batch.messages.slice(i, i + BATCH_CHUNK);
          await this.handleBatch(batch.topic, chunk);
          const last = chunk[chunk.length - 1]!.offset;
          resolveOffset(last);
          this.#stored.set(`${batch.topic}|${batch.partition}`, {
            topic: batch.topic,
            partition: batch.partition,
            offset: (BigInt(last) + 1n).toString(),
          });
          await heartbeat();
        }
        await commitOffsetsIfNecessary();
      },
    });
    this.#consumer = consumer;
    this.#o.logger?.info({ topics: want.size }, 'realtime ingest: subscribed');
  }

  /** One record: decode, check the tenant, route, store+publish per topic. Exposed for tests. */
  handle(topic: string, message: IncomingMessage): Promise<void> {
    return this.handleBatch(topic, [message]);
  }

  /**
   * Records of one partition, in order. Each is prepared in turn (decoded, routed, its entry
   * sealed or encrypted — entry.ts), then the whole batch is numbered, stored and published by
   * ONE Lua script run (`StreamBus.publishMany`; several runs pipelined past 100 events) in one
   * Redis round trip: it handles the events in array order, so per topic the seqs follow the
   * Kafka order, and PUBLISHes each as it gets to it — delivery (from the pub/sub message, on
   * every instance) does not wait for the batch's reply. Resolves when every event is stored;
   * rejects (and the batch is redelivered, de-duplicated by event id) when a run failed, which
   * stops it at the failing event.
   */
  async handleBatch(topic: string, messages: readonly IncomingMessage[]): Promise<void> {
    const t0 = performance.now();
    // A topic is one tenant's: its key is looked up once per batch (records claiming another
    // tenant are dropped before they would need it).
    let cipher: FieldCipher | Error;
    try {
      const tenant = topicTenant(topic);
      cipher =
        tenant === undefined ? new Error(`${topic} is no tenant's topic`) : await this.#o.cipher(tenant);
    } catch (err) {
      cipher = err instanceof Error ? err : new Error(String(err));
    }
    const items: PublishItem[] = [];
    for (const message of messages) this.#prepare(topic, message, t0, cipher, items);
    const results = await this.#o.bus.publishMany(items);
    for (const r of results) if (r.published) this.#o.onStored?.();
    this.#o.onBatch?.(messages.length, (performance.now() - t0) / 1000);
  }

  /** One record: decoded, checked, routed, and its entries (one per topic) added to `items`. */
  #prepare(
    topic: string,
    message: IncomingMessage,
    receivedAt: number,
    cipher: FieldCipher | Error,
    items: PublishItem[],
  ): void {
    const decoded = fromKafkaRecord(message);
    if (!decoded.ok) {
      this.#o.logger?.warn({ topic, reason: decoded.error }, 'realtime ingest: undecodable record dropped');
      this.#o.onDropped?.('undecodable');
      return;
    }
    const ce = decoded.event;
    if (this.#o.onReceived) {
      const sent = Date.parse(ce.time);
      if (!Number.isNaN(sent))
        this.#o.onReceived(Math.max(0, performance.timeOrigin + receivedAt - sent) / 1000);
    }
    if (topicTenant(topic) !== ce.tenant) {
      this.#o.logger?.error(
        { topic, tenant: ce.tenant },
        'realtime ingest: event tenant does not match topic',
      );
      this.#o.onDropped?.('tenant_mismatch');
      return;
    }
    const routed = routeEvent(ce);
    if (!routed.ok) {
      this.#o.logger?.debug(
        { topic, type: ce.type, detail: routed.detail },
        'realtime ingest: event dropped',
      );
      this.#o.onDropped?.(routed.reason);
      return;
    }
    if (cipher instanceof Error) {
      this.#o.logger?.error({ err: cipher, tenant: ce.tenant }, 'realtime ingest: no key for tenant');
      this.#o.onDropped?.('unknown_tenant');
      return;
    }
    const { event, data: routedData, topics } = routed.routed;
    // The agent's stream events are stored as they came, their content still the agent's
    // ciphertext (entry.ts "sealed"): no decryption, re-encryption or plaintext here.
    const sealed = sealEntry({ event, data: routedData, time: ce.time, id: ce.id });
    if (sealed !== undefined) {
      for (const t of topics)
        items.push({ key: topicKey(ce.tenant, t), eventId: ce.id, data: sealed, receivedAt });
      return;
    }
    const body = decryptBody(routedData, (text, id) => cipher.decryptText(text, messageBodyLocation(id)));
    const data =
      body && decryptStream(event, body, (text) => cipher.decryptText(text, streamLocation(ce.id)));
    if (!data) {
      this.#o.onDropped?.('undecryptable');
      return;
    }
    const payload: EntryPayload = { event, data, time: ce.time, id: ce.id };
    for (const t of topics) {
      const key = topicKey(ce.tenant, t);
      items.push({
        key,
        eventId: ce.id,
        data: encodeEntry(cipher, key, ce.id, payload),
        plain: payload,
        receivedAt,
      });
    }
  }

  async #stopConsumer(): Promise<void> {
    const c = this.#consumer;
    this.#consumer = undefined;
    const stored = [...this.#stored.values()];
    this.#stored = new Map();
    // What was stored since the last periodic commit: a restart (new topics) resumes after it
    // instead of redelivering up to commitIntervalMs of events (harmless, but wasted work).
    if (c && stored.length > 0)
      await Promise.race([c.commitOffsets(stored), new Promise((r) => setTimeout(r, 2000).unref())]).catch(
        (err: unknown) => this.#o.logger?.debug({ err }, 'realtime ingest: final offset commit failed'),
      );
    await c?.disconnect().catch(() => undefined);
  }

  async stop(): Promise<void> {
    await this.#restarting;
    await this.#stopConsumer();
  }
}
