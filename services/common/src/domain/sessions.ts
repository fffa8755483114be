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
 */
import type { FieldLocation } from '../crypto/envelope.ts';
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
}

/**
 * One page of a session's history, decrypted. Neither cursor → the newest `limit` messages
 * (what a chat window shows first), then `beforeSeq = nextCursor` pages back.
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
  // One round trip in the common case: the scope check (the session exists and, for a
  // customer, is theirs) is part of the messages query; only an empty page pays a second query
  // to tell "no messages" from "no such session" (404).
  const visible = `EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND ($4::uuid IS NULL OR s.customer_id = $4))`;
  const { rows } = forward
    ? await ctx.client.query<MessageRow>(
        `SELECT id, session_id, seq, role, body, author, created_at FROM messages
          WHERE session_id = $1 AND seq > $2 AND ${visible} ORDER BY seq LIMIT $3`,
        [sid, q.afterSeq, limit + 1, customerId],
      )
    : await ctx.client.query<MessageRow>(
        `SELECT id, session_id, seq, role, body, author, created_at FROM messages
          WHERE session_id = $1 AND ($2::bigint IS NULL OR seq < $2) AND ${visible} ORDER BY seq DESC LIMIT $3`,
        [sid, q.beforeSeq ?? null, limit + 1, customerId],
      );
  if (rows.length === 0) await getSession(ctx, sid, scope); // 404 when missing or not theirs
  const hasMore = rows.length > limit;
  const page = rows.slice(0, limit);
  if (!forward) page.reverse();
  const messages = page.map((r) => toMessage(ctx, r));
  const edge = forward ? messages[messages.length - 1] : messages[0];
  return { messages, hasMore, nextCursor: hasMore && edge ? edge.seq : null };
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
  return toSession(ctx, upd[0]!);
}
