/**
 * Chat sessions and their history (DESIGN §7). Roles: a `customer` acts on their own sessions
 * only (anything else reads as 404, not 403, so ids don't leak); `staff`, `admin`, `owner` on the
 * tenant's. Every handler runs in ONE tenant transaction (`request.withTenant`): the state
 * change, the encrypted message row and the outbox events commit together or not at all.
 *
 * Events (CloudEvents through the transactional outbox, key = session id, snake_case data):
 *   - `io.simptu.message.received` → `simptu.t.<name>.inbound` (for the agent) on a customer
 *     message: `{session_id, message_id, seq, role: 'user', customer_id, channel, session_state,
 *     body_enc}`. The body is NOT in clear on Kafka (DESIGN §6): `body_enc` is
 *     `FieldCipher.encryptText(body, messageBodyLocation(message_id))` — the tenant's DEK, bound
 *     to `tenant | messages | body | <message id>`, so it decrypts only as that message of that
 *     tenant. The agent (and the hub) decrypt it with the same keyring.
 *   - `io.simptu.message.created` → `…domain` for every stored message (customer and staff),
 *     same fields plus `author`; the realtime hub pushes it to `session:<id>`.
 *   - `io.simptu.session.created` / `io.simptu.session.updated` → `…domain`
 *     `{session_id, customer_id, channel?, state, assigned_to?}`.
 * Agent replies come back through `consumers/agent-replies.ts`.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  appendMessage,
  CHANNELS,
  clampLimit,
  createSession,
  DomainErrors,
  enqueue,
  ForbiddenError,
  getSession,
  listMessages,
  listSessions,
  MAX_MESSAGE_LENGTH,
  messageBodyLocation,
  NotFoundError,
  notFound,
  SESSION_STATES,
  sessionVersionKey,
  setSessionState,
  tenantTopics,
  ValidationError,
  type DomainContext,
  type Message,
  type MessagePage,
  type Session,
  type SessionState,
} from '@simptu/common';
import { historyCacheKey, type CachedPage } from '../history-cache.ts';
import { API_EVENT_SOURCE, customerScope, isStaff } from '../plugins/auth.ts';
import { errorResponses, IdParams, Paginated, PageQuery, Uuid } from '../schemas.ts';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const DateTime = Type.String({ format: 'date-time' });

export const SessionStateSchema = Type.Union(SESSION_STATES.map((s) => Type.Literal(s)));
export const ChannelSchema = Type.Union(CHANNELS.map((c) => Type.Literal(c)));

export const SessionSchema = Type.Object(
  {
    id: Uuid,
    customerId: Nullable(Uuid),
    channel: ChannelSchema,
    state: SessionStateSchema,
    subject: Nullable(Type.String()),
    assignedTo: Nullable(Type.String()),
    lastSeq: Type.Integer({ minimum: 0 }),
    createdAt: DateTime,
    updatedAt: DateTime,
    lastMessageAt: Nullable(DateTime),
    closedAt: Nullable(DateTime),
  },
  { title: 'Session' },
);

export const MessageSchema = Type.Object(
  {
    id: Uuid,
    sessionId: Uuid,
    seq: Type.Integer({ minimum: 1 }),
    role: Type.Union(['user', 'assistant', 'staff', 'system'].map((r) => Type.Literal(r))),
    body: Type.String(),
    author: Nullable(Type.String()),
    createdAt: DateTime,
  },
  { title: 'Message' },
);

const CreateSessionBody = Type.Object(
  {
    channel: Type.Optional(ChannelSchema),
    subject: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    /** staff: the customer the session is for; customers: omit (or their own id) */
    customerId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

const ListSessionsQuery = Type.Object(
  {
    ...PageQuery.properties,
    state: Type.Optional(SessionStateSchema),
    customerId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

const HistoryQuery = Type.Object(
  {
    ...PageQuery.properties,
    /** catch up: messages after this seq, oldest first (instead of the newest page) */
    afterSeq: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);

const MessageBody = Type.Object(
  { body: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_LENGTH }) },
  { additionalProperties: false },
);

const HandoverBody = Type.Object(
  { reason: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })) },
  { additionalProperties: false },
);

const ALL_ROLES = ['customer', 'staff', 'admin', 'owner'] as const;
const STAFF_ROLES = ['staff', 'admin', 'owner'] as const;

type SessionDto = Static<typeof SessionSchema>;
type MessageDto = Static<typeof MessageSchema>;

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export function toSessionDto(s: Session): SessionDto {
  return {
    id: s.id,
    customerId: s.customerId,
    channel: s.channel,
    state: s.state,
    subject: s.subject,
    assignedTo: s.assignedTo,
    lastSeq: s.lastSeq,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
    lastMessageAt: iso(s.lastMessageAt),
    closedAt: iso(s.closedAt),
  };
}

export function toMessageDto(m: Message): MessageDto {
  return {
    id: m.id,
    sessionId: m.sessionId,
    seq: m.seq,
    role: m.role,
    body: m.body,
    author: m.author,
    createdAt: m.createdAt.toISOString(),
  };
}

/** History cursors: `{b: seq}` pages back from the newest, `{a: seq}` pages forward. */
function encodeHistoryCursor(dir: 'a' | 'b', seq: number): string {
  return Buffer.from(JSON.stringify({ [dir]: seq }), 'utf8').toString('base64url');
}

function decodeHistoryCursor(cursor: string): { afterSeq: number } | { beforeSeq: number } {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { a?: unknown; b?: unknown };
    if (Number.isSafeInteger(v.a) && (v.a as number) >= 0) return { afterSeq: v.a as number };
    if (Number.isSafeInteger(v.b) && (v.b as number) >= 1) return { beforeSeq: v.b as number };
  } catch {
    // fall through
  }
  throw new ValidationError([
    { path: 'querystring.cursor', message: 'is not a cursor this endpoint issued' },
  ]);
}

function sessionEventData(s: Session): Record<string, unknown> {
  return {
    session_id: s.id,
    customer_id: s.customerId,
    channel: s.channel,
    state: s.state,
    assigned_to: s.assignedTo,
  };
}

async function emitSession(ctx: DomainContext, type: 'created' | 'updated', s: Session): Promise<void> {
  await enqueue(ctx.client, ctx.cipher, {
    type: `io.simptu.session.${type}`,
    source: API_EVENT_SOURCE,
    aggregateType: 'session',
    aggregateId: s.id,
    subject: s.id,
    data: sessionEventData(s),
  });
}

function messageEventData(ctx: DomainContext, s: Session, m: Message): Record<string, unknown> {
  return {
    session_id: s.id,
    message_id: m.id,
    seq: m.seq,
    role: m.role,
    customer_id: s.customerId,
    channel: s.channel,
    session_state: s.state,
    author: m.author,
    body_enc: ctx.cipher.encryptText(m.body, messageBodyLocation(m.id)),
  };
}

async function emitMessage(ctx: DomainContext, s: Session, m: Message, inbound: boolean): Promise<void> {
  const data = messageEventData(ctx, s, m);
  const common = { source: API_EVENT_SOURCE, aggregateType: 'session', aggregateId: s.id, subject: s.id };
  if (inbound)
    await enqueue(ctx.client, ctx.cipher, {
      ...common,
      type: 'io.simptu.message.received',
      topic: tenantTopics(ctx.cipher.tenant).inbound,
      data,
    });
  await enqueue(ctx.client, ctx.cipher, { ...common, type: 'io.simptu.message.created', data });
}

export default async function sessionsRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['sessions'];
  const anyone = { preHandler: [app.authenticate, app.requireRole(...ALL_ROLES)] };
  const staffOnly = { preHandler: [app.authenticate, app.requireRole(...STAFF_ROLES)] };

  app.post(
    '/sessions',
    {
      ...anyone,
      schema: {
        tags,
        summary: 'Start a chat session (customers for themselves; staff for a customer or anonymous)',
        body: CreateSessionBody,
        response: { 201: SessionSchema, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request, reply) => {
      const scope = customerScope(request);
      let customerId = request.body.customerId ?? null;
      if (scope.customerId !== undefined) {
        if (customerId !== null && customerId.toLowerCase() !== scope.customerId)
          throw new ForbiddenError('Customers can only start sessions for themselves');
        customerId = scope.customerId;
      }
      const session = await request.withTenant(async (ctx) => {
        const s = await createSession(ctx, {
          customerId,
          channel: request.body.channel ?? (isStaff(request) ? 'staff' : 'web'),
          subject: request.body.subject ?? null,
        });
        await emitSession(ctx, 'created', s);
        return s;
      });
      return reply.code(201).send(toSessionDto(session));
    },
  );

  app.get(
    '/sessions',
    {
      ...anyone,
      schema: {
        tags,
        summary: 'List sessions, newest first (customers: their own)',
        querystring: ListSessionsQuery,
        response: { 200: Paginated(SessionSchema), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const { limit, cursor, state, customerId } = request.query;
      const page = await request.withTenant((ctx) =>
        listSessions(
          ctx,
          {
            limit,
            ...(cursor ? { cursor } : {}),
            ...(state ? { state } : {}),
            ...(customerId ? { customerId } : {}),
          },
          customerScope(request),
        ),
      );
      return { items: page.items.map(toSessionDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/sessions/:id',
    {
      ...anyone,
      schema: {
        tags,
        summary: 'One session',
        params: IdParams,
        response: { 200: SessionSchema, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const s = await request.withTenant((ctx) => getSession(ctx, request.params.id, customerScope(request)));
      return toSessionDto(s);
    },
  );

  // The history may be answered from this process's cache (history-cache.ts), validated by the
  // session's version, which `authenticateWithVersions` reads in the rate limiter's round trip.
  const history = {
    preHandler: [
      app.authenticateWithVersions((request) => [
        sessionVersionKey(request.auth.tenant, (request.params as { id: string }).id),
      ]),
      app.requireRole(...ALL_ROLES),
    ],
  };

  app.get(
    '/sessions/:id/messages',
    {
      ...history,
      schema: {
        tags,
        summary: 'History, decrypted, in ascending seq order',
        description:
          'Without cursor: the newest `limit` messages; `nextCursor` pages further back. ' +
          'With `afterSeq`: messages after that seq (catching up); `nextCursor` pages forward.',
        params: IdParams,
        querystring: HistoryQuery,
        response: { 200: Paginated(MessageSchema), ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request, reply) => {
      const { limit, cursor, afterSeq } = request.query;
      if (cursor !== undefined && afterSeq !== undefined)
        throw new ValidationError([
          { path: 'querystring.afterSeq', message: 'give cursor or afterSeq, not both' },
        ]);
      const position =
        cursor !== undefined ? decodeHistoryCursor(cursor) : afterSeq !== undefined ? { afterSeq } : {};
      const scope = customerScope(request);
      const id = request.params.id;
      const toBody = (page: MessagePage) => {
        const forward = 'afterSeq' in position;
        return {
          items: page.messages.map(toMessageDto),
          nextCursor:
            page.nextCursor === null ? null : encodeHistoryCursor(forward ? 'a' : 'b', page.nextCursor),
        };
      };
      const version = request.versions?.[0];
      const cache = app.historyCache;
      if (version === undefined || !cache.enabled) {
        // Redis could not be asked (or the cache is off): the database, the scope in the query.
        app.countHistory('bypass');
        return toBody(
          await request.withTenant((ctx) => listMessages(ctx, id, { limit, ...position }, scope)),
        );
      }
      const key = historyCacheKey(
        request.tenant.name,
        id,
        clampLimit(limit),
        'afterSeq' in position
          ? `a${position.afterSeq}`
          : 'beforeSeq' in position
            ? `b${position.beforeSeq}`
            : '',
      );
      let page: CachedPage | null | undefined = cache.get(key, version);
      app.countHistory(page ? 'hit' : 'miss');
      // A miss reads the page as staff would (any owner) and keeps the owner with it, so the
      // same entry serves the session's customer and the tenant's staff; the scope is checked
      // below, on hits and misses alike.
      page ??= await cache.load(key, version, async () => {
        try {
          const p = await request.withTenant((ctx) => listMessages(ctx, id, { limit, ...position }));
          return { owner: p.customerId, body: Buffer.from(reply.serialize(toBody(p)) as string, 'utf8') };
        } catch (err) {
          if (err instanceof NotFoundError) return null;
          throw err;
        }
      });
      if (page === null || (scope.customerId !== undefined && page.owner !== scope.customerId))
        throw notFound('session', id); // missing, or not the customer's: 404 either way
      // The serialized body as is (fastify sends a Buffer unchanged); typed as the schema's DTO.
      return reply.type('application/json; charset=utf-8').send(page.body as never);
    },
  );

  app.post(
    '/sessions/:id/messages',
    {
      preHandler: [app.authenticate, app.requireRole('customer')],
      schema: {
        tags,
        summary: "Post the customer's message (stored encrypted; sent to the agent)",
        params: IdParams,
        body: MessageBody,
        response: { 201: MessageSchema, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request, reply) => {
      const scope = customerScope(request);
      const message = await request.withTenant(async (ctx) => {
        const m = await appendMessage(
          ctx,
          request.params.id,
          { role: 'user', body: request.body.body },
          scope,
        );
        const s = await getSession(ctx, request.params.id, scope);
        await emitMessage(ctx, s, m, true);
        return m;
      });
      return reply.code(201).send(toMessageDto(message));
    },
  );

  app.post(
    '/sessions/:id/close',
    {
      ...anyone,
      schema: {
        tags,
        summary: 'Close the session (final; closing a closed session is a no-op)',
        params: IdParams,
        response: { 200: SessionSchema, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request) => {
      const s = await request.withTenant((ctx) => transition(ctx, request, 'closed'));
      return toSessionDto(s);
    },
  );

  app.post(
    '/sessions/:id/handover',
    {
      ...anyone,
      schema: {
        tags,
        summary: 'Hand the session over to staff (bot → pending_human)',
        params: IdParams,
        body: Type.Optional(HandoverBody),
        response: { 200: SessionSchema, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request) => {
      const reason = request.body?.reason;
      const s = await request.withTenant(async (ctx) => {
        const before = await getSession(ctx, request.params.id, customerScope(request));
        const after = await transition(ctx, request, 'pending_human');
        if (reason && before.state !== after.state) {
          // The reason is free text (personal data): kept as an encrypted system message.
          const m = await appendMessage(ctx, after.id, {
            role: 'system',
            body: `Handover requested: ${reason}`,
          });
          await emitMessage(ctx, after, m, false);
          return getSession(ctx, after.id);
        }
        return after;
      });
      return toSessionDto(s);
    },
  );

  app.post(
    '/sessions/:id/staff-replies',
    {
      ...staffOnly,
      schema: {
        tags,
        summary: 'Reply as staff: takes the session over (→ human) and stores a staff message',
        params: IdParams,
        body: MessageBody,
        response: { 201: MessageSchema, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request, reply) => {
      const sub = request.auth.sub;
      const message = await request.withTenant(async (ctx) => {
        let s = await getSession(ctx, request.params.id);
        if (s.state === 'closed') throw new DomainErrors.SESSION_CLOSED({ details: { sessionId: s.id } });
        const from = s.state;
        // bot → pending_human → human: the state machine has no direct bot → human edge.
        if (s.state === 'bot') s = await setSessionState(ctx, s.id, 'pending_human');
        if (s.state === 'pending_human') s = await setSessionState(ctx, s.id, 'human', { assignedTo: sub });
        if (s.state !== from) await emitSession(ctx, 'updated', s);
        const m = await appendMessage(ctx, s.id, { role: 'staff', body: request.body.body, author: sub });
        await emitMessage(ctx, s, m, false);
        return m;
      });
      return reply.code(201).send(toMessageDto(message));
    },
  );
}

async function transition(
  ctx: DomainContext,
  request: FastifyRequest<{ Params: { id: string } }>,
  to: SessionState,
) {
  const scope = customerScope(request);
  const before = await getSession(ctx, request.params.id, scope);
  const s = await setSessionState(ctx, request.params.id, to, {}, scope);
  if (s.state !== before.state) await emitSession(ctx, 'updated', s);
  return s;
}
