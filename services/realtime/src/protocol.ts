/**
 * Phoenix Channels V2 JSON wire format, as the official `phoenix` client's serializer
 * (`assets/js/phoenix/serializer.js`) and the Elixir `Phoenix.Socket.V2.JSONSerializer` speak it:
 * every text frame is `[join_ref, ref, topic, event, payload]`. Pure functions; decoding returns
 * a typed result and never throws, so one bad frame can't take the connection loop down.
 * @see https://github.com/phoenixframework/phoenix/blob/main/lib/phoenix/socket/serializers/v2_json_serializer.ex
 * @see https://github.com/phoenixframework/phoenix/blob/main/assets/js/phoenix/serializer.js
 */

export const VSN = '2.0.0';
export const SOCKET_PATH = '/socket/websocket';
/** Sec-WebSocket-Protocol entry carrying the token (`socket.js` `AUTH_TOKEN_PREFIX`). */
export const AUTH_TOKEN_PREFIX = 'base64url.bearer.phx.';
export const PHOENIX_SUBPROTOCOL = 'phoenix';

export const PHX = {
  join: 'phx_join',
  leave: 'phx_leave',
  reply: 'phx_reply',
  close: 'phx_close',
  error: 'phx_error',
  heartbeat: 'heartbeat',
} as const;

/** The socket-level topic of heartbeats. */
export const PHOENIX_TOPIC = 'phoenix';

export type Ref = string | null;
export type Payload = Record<string, unknown>;

export interface Frame {
  joinRef: Ref;
  ref: Ref;
  topic: string;
  event: string;
  payload: Payload;
}

/** Close codes. 1012 (service restart) makes clients reconnect elsewhere; 4xxx are ours. */
export const CloseCodes = {
  /** RFC 6455 §7.4.1: payload too big */
  messageTooBig: 1009,
  /** draining: reconnect (to another instance) */
  serviceRestart: 1012,
  /** private: token expired (reconnect with a fresh token) */
  tokenExpired: 4001,
  /** private: frames that are not protocol (after too many of them) */
  protocolError: 4002,
  /** private: idle for too long without any frame */
  idle: 4003,
  /** private: the client does not read fast enough */
  slowClient: 4004,
} as const;

export type DecodeFailure =
  | 'not_text'
  | 'too_large'
  | 'not_json'
  | 'not_array'
  | 'bad_arity'
  | 'bad_join_ref'
  | 'bad_ref'
  | 'bad_topic'
  | 'bad_event'
  | 'bad_payload';

export type DecodeResult =
  { ok: true; frame: Frame } | { ok: false; reason: DecodeFailure; frame?: Partial<Frame> };

const MAX_FIELD = 255; // the binary format's one-byte lengths; a sane bound for JSON too

function isRef(v: unknown): v is Ref {
  return v === null || (typeof v === 'string' && v.length <= MAX_FIELD);
}

/**
 * Decodes one text frame. On failure, whatever could be read of the envelope (ref, topic) is
 * returned so the caller can still send an error reply to the right push.
 */
export function decodeFrame(data: string, maxBytes: number): DecodeResult {
  if (Buffer.byteLength(data, 'utf8') > maxBytes) return { ok: false, reason: 'too_large' };
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    return { ok: false, reason: 'not_json' };
  }
  if (!Array.isArray(raw)) return { ok: false, reason: 'not_array' };
  if (raw.length !== 5) return { ok: false, reason: 'bad_arity' };
  const [joinRef, ref, topic, event, payload] = raw as unknown[];
  const partial: Partial<Frame> = {};
  if (isRef(ref)) partial.ref = ref;
  if (isRef(joinRef)) partial.joinRef = joinRef;
  if (typeof topic === 'string' && topic.length > 0 && topic.length <= MAX_FIELD) partial.topic = topic;
  if (!isRef(joinRef)) return { ok: false, reason: 'bad_join_ref', frame: partial };
  if (!isRef(ref)) return { ok: false, reason: 'bad_ref', frame: partial };
  if (partial.topic === undefined) return { ok: false, reason: 'bad_topic', frame: partial };
  if (typeof event !== 'string' || event.length === 0 || event.length > MAX_FIELD)
    return { ok: false, reason: 'bad_event', frame: partial };
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    return { ok: false, reason: 'bad_payload', frame: partial };
  return { ok: true, frame: { joinRef, ref, topic: partial.topic, event, payload: payload as Payload } };
}

export function encodeFrame(f: Frame): string {
  return JSON.stringify([f.joinRef, f.ref, f.topic, f.event, f.payload]);
}

export function replyFrame(
  joinRef: Ref,
  ref: Ref,
  topic: string,
  status: 'ok' | 'error',
  response: Payload = {},
): Frame {
  return { joinRef, ref, topic, event: PHX.reply, payload: { status, response } };
}

/**
 * The token of an `authToken` subprotocol entry. The client encodes with `btoa` and strips the
 * padding (standard alphabet, despite the `base64url` name), so both alphabets are accepted.
 */
export function tokenFromProtocols(protocols: Iterable<string>): string | undefined {
  for (const p of protocols) {
    if (!p.startsWith(AUTH_TOKEN_PREFIX)) continue;
    const enc = p.slice(AUTH_TOKEN_PREFIX.length);
    if (!/^[A-Za-z0-9+/_-]+$/.test(enc)) return '';
    return Buffer.from(enc, 'base64').toString('utf8');
  }
  return undefined;
}
