/**
 * Persists the agent's final messages (`io.simptu.agent.message` on `simptu.t.<name>.agent`) as
 * `assistant` messages of their session, so a session's history shows both sides (DESIGN §7).
 * The stored message keeps the agent's `message_id` as its id (when it is a UUID, as the agent's
 * deterministic ids are), so the realtime hub — which pushes the event as it is — and the
 * history show the same message under the same id; a second event with an id already stored
 * is acknowledged without writing.
 *
 * Exactly once: `EventConsumer` inserts the event id into the tenant's `processed_events` in the
 * same transaction as the message, so a redelivered record (Kafka rebalance, relay re-publish)
 * is skipped. Token deltas, tool calls and other agent events are not history: they are skipped
 * BEFORE any database work (no processed-event row per token).
 *
 * Wire contract of `io.simptu.agent.message` (shared with the realtime hub, snake_case):
 *   `{session_id: uuid, message_id: string, seq?: int, body_enc: string}` where `body_enc` is
 *   `FieldCipher.encryptText(body, messageBodyLocation(message_id))` with the tenant's data key
 *   (ciphertext on Kafka, DESIGN §6). A plaintext `body` is accepted from development producers.
 * Events that can never apply (unknown or closed session, undecryptable body, bad payload) are
 * logged and acknowledged — retrying them would stall the partition forever.
 *
 * Topics: kafkajs resolves subscriptions when a consumer starts, so the set of tenants is
 * refreshed periodically from the registry, and the consumer of a database restarts when its
 * tenants change. One consumer group per database (dedicated tenants live in their own), all API
 * instances sharing it; new topics start at the earliest offset (de-dup makes that safe).
 * @see https://kafka.js.org/docs/consuming#a-name-subscribe-a-subscribing
 */
import type { Kafka, KafkaMessage } from 'kafkajs';
import type pg from 'pg';
import {
  appendMessage,
  attempt,
  DecryptionError,
  EventConsumer,
  fromKafkaRecord,
  isUuid,
  messageBodyLocation,
  SimptuError,
  tenantTopics,
  type CloudEvent,
  type CipherSource,
  type EventContext,
  type Logger,
  type ProcessOutcome,
  type TenantDbRef,
} from '@simptu/common';
import type { TenantInfo } from '../types.ts';

export const AGENT_MESSAGE_TYPE = 'io.simptu.agent.message';
export const AGENT_REPLIES_CONSUMER = 'api.agent-replies';

export interface AgentMessageData {
  session_id: string;
  message_id: string;
  seq?: number;
  body_enc?: string;
  body?: string;
}

/** An `EventConsumer` that drops event types it doesn't handle before opening a transaction. */
class TypeFilteringConsumer extends EventConsumer {
  readonly #types: ReadonlySet<string>;
  constructor(options: ConstructorParameters<typeof EventConsumer>[0], types: readonly string[]) {
    super(options);
    this.#types = new Set(types);
  }
  override async process(
    topic: string,
    partition: number,
    message: Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>,
  ): Promise<ProcessOutcome> {
    const d = fromKafkaRecord(message);
    // Undecodable records go to the parent, which rejects and reports them.
    if (d.ok && !this.#types.has(d.event.type)) return 'duplicate';
    return super.process(topic, partition, message);
  }
}

export type ApplyOutcome = 'stored' | 'skipped';

/** The handler: one agent message → one assistant message (in the consumer's transaction). */
export function agentMessageHandler(deps: {
  ciphers: CipherSource;
  timeZoneOf: (tenant: string) => string;
  logger?: Logger;
}) {
  return async (event: CloudEvent, ctx: EventContext): Promise<ApplyOutcome> => {
    const log = deps.logger?.child({ eventId: event.id, tenant: event.tenant });
    const data = event.data as Partial<AgentMessageData> | null;
    if (!data || !isUuid(data.session_id) || typeof data.message_id !== 'string' || data.message_id === '') {
      log?.warn('agent message without session_id/message_id skipped');
      return 'skipped';
    }
    const cipher = await deps.ciphers.cipher(event.tenant);
    let body: string;
    try {
      if (typeof data.body_enc === 'string')
        body = cipher.decryptText(data.body_enc, messageBodyLocation(data.message_id));
      else if (typeof data.body === 'string') body = data.body;
      else {
        log?.warn({ sessionId: data.session_id }, 'agent message without body skipped');
        return 'skipped';
      }
    } catch (err) {
      if (!(err instanceof DecryptionError)) throw err;
      log?.error(
        { err, sessionId: data.session_id },
        'agent message body does not decrypt for this tenant/message: skipped',
      );
      return 'skipped';
    }
    const sessionId = data.session_id;
    // Not a UUID (a development producer): the message gets a new id; the hub's id won't match.
    const id = isUuid(data.message_id) ? data.message_id : undefined;
    if (id === undefined) log?.warn({ sessionId }, 'agent message_id is not a UUID: stored under a new id');
    const r = await attempt(ctx.client, () =>
      appendMessage(
        { client: ctx.client, cipher, timeZone: deps.timeZoneOf(event.tenant), source: '/simptu/api' },
        sessionId,
        { role: 'assistant', body, ...(id !== undefined ? { id } : {}) },
      ),
    );
    if (!r.ok) {
      // Domain refusals (unknown/closed session, invalid body) will never succeed: acknowledge.
      if (r.error instanceof SimptuError && r.error.statusCode < 500) {
        log?.warn({ code: r.error.code, sessionId }, 'agent message not stored');
        return 'skipped';
      }
      throw r.error;
    }
    return 'stored';
  };
}

export interface AgentRepliesOptions {
  kafka: Kafka;
  /** consumer group prefix; the group is `<prefix>.agent-replies.<database>` */
  groupPrefix: string;
  ciphers: CipherSource;
  /** the login-role pool of a database */
  poolFor: (tenant: TenantInfo) => pg.Pool;
  logger?: Logger;
}

interface Group {
  consumer: TypeFilteringConsumer;
  topics: string;
  tenants: Map<string, TenantInfo>;
}

/** Keeps one consumer per database subscribed to the agent topics of its active tenants. */
export class AgentRepliesConsumer {
  readonly #o: AgentRepliesOptions;
  readonly #groups = new Map<string, Group>();
  #tenants = new Map<string, TenantInfo>();
  #chain: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: AgentRepliesOptions) {
    this.#o = options;
  }

  /** Brings the subscriptions in line with `tenants` (serialized; safe to call often). */
  sync(tenants: readonly TenantInfo[]): Promise<void> {
    const run = this.#chain.then(() => this.#sync(tenants));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #sync(tenants: readonly TenantInfo[]): Promise<void> {
    if (this.#stopped) return;
    this.#tenants = new Map(tenants.map((t) => [t.name, t]));
    const byDb = new Map<string, TenantInfo[]>();
    for (const t of tenants) byDb.set(t.database, [...(byDb.get(t.database) ?? []), t]);
    for (const [db, g] of this.#groups) {
      if (!byDb.has(db)) {
        this.#groups.delete(db);
        await g.consumer.stop();
      }
    }
    for (const [db, list] of byDb) {
      const topics = list.map((t) => tenantTopics(t.name).agent).sort();
      const key = topics.join(',');
      const existing = this.#groups.get(db);
      if (existing && existing.topics === key) {
        existing.tenants = new Map(list.map((t) => [t.name, t]));
        continue;
      }
      if (existing) {
        this.#groups.delete(db);
        await existing.consumer.stop();
      }
      const group: Group = {
        topics: key,
        tenants: new Map(list.map((t) => [t.name, t])),
        consumer: undefined as unknown as TypeFilteringConsumer,
      };
      const handler = agentMessageHandler({
        ciphers: this.#o.ciphers,
        timeZoneOf: (name) => this.#tenants.get(name)?.timezone ?? 'UTC',
        ...(this.#o.logger ? { logger: this.#o.logger } : {}),
      });
      group.consumer = new TypeFilteringConsumer(
        {
          kafka: this.#o.kafka,
          groupId: `${this.#o.groupPrefix}.agent-replies.${db}`,
          consumerName: AGENT_REPLIES_CONSUMER,
          topics,
          fromBeginning: true,
          pool: this.#o.poolFor(list[0]!),
          handler: async (event, ctx) => void (await handler(event, ctx)),
          resolveTenant: (name): TenantDbRef | undefined => {
            const t = group.tenants.get(name);
            return t ? { name: t.name, schema: t.schema, role: t.role } : undefined;
          },
          ...(this.#o.logger ? { logger: this.#o.logger } : {}),
        },
        [AGENT_MESSAGE_TYPE],
      );
      await group.consumer.start();
      this.#groups.set(db, group);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#chain;
    const groups = [...this.#groups.values()];
    this.#groups.clear();
    await Promise.all(groups.map((g) => g.consumer.stop()));
  }
}
