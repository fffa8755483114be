/**
 * Transactional outbox (DESIGN §6): a write that must produce an event inserts the event into
 * its tenant schema's `outbox` table in the SAME transaction (`enqueue`), so the event exists
 * if and only if the write committed. `OutboxRelay` then publishes pending rows to Kafka with
 * the idempotent producer and marks them. A crash between publish and mark re-publishes the
 * same event (same id) later: delivery is at-least-once, and de-duplicating consumers
 * (consumer.ts) make the effect exactly-once.
 *
 * The row's payload is the whole CloudEvent, encrypted with the tenant's DEK and bound to the
 * row (`tenant | outbox | payload | <row id> | key version`), so the table holds no personal
 * data in clear and a payload copied to another row or tenant does not decrypt. The event id
 * IS the row id.
 *
 * Order: rows of one tenant are published in `seq` order by one relay at a time (a
 * transaction-scoped advisory lock per tenant schema; other relay instances skip the tenant),
 * each batch in one produce request per broker, so order per key holds. A row that cannot be
 * decoded blocks later rows of the same aggregate (never reorder) but not other aggregates.
 *
 * Direct publishing (`OutboxRelayOptions.direct`): a process whose relay publishes directly
 * claims the rows its transactions enqueue (`claimed_by`, `claimed_until`: a lease) and its relay
 * sends them right after COMMIT, in commit order, without a relay pass; other relays leave a
 * live claim (and the later rows of its topic and key) alone. A row is claimed only when no
 * earlier pending row of its topic and key belongs to anyone else, so it never overtakes one.
 * Published ids are marked in batches; a crash before marking re-publishes after the lease (the
 * same ids: de-duplicated). This is the relay's work per event without its two round trips, its
 * NOTIFY and the wake-up of every listening process.
 * @see https://microservices.io/patterns/data/transactional-outbox.html
 * @see https://www.postgresql.org/docs/15/sql-select.html#SQL-FOR-UPDATE-SHARE (SKIP LOCKED)
 * @see https://www.postgresql.org/docs/15/sql-notify.html
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { ciphertextKeyVersion, type FieldCipher, type FieldLocation } from '../crypto/envelope.ts';
import { quoteLiteral } from '../db/identifiers.ts';
import { inlineParams } from '../db/inline.ts';
import { TENANT_PREAMBLE_RESULTS, tenantTransaction, withTenant, type TenantDbRef } from '../db/tenant-db.ts';
import { CommonErrors } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { tenantTopics } from '../names.ts';
import { newCloudEvent, validateCloudEvent, type CloudEvent } from './cloudevents.ts';
import { topicTenantMismatch, type EventProducer, type OutgoingEvent } from './producer.ts';

/**
 * NOTIFY channel; the payload is `<tenant> <origin>`: the tenant name and the enqueuing process's
 * `OUTBOX_INSTANCE` (tenant names have no spaces). A payload without an origin is anyone's.
 */
export const OUTBOX_CHANNEL = 'simptu_outbox';

/**
 * This process's id in outbox notifications. A relay acts at once only on its own process's
 * notifications (`OutboxRelayOptions.notifications`): with the API, the hub and N agent
 * replicas listening, every commit used to wake every relay into a pass over the same rows —
 * one publishes, the others find nothing (each such pass two round trips). Another process's
 * rows are published by that process's relay, or by anyone's periodic pass if it died first.
 */
export const OUTBOX_INSTANCE = randomBytes(6).toString('hex');

export function outboxPayloadLocation(rowId: string): FieldLocation {
  return { table: 'outbox', column: 'payload', rowId };
}

export interface EnqueueInput<T> {
  /** `io.simptu.<area>.<event>` */
  type: string;
  /** URI-reference of the producing service, e.g. `/simptu/api` */
  source: string;
  aggregateType: string;
  /** Kafka key: events of one aggregate stay in order */
  aggregateId: string;
  data: T;
  subject?: string;
  /** @default the tenant's `domain` topic */
  topic?: string;
}

/**
 * Adds an event to the outbox of the tenant whose `withTenant` transaction `client` is in.
 * Refuses (TENANT_CONTEXT_MISSING) when the transaction belongs to another tenant than the
 * cipher, or to none. Returns the event as it will be published.
 *
 * `withCommit`: the row is not written now but together with the transaction's COMMIT, in the
 * same round trip (tenant-db.ts `withCommit`; values inlined as literals) — for a last write.
 * The tenant is checked here and again in the statement (a payload of NULL, refused by the
 * column, unless the transaction's tenant is the cipher's): the transaction then rolls back.
 */
export async function enqueue<T>(
  client: pg.ClientBase,
  cipher: FieldCipher,
  input: EnqueueInput<T>,
  options: { withCommit?: boolean } = {},
): Promise<CloudEvent<T>> {
  const id = randomUUID();
  const event = newCloudEvent({
    id,
    type: input.type,
    source: input.source,
    tenant: cipher.tenant,
    data: input.data,
    ...(input.subject !== undefined ? { subject: input.subject } : {}),
  });
  const topic = input.topic ?? tenantTopics(cipher.tenant).domain;
  const problem = topicTenantMismatch(topic, event, cipher.tenant);
  if (problem) throw new CommonErrors.TOPIC_TENANT_MISMATCH({ message: problem });
  const payload = cipher.encrypt(JSON.stringify(event), outboxPayloadLocation(id));
  const tx = tenantTransaction(client);
  // Direct publishing (OutboxRelayOptions.direct): the relay of this transaction's pool publishes
  // the row right after COMMIT, if the insert could claim it.
  const publisher = tx && tx.tenant.name === cipher.tenant ? directPublishers.get(tx.pool) : undefined;
  const leaseMs = publisher?.claimLeaseMs(cipher.tenant);
  const claimedAt = Date.now();
  const values = [
    id,
    input.aggregateType,
    input.aggregateId,
    input.type,
    payload,
    { topic },
    cipher.tenant,
    OUTBOX_CHANNEL,
    OUTBOX_INSTANCE,
    leaseMs === undefined ? null : OUTBOX_INSTANCE,
    leaseMs ?? 0,
    topic,
  ];
  if (options.withCommit) {
    if (tx?.tenant.name !== cipher.tenant)
      throw new CommonErrors.TENANT_CONTEXT_MISSING({
        message: `outbox enqueue for tenant ${cipher.tenant} outside that tenant's transaction`,
      });
    // No WHERE: a row is always inserted, its payload NULL (refused by the column) unless the
    // transaction's tenant is the cipher's — the transaction then rolls back.
    tx.withCommit(inlineParams(ENQUEUE_SQL(''), values));
    if (publisher)
      tx.afterCommit((results) => {
        const mine = results.find((r) => (r.rows[0] as EnqueuedRow | undefined)?.outbox_id === id);
        if ((mine?.rows[0] as EnqueuedRow | undefined)?.outbox_claimed === true)
          publisher.hand(tx.tenant, { id, topic, event, key: input.aggregateId, claimedAt });
      });
    return event;
  }
  // One round trip: the tenant check, the insert, the claim and the wake-up (NOTIFY is delivered
  // at COMMIT; none for a claimed row).
  const r = await client.query<EnqueuedRow>(
    ENQUEUE_SQL(`WHERE current_setting('simptu.tenant', true) = $7`),
    values,
  );
  if (r.rowCount !== 1)
    throw new CommonErrors.TENANT_CONTEXT_MISSING({
      message: `outbox enqueue for tenant ${cipher.tenant} outside that tenant's transaction`,
    });
  if (r.rows[0]!.outbox_claimed && publisher && tx)
    tx.afterCommit(() => publisher.hand(tx.tenant, { id, topic, event, key: input.aggregateId, claimedAt }));
  return event;
}

interface EnqueuedRow {
  outbox_id: string;
  seq: string;
  outbox_claimed: boolean;
}

/**
 * The insert, with `where` (the tenant check of the parameterized form). Values: $1 id, $2
 * aggregate type, $3 aggregate id, $4 event type, $5 payload, $6 headers, $7 tenant, $8 channel,
 * $9 this process, $10 the claimant (NULL: no claim), $11 lease ms, $12 topic.
 *
 * The claim: only when no earlier unpublished row of the same topic and key is held by anyone
 * but this process (a live claim of its own; its publisher sends in order). A row of another
 * process, or one left to the relays, would otherwise be overtaken. Unclaimed rows wake the
 * relay (NOTIFY, delivered at COMMIT); claimed ones don't.
 */
const ENQUEUE_SQL = (where: string) => `WITH ins AS (
   INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, headers, claimed_by, claimed_until)
   SELECT $1::uuid, $2::text, $3::text, $4::text,
          CASE WHEN current_setting('simptu.tenant', true) = $7 THEN $5::bytea END, $6::jsonb,
          CASE WHEN c.until IS NOT NULL THEN $10::text END, c.until
     FROM (SELECT CASE WHEN $10::text IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM outbox o
              WHERE o.aggregate_id = $3 AND o.published_at IS NULL
                AND coalesce(o.headers->>'topic', '') = $12
                AND (o.claimed_by = $10 AND o.claimed_until > clock_timestamp()) IS NOT TRUE)
           THEN clock_timestamp() + $11 * interval '1 millisecond' END AS until) c
   ${where}
   RETURNING id, seq, claimed_until IS NOT NULL AS claimed)
 SELECT id AS outbox_id, seq, claimed AS outbox_claimed,
        CASE WHEN NOT claimed THEN pg_notify($8, $7 || ' ' || $9) END AS notified
   FROM ins`;

/** Where to get a tenant's cipher (a `KeyringCache`). */
export interface CipherSource {
  cipher(tenant: string, opts?: { requireVersion?: number }): Promise<FieldCipher>;
}

export interface RelayResult {
  published: number;
  /** rows whose send failed (Kafka unreachable …); they stay pending with attempts + 1 */
  failed: number;
  /** rows that could not be decoded, and rows held behind them */
  held: number;
  /** the batch was full: more may be pending */
  more: boolean;
  /** another relay holds this tenant */
  locked: boolean;
}

export interface OutboxRelayOptions {
  /** the services' login-role pool for the database holding these tenants' schemas */
  pool: pg.Pool;
  producer: EventProducer;
  ciphers: CipherSource;
  /** the tenants to relay for (e.g. active rows of the registry); called every poll */
  tenants: () => Promise<readonly TenantDbRef[]> | readonly TenantDbRef[];
  logger?: Logger;
  metrics?: Metrics;
  /** fallback poll when no NOTIFY arrives; @default 1000 */
  pollIntervalMs?: number;
  /** @default 100 */
  batchSize?: number;
  /** per-tenant backoff after a failure: initial, doubling up to max; @default 500 / 30000 */
  backoffMs?: { initial: number; max: number };
  /** hold a connection LISTENing for enqueue notifications; @default true */
  listen?: boolean;
  /**
   * Which notifications start a pass at once: `own` — this process's enqueues only (another
   * process's rows are its relay's; the periodic pass catches what a dead process left) —
   * or `all`. @default 'own'
   */
  notifications?: 'own' | 'all';
  /**
   * Direct publishing: rows enqueued in transactions on this relay's `pool` are claimed at insert
   * (a lease) and published by this relay right after COMMIT — no NOTIFY, no relay pass (two
   * round trips and a wake-up of every listening process) — and marked published in batches a
   * little later. Relays leave a row with a live claim (and the later rows of its topic and key)
   * alone; if this process dies, the lease runs out and any relay's periodic pass publishes it.
   * After a failed send the tenant's rows go through the relay for one lease. @default false
   */
  direct?: boolean | DirectPublishOptions;
}

export interface DirectPublishOptions {
  /** how long other relays leave a claimed row alone; @default 10000 */
  leaseMs?: number;
  /** how long published ids wait to be marked together; @default 100 */
  markIntervalMs?: number;
}

/** A claimed row, handed to its process's relay after COMMIT. */
interface Handed extends OutgoingEvent {
  id: string;
  /** when it was enqueued (before its claim): rows claimed before a failed send are released */
  claimedAt: number;
}

/** Per tenant: what waits to be sent, and to be marked published. */
interface DirectState {
  ref: TenantDbRef;
  queue: Handed[];
  sending: Promise<void> | undefined;
  toMark: string[];
  markTimer: NodeJS.Timeout | undefined;
  marking: Promise<void> | undefined;
  /** rows claimed before this time (ms) are released to the relays, not sent (after a failure) */
  barrier: number;
}

/** Row ids (UUIDs, ours) as one quoted array literal, for statements sent without parameters. */
const idArray = (ids: readonly string[]) => `${quoteLiteral(`{${ids.join(',')}}`)}::uuid[]`;

/** The direct-publishing relay of each pool (at most one; the last started wins). */
const directPublishers = new WeakMap<pg.Pool, OutboxRelay>();

interface Row {
  id: string;
  seq: string;
  aggregate_id: string;
  event_type: string;
  payload: Buffer;
  headers: { topic?: unknown };
}

export class OutboxRelay {
  readonly #o: Required<Omit<OutboxRelayOptions, 'logger' | 'metrics' | 'direct'>> &
    Pick<OutboxRelayOptions, 'logger'>;
  readonly #published;
  readonly #failures;
  readonly #directPublished;
  readonly #released;
  readonly #direct: Required<DirectPublishOptions> | undefined;
  readonly #directState = new Map<string, DirectState>();
  readonly #backoff = new Map<string, { failures: number; until: number }>();
  readonly #dirty = new Set<string>();
  /** set when (re)LISTENing: notifications may have been missed meanwhile */
  #fullPassDue = false;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  /** releases (destroys) the LISTENing connection */
  #unlisten: (() => void) | undefined;
  #listenRetry: NodeJS.Timeout | undefined;
  readonly #onPoolError = (err: Error) =>
    this.#o.logger?.warn({ err }, 'outbox relay: idle pool connection failed');

  constructor(options: OutboxRelayOptions) {
    this.#o = {
      pollIntervalMs: 1000,
      batchSize: 100,
      backoffMs: { initial: 500, max: 30_000 },
      listen: true,
      notifications: 'own',
      ...options,
    };
    const direct = options.direct === true ? {} : options.direct || undefined;
    this.#direct = direct && { leaseMs: 10_000, markIntervalMs: 100, ...direct };
    this.#directPublished = options.metrics?.counter({
      name: 'outbox_direct_published_total',
      help: 'Outbox events published by their own process right after COMMIT (direct publishing)',
    });
    this.#released = options.metrics?.counter({
      name: 'outbox_direct_released_total',
      help: 'Claimed outbox events handed back to the relays (a send failed)',
    });
    this.#published = options.metrics?.counter({
      name: 'outbox_published_total',
      help: 'Outbox events published to Kafka',
    });
    this.#failures = options.metrics?.counter({
      name: 'outbox_failures_total',
      help: 'Outbox relay failures by reason',
      labelNames: ['reason'],
    });
  }

  /** Starts polling (and listening). Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    // An idle pooled connection dropped by a Postgres restart emits 'error' on the pool; without
    // a listener that would crash the process. The pool replaces it on the next connect.
    this.#o.pool.on('error', this.#onPoolError);
    if (this.#o.listen) void this.#startListening();
    if (this.#direct) directPublishers.set(this.#o.pool, this);
    this.#loop = this.#run();
  }

  /** Stops after the batch in progress; releases the listening connection. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    if (directPublishers.get(this.#o.pool) === this) directPublishers.delete(this.#o.pool);
    clearTimeout(this.#listenRetry);
    await this.#drainDirect();
    this.#wake?.();
    await this.#loop;
    this.#unlisten?.();
    this.#o.pool.off('error', this.#onPoolError);
  }

  /**
   * Direct publishing: the lease for a row of `tenant` enqueued now, or undefined when it must
   * not be claimed (not publishing directly, stopped, or within a lease after a failed send).
   */
  claimLeaseMs(tenant: string): number | undefined {
    if (!this.#direct || !this.#running) return undefined;
    const st = this.#directState.get(tenant);
    return st && Date.now() < st.barrier ? undefined : this.#direct.leaseMs;
  }

  /**
   * Direct publishing: a claimed row whose transaction committed. Sent in the order handed (one
   * produce request in flight per tenant; what arrives meanwhile goes in the next), then marked
   * published with others a little later. Never throws.
   */
  hand(ref: TenantDbRef, row: Handed): void {
    const st = this.#stateFor(ref);
    st.queue.push(row);
    st.sending ??= this.#pump(st).finally(() => (st.sending = undefined));
  }

  #stateFor(ref: TenantDbRef): DirectState {
    let st = this.#directState.get(ref.name);
    if (!st) {
      st = {
        ref,
        queue: [],
        sending: undefined,
        toMark: [],
        markTimer: undefined,
        marking: undefined,
        barrier: 0,
      };
      this.#directState.set(ref.name, st);
    }
    return st;
  }

  async #pump(st: DirectState): Promise<void> {
    while (st.queue.length > 0) {
      const batch = st.queue.splice(0);
      const release = batch.filter((r) => r.claimedAt < st.barrier);
      const send = batch.filter((r) => r.claimedAt >= st.barrier);
      let reason = release.length > 0 ? 'claimed before a failed send' : '';
      if (send.length > 0) {
        try {
          await this.#o.producer.forTenant(st.ref.name).sendBatch(send);
          this.#directPublished?.inc(send.length);
          st.toMark.push(...send.map((r) => r.id));
          this.#scheduleMark(st);
        } catch (err) {
          reason = err instanceof Error ? err.message : String(err);
          this.#o.logger?.warn(
            { err, tenant: st.ref.name, rows: send.length },
            'outbox: direct publish failed, the relay takes over',
          );
          this.#failures?.inc({ reason: 'direct-send' });
          // Whatever was claimed until a lease from now goes through the relay, in seq order.
          st.barrier = Date.now() + this.#direct!.leaseMs;
          release.push(...send, ...st.queue.splice(0));
        }
      }
      if (release.length > 0) await this.#release(st, release, reason);
    }
  }

  /**
   * Hands claimed rows back to the relays: claim cleared, this process's relay woken. If that
   * fails too, their leases run out and the periodic passes take them.
   */
  async #release(st: DirectState, rows: readonly Handed[], reason: string): Promise<void> {
    try {
      await this.#inOneRoundTrip(
        st.ref,
        `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, attempts = attempts + 1,
                last_error = ${quoteLiteral(reason.slice(0, 1000))}
          WHERE id = ANY(${idArray(rows.map((r) => r.id))}) AND published_at IS NULL;
         SELECT pg_notify(${quoteLiteral(OUTBOX_CHANNEL)}, ${quoteLiteral(`${st.ref.name} ${OUTBOX_INSTANCE}`)})`,
      );
      this.#released?.inc(rows.length);
    } catch (err) {
      this.#o.logger?.warn(
        { err, tenant: st.ref.name, rows: rows.length },
        'outbox: releasing claimed rows failed; their leases will run out',
      );
    }
  }

  #scheduleMark(st: DirectState): void {
    if (st.markTimer || st.marking) return;
    st.markTimer = setTimeout(() => {
      st.markTimer = undefined;
      st.marking = this.#mark(st).finally(() => {
        st.marking = undefined;
        if (st.toMark.length > 0 && this.#running) this.#scheduleMark(st);
      });
    }, this.#direct!.markIntervalMs);
    st.markTimer.unref();
  }

  /** `sql` (no parameters) in a transaction of its own as the tenant: one round trip with COMMIT. */
  #inOneRoundTrip(ref: TenantDbRef, sql: string): Promise<void> {
    return withTenant(this.#o.pool, ref, async (c) => tenantTransaction(c)!.withCommit(sql), {
      deferBegin: true,
    });
  }

  /** Marks what was sent directly as published: one round trip for every row sent meanwhile. */
  async #mark(st: DirectState): Promise<void> {
    const ids = st.toMark.splice(0);
    if (ids.length === 0) return;
    try {
      // A relay that re-published a row whose lease ran out marked it already. Rows left to the
      // relays that waited behind these (same topic and key: another process's, or unclaimed)
      // wake every relay — without an origin — instead of the next periodic pass.
      await this.#inOneRoundTrip(
        st.ref,
        `WITH m AS (
           UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
            WHERE id = ANY(${idArray(ids)}) AND published_at IS NULL
            RETURNING seq, aggregate_id, coalesce(headers->>'topic', '') AS topic)
         SELECT pg_notify(${quoteLiteral(OUTBOX_CHANNEL)}, ${quoteLiteral(st.ref.name)})
          WHERE EXISTS (
            SELECT 1 FROM m JOIN outbox o
                ON o.aggregate_id = m.aggregate_id AND coalesce(o.headers->>'topic', '') = m.topic
             WHERE o.published_at IS NULL AND o.seq > m.seq
               AND (o.claimed_until IS NULL OR o.claimed_until <= clock_timestamp()))`,
      );
      this.#published?.inc(ids.length);
    } catch (err) {
      this.#o.logger?.warn(
        { err, tenant: st.ref.name, rows: ids.length },
        'outbox: marking directly published rows failed; retrying (a relay may publish them again)',
      );
      // Retried with the next batch; past the lease a relay re-publishes them (same ids: consumers
      // de-duplicate) and marks them itself.
      if (this.#running) st.toMark.unshift(...ids.slice(0, 10_000));
    }
  }

  /** On stop: what was handed is sent (or released) and everything sent is marked. */
  async #drainDirect(): Promise<void> {
    for (const st of this.#directState.values()) {
      await st.sending;
      clearTimeout(st.markTimer);
      st.markTimer = undefined;
      await st.marking;
      await this.#mark(st);
    }
  }

  /** One pass over every tenant (those in backoff skipped), each drained batch by batch. */
  async relayAll(): Promise<void> {
    const tenants = await this.#o.tenants();
    for (const t of tenants) await this.#drain(t);
  }

  async #drain(t: TenantDbRef): Promise<void> {
    const b = this.#backoff.get(t.name);
    if (b && Date.now() < b.until) return;
    try {
      for (let i = 0; i < 100; i++) {
        const r = await this.relayTenant(t);
        if (r.failed > 0) return this.#fail(t.name, 'send');
        this.#backoff.delete(t.name);
        if (!r.more || r.published === 0) return;
      }
    } catch (err) {
      this.#o.logger?.warn({ err, tenant: t.name }, 'outbox relay: tenant pass failed');
      this.#fail(t.name, 'database');
    }
  }

  #fail(tenant: string, reason: string): void {
    this.#failures?.inc({ reason });
    const prev = this.#backoff.get(tenant)?.failures ?? 0;
    const { initial, max } = this.#o.backoffMs;
    const delay = Math.min(max, initial * 2 ** prev);
    this.#backoff.set(tenant, { failures: prev + 1, until: Date.now() + delay });
  }

  /**
   * Publishes one batch of a tenant's pending rows, in `seq` order, and marks them. Exposed for
   * tests and tools; the running relay calls it.
   */
  relayTenant(t: TenantDbRef): Promise<RelayResult> {
    // Two round trips per batch: (1) the transaction's preamble, the tenant's relay lock and the
    // batch, in one multi-statement query (`deferBegin`); (2) marking the batch published, sent
    // with COMMIT (`withCommit`). The batch's SELECT re-checks the lock in an InitPlan (evaluated
    // once; re-entrant for the holder) so that no row is locked unless this relay holds the
    // tenant — two relays never interleave one tenant's events. Rows with a live claim (direct
    // publishing) are their process's to send, and the later rows of their topic and key wait.
    const lockSql = `pg_try_advisory_xact_lock(hashtext('simptu.outbox'), hashtext(${quoteLiteral(t.schema)}))`;
    const batchSize = Math.max(1, Math.floor(this.#o.batchSize));
    return withTenant(
      this.#o.pool,
      t,
      async (c) => {
        const tx = tenantTransaction(c)!;
        const result: RelayResult = { published: 0, failed: 0, held: 0, more: false, locked: false };
        const begin = tx.takeBegin();
        const results = (await c.query(
          `${begin}SELECT ${lockSql} AS ok;
           SELECT id, seq, aggregate_id, event_type, payload, headers FROM outbox
            WHERE published_at IS NULL AND (SELECT ${lockSql})
              AND (claimed_until IS NULL OR claimed_until <= clock_timestamp())
              AND NOT EXISTS (
                SELECT 1 FROM outbox e
                 WHERE e.aggregate_id = outbox.aggregate_id AND e.published_at IS NULL
                   AND e.seq < outbox.seq AND e.claimed_until > clock_timestamp()
                   AND coalesce(e.headers->>'topic', '') = coalesce(outbox.headers->>'topic', ''))
            ORDER BY seq LIMIT ${batchSize} FOR UPDATE SKIP LOCKED`,
        )) as unknown as pg.QueryResult[];
        const skip = begin ? TENANT_PREAMBLE_RESULTS : 0;
        const ok = (results[skip]!.rows[0] as { ok: boolean } | undefined)?.ok === true;
        const rows = results[skip + 1]!.rows as Row[];
        if (rows.length === 0) return { ...result, locked: !ok };
        result.more = rows.length === this.#o.batchSize;

        const send: Array<OutgoingEvent & { id: string }> = [];
        const held: Array<{ id: string; error: string }> = [];
        const blocked = new Set<string>();
        const cipher = await this.#cipherFor(t.name, rows);
        for (const row of rows) {
          if (blocked.has(row.aggregate_id)) {
            held.push({ id: row.id, error: 'held behind an undecodable event of the same aggregate' });
            continue;
          }
          const decoded = this.#decode(cipher, t.name, row);
          if (typeof decoded === 'string') {
            blocked.add(row.aggregate_id);
            held.push({ id: row.id, error: decoded });
            this.#o.logger?.error(
              { tenant: t.name, outboxId: row.id, reason: decoded },
              'outbox relay: undecodable row',
            );
            continue;
          }
          send.push({ id: row.id, ...decoded });
        }
        if (held.length > 0) {
          result.held = held.length;
          this.#failures?.inc({ reason: 'undecodable' }, held.length);
          await c.query(
            `UPDATE outbox SET attempts = attempts + 1, last_error = e.error
             FROM unnest($1::uuid[], $2::text[]) AS e(id, error) WHERE outbox.id = e.id`,
            [held.map((h) => h.id), held.map((h) => h.error)],
          );
        }
        if (send.length === 0) return result;
        const ids = send.map((s) => s.id);
        try {
          await this.#o.producer.forTenant(t.name).sendBatch(send);
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          this.#o.logger?.warn(
            { err, tenant: t.name, rows: ids.length },
            'outbox relay: publish failed, will retry',
          );
          await c.query(
            `UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::uuid[])`,
            [ids, message.slice(0, 1000)],
          );
          return { ...result, failed: ids.length };
        }
        tx.withCommit(
          `UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY(${idArray(ids)})`,
        );
        this.#published?.inc(ids.length);
        return { ...result, published: ids.length };
      },
      { deferBegin: true },
    );
  }

  async #cipherFor(tenant: string, rows: Row[]): Promise<FieldCipher> {
    let newest = 0;
    for (const r of rows) {
      try {
        newest = Math.max(newest, ciphertextKeyVersion(r.payload));
      } catch {
        // malformed: reported per row by #decode
      }
    }
    return this.#o.ciphers.cipher(tenant, newest > 0 ? { requireVersion: newest } : {});
  }

  /** The event to send, or why the row can't be sent. */
  #decode(cipher: FieldCipher, tenant: string, row: Row): OutgoingEvent | string {
    let event: CloudEvent;
    try {
      event = JSON.parse(cipher.decryptString(row.payload, outboxPayloadLocation(row.id))) as CloudEvent;
    } catch (err) {
      return `payload does not decrypt: ${err instanceof Error ? err.message : String(err)}`;
    }
    const problem = validateCloudEvent(event as unknown as Record<string, unknown>);
    if (problem) return `payload is not a valid event: ${problem}`;
    if (event.id !== row.id || event.tenant !== tenant || event.type !== row.event_type)
      return 'payload does not match its row';
    const topic = typeof row.headers.topic === 'string' ? row.headers.topic : tenantTopics(tenant).domain;
    return { topic, event, key: row.aggregate_id };
  }

  async #run(): Promise<void> {
    let full = true;
    while (this.#running) {
      try {
        if (full) await this.relayAll();
        else {
          const dirty = [...this.#dirty];
          this.#dirty.clear();
          const known = await this.#o.tenants();
          for (const t of known) if (dirty.includes(t.name)) await this.#drain(t);
        }
      } catch (err) {
        this.#o.logger?.warn({ err }, 'outbox relay: pass failed');
      }
      if (!this.#running) break;
      full = await this.#sleep();
    }
  }

  /** Waits for the poll interval (→ true: full pass) or a notification (→ false: dirty tenants only). */
  #sleep(): Promise<boolean> {
    if (this.#dirty.size > 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve(true);
      }, this.#o.pollIntervalMs);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        const full = this.#fullPassDue || this.#dirty.size === 0;
        this.#fullPassDue = false;
        resolve(!this.#running || full);
      };
    });
  }

  async #startListening(): Promise<void> {
    if (!this.#running) return;
    let client: pg.PoolClient | undefined;
    let released = false;
    const drop = (err: Error | boolean) => {
      if (released || !client) return;
      released = true;
      this.#unlisten = undefined;
      // Destroyed, never returned: a LISTENing connection must not serve other work.
      client.release(err);
    };
    try {
      client = await this.#o.pool.connect();
      client.on('notification', (n) => {
        if (n.channel !== OUTBOX_CHANNEL || !n.payload) return;
        const [tenant, origin] = n.payload.split(' ', 2);
        if (!tenant) return;
        if (origin !== undefined && origin !== OUTBOX_INSTANCE && this.#o.notifications !== 'all') return;
        this.#dirty.add(tenant);
        this.#wake?.();
      });
      client.on('error', (err) => {
        this.#o.logger?.warn({ err }, 'outbox relay: LISTEN connection lost, reconnecting');
        drop(err);
        this.#retryListen();
      });
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      if (!this.#running) return drop(true);
      this.#unlisten = () => drop(true);
      // Whatever was enqueued while nobody listened: catch up now rather than at the next poll.
      this.#fullPassDue = true;
      this.#wake?.();
    } catch (err) {
      this.#o.logger?.warn({ err }, 'outbox relay: LISTEN failed, polling meanwhile');
      drop(err instanceof Error ? err : true);
      this.#retryListen();
    }
  }

  #retryListen(): void {
    if (!this.#running) return;
    clearTimeout(this.#listenRetry);
    this.#listenRetry = setTimeout(() => void this.#startListening(), this.#o.backoffMs.initial * 4);
  }
}
