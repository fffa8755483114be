/**
 * Staff replies to customers on external channels.
 *
 * When staff take a conversation over and reply through the API (`POST
 * /v1/sessions/:id/staff-replies`), the API stores the message and emits
 * `io.simptu.message.created` (role `staff`) on `simptu.t.<name>.domain` through its outbox. Web
 * chat sees it through the realtime hub; a customer on SMS, WhatsApp, Messenger, Instagram or
 * e-mail only gets it if someone sends it there — this relay. It consumes the domain topics of
 * the agent's tenants (the registry's, like the runtime: pool → every agent-shared tenant,
 * dedicated → the one; re-read every `registryRefreshMs` — pools.ts `TenantSet`, on the runtime's
 * `DatabasePools` when main passes them) with the common `EventConsumer`, and for
 * each staff message of a session on an external channel queues it in `outbound_messages` in the
 * tenant transaction that also records the event as processed; after COMMIT it is sent by the
 * same `OutboundSender` as the agent's replies (same per-tenant rate limit, same channel routing —
 * WhatsApp by the provider the conversation last came in through; e-mail From the tenant's
 * address, threaded on the conversation's e-mail thread, see `queueStaffEmail`). Pending
 * rows (rate limit, transient failures) go out with the runtime's outbound sweep.
 *
 * Exactly once per message: the processed marker (consumer `agent.staff-relay`) skips a
 * redelivered event, and the outbound row's id derives from the message id (`staff:<message id>`),
 * so even the same message under another event id is queued once — across restarts, since both
 * live in the tenant's database. Sending itself is at-least-once, as for every outbound message
 * (docs/channels.md).
 *
 * What is read is the database's, not the event's: the message (role, body) and its session
 * (channel, customer) are looked up by id in the event's tenant transaction — an event naming
 * another tenant's message finds nothing there. The event's clear `role`/`channel` only let the
 * relay drop the domain topic's other events before any transaction.
 *
 * A new consumer group starts at the beginning of the topics (a tenant's messages from before
 * the relay joined are not lost), so messages older than `maxAgeMs` (default 24 h, WhatsApp's
 * customer-service window) are not sent: a first deployment does not deliver a week of old
 * staff replies.
 */
import type { Kafka, KafkaMessage } from 'kafkajs';
import type pg from 'pg';
import {
  deterministicEventId,
  EventConsumer,
  fromKafkaRecord,
  getSession,
  isUuid,
  messageBodyLocation,
  tenantTopics,
  type CloudEvent,
  type EventConsumerOptions,
  type EventContext,
  type KeyringCache,
  type Logger,
  type Metrics,
  type ProcessOutcome,
} from '@simptu/common';
import {
  queueOutbound,
  queueStaffEmail,
  replyAddress,
  type OutboundChannel,
  type OutboundSender,
} from './channels/outbound.ts';
import { componentPools, TenantSet, type DatabasePools } from './pools.ts';
import type { AgentTenant } from './registry.ts';

export const MESSAGE_CREATED_TYPE = 'io.simptu.message.created';
export const STAFF_RELAY_CONSUMER = 'agent.staff-relay';

const CHAT_CHANNELS: readonly string[] = ['sms', 'whatsapp', 'messenger', 'instagram'];
const RELAYED_CHANNELS: readonly string[] = [...CHAT_CHANNELS, 'email'];

/** What became of one staff message event. */
export type StaffRelayOutcome = 'queued' | 'already-queued' | 'skipped' | 'duplicate' | 'rejected';

export interface StaffRelayReport {
  outcome: StaffRelayOutcome;
  tenant?: string;
  eventId?: string;
  messageId?: string;
  sessionId?: string;
  channel?: string;
  outboundId?: string;
  /** why it was skipped or rejected */
  reason?: string;
}

export interface StaffRelayOptions {
  kafka: Kafka;
  /** login-role pool on the platform database (registry reads, shared tenants) */
  pool: pg.Pool;
  /** the platform database URL of the login role, to reach dedicated tenants' databases */
  databaseUrl: string;
  /** connections of each pool opened for another database (without `pools`); @default 2 */
  databasePoolMax?: number;
  /**
   * The process' database pools (pools.ts), shared with the runtime; without them the relay
   * opens its own from `pool`/`databaseUrl` and closes them on stop.
   */
  pools?: DatabasePools;
  keyrings: KeyringCache;
  outbound: OutboundSender;
  select: { mode: 'pool' } | { mode: 'dedicated'; tenant: string };
  /** the agent's consumer group; the relay's is `<groupId>.staff-relay.<database>` */
  groupId: string;
  /** @default 15000 */
  registryRefreshMs?: number;
  /** staff messages older than this are not sent; @default 24 h */
  maxAgeMs?: number;
  logger?: Logger;
  metrics?: Metrics;
  consumerConfig?: EventConsumerOptions['consumerConfig'];
  heartbeatIntervalMs?: number;
  /** every staff message event's outcome (metrics, tests) */
  onOutcome?: (r: StaffRelayReport) => void;
}

const DAY_MS = 24 * 3_600_000;

/** A staff message event: its clear `role` says so (missing: the database decides). */
function isStaffMessage(event: CloudEvent): boolean {
  if (event.type !== MESSAGE_CREATED_TYPE) return false;
  const role = (event.data as { role?: unknown } | null)?.role;
  return role === undefined || role === 'staff';
}

/** Its clear `channel`, when it names one the relay does not send to. */
function unrelayedChannel(event: CloudEvent): string | undefined {
  const channel = (event.data as { channel?: unknown } | null)?.channel;
  return channel !== undefined && !RELAYED_CHANNELS.includes(String(channel)) ? String(channel) : undefined;
}

type Record_ = Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>;

/** The common consumer, with the domain topic's other events dropped before any transaction. */
class RelayConsumer extends EventConsumer {
  readonly #relay: StaffRelay;
  constructor(options: EventConsumerOptions, relay: StaffRelay) {
    super(options);
    this.#relay = relay;
  }
  override async process(topic: string, partition: number, message: Record_): Promise<ProcessOutcome> {
    const d = fromKafkaRecord(message);
    if (!d.ok) return super.process(topic, partition, message);
    const event = d.event;
    if (!isStaffMessage(event)) return 'duplicate';
    const data = event.data as { message_id?: unknown; session_id?: unknown };
    const report: StaffRelayReport = {
      outcome: 'skipped',
      tenant: event.tenant,
      eventId: event.id,
      ...(typeof data.message_id === 'string' ? { messageId: data.message_id } : {}),
      ...(typeof data.session_id === 'string' ? { sessionId: data.session_id } : {}),
    };
    const other = unrelayedChannel(event);
    if (other) {
      this.#relay.report({ ...report, channel: other, reason: `channel ${other}` });
      return 'duplicate';
    }
    let outcome: ProcessOutcome | undefined;
    try {
      outcome = await super.process(topic, partition, message);
    } finally {
      await this.#relay.afterCommit(event, outcome === 'applied');
    }
    if (outcome !== 'applied') this.#relay.report({ ...report, outcome });
    return outcome;
  }
}

export class StaffRelay {
  readonly #o: StaffRelayOptions;
  readonly #set: TenantSet<RelayConsumer>;
  readonly #pools: DatabasePools;
  readonly #ownsPools: boolean;
  /** tenant + event id → what its transaction did (reported, and sent, once it committed) */
  readonly #pending = new Map<string, { report: StaffRelayReport; send?: AgentTenant }>();
  readonly #count: ((outcome: StaffRelayOutcome) => void) | undefined;

  constructor(options: StaffRelayOptions) {
    this.#o = options;
    const counter = options.metrics?.counter({
      name: 'agent_staff_relay_messages_total',
      help: 'Staff message events seen by the staff relay, by outcome',
      labelNames: ['outcome'],
    });
    this.#count = counter ? (outcome) => counter.inc({ outcome }) : undefined;
    ({ pools: this.#pools, owned: this.#ownsPools } = componentPools({
      ...options,
      max: options.databasePoolMax ?? 2,
    }));
    this.#set = new TenantSet<RelayConsumer>({
      registry: options.pool,
      select: options.select,
      refreshMs: options.registryRefreshMs ?? 15_000,
      topic: (t) => tenantTopics(t.name).domain,
      open: (db, topics) => this.#open(db, topics),
      failureMessage: 'staff relay: registry refresh failed',
      ...(options.logger ? { logger: options.logger } : {}),
    });
  }

  get tenants(): AgentTenant[] {
    return this.#set.tenants;
  }

  async start(): Promise<void> {
    await this.#set.start();
  }

  /** Re-reads the registry and (re)subscribes. Serialized. */
  refresh(): Promise<void> {
    return this.#set.refresh();
  }

  async stop(): Promise<void> {
    await this.#set.stop();
    if (this.#ownsPools) await this.#pools.close();
  }

  /** The domain-topic consumer of one database's tenants (TenantSet). */
  async #open(db: string, topics: string[]): Promise<RelayConsumer> {
    const consumer = new RelayConsumer(
      {
        kafka: this.#o.kafka,
        groupId: `${this.#o.groupId}.staff-relay.${db}`,
        consumerName: STAFF_RELAY_CONSUMER,
        topics,
        // a tenant's staff messages from before the relay subscribed are not lost (maxAgeMs)
        fromBeginning: true,
        pool: this.#pools.for(db),
        handler: (event, ctx) => this.#handle(event, ctx),
        resolveTenant: (name) => this.#set.resolve(db, name),
        ...(this.#o.logger ? { logger: this.#o.logger } : {}),
        consumerConfig: { sessionTimeout: 30_000, ...this.#o.consumerConfig },
        ...(this.#o.heartbeatIntervalMs !== undefined
          ? { heartbeatIntervalMs: this.#o.heartbeatIntervalMs }
          : {}),
        // the domain topic carries every domain event; redelivered ones are skipped cheaply
        offsetCommit: 'batch',
      },
      this,
    );
    await consumer.start();
    return consumer;
  }

  /** @internal (RelayConsumer) */
  report(r: StaffRelayReport): void {
    this.#count?.(r.outcome);
    if (r.outcome === 'queued') this.#o.logger?.info({ ...r }, 'staff message queued for its channel');
    else if (r.outcome === 'skipped' && r.reason && !r.reason.startsWith('channel '))
      this.#o.logger?.info({ ...r }, 'staff message not relayed');
    this.#o.onOutcome?.(r);
  }

  /** @internal (RelayConsumer) Sends what the event queued once its transaction committed, then reports. */
  async afterCommit(event: CloudEvent, committed: boolean): Promise<void> {
    const key = `${event.tenant}\u0000${event.id}`;
    const done = this.#pending.get(key);
    if (!done) return;
    this.#pending.delete(key);
    if (!committed) return;
    const tenant = done.send;
    if (tenant)
      try {
        await this.#o.outbound.deliver(
          this.#pools.for(tenant.database),
          tenant,
          await this.#o.keyrings.cipher(tenant.name),
        );
      } catch (err) {
        // The row stays pending: the runtime's outbound sweep sends it.
        this.#o.logger?.warn({ err, tenant: tenant.name }, 'staff relay: delivery failed; left pending');
      }
    this.report(done.report);
  }

  #result(event: CloudEvent, report: StaffRelayReport, send?: AgentTenant): void {
    this.#pending.set(`${event.tenant}\u0000${event.id}`, { report, ...(send ? { send } : {}) });
  }

  async #handle(event: CloudEvent, ectx: EventContext): Promise<void> {
    const data = (event.data ?? {}) as { session_id?: unknown; message_id?: unknown };
    const base: StaffRelayReport = { outcome: 'skipped', tenant: event.tenant, eventId: event.id };
    const tenant = this.#set.byName.get(event.tenant);
    if (!tenant) return this.#result(event, { ...base, reason: 'tenant not served' });
    if (!isUuid(data.session_id) || !isUuid(data.message_id))
      return this.#result(event, { ...base, reason: 'event without session_id/message_id' });
    const messageId = data.message_id.toLowerCase();
    const sessionId = data.session_id.toLowerCase();
    Object.assign(base, { messageId, sessionId });
    const cipher = await this.#o.keyrings.cipher(tenant.name);
    const ctx = { client: ectx.client, cipher, timeZone: tenant.timeZone, source: '/simptu/agent' };

    // This tenant's message, from its own schema: another tenant's ids find nothing here.
    const { rows } = await ectx.client.query<{ role: string; body: Buffer; fresh: boolean }>(
      `SELECT role, body, created_at >= now() - make_interval(secs => $3) AS fresh
         FROM messages WHERE id = $1 AND session_id = $2`,
      [messageId, sessionId, (this.#o.maxAgeMs ?? DAY_MS) / 1000],
    );
    const row = rows[0];
    if (!row) return this.#result(event, { ...base, reason: 'no such message in this tenant' });
    if (row.role !== 'staff') return this.#result(event, { ...base, reason: `role ${row.role}` });
    const session = await getSession(ctx, sessionId);
    base.channel = session.channel;
    if (!RELAYED_CHANNELS.includes(session.channel))
      return this.#result(event, { ...base, reason: `channel ${session.channel}` });
    if (!row.fresh) return this.#result(event, { ...base, reason: 'older than the relay window' });

    const key = `staff:${messageId}`;
    const outboundId = deterministicEventId('outbound', tenant.name, key);
    const exists = await ectx.client.query('SELECT 1 FROM outbound_messages WHERE id = $1', [outboundId]);
    if (exists.rowCount) return this.#result(event, { ...base, outcome: 'already-queued', outboundId });

    const body = cipher.decryptString(row.body, messageBodyLocation(messageId));
    if (session.channel === 'email') {
      const id = await queueStaffEmail(ctx, tenant, {
        key,
        sessionId,
        customerId: session.customerId,
        subject: session.subject,
        body,
      });
      if (!id) return this.#result(event, { ...base, reason: 'no e-mail integration or recipient' });
    } else {
      const channel = session.channel as OutboundChannel;
      const to = session.customerId ? await replyAddress(ctx, session.customerId, channel) : null;
      if (!to) return this.#result(event, { ...base, reason: `no ${channel} address for the customer` });
      await queueOutbound(ctx, { key, sessionId, channel, recipient: to, body });
    }
    this.#result(event, { ...base, outcome: 'queued', outboundId }, tenant);
  }
}
