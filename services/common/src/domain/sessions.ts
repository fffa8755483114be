/**
 * Chat sessions and their messages (DESIGN §7). Message bodies and the session subject are
 * encrypted with the tenant's DEK, bound to their row. Each message gets the next `seq` of its
 * session atomically (the session row is the counter, so concurrent appends serialize on its
 * row lock and never collide); history pages are keyset-paginated by `seq`.
 *
 * State machine (who talks to the customer):
 *
 *     bot ──► pending_human ──► human ──► bot
 *      ▲           │                        │
 *      └───────────┘ (handover withdrawn)   │
 *     bot | pending_human | human ──► closed (final)
 *
 * Anything else is INVALID_STATE_TRANSITION (409); setting the current state again is a no-op.
 *
 * Change tracking (the API's history cache, docs/api.md "History cache"): every function here
 * that changes a session or its messages calls `markSessionChanged`, which — once the
 * `withTenant` transaction has COMMITTED — tells the listeners installed with
 * `onSessionsChanged`. Each service that writes sessions (API, agent, realtime hub) installs
 * `trackSessionVersions(redis)`, which then gives every changed session a new random VERSION in
 * Redis (`sessionVersionKey`); the API serves a cached history page only while the session's
 * version is the one the page was read under. Code that changes the `sessions` or `messages`
 * tables with its own SQL must call `markSessionChanged` too.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FieldLocation } from '../crypto/envelope.ts';
import { tenantTransaction } from '../db/tenant-db.ts';
import {
  assertUuid,
  CHANNELS,
  clampLimit,
  decodeCursor,
  encodeCursor,
  isUuid,
  newId,
  type Channel,
  type DomainContext,
} from './context.ts';
import { ConflictError } from '../errors.ts';
import { getCustomer } from './customers.ts';
import { DomainErrors, Issues, invalid, notFound } from './errors.ts';

export const SESSION_STATES = ['bot', 'pending_human', 'human', 'closed'] as const;
export type SessionState = (typeof SESSION_STATES)[number];
export const MESSAGE_ROLES = ['user', 'assistant', 'staff', 'system'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export const SESSION_TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  bot: ['pending_human', 'closed'],
  pending_human: ['human', 'bot', 'closed'],
  human: ['bot', 'closed'],
  closed: [],
};

/** Whether the state machine allows `from` → `to` (same state excluded). Pure. */
export function canTransition(from: SessionState, to: SessionState): boolean {
  return SESSION_TRANSITIONS[from].includes(to);
}

export interface Session {
  id: string;
  customerId: string | null;
  channel: Channel;
  state: SessionState;
  subject: string | null;
  /** staff subject handling it while `human` */
  assignedTo: string | null;
  /** seq of the newest message, 0 when none */
  lastSeq: number;
  createdAt: Date;
  updatedAt: Date;
  lastMessageAt: Date | null;
  closedAt: Date | null;
}

export interface Message {
  id: string;
  sessionId: string;
  seq: number;
  role: MessageRole;
  body: string;
  author: string | null;
  createdAt: Date;
}

export function sessionSubjectLocation(id: string): FieldLocation {
  return { table: 'sessions', column: 'subject', rowId: id };
}

export function messageBodyLocation(id: string): FieldLocation {
  return { table: 'messages', column: 'body', rowId: id };
}

// ---------------------------------------------------------------------------------------------
// Change tracking

/** Called after COMMIT with the sessions a transaction changed (ids lower-case, de-duplicated). */
export type SessionsChangedListener = (tenant: string, sessionIds: readonly string[]) => unknown;

const listeners = new Set<SessionsChangedListener>();
const CHANGED = Symbol('simptu.sessions.changed');

/**
 * Listens to committed session changes of this process; returns the function that stops
 * listening. A listener must not throw (it is called after the data is committed); its errors
 * are its own to log.
 */
export function onSessionsChanged(listener: SessionsChangedListener): () => void {
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

async function notifySessionsChanged(tenant: string, ids: readonly string[]): Promise<void> {
  await Promise.all([...listeners].map(async (l) => l(tenant, ids)));
}

/**
 * Records that the transaction of `ctx.client` changed session `sessionId` (its row or its
 * messages): the listeners hear of it after COMMIT, once per session and transaction, and not
 * at all on ROLLBACK. Outside `withTenant` (no transaction to wait for) they are told at once.
 */
export function markSessionChanged(ctx: Pick<DomainContext, 'client' | 'cipher'>, sessionId: string): void {
  const id = sessionId.toLowerCase();
  const tx = tenantTransaction(ctx.client);
  if (!tx) {
    void notifySessionsChanged(ctx.cipher.tenant, [id]);
    return;
  }
  let ids = tx.data.get(CHANGED) as Set<string> | undefined;
  if (!ids) {
    const set = new Set<string>();
    ids = set;
    tx.data.set(CHANGED, set);
    tx.afterCommit(() => (listeners.size > 0 ? notifySessionsChanged(tx.tenant.name, [...set]) : undefined));
  }
  ids.add(id);
}

/**
 * Redis key of a session's history version: shared by every service (no per-service key
 * prefix), hash-tagged by tenant so one tenant's keys share a Redis Cluster slot.
 */
export const SESSION_VERSION_KEY_PREFIX = 'simptu:sv:';

export function sessionVersionKey(tenant: string, sessionId: string): string {
  return `${SESSION_VERSION_KEY_PREFIX}{${tenant}}:${sessionId.toLowerCase()}`;
}

/** How long a version lives without a change (a reader re-creates a missing one). */
export const SESSION_VERSION_TTL_SECONDS = 86_400;

/**
 * Gives each session a new random version (SET, not INCR: a Redis that lost its data can't
 * hand out an old version again). Call AFTER the change committed.
 */
export async function bumpSessionVersions(
  redis: Pick<Redis, 'multi'>,
  tenant: string,
  sessionIds: readonly string[],
): Promise<void> {
  if (sessionIds.length === 0) return;
  const multi = redis.multi();
  for (const id of sessionIds)
    multi.set(sessionVersionKey(tenant, id), randomUUID(), 'EX', SESSION_VERSION_TTL_SECONDS);
  const results = await multi.exec();
  const failed = results?.find(([err]) => err);
  if (!results || failed) throw failed?.[0] ?? new Error('session version bump: transaction discarded');
}

export interface TrackSessionVersionsOptions {
  /** told when a bump fails (Redis unreachable); the bump is retried */
  onError?: (err: unknown, tenant: string, sessionIds: readonly string[]) => void;
  /** how often failed bumps are retried; @default 1000 */
  retryMs?: number;
  /** give up on a failed bump after this long (the API's cache TTL bounds it anyway); @default 600_000 */
  retryForMs?: number;
  /** at most this many sessions wait for a retry (the oldest are dropped); @default 10_000 */
  maxPending?: number;
}

/**
 * Installs the listener that bumps the Redis version of every session this process changes
 * (`bumpSessionVersions` after each commit); returns the uninstaller. A bump that fails (Redis
 * unreachable) is passed to `onError` and retried every `retryMs` until it succeeds — so the
 * pages other API instances cached before the change stop being served as soon as Redis is
 * reachable again — for at most `retryForMs` (the API's `cache.historyTtlSec` bounds what is
 * left, docs/api.md "History cache"). The write itself has committed whatever happens here.
 */
export function trackSessionVersions(
  redis: Pick<Redis, 'multi'>,
  opts: TrackSessionVersionsOptions = {},
): () => void {
  const retryMs = opts.retryMs ?? 1000;
  const retryForMs = opts.retryForMs ?? 600_000;
  const maxPending = opts.maxPending ?? 10_000;
  /** `<tenant>\0<session id>` → when the first bump failed */
  const pending = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let retrying = false;

  const retry = async () => {
    if (retrying) return;
    retrying = true;
    try {
      const now = Date.now();
      const byTenant = new Map<string, string[]>();
      for (const [k, since] of pending) {
        if (now - since > retryForMs) {
          pending.delete(k);
          continue;
        }
        const [tenant, id] = k.split('\u0000') as [string, string];
        const list = byTenant.get(tenant);
        if (list) list.push(id);
        else byTenant.set(tenant, [id]);
      }
      for (const [tenant, ids] of byTenant) {
        try {
          await bumpSessionVersions(redis, tenant, ids);
          for (const id of ids) pending.delete(`${tenant}\u0000${id}`);
        } catch {
          break; // still unreachable: next tick
        }
      }
    } finally {
      retrying = false;
      if (pending.size === 0 && timer) {
        clearInterval(timer);
        timer = undefined;
      }
    }
  };

  const stop = onSessionsChanged(async (tenant, ids) => {
    try {
      await bumpSessionVersions(redis, tenant, ids);
    } catch (err) {
      opts.onError?.(err, tenant, ids);
      const now = Date.now();
      for (const id of ids) {
        const k = `${tenant}\u0000${id}`;
        pending.delete(k); // re-inserted last: the oldest entries are the first in the map
        pending.set(k, now);
      }
      for (const k of pending.keys()) {
        if (pending.size <= maxPending) break;
        pending.delete(k);
      }
      if (!timer) {
        timer = setInterval(() => void retry(), retryMs);
        timer.unref();
      }
    }
  });
  return () => {
    stop();
    clearInterval(timer);
    timer = undefined;
    pending.clear();
  };
}

interface SessionRow {
  id: string;
  customer_id: string | null;
  channel: Channel;
  state: SessionState;
  subject: Buffer | null;
  assigned_to: string | null;
  last_seq: string;
  created_at: Date;
  updated_at: Date;
  last_message_at: Date | null;
  closed_at: Date | null;
}

const SESSION_COLUMNS =
  'id, customer_id, channel, state, subject, assigned_to, last_seq, created_at, updated_at, last_message_at, closed_at';

function toSession(ctx: DomainContext, r: SessionRow): Session {
  return {
    id: r.id,
    customerId: r.customer_id,
    channel: r.channel,
    state: r.state,
    subject: r.subject === null ? null : ctx.cipher.decryptString(r.subject, sessionSubjectLocation(r.id)),
    assignedTo: r.assigned_to,
    lastSeq: Number(r.last_seq),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastMessageAt: r.last_message_at,
    closedAt: r.closed_at,
  };
}

interface MessageRow {
  id: string;
  session_id: string;
  seq: string;
  role: MessageRole;
  body: Buffer;
  author: string | null;
  created_at: Date;
}

function toMessage(ctx: DomainContext, r: MessageRow): Message {
  return {
    id: r.id,
    sessionId: r.session_id,
    seq: Number(r.seq),
    role: r.role,
    body: ctx.cipher.decryptString(r.body, messageBodyLocation(r.id)),
    author: r.author,
    createdAt: r.created_at,
  };
}

/** Who is asking: a customer sees only their own sessions (others → 404). */
export interface SessionScope {
  customerId?: string;
}

export interface CreateSessionInput {
  customerId?: string | null;
  channel: Channel;
  subject?: string | null;
}

export async function createSession(ctx: DomainContext, input: CreateSessionInput): Promise<Session> {
  const issues = new Issues();
  if (!CHANNELS.includes(input.channel)) issues.add('channel', `must be one of ${CHANNELS.join(', ')}`);
  if (input.subject != null && (typeof input.subject !== 'string' || input.subject.length > 500))
    issues.add('subject', 'must be at most 500 characters');
  issues.throwIfAny();
  const customerId = input.customerId == null ? null : assertUuid(input.customerId, 'customerId');
  if (customerId) await getCustomer(ctx, customerId);
  const id = newId();
  const subject =
    input.subject == null ? null : ctx.cipher.encrypt(input.subject, sessionSubjectLocation(id));
  const { rows } = await ctx.client.query<SessionRow>(
    `INSERT INTO sessions (id, customer_id, channel, subject) VALUES ($1, $2, $3, $4) RETURNING ${SESSION_COLUMNS}`,
    [id, customerId, input.channel, subject],
  );
  markSessionChanged(ctx, id);
  return toSession(ctx, rows[0]!);
}

function inScope(s: { customer_id: string | null }, scope: SessionScope): boolean {
  return scope.customerId === undefined || s.customer_id === scope.customerId.toLowerCase();
}

export async function getSession(ctx: DomainContext, id: string, scope: SessionScope = {}): Promise<Session> {
  const { rows } = await ctx.client.query<SessionRow>(
    `SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = $1`,
    [assertUuid(id, 'sessionId')],
  );
  if (!rows[0] || !inScope(rows[0], scope)) throw notFound('session', id);
  return toSession(ctx, rows[0]);
}

export interface ListSessionsQuery {
  state?: SessionState;
  customerId?: string;
  /** @default 50, at most 200 */
  limit?: number;
  cursor?: string;
}

export interface SessionPage {
  items: Session[];
  nextCursor: string | null;
}

/** Newest first, keyset-paginated. */
export async function listSessions(
  ctx: DomainContext,
  q: ListSessionsQuery = {},
  scope: SessionScope = {},
): Promise<SessionPage> {
  const limit = clampLimit(q.limit);
  if (q.state !== undefined && !SESSION_STATES.includes(q.state))
    throw invalid('state', 'unknown session state');
  let customerId = q.customerId === undefined ? null : assertUuid(q.customerId, 'customerId');
  if (scope.customerId !== undefined) {
    const own = assertUuid(scope.customerId, 'customerId');
    if (customerId !== null && customerId !== own) return { items: [], nextCursor: null };
    customerId = own;
  }
  const before = q.cursor
    ? decodeCursor(q.cursor, (v): v is { c: string; i: string } => {
        const o = v as { c?: unknown; i?: unknown } | null;
        return (
          typeof o?.c === 'string' &&
          /^\d{1,20}$/.test(o.c) &&
          typeof o.i === 'string' &&
          /^[0-9a-f-]{36}$/.test(o.i)
        );
      })
    : null;
  const { rows } = await ctx.client.query<SessionRow & { created_us: string }>(
    `SELECT ${SESSION_COLUMNS}, (extract(epoch FROM created_at) * 1000000)::bigint::text AS created_us FROM sessions
      WHERE ($1::text IS NULL OR state = $1)
        AND ($2::uuid IS NULL OR customer_id = $2)
        AND ($3::bigint IS NULL OR ((extract(epoch FROM created_at) * 1000000)::bigint, id) < ($3::bigint, $4::uuid))
      ORDER BY created_at DESC, id DESC
      LIMIT $5`,
    [q.state ?? null, customerId, before ? before.c : null, before ? before.i : null, limit + 1],
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map((r) => toSession(ctx, r)),
    // Microseconds, as text: a JS Date would drop Postgres' sub-millisecond part and skip rows.
    nextCursor: rows.length > limit && last ? encodeCursor({ c: last.created_us, i: last.id }) : null,
  };
}

export interface AppendMessageInput {
  role: MessageRole;
  body: string;
  /** staff subject for `staff` messages */
  author?: string | null;
  /**
   * the message's id; @default a new UUID. Given when the id was chosen elsewhere and must stay
   * the same everywhere (the agent's `message_id`: the realtime hub shows it, the history must
   * too). An id that already exists is a 409 CONFLICT (`details.messageId`), nothing written.
   */
  id?: string;
}

export const MAX_MESSAGE_LENGTH = 16_000;

/** Appends a message with the session's next seq. SESSION_CLOSED for a closed session. */
export async function appendMessage(
  ctx: DomainContext,
  sessionId: string,
  input: AppendMessageInput,
  scope: SessionScope = {},
): Promise<Message> {
  const issues = new Issues();
  if (!MESSAGE_ROLES.includes(input.role)) issues.add('role', `must be one of ${MESSAGE_ROLES.join(', ')}`);
  if (typeof input.body !== 'string' || input.body.length < 1 || input.body.length > MAX_MESSAGE_LENGTH)
    issues.add('body', `must be 1..${MAX_MESSAGE_LENGTH} characters`);
  if (input.author != null && (typeof input.author !== 'string' || input.author.length > 200))
    issues.add('author', 'must be at most 200 characters');
  if (input.id !== undefined && !isUuid(input.id)) issues.add('id', 'must be a UUID');
  issues.throwIfAny();
  const sid = assertUuid(sessionId, 'sessionId');
  const id = input.id === undefined ? newId() : input.id.toLowerCase();
  if (input.id !== undefined) {
    // Checked before the seq is taken, so a duplicate leaves no gap in the session's seqs.
    const dup = await ctx.client.query('SELECT 1 FROM messages WHERE id = $1', [id]);
    if (dup.rowCount)
      throw new ConflictError('A message with this id exists', { details: { messageId: id } });
  }
  // The row lock serializes appends to one session; seq = the incremented counter.
  const { rows } = await ctx.client.query<{
    last_seq: string;
    state: SessionState;
    customer_id: string | null;
  }>(
    `UPDATE sessions SET last_seq = last_seq + 1, last_message_at = now(), updated_at = now()
      WHERE id = $1 AND state <> 'closed' AND ($2::uuid IS NULL OR customer_id = $2)
      RETURNING last_seq, state, customer_id`,
    [sid, scope.customerId === undefined ? null : assertUuid(scope.customerId, 'customerId')],
  );
  if (!rows[0]) {
    const s = await getSession(ctx, sid, scope); // 404 when missing or not theirs
    throw new DomainErrors.SESSION_CLOSED({ details: { sessionId: s.id } });
  }
  markSessionChanged(ctx, sid);
  const seq = rows[0].last_seq;
  const { rows: ins } = await ctx.client.query<MessageRow>(
    `INSERT INTO messages (id, session_id, seq, role, body, author) VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING id, session_id, seq, role, body, author, created_at`,
    [id, sid, seq, input.role, ctx.cipher.encrypt(input.body, messageBodyLocation(id)), input.author ?? null],
  );
  return toMessage(ctx, ins[0]!);
}

export interface HistoryQuery {
  /** messages with seq > afterSeq, oldest first (catching up) */
  afterSeq?: number;
  /** the `limit` messages just before `beforeSeq`, returned oldest first (scrolling back) */
  beforeSeq?: number;
  /** @default 50, at most 200 */
  limit?: number;
}

export interface MessagePage {
  /** always in ascending seq order */
  messages: Message[];
  /** more messages exist in the direction of the query */
  hasMore: boolean;
  /**
   * the cursor for the next page in the same direction: with `afterSeq`, the last seq; with
   * `beforeSeq` (or neither: newest page), the first seq. null when !hasMore.
   */
  nextCursor: number | null;
  /** the session's customer (null for an anonymous session): who else may read this page */
  customerId: string | null;
}

type HistoryRow = { owner: string | null } & { [K in keyof MessageRow]: MessageRow[K] | null };

/**
 * One page of a session's history, decrypted. Neither cursor → the newest `limit` messages
 * (what a chat window shows first), then `beforeSeq = nextCursor` pages back.
 * One round trip: the session row (existence, scope, owner) LEFT JOIN LATERAL its page of
 * messages — no rows: no such session (or not the customer's) → 404; one row of NULL message
 * columns: a session without messages (in that direction).
 */
export async function listMessages(
  ctx: DomainContext,
  sessionId: string,
  q: HistoryQuery = {},
  scope: SessionScope = {},
): Promise<MessagePage> {
  const limit = clampLimit(q.limit);
  const issues = new Issues();
  if (q.afterSeq !== undefined && (!Number.isSafeInteger(q.afterSeq) || q.afterSeq < 0))
    issues.add('afterSeq', 'must be an integer ≥ 0');
  if (q.beforeSeq !== undefined && (!Number.isSafeInteger(q.beforeSeq) || q.beforeSeq < 1))
    issues.add('beforeSeq', 'must be an integer ≥ 1');
  if (q.afterSeq !== undefined && q.beforeSeq !== undefined)
    issues.add('beforeSeq', 'give afterSeq or beforeSeq, not both');
  issues.throwIfAny();
  const sid = assertUuid(sessionId, 'sessionId');
  const customerId = scope.customerId === undefined ? null : assertUuid(scope.customerId, 'customerId');
  const forward = q.afterSeq !== undefined;
  const page = forward
    ? `SELECT id, session_id, seq, role, body, author, created_at FROM messages
        WHERE session_id = s.id AND seq > $2 ORDER BY seq LIMIT $3`
    : `SELECT id, session_id, seq, role, body, author, created_at FROM messages
        WHERE session_id = s.id AND ($2::bigint IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3`;
  const { rows } = await ctx.client.query<HistoryRow>(
    `SELECT s.customer_id AS owner, m.id, m.session_id, m.seq, m.role, m.body, m.author, m.created_at
       FROM sessions s LEFT JOIN LATERAL (${page}) m ON true
      WHERE s.id = $1 AND ($4::uuid IS NULL OR s.customer_id = $4)
      ORDER BY m.seq ${forward ? 'ASC' : 'DESC'}`,
    [sid, forward ? q.afterSeq : (q.beforeSeq ?? null), limit + 1, customerId],
  );
  if (rows.length === 0) throw notFound('session', sessionId); // missing or not theirs
  const owner = rows[0]!.owner;
  const found = rows[0]!.id === null ? [] : (rows as MessageRow[]);
  const hasMore = found.length > limit;
  const slice = found.slice(0, limit);
  if (!forward) slice.reverse();
  const messages = slice.map((r) => toMessage(ctx, r));
  const edge = forward ? messages[messages.length - 1] : messages[0];
  return { messages, hasMore, nextCursor: hasMore && edge ? edge.seq : null, customerId: owner };
}

export interface SetStateOptions {
  /** staff subject taking the session (for `human`) */
  assignedTo?: string | null;
}

/**
 * Moves a session along the state machine. INVALID_STATE_TRANSITION (409) for a forbidden
 * move; the current state again → returned unchanged.
 */
export async function setSessionState(
  ctx: DomainContext,
  id: string,
  to: SessionState,
  opts: SetStateOptions = {},
  scope: SessionScope = {},
): Promise<Session> {
  if (!SESSION_STATES.includes(to)) throw invalid('state', `must be one of ${SESSION_STATES.join(', ')}`);
  const { rows } = await ctx.client.query<SessionRow>(
    `SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = $1 FOR UPDATE`,
    [assertUuid(id, 'sessionId')],
  );
  if (!rows[0] || !inScope(rows[0], scope)) throw notFound('session', id);
  const from = rows[0].state;
  if (from === to) return toSession(ctx, rows[0]);
  if (!canTransition(from, to))
    throw new DomainErrors.INVALID_STATE_TRANSITION({ details: { sessionId: rows[0].id, from, to } });
  const assignedTo = to === 'human' ? (opts.assignedTo ?? null) : null;
  const { rows: upd } = await ctx.client.query<SessionRow>(
    `UPDATE sessions SET state = $2, assigned_to = $3, updated_at = now(),
            closed_at = CASE WHEN $2 = 'closed' THEN now() ELSE NULL END
      WHERE id = $1 RETURNING ${SESSION_COLUMNS}`,
    [rows[0].id, to, assignedTo],
  );
  markSessionChanged(ctx, rows[0].id);
  return toSession(ctx, upd[0]!);
}
