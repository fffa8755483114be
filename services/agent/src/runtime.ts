/**
 * The agent runtime: Kafka in, Kafka out (DESIGN §7).
 *
 * Consumes `simptu.t.<name>.inbound` of its tenants (pool: every agent-shared tenant in the
 * registry, re-read every `registryRefreshMs`; dedicated: one tenant) with the common
 * `EventConsumer`, so each inbound event is handled in ONE `withTenant` transaction of its
 * tenant together with its processed-event marker. Everything a run does commits in that
 * transaction or not at all:
 *
 *     processed marker + tool side effects (bookings …) + LangGraph checkpoint
 *     + the reply (`io.simptu.agent.message`, via the tenant outbox) + queued channel sends
 *
 * so a crash anywhere in a run rolls it all back, Kafka redelivers the (uncommitted) record and
 * the conversation resumes from its last committed checkpoint: exactly one reply, exactly one
 * booking. Tools also carry idempotency keys (hash of session, message, tool call) as a second
 * line of defence. Ephemeral events — coalesced token deltas, tool calls and results — go to
 * `simptu.t.<name>.agent` directly while the run streams (a rolled-back run may have streamed
 * some; the `message` event is the authoritative answer). Key = session id everywhere, so a
 * conversation's events stay in order. Inbound records are handled per conversation
 * (keyed-consumer.ts): different sessions of one partition run at the same time, the records of
 * one session one after another in offset order, and a partition's committed offset never
 * passes a record whose run has not committed.
 *
 * Conversation state: the agent answers only sessions in state `bot`; `pending_human`/`human`
 * sessions are left to staff (their messages are acknowledged, unanswered). The handoff tool
 * moves `bot → pending_human`; staff move it back to `bot` through the API.
 */
import { HumanMessage, type AIMessage, type BaseMessage } from '@langchain/core/messages';
import type { Kafka, KafkaMessage } from 'kafkajs';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import {
  appendMessage,
  createCustomer,
  createSession,
  deterministicEventId,
  enqueue,
  findCustomerByEmail,
  fromKafkaRecord,
  fromText,
  getSession,
  isUuid,
  messageBodyLocation,
  quoteLiteral,
  newCloudEvent,
  OutboxRelay,
  TENANT_PREAMBLE_RESULTS,
  tenantTopics,
  tenantTransaction,
  type CloudEvent,
  type EventContext,
  type EventProducer,
  type FieldCipher,
  type FieldLocation,
  type KeyringCache,
  type Logger,
  type ProcessOutcome,
  type Session,
} from '@simptu/common';
import type { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { DEFAULT_RETENTION, Mutex, TenantCheckpointSaver, type RetentionPolicy } from './checkpoint.ts';
import { EMAIL_RECEIVED_TYPE, importBookingCom, parseBookingCom, parseEmail } from './channels/email.ts';
import type { OutboundSender } from './channels/outbound.ts';
import { recordInboundEmail } from './channels/thread.ts';
import {
  hasOutboundChannels,
  queueEmailReply,
  queueOutbound,
  replyAddress,
  type OutboundChannel,
} from './channels/outbound.ts';
import { buildAgentGraph, type RunHooks } from './graph.ts';
import { KeyedEventConsumer, type KeyedConsumerOptions } from './keyed-consumer.ts';
import { detectLanguage } from './model/intents.ts';
import { componentPools, TenantSet, type DatabasePools, type TenantGroup } from './pools.ts';
import type { AgentTenant } from './registry.ts';
import { StreamSender } from './stream-sender.ts';
import { allowedTools } from './tools/index.ts';
import { TurnTrace, turnTrace } from './turn-trace.ts';

export const MESSAGE_RECEIVED_TYPE = 'io.simptu.message.received';
export const AGENT_EVENT_SOURCE = '/simptu/agent';
export const AGENT_CONSUMER = 'agent.inbound';
export const AGENT_EVENT_TYPES = {
  token: 'io.simptu.agent.token',
  toolCall: 'io.simptu.agent.tool_call',
  toolResult: 'io.simptu.agent.tool_result',
  message: 'io.simptu.agent.message',
  handoff: 'io.simptu.agent.handoff',
  error: 'io.simptu.agent.error',
} as const;

/** Where streamed text/JSON on the agent topic is bound to (AAD): the event that carries it. */
export function streamLocation(eventId: string): FieldLocation {
  return { table: 'agent_stream', column: 'payload', rowId: eventId };
}

/** Where an e-mail's raw MIME on the inbound topic is bound to. */
export function emailRawLocation(emailId: string): FieldLocation {
  return { table: 'inbound_emails', column: 'raw', rowId: emailId };
}

const OUTBOUND_CHANNELS: readonly string[] = ['sms', 'whatsapp', 'messenger', 'instagram'];

export interface RunFaults {
  /** called after each tool result, before the run commits (fault injection in tests) */
  afterToolResult?: (name: string) => void | Promise<void>;
}

export interface AgentRuntimeOptions {
  kafka: Kafka;
  producer: EventProducer;
  /**
   * the producer of the ephemeral stream events (tokens, tool calls and results); its own
   * connection, so a first token never queues behind the outbox relay's requests on the
   * idempotent producer's single in-flight request @default producer
   */
  streamProducer?: EventProducer;
  /** login-role pool on the platform database (registry reads, shared tenants) */
  pool: pg.Pool;
  /** the platform database URL of the login role, to reach dedicated tenants' databases */
  databaseUrl: string;
  databasePoolMax?: number;
  /**
   * The process' database pools (pools.ts), shared with the staff relay; without them the
   * runtime opens its own from `pool`/`databaseUrl` and closes them on stop.
   */
  pools?: DatabasePools;
  keyrings: KeyringCache;
  redis: Redis;
  models: { get(tenant: string, cfg: AgentTenant['model']): BaseChatModel };
  outbound: OutboundSender;
  select: { mode: 'pool' } | { mode: 'dedicated'; tenant: string };
  groupId: string;
  registryRefreshMs?: number;
  tokenWindowMs?: number;
  retention?: RetentionPolicy;
  logger?: Logger;
  now?: () => Date;
  faults?: RunFaults;
  /** kafkajs consumer settings (session timeout …) */
  consumerConfig?: KeyedConsumerOptions['consumerConfig'];
  /** inbound partitions of one database fetched and dispatched at the same time; @default 4 */
  partitionsConsumedConcurrently?: number;
  /**
   * Runs of one database in progress at the same time, across its partitions (each holds a
   * connection of that database's pool); a session's messages still run one after another, in
   * order. @default 8
   */
  concurrentRuns?: number;
  /** heartbeat the consumer group this often while fetching waits for room; @default 3000 */
  heartbeatIntervalMs?: number;
  /**
   * When a partition's watermark (every record below it done) is committed: `record` as soon as
   * it moves, `batch` at most once a second. @default 'batch'
   */
  offsetCommit?: 'record' | 'batch';
  /** outbox relay poll; @default 1000 */
  relayPollMs?: number;
  /** outbox direct publishing (outbox.ts) for the run's events; @default true */
  outboxDirect?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Streaming events out

/**
 * A run's stream events: token deltas coalesced into one event per window, tool calls and
 * results held for at most one window too; every event of a run keeps its order (`seq`).
 *
 * What is held leaves together, in one produce request (stream-sender.ts), when the window
 * ends, when the run's FIRST token comes (that goes out at once: time to first token is what
 * the customer waits on), or at close. So a turn that calls a tool sends its tool call, the
 * tool's result and its first token in one request instead of three one after another (the
 * sender has one request in flight: the first token would wait for the tool events' acks); a
 * slow tool still shows its call within one window.
 */
export class RunStream {
  readonly #sender: StreamSender;
  readonly #cipher: FieldCipher;
  readonly #topic: string;
  readonly #sessionId: string;
  readonly #runId: string;
  readonly #windowMs: number;
  #seq = 0;
  #buffer = '';
  /** events built (seq assigned) and not yet handed to the sender */
  #held: CloudEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** settles when the run's last event was acknowledged or dropped */
  #last: Promise<unknown> = Promise.resolve();
  #tokenSent = false;
  /** events sent, for metrics and tests */
  sent = 0;

  constructor(o: {
    sender: StreamSender;
    cipher: FieldCipher;
    sessionId: string;
    runId: string;
    windowMs: number;
  }) {
    this.#sender = o.sender;
    this.#cipher = o.cipher;
    this.#topic = tenantTopics(o.cipher.tenant).agent;
    this.#sessionId = o.sessionId;
    this.#runId = o.runId;
    this.#windowMs = o.windowMs;
  }

  /** Builds the next event (its seq) and holds it. */
  #hold(type: string, clear: Record<string, unknown>, secret?: unknown): void {
    const seq = ++this.#seq;
    const id = deterministicEventId(this.#runId, 'stream', seq);
    const data: Record<string, unknown> = { session_id: this.#sessionId, run_id: this.#runId, seq, ...clear };
    if (secret !== undefined)
      data.payload_enc = this.#cipher.encryptText(JSON.stringify(secret), streamLocation(id));
    this.#held.push(
      newCloudEvent({
        id,
        type,
        source: AGENT_EVENT_SOURCE,
        tenant: this.#cipher.tenant,
        subject: this.#sessionId,
        data,
      }),
    );
  }

  /** The buffered text becomes a held token event. */
  #holdText(): void {
    if (!this.#buffer) return;
    const text = this.#buffer;
    this.#buffer = '';
    this.#hold(AGENT_EVENT_TYPES.token, {}, { text });
  }

  /** Everything buffered and held goes to the sender now, in order. */
  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#holdText();
    if (this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    // One shared FIFO for every run (stream-sender.ts): this run's events keep their order, and
    // events handed over in one synchronous burst leave in one request.
    for (const event of held)
      this.#last = this.#sender.send(this.#cipher.tenant, this.#topic, event, this.#sessionId).then((ok) => {
        if (ok) this.sent++;
      });
  }

  #soon(): void {
    if (this.#windowMs === 0) return this.#flush();
    this.#timer ??= setTimeout(() => this.#flush(), this.#windowMs);
  }

  token(delta: string): void {
    this.#buffer += delta;
    if (!this.#tokenSent) {
      this.#tokenSent = true;
      return this.#flush();
    }
    this.#soon();
  }

  toolCall(id: string, name: string, args: unknown): void {
    this.#holdText();
    this.#hold(AGENT_EVENT_TYPES.toolCall, { tool_call_id: id, name }, { args });
    this.#soon();
  }

  toolResult(id: string, name: string, ok: boolean, result: unknown): void {
    this.#holdText();
    this.#hold(AGENT_EVENT_TYPES.toolResult, { tool_call_id: id, name, ok }, { result });
    this.#soon();
  }

  /** Sends everything buffered and held now (without waiting for it). */
  flush(): void {
    this.#flush();
  }

  /** Flushes and waits until every event was handed to Kafka (or dropped). */
  async close(): Promise<void> {
    this.#flush();
    await this.#last;
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Drops events the agent does not handle before opening a transaction; runs after-commit work.
 * Per-conversation order (keyed-consumer.ts); e-mails of a tenant share one queue, since two
 * mails of one new sender must not both create the sender's customer and session.
 */
class InboundConsumer extends KeyedEventConsumer {
  readonly #after: Map<string, Array<() => Promise<void>>>;
  readonly #logger: Logger | undefined;
  /** a record decoded once for its queue key and again (not) for its run */
  readonly #decoded = new WeakMap<object, ReturnType<typeof fromKafkaRecord>>();
  constructor(options: KeyedConsumerOptions, after: Map<string, Array<() => Promise<void>>>) {
    super(options);
    this.#after = after;
    this.#logger = options.logger;
  }
  #decode(message: Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>) {
    let d = this.#decoded.get(message);
    if (!d) this.#decoded.set(message, (d = fromKafkaRecord(message)));
    return d;
  }
  override queueKey(
    topic: string,
    partition: number,
    message: Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>,
  ): string {
    const d = this.#decode(message);
    if (d.ok && d.event.type === EMAIL_RECEIVED_TYPE) return `${topic}\u0000email`;
    return super.queueKey(topic, partition, message);
  }
  override async process(
    topic: string,
    partition: number,
    message: Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>,
  ): Promise<ProcessOutcome> {
    const d = this.#decode(message);
    if (d.ok && d.event.type !== MESSAGE_RECEIVED_TYPE && d.event.type !== EMAIL_RECEIVED_TYPE)
      return 'duplicate';
    const id = d.ok ? d.event.id : '';
    try {
      const outcome = await super.process(topic, partition, message).catch((err: unknown) => {
        this.#logger?.error(
          { err, topic, partition, offset: message.offset },
          'inbound event failed; it will be retried',
        );
        throw err;
      });
      for (const task of this.#after.get(id) ?? [])
        await task().catch((err: unknown) => this.#logger?.warn({ err }, 'after-commit task failed'));
      return outcome;
    } finally {
      this.#after.delete(id);
    }
  }
}

interface DbGroup extends TenantGroup {
  pool: pg.Pool;
  consumer: InboundConsumer;
  relay: OutboxRelay;
}

/** What a turn needs of its session. */
export type TurnSession = Pick<Session, 'id' | 'customerId' | 'channel' | 'state'>;

type SessionRow = { customer_id: string | null; channel: Session['channel']; state: Session['state'] };

/** What the caller of `runTurn` already did in its own round trip (see `#handle`). */
export interface PreparedTurn {
  lock?: Mutex;
  /** the run's checkpointer (on `lock`) */
  saver?: TenantCheckpointSaver;
  /** the result of `saver.latestCheckpointSql()`, read after the session's run lock was held */
  checkpoint?: pg.QueryResult;
  /** `SAVEPOINT agent_run` was taken */
  savepoint?: boolean;
  /** the record's key in the turn trace (turn-trace.ts), when tracing */
  traceKey?: string;
}

export interface RunOutcome {
  reply: string;
  handoff: boolean;
  error?: string;
}

export class AgentRuntime {
  readonly #o: AgentRuntimeOptions;
  readonly #set: TenantSet<DbGroup>;
  /** the served tenants by name (the tenant set's, refilled by each registry refresh) */
  readonly #tenants: ReadonlyMap<string, AgentTenant>;
  readonly #pools: DatabasePools;
  readonly #ownsPools: boolean;
  readonly #after = new Map<string, Array<() => Promise<void>>>();
  readonly #sender: StreamSender;
  readonly #retention: RetentionPolicy;

  constructor(options: AgentRuntimeOptions) {
    this.#o = options;
    this.#retention = options.retention ?? DEFAULT_RETENTION;
    this.#sender = new StreamSender({
      producer: options.streamProducer ?? options.producer,
      ...(options.logger ? { logger: options.logger } : {}),
    });
    ({ pools: this.#pools, owned: this.#ownsPools } = componentPools({
      ...options,
      max: options.databasePoolMax ?? 10,
    }));
    this.#set = new TenantSet<DbGroup>({
      registry: options.pool,
      select: options.select,
      refreshMs: options.registryRefreshMs ?? 15_000,
      topic: (t) => tenantTopics(t.name).inbound,
      open: (db, topics) => this.#open(db, topics),
      afterRefresh: () => this.#sweepOutbound(),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    this.#tenants = this.#set.byName;
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

  #poolFor(database: string): pg.Pool {
    return this.#pools.for(database);
  }

  /** The inbound consumer and outbox relay of one database's tenants (TenantSet). */
  async #open(db: string, topics: string[]): Promise<DbGroup> {
    const pool = this.#poolFor(db);
    // Its connections open before the first record is fetched (pools.ts warm).
    await this.#pools.warm(db);
    const consumer = new InboundConsumer(
      {
        kafka: this.#o.kafka,
        groupId: `${this.#o.groupId}.${db}`,
        consumerName: AGENT_CONSUMER,
        topics,
        fromBeginning: true,
        pool,
        handler: (event, ctx) => this.#handle(event, ctx),
        resolveTenant: (name) => this.#set.resolve(db, name),
        ...(this.#o.logger ? { logger: this.#o.logger } : {}),
        consumerConfig: { sessionTimeout: 30_000, ...this.#o.consumerConfig },
        markInHandler: true,
        deferBegin: true,
        partitionsConsumedConcurrently: this.#o.partitionsConsumedConcurrently ?? 4,
        maxConcurrent: this.#o.concurrentRuns ?? 8,
        heartbeatIntervalMs: this.#o.heartbeatIntervalMs ?? 3000,
        commitIntervalMs: (this.#o.offsetCommit ?? 'batch') === 'record' ? 0 : 1000,
      },
      this.#after,
    );
    const relay = new OutboxRelay({
      pool,
      producer: this.#o.producer,
      ciphers: this.#o.keyrings,
      tenants: () => this.#set.inDatabase(db).map((t) => t.ref),
      pollIntervalMs: this.#o.relayPollMs ?? 1000,
      // a run's reply leaves right after COMMIT (outbox.ts, direct publishing)
      direct: this.#o.outboxDirect ?? true,
      ...(this.#o.logger ? { logger: this.#o.logger } : {}),
    });
    relay.start();
    await consumer.start();
    return {
      pool,
      consumer,
      relay,
      async stop() {
        await consumer.stop();
        await relay.stop();
      },
    };
  }

  async stop(): Promise<void> {
    await this.#set.stop();
    if (this.#ownsPools) await this.#pools.close();
  }

  #later(eventId: string, task: () => Promise<void>): void {
    const list = this.#after.get(eventId) ?? [];
    list.push(task);
    this.#after.set(eventId, list);
  }

  async #handle(event: CloudEvent, ectx: EventContext): Promise<void> {
    // The consumer leaves the processed marker to this handler (`markInHandler`): a turn sends it
    // in its first round trip; every other path writes it first, on its own.
    const marker = ectx.marker!;
    const tenant = this.#tenants.get(event.tenant);
    if (!tenant) return void (await marker.write());
    const cipher = await this.#o.keyrings.cipher(tenant.name);
    const log = this.#o.logger?.child({ tenant: tenant.name, eventId: event.id });

    if (event.type === EMAIL_RECEIVED_TYPE) {
      if (!(await marker.write())) return;
      return this.#handleEmail(tenant, cipher, event, ectx, log);
    }

    const data = event.data as {
      session_id?: unknown;
      message_id?: unknown;
      body_enc?: unknown;
      body_ct?: unknown;
    };
    const bodyEnc =
      typeof data.body_enc === 'string'
        ? data.body_enc
        : typeof data.body_ct === 'string'
          ? data.body_ct
          : undefined;
    if (!isUuid(data.session_id) || typeof data.message_id !== 'string' || !bodyEnc) {
      log?.warn('inbound message without session_id/message_id/body_enc: skipped');
      return void (await marker.write());
    }
    let body: string;
    try {
      body = cipher.decryptText(bodyEnc, messageBodyLocation(data.message_id));
    } catch (err) {
      log?.error({ err }, 'inbound message body does not decrypt for this tenant/message: skipped');
      return void (await marker.write());
    }
    const sessionId = data.session_id;
    const lock = new Mutex();
    const saver = new TenantCheckpointSaver(
      ectx.client,
      lock,
      tenant.ref.schema,
      cipher,
      sessionId,
      this.#retention,
    );
    // Everything before the model in ONE simple-protocol round trip (no parameters: the only
    // values inlined are the session id and event id, both validated UUIDs, quoted), statement
    // after statement in this order:
    //  - the processed marker (when the event id is not a UUID: its own statement, first);
    //  - one run per session at a time, across agent instances: a transaction-scoped advisory
    //    lock, not the session's row lock — that would make every API append to the session (the
    //    user typing on, staff taking over) wait for the whole run, model latency included;
    //  - the session's state and the conversation's latest checkpoint, read AFTER the lock is
    //    held: in READ COMMITTED each statement of a multi-statement query takes its own
    //    snapshot when it starts, i.e. after the lock statement returned, so they see what the
    //    previous run of the session committed (runtime-roundtrips.test.ts proves it);
    //  - the savepoint the graph's errors roll back to (the marker stays).
    // @see https://www.postgresql.org/docs/15/transaction-iso.html#XACT-READ-COMMITTED
    // @see https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-MULTI-STATEMENT
    if (!marker.inlineSql && !(await marker.write())) return;
    const sid = quoteLiteral(sessionId);
    // The transaction's preamble (BEGIN, SET LOCAL ROLE …) opens the same round trip
    // (`deferBegin`); '' when the marker's own write sent it.
    const begin = ectx.takeBegin?.() ?? '';
    const statements = [
      ...(marker.inlineSql ? [marker.inlineSql] : []),
      `SELECT pg_advisory_xact_lock(hashtext('simptu.agent-run'), hashtext(${sid}))`,
      `SELECT customer_id, channel, state FROM sessions WHERE id = ${sid}`,
      saver.latestCheckpointSql(),
      'SAVEPOINT agent_run',
    ];
    const results = (await ectx.client.query({
      text: begin + statements.join(';\n'),
      types: TenantCheckpointSaver.types,
    })) as unknown as pg.QueryResult[];
    const traceKey = turnTrace && TurnTrace.key(ectx.topic, ectx.partition, ectx.offset);
    if (traceKey) turnTrace!.mark(traceKey, 'ready');
    let i = begin ? TENANT_PREAMBLE_RESULTS : 0;
    if (marker.inlineSql) {
      const inserted = results[i++]!.rowCount !== 0;
      marker.written(inserted);
      if (!inserted) return;
    }
    i++; // the lock
    const row = results[i++]!.rows[0] as Pick<SessionRow, 'customer_id' | 'channel' | 'state'> | undefined;
    const checkpoint = results[i]!;
    if (!row) {
      log?.warn({ sessionId }, 'inbound message for an unknown session: skipped');
      return;
    }
    const session: TurnSession = {
      id: sessionId,
      customerId: row.customer_id,
      channel: row.channel,
      state: row.state,
    };
    if (session.state !== 'bot') {
      log?.debug({ sessionId, state: session.state }, 'session handled by staff: agent stays quiet');
      return;
    }
    await this.runTurn(tenant, cipher, ectx.client, session, data.message_id, body, event.id, {
      lock,
      saver,
      checkpoint,
      savepoint: true,
      ...(traceKey ? { traceKey } : {}),
    });
  }

  async #handleEmail(
    tenant: AgentTenant,
    cipher: FieldCipher,
    event: CloudEvent,
    ectx: EventContext,
    log: Logger | undefined,
  ): Promise<void> {
    const data = event.data as { email_id?: unknown; raw_enc?: unknown };
    if (typeof data.email_id !== 'string' || typeof data.raw_enc !== 'string') {
      log?.warn('email event without email_id/raw_enc: skipped');
      return;
    }
    let raw: Buffer;
    try {
      raw = cipher.decrypt(fromText(data.raw_enc), emailRawLocation(data.email_id));
    } catch (err) {
      log?.error({ err }, 'email does not decrypt for this tenant: skipped');
      return;
    }
    const mail = await parseEmail(raw);
    const ctx = {
      client: ectx.client,
      cipher,
      timeZone: tenant.timeZone,
      now: this.#o.now ?? (() => new Date()),
      source: AGENT_EVENT_SOURCE,
    };
    const reservation = tenant.businessType === 'hotel' ? parseBookingCom(mail) : null;
    if (reservation) {
      const r = await importBookingCom(ctx, reservation);
      if (!r.ok)
        log?.warn({ reason: r.reason, number: reservation.number }, 'Booking.com reservation not imported');
      else
        log?.info(
          { number: reservation.number, nights: r.nights, created: r.created },
          'Booking.com reservation imported',
        );
      return;
    }
    if (!mail.from) return;
    // Any other e-mail: a turn on the sender's e-mail conversation, answered as untrusted input.
    let customer = await findCustomerByEmail(ctx, mail.from).catch(() => null);
    customer ??= await createCustomer(ctx, { email: mail.from, displayName: mail.fromName });
    const { rows } = await ectx.client.query<{ id: string }>(
      `SELECT id FROM sessions WHERE customer_id = $1 AND channel = 'email' AND state <> 'closed' ORDER BY created_at DESC LIMIT 1 FOR UPDATE`,
      [customer.id],
    );
    const session = rows[0]
      ? await getSession(ctx, rows[0].id)
      : await createSession(ctx, {
          customerId: customer.id,
          channel: 'email',
          subject: mail.subject.slice(0, 500) || null,
        });
    const text = `${mail.subject}\n\n${mail.text}`.trim().slice(0, 16_000);
    const message = await appendMessage(ctx, session.id, { role: 'user', body: text || '(empty e-mail)' });
    // The conversation's e-mail thread (channels/thread.ts): staff replies answer this mail too.
    await recordInboundEmail(ectx.client, cipher, session.id, mail, tenant.integrations.email?.ingestAddress);
    if (session.state !== 'bot') return;
    // Machine-written mail (auto-replies, bounces, lists) is kept for staff, never answered: loops.
    if (mail.autoGenerated) return void log?.info({ reason: mail.autoGenerated }, 'e-mail not answered');
    const { reply } = await this.runTurn(tenant, cipher, ectx.client, session, message.id, text, event.id);
    const key = `reply:${message.id}`;
    if (await queueEmailReply(ctx, tenant, { key, sessionId: session.id, mail, body: reply }))
      this.#later(event.id, () => this.deliverOutbound(tenant.name).then(() => undefined));
  }

  /**
   * One conversation turn inside the caller's tenant transaction: the graph (checkpointed on
   * `client`), the reply into the outbox, channel sends queued. Errors inside the graph roll
   * back to a savepoint and become a polite reply + an `agent.error` event.
   */
  async runTurn(
    tenant: AgentTenant,
    cipher: FieldCipher,
    client: pg.ClientBase,
    session: TurnSession,
    inboundId: string,
    text: string,
    eventId: string,
    prepared: PreparedTurn = {},
  ): Promise<RunOutcome> {
    const now = this.#o.now ?? (() => new Date());
    const ctx = { client, cipher, timeZone: tenant.timeZone, now, source: AGENT_EVENT_SOURCE };
    const lock = prepared.lock ?? new Mutex();
    const saver =
      prepared.saver ??
      new TenantCheckpointSaver(client, lock, tenant.ref.schema, cipher, session.id, this.#retention);
    if (prepared.checkpoint) saver.preload(prepared.checkpoint);
    // The checkpoint write goes with COMMIT (below): one round trip less while the run holds its
    // slot; a rolled-back run drops it.
    saver.deferWrites();
    const stream = new RunStream({
      sender: this.#sender,
      cipher,
      sessionId: session.id,
      runId: inboundId,
      windowMs: this.#o.tokenWindowMs ?? 50,
    });
    const untrusted = session.channel === 'email';
    const sessionCtx = { id: session.id, customerId: session.customerId, channel: session.channel };
    const faults = this.#o.faults;
    const hooks: RunHooks = {
      onToken: (d) => {
        if (prepared.traceKey) turnTrace?.mark(prepared.traceKey, 'token');
        stream.token(d);
      },
      onToolCall: (c) => stream.toolCall(c.id, c.name, c.args),
      onToolResult: (r) => {
        stream.toolResult(r.id, r.name, r.ok, r.result);
      },
      // The answer is complete: its last deltas leave now, their acknowledgement overlapping the
      // checkpoint write and the reply's outbox row instead of following them.
      onModelEnd: (m) => {
        if ((m.tool_calls?.length ?? 0) === 0) stream.flush();
      },
    };
    const graph = buildAgentGraph({
      model: this.#o.models.get(tenant.name, tenant.model),
      tools: allowedTools(tenant.businessType, tenant.tools),
      policy: tenant.tools,
      tenant,
      session: sessionCtx,
      inboundId,
      untrusted,
      db: (fn) => lock.run(() => fn(ctx)),
      now,
      hooks,
      checkpointer: saver,
    });

    let reply: string;
    let handoff = false;
    let error: string | undefined;
    if (!prepared.savepoint) await client.query('SAVEPOINT agent_run');
    try {
      const result = await graph.invoke(
        {
          messages: [new HumanMessage({ content: text, id: inboundId })],
          context: {
            tenant: tenant.name,
            businessType: tenant.businessType,
            customerId: session.customerId,
            channel: session.channel,
            state: session.state,
          },
          inboundId,
          handoffReason: null,
          modelCalls: 0,
        },
        { configurable: { thread_id: session.id }, durability: 'exit', recursionLimit: 30 },
      );
      if (faults?.afterToolResult) {
        for (const m of result.messages as BaseMessage[])
          if (m.getType() === 'tool') await faults.afterToolResult(String((m as { name?: string }).name));
      }
      const last = (result.messages as BaseMessage[])[result.messages.length - 1] as AIMessage | undefined;
      reply = typeof last?.content === 'string' ? last.content : '';
      handoff = Boolean(result.handoffReason);
      // (old checkpoints were pruned by the checkpoint write itself: the saver's retention)
      // Not released: COMMIT ends the savepoint with the transaction (one round trip less).
    } catch (err) {
      saver.discardDeferred();
      await client.query('ROLLBACK TO SAVEPOINT agent_run');
      error = err instanceof Error ? err.name : 'Error';
      this.#o.logger?.error({ err, tenant: tenant.name, sessionId: session.id }, 'agent run failed');
      reply =
        detectLanguage(text) === 'ro'
          ? 'Îmi pare rău, am întâmpinat o problemă tehnică. Vă rog încercați din nou sau cereți să vorbiți cu personalul.'
          : 'Sorry, something went wrong on our side. Please try again, or ask to talk to a member of staff.';
      await enqueue(client, cipher, {
        type: AGENT_EVENT_TYPES.error,
        source: AGENT_EVENT_SOURCE,
        aggregateType: 'session',
        aggregateId: session.id,
        subject: session.id,
        topic: tenantTopics(tenant.name).agent,
        data: { session_id: session.id, run_id: inboundId, code: 'AGENT_RUN_FAILED', error },
      });
    }
    // Every stream event is acknowledged before the transaction commits (below, before this
    // returns): the final message, relayed after COMMIT, never overtakes the run's last tokens.
    // Meanwhile the reply's outbox rows are written.
    const streamed = stream.close();
    if (!reply.trim())
      reply = detectLanguage(text) === 'ro' ? 'Cu ce vă mai pot ajuta?' : 'How else can I help?';

    // The reply's outbox rows and the checkpoint write go with COMMIT (one round trip); in a
    // caller's own transaction (no withTenant) they are written now.
    const tx = tenantTransaction(client);
    const last = tx ? { withCommit: true } : {};
    const replyId = deterministicEventId('reply', tenant.name, inboundId);
    await enqueue(
      client,
      cipher,
      {
        type: AGENT_EVENT_TYPES.message,
        source: AGENT_EVENT_SOURCE,
        aggregateType: 'session',
        aggregateId: session.id,
        subject: session.id,
        topic: tenantTopics(tenant.name).agent,
        data: {
          session_id: session.id,
          message_id: replyId,
          in_reply_to: inboundId,
          body_enc: cipher.encryptText(reply, messageBodyLocation(replyId)),
        },
      },
      last,
    );
    if (handoff) {
      await enqueue(
        client,
        cipher,
        {
          type: AGENT_EVENT_TYPES.handoff,
          source: AGENT_EVENT_SOURCE,
          aggregateType: 'session',
          aggregateId: session.id,
          subject: session.id,
          topic: tenantTopics(tenant.name).agent,
          data: { session_id: session.id, run_id: inboundId, state: 'pending_human' },
        },
        last,
      );
      // The same shape the API emits on state changes, for the staff lobby.
      await enqueue(
        client,
        cipher,
        {
          type: 'io.simptu.session.updated',
          source: AGENT_EVENT_SOURCE,
          aggregateType: 'session',
          aggregateId: session.id,
          subject: session.id,
          data: {
            session_id: session.id,
            customer_id: sessionCtx.customerId,
            channel: session.channel,
            state: 'pending_human',
            assigned_to: null,
          },
        },
        last,
      );
    }
    const channel = session.channel as string;
    if (OUTBOUND_CHANNELS.includes(channel) && sessionCtx.customerId) {
      const to = await replyAddress(ctx, sessionCtx.customerId, channel as OutboundChannel);
      if (to) {
        await queueOutbound(ctx, {
          key: `reply:${inboundId}`,
          sessionId: session.id,
          channel: channel as OutboundChannel,
          recipient: to,
          body: reply,
        });
        this.#later(eventId, () => this.deliverOutbound(tenant.name).then(() => undefined));
      }
    }
    const writes = saver.takeDeferred();
    if (tx) for (const sql of writes) tx.withCommit(sql);
    else if (writes.length > 0) await client.query(writes.join(';\n')); // a caller's own transaction
    await streamed;
    return { reply, handoff, ...(error ? { error } : {}) };
  }

  /** Retries pending channel messages (rate-limited or failed transiently) of every tenant. */
  async #sweepOutbound(): Promise<void> {
    for (const t of this.#tenants.values()) {
      if (!hasOutboundChannels(t)) continue;
      await this.deliverOutbound(t.name).catch((err: unknown) =>
        this.#o.logger?.warn({ err, tenant: t.name }, 'outbound sweep failed'),
      );
    }
  }

  /** Sends a tenant's pending channel messages now (also called after each run commits). */
  async deliverOutbound(tenantName: string): Promise<number> {
    const t = this.#tenants.get(tenantName);
    if (!t) return 0;
    return this.#o.outbound.deliver(this.#poolFor(t.database), t, await this.#o.keyrings.cipher(t.name));
  }
}
