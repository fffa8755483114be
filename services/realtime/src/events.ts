/**
 * From CloudEvents on a tenant's `agent` and `domain` topics to channel pushes (DESIGN §7).
 * `io.simptu.<area>.<event>` becomes the channel event `<area>.<event>`; the event's `data`
 * is validated against the shape below (TypeBox; extra fields are allowed so producers can
 * add some without breaking the hub) and routed:
 * - anything with a `session_id` → `session:<id>`;
 * - what staff must see (new sessions, state changes, handoffs, bookings) → `staff:lobby`;
 * - what concerns a customer (their bookings, sessions, messages) → `user:<customer id>`.
 * Pure: no I/O. Unknown types and invalid payloads are reported, never thrown.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { CloudEvent } from '@simptu/common';

const Uuid = Type.String({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
});
const Id = Type.String({ minLength: 1, maxLength: 255 });
const OptId = Type.Optional(Type.Union([Id, Type.Null()]));
const Body = Type.Optional(Type.String({ maxLength: 64_000 }));
/** a message body encrypted with the tenant's DEK, bound to `messages.body` of `message_id` */
const BodyEnc = Type.Optional(Type.String({ minLength: 1, maxLength: 100_000 }));
/**
 * What the agent streams (docs/agent.md): the text or JSON encrypted with the tenant's DEK,
 * bound to the event id (`streamLocation`); `{text}` for tokens, `{args}` / `{result}` for tools.
 */
const PayloadEnc = Type.Optional(Type.String({ minLength: 1, maxLength: 100_000 }));

const SessionScoped = { session_id: Uuid };

export const EventSchemas = {
  // `delta` in clear, or `payload_enc` as the agent sends it (one of them, see STREAMED)
  'agent.token': Type.Object({
    ...SessionScoped,
    delta: Type.Optional(Type.String({ maxLength: 16_000 })),
    payload_enc: PayloadEnc,
    seq: Type.Integer({ minimum: 0 }),
    message_id: Type.Optional(Id),
    run_id: Type.Optional(Id),
  }),
  // `call_id`, or `tool_call_id` as the agent names it
  'agent.tool_call': Type.Object({
    ...SessionScoped,
    call_id: Type.Optional(Id),
    tool_call_id: Type.Optional(Id),
    name: Id,
    args: Type.Optional(Type.Unknown()),
    payload_enc: PayloadEnc,
    run_id: Type.Optional(Id),
  }),
  'agent.tool_result': Type.Object({
    ...SessionScoped,
    call_id: Type.Optional(Id),
    tool_call_id: Type.Optional(Id),
    name: Type.Optional(Id),
    ok: Type.Optional(Type.Boolean()),
    result: Type.Optional(Type.Unknown()),
    payload_enc: PayloadEnc,
    run_id: Type.Optional(Id),
  }),
  'agent.message': Type.Object({
    ...SessionScoped,
    message_id: Id,
    seq: Type.Optional(Type.Integer({ minimum: 1 })),
    body: Body,
    body_enc: BodyEnc,
  }),
  'agent.handoff': Type.Object({
    ...SessionScoped,
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
    customer_id: OptId,
  }),
  'message.created': Type.Object({
    ...SessionScoped,
    message_id: Id,
    seq: Type.Integer({ minimum: 1 }),
    role: Type.Union(['user', 'assistant', 'staff', 'system'].map((r) => Type.Literal(r))),
    body: Body,
    body_enc: BodyEnc,
    author: OptId,
    customer_id: OptId,
  }),
  'session.created': Type.Object({
    ...SessionScoped,
    customer_id: OptId,
    channel: Type.Optional(Id),
    state: Type.Optional(Id),
  }),
  'session.updated': Type.Object({
    ...SessionScoped,
    state: Type.Optional(Id),
    customer_id: OptId,
    assigned_to: OptId,
  }),
  'booking.created': bookingSchema(),
  'booking.updated': bookingSchema(),
  'booking.cancelled': bookingSchema(),
} satisfies Record<string, TSchema>;

function bookingSchema() {
  return Type.Object({
    booking_id: Id,
    customer_id: OptId,
    session_id: Type.Optional(Type.Union([Uuid, Type.Null()])),
    status: Type.Optional(Id),
    starts_at: Type.Optional(Type.String()),
    ends_at: Type.Optional(Type.String()),
    service_id: OptId,
    resource_id: OptId,
  });
}

export type ChannelEvent = keyof typeof EventSchemas;
export const CHANNEL_EVENTS = Object.keys(EventSchemas) as ChannelEvent[];

/** Events staff see in `staff:lobby`. */
const LOBBY_EVENTS = new Set<string>([
  'session.created',
  'session.updated',
  'agent.handoff',
  'booking.created',
  'booking.updated',
  'booking.cancelled',
]);
/** Events a customer sees in `user:<customer id>` (when the event names the customer). */
const USER_EVENTS = new Set<string>([
  'session.created',
  'session.updated',
  'message.created',
  'booking.created',
  'booking.updated',
  'booking.cancelled',
]);

export type DropReason = 'unknown_type' | 'invalid_payload' | 'undecryptable';

export interface RoutedEvent {
  event: ChannelEvent;
  /** the validated data; `body_enc` still encrypted (the caller decrypts, see `decryptBody`) */
  data: Record<string, unknown>;
  /** topics (without tenant) to deliver to, in this order */
  topics: string[];
}

export type RouteResult =
  { ok: true; routed: RoutedEvent } | { ok: false; reason: DropReason; detail: string };

/** `io.simptu.agent.token` → `agent.token` */
export function channelEventName(type: string): string | undefined {
  const m = /^io\.simptu\.(.+)$/.exec(type);
  return m ? m[1] : undefined;
}

/**
 * The schemas compiled once each (TypeBox's TypeCompiler): `Value.Check` interprets the schema
 * on every call (1.6% of the hub's busy time at 4,000 events/s, docs/benchmarks.md "Realtime").
 */
const checkers = new Map<ChannelEvent, TypeCheck<TSchema>>();
function checkerOf(event: ChannelEvent): TypeCheck<TSchema> {
  let c = checkers.get(event);
  if (!c) checkers.set(event, (c = TypeCompiler.Compile(EventSchemas[event] as TSchema)));
  return c;
}

export function routeEvent(ce: Pick<CloudEvent, 'type' | 'data'>): RouteResult {
  const name = channelEventName(ce.type);
  if (name === undefined || !(name in EventSchemas))
    return { ok: false, reason: 'unknown_type', detail: `no channel event for ${ce.type}` };
  const event = name as ChannelEvent;
  const check = checkerOf(event);
  if (!check.Check(ce.data)) {
    const first = check.Errors(ce.data).First();
    return {
      ok: false,
      reason: 'invalid_payload',
      detail: first ? `${first.path || '/'}: ${first.message}` : 'invalid',
    };
  }
  const data = { ...(ce.data as Record<string, unknown>) };
  const missing = requiredOneOf(event, data);
  if (missing) return { ok: false, reason: 'invalid_payload', detail: missing };
  const topics = topicsOf(event, data);
  if (topics.length === 0) return { ok: false, reason: 'invalid_payload', detail: 'event concerns no topic' };
  return { ok: true, routed: { event, data, topics } };
}

/** The topics (without tenant) an event with this data goes to, in delivery order. */
export function topicsOf(event: string, data: Record<string, unknown>): string[] {
  const topics: string[] = [];
  const sessionId = typeof data.session_id === 'string' ? data.session_id.toLowerCase() : undefined;
  if (sessionId) topics.push(`session:${sessionId}`);
  if (LOBBY_EVENTS.has(event)) topics.push('staff:lobby');
  const customerId = typeof data.customer_id === 'string' ? data.customer_id : undefined;
  if (customerId && USER_EVENTS.has(event)) topics.push(`user:${customerId}`);
  return topics;
}

export type EventData<E extends ChannelEvent> = Static<(typeof EventSchemas)[E]>;

/** The agent's streamed events: which decrypted field `payload_enc` carries, and as what. */
const STREAMED: Partial<Record<ChannelEvent, { from: string; to: string }>> = {
  'agent.token': { from: 'text', to: 'delta' },
  'agent.tool_call': { from: 'args', to: 'args' },
  'agent.tool_result': { from: 'result', to: 'result' },
};

/**
 * Whether an event's data can be stored as it came (a "sealed" stream entry, see entry.ts): an
 * agent stream event whose content is all in `payload_enc` — ciphertext under the tenant's key,
 * bound to the event id — with none of it in clear (`delta` / `args` / `result`). What else it
 * carries (session, run, message and call ids, seq, tool name, ok) is in clear on Kafka too.
 */
export function isSealedStreamEvent(event: string, data: Record<string, unknown>): boolean {
  const streamed = STREAMED[event as ChannelEvent];
  return (
    streamed !== undefined &&
    typeof data.payload_enc === 'string' &&
    data.delta === undefined &&
    data.args === undefined &&
    data.result === undefined
  );
}

/** What a schema can't say: a token needs its text, a tool event its call id, either way. */
function requiredOneOf(event: ChannelEvent, data: Record<string, unknown>): string | undefined {
  if (event === 'agent.token' && data.delta === undefined && data.payload_enc === undefined)
    return '/: delta or payload_enc is required';
  if (
    (event === 'agent.tool_call' || event === 'agent.tool_result') &&
    data.call_id === undefined &&
    data.tool_call_id === undefined
  )
    return '/: call_id or tool_call_id is required';
  return undefined;
}

/** Where the agent binds a streamed payload's ciphertext: the event that carries it (docs/agent.md). */
export function streamLocation(eventId: string) {
  return { table: 'agent_stream', column: 'payload', rowId: eventId };
}

/**
 * The agent's stream events as clients get them (docs/realtime.md "Events"): `payload_enc`
 * decrypted into `delta` / `args` / `result`, `tool_call_id` named `call_id`. Other events, and
 * events that already carry those fields in clear, pass unchanged. Undefined when it doesn't
 * decrypt (or isn't the JSON object the agent writes).
 */
export function decryptStream(
  event: string,
  data: Record<string, unknown>,
  decrypt: (text: string) => string,
): Record<string, unknown> | undefined {
  const streamed = STREAMED[event as ChannelEvent];
  if (!streamed) return data;
  const { payload_enc, tool_call_id, ...rest } = data;
  const out: Record<string, unknown> = { ...rest };
  if (event !== 'agent.token' && out.call_id === undefined && tool_call_id !== undefined)
    out.call_id = tool_call_id;
  if (typeof payload_enc !== 'string') return out;
  try {
    const p = JSON.parse(decrypt(payload_enc)) as unknown;
    if (typeof p !== 'object' || p === null || Array.isArray(p)) return undefined;
    const v = (p as Record<string, unknown>)[streamed.from];
    if (event === 'agent.token') {
      if (typeof v !== 'string') return undefined;
      out.delta = v;
    } else if (v !== undefined) out[streamed.to] = v;
    return out;
  } catch {
    return undefined;
  }
}

/** The location a message body's ciphertext is bound to (same as `messages.body` in the domain). */
export function messageBodyLocation(messageId: string) {
  return { table: 'messages', column: 'body', rowId: messageId };
}

/**
 * Replaces `body_enc` by the decrypted `body` (the hub delivers plaintext only to sockets that
 * are authorized for the topic). Returns undefined when it doesn't decrypt.
 */
export function decryptBody(
  data: Record<string, unknown>,
  decrypt: (text: string, messageId: string) => string,
): Record<string, unknown> | undefined {
  if (typeof data.body_enc !== 'string') return data;
  const { body_enc, ...rest } = data;
  try {
    return { ...rest, body: decrypt(body_enc as string, String(rest.message_id)) };
  } catch {
    return undefined;
  }
}
