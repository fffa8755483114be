/**
 * The socket side of the hub: Phoenix Channels V2 over `ws` (see `protocol.ts` and
 * /work/shared/PHOENIX-PROTOCOL.md), authentication at the upgrade, per-join authorization,
 * delivery from the `StreamBus`, client pushes, presence, back-pressure and drain.
 *
 * Concurrency model: one connection's frames are handled in order (a promise chain per
 * connection; heartbeats are answered at once); connections never wait for each other; a
 * delivery is a synchronous enqueue into the socket's `OutboundQueue`.
 * @see https://github.com/phoenixframework/phoenix/blob/main/lib/phoenix/socket.ex
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  DomainErrors,
  NotFoundError,
  SimptuError,
  UnauthorizedError,
  ValidationError,
  withTenant,
  type AccessTokenClaims,
  type AccessTokenVerifier,
  type FieldCipher,
  type Health,
  type Logger,
} from '@simptu/common';
import { decodeEntry, type EntryPayload } from './entry.ts';
import { parseSendPayload, sendMessage } from './inbound.ts';
import type { HubMetrics } from './metrics.ts';
import { OutboundQueue } from './outbound.ts';
import type { Presence, PresenceMeta } from './presence.ts';
import {
  CloseCodes,
  decodeFrame,
  PHOENIX_SUBPROTOCOL,
  PHOENIX_TOPIC,
  PHX,
  replyFrame,
  SOCKET_PATH,
  tokenFromProtocols,
  VSN,
  type Frame,
  type Payload,
  type Ref,
} from './protocol.ts';
import { originAllowed, type TenantInfo, type TenantPools, type TenantRegistry } from './registry.ts';
import type { BusMessage, StoredEntry, StreamBus } from './streams.ts';
import { decideJoin, isStaff, parseTopic, topicKey, tracksPresence, type ParsedTopic } from './topics.ts';

export interface HubLimits {
  maxFrameBytes: number;
  idleTimeoutMs: number;
  maxChannelsPerSocket: number;
  maxMalformedFrames: number;
  highWaterBytes: number;
  maxBufferedBytes: number;
}

export interface HubOptions {
  instanceId: string;
  limits: HubLimits;
  verifier: AccessTokenVerifier;
  registry: TenantRegistry;
  pools: TenantPools;
  ciphers: { cipher(tenant: string): Promise<FieldCipher> };
  bus: StreamBus;
  presence: Presence;
  metrics: HubMetrics;
  health: Health;
  logger: Logger;
}

interface Channel {
  topic: string;
  key: string;
  parsed: ParsedTopic;
  joinRef: Ref;
  epoch: string;
  lastSeq: number;
  ready: boolean;
  pending: BusMessage[];
  presence?: PresenceMeta;
}

interface Connection {
  id: string;
  ws: WebSocket;
  claims: AccessTokenClaims;
  tenant: TenantInfo;
  channels: Map<string, Channel>;
  out: OutboundQueue;
  lastFrameAt: number;
  malformed: number;
  chain: Promise<void>;
  expiry: NodeJS.Timeout | undefined;
  closed: boolean;
}

/** A stored entry as its subscribers receive it (see `Hub.#outgoing`). */
interface Outgoing {
  topic: string;
  payload: Payload;
  /** the CloudEvent time, ms since the epoch (NaN when unparseable) */
  time: number;
  text(joinRef: Ref): string;
}

/**
 * A stored entry with what this instance made of it, set on its first delivery and shared by
 * every subscriber of that delivery. Memoized on the entry object itself, not in WeakMaps keyed
 * by it: a WeakMap entry per event (thousands a second, each dead within milliseconds) makes
 * V8's scavenges process ephemeron tables — in a micro-benchmark of that pattern a scavenge
 * took ~6 ms instead of ~0.4 ms (docs/benchmarks.md "Realtime").
 */
type MemoEntry = StoredEntry & { decoded?: EntryPayload | null; outgoing?: Outgoing };

/** setTimeout's maximum delay (2^31 − 1 ms); longer waits re-arm. */
const MAX_TIMER = 2_147_483_647;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  503: 'Service Unavailable',
};

export class Hub {
  readonly #o: HubOptions;
  readonly #wss: WebSocketServer;
  readonly #conns = new Set<Connection>();
  /** topic key → (connection, channel) pairs on this instance */
  readonly #subs = new Map<string, Map<Channel, Connection>>();
  readonly #ciphers = new Map<string, FieldCipher>();
  readonly #m: HubMetrics;
  readonly #log: Logger;
  #draining = false;
  readonly #idleTimer: NodeJS.Timeout;

  constructor(options: HubOptions) {
    this.#o = options;
    this.#m = options.metrics;
    this.#log = options.logger;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.limits.maxFrameBytes,
      perMessageDeflate: false,
      // With the `authToken` option the client offers ["phoenix", "base64url.bearer.phx.…"]:
      // a browser fails the handshake unless the server selects one of them.
      handleProtocols: (protocols) => (protocols.has(PHOENIX_SUBPROTOCOL) ? PHOENIX_SUBPROTOCOL : false),
    });
    const sweep = Math.min(5000, Math.max(250, Math.floor(options.limits.idleTimeoutMs / 4)));
    this.#idleTimer = setInterval(() => this.#sweepIdle(), sweep);
    this.#idleTimer.unref();
  }

  get connections(): number {
    return this.#conns.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  // ---------------------------------------------------------------- upgrade and auth

  /** node:http `upgrade` handler: authenticates before the WebSocket exists. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    void this.#upgrade(req, socket, head).catch((err) => {
      this.#log.error({ err }, 'realtime: upgrade failed');
      this.#refuse(socket, 503, 'unavailable');
    });
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.#draining) return this.#refuse(socket, 503, 'draining');
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== SOCKET_PATH) return this.#refuse(socket, 404, 'not_found');
    if (url.searchParams.get('vsn') !== VSN) return this.#refuse(socket, 400, 'unsupported_vsn');
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const token = url.searchParams.get('token') ?? tokenFromProtocols(offered);
    if (!token) return this.#refuse(socket, 401, 'missing_token');
    let claims: AccessTokenClaims;
    try {
      claims = await this.#o.verifier.verify(token);
    } catch (err) {
      if (err instanceof UnauthorizedError) return this.#refuse(socket, 401, err.reason);
      this.#log.warn({ err }, 'realtime: token verification unavailable');
      return this.#refuse(socket, 503, 'auth_unavailable');
    }
    if (claims.expiresAt * 1000 <= Date.now()) return this.#refuse(socket, 401, 'token_expired');
    const tenant = await this.#o.registry.get(claims.tenant);
    if (!tenant) return this.#refuse(socket, 403, 'unknown_tenant');
    if (!originAllowed(req.headers.origin, tenant.origins))
      return this.#refuse(socket, 403, 'origin_not_allowed');
    // The tenant's key, now: deliveries decrypt synchronously from this cache.
    this.#ciphers.set(tenant.name, await this.#o.ciphers.cipher(tenant.name));
    if (this.#draining || socket.destroyed) return this.#refuse(socket, 503, 'draining');
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, claims, tenant));
  }

  #refuse(socket: Duplex, status: number, reason: string): void {
    this.#m.connects.inc({ result: reason });
    if (socket.destroyed) return;
    const body = JSON.stringify({
      error: { code: `SIMPTU_ERR_WS_${status}`, message: reason, details: { reason } },
    });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  #accept(ws: WebSocket, claims: AccessTokenClaims, tenant: TenantInfo): void {
    const conn: Connection = {
      id: randomUUID(),
      ws,
      claims,
      tenant,
      channels: new Map(),
      out: undefined as unknown as OutboundQueue,
      lastFrameAt: Date.now(),
      malformed: 0,
      chain: Promise.resolve(),
      expiry: undefined,
      closed: false,
    };
    conn.out = new OutboundQueue(ws, {
      highWaterBytes: this.#o.limits.highWaterBytes,
      maxBytes: this.#o.limits.maxBufferedBytes,
      onCoalesced: (n) => this.#m.coalesced.inc(n),
      onSent: () => this.#m.messagesOut.inc(),
      onOverflow: () => {
        this.#m.slowDisconnects.inc();
        this.#log.info({ conn: conn.id }, 'realtime: slow client disconnected');
        this.#close(conn, CloseCodes.slowClient, 'slow client');
        setTimeout(() => ws.terminate(), 1000).unref();
      },
    });
    this.#conns.add(conn);
    this.#m.connects.inc({ result: 'accepted' });
    this.#m.connections.set(this.#conns.size);
    ws.on('message', (data, isBinary) => this.#onMessage(conn, data as Buffer, isBinary));
    ws.on('close', () => void this.#cleanup(conn));
    ws.on('error', (err) => this.#log.debug({ err, conn: conn.id }, 'realtime: socket error'));
    this.#armExpiry(conn);
  }

  /** Closes the socket when the token expires (the client reconnects with a fresh one). */
  #armExpiry(conn: Connection): void {
    const ms = conn.claims.expiresAt * 1000 - Date.now();
    if (ms <= 0) return this.#close(conn, CloseCodes.tokenExpired, 'token expired');
    conn.expiry = setTimeout(() => this.#armExpiry(conn), Math.min(ms, MAX_TIMER));
    conn.expiry.unref();
  }

  #close(conn: Connection, code: number, reason: string): void {
    if (conn.ws.readyState === conn.ws.OPEN || conn.ws.readyState === conn.ws.CONNECTING)
      conn.ws.close(code, reason);
  }

  #sweepIdle(): void {
    const limit = Date.now() - this.#o.limits.idleTimeoutMs;
    for (const c of this.#conns) if (c.lastFrameAt < limit) this.#close(c, CloseCodes.idle, 'idle timeout');
  }

  async #cleanup(conn: Connection): Promise<void> {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.expiry);
    conn.out.close();
    this.#conns.delete(conn);
    this.#m.connections.set(this.#conns.size);
    await Promise.all([...conn.channels.values()].map((ch) => this.#removeChannel(conn, ch)));
  }

  // ---------------------------------------------------------------- inbound frames

  #send(conn: Connection, f: Frame): void {
    if (!conn.closed) conn.out.push(f);
  }

  #reply(
    conn: Connection,
    f: Pick<Frame, 'joinRef' | 'ref' | 'topic'>,
    status: 'ok' | 'error',
    response: Payload = {},
  ) {
    this.#send(conn, replyFrame(f.joinRef, f.ref, f.topic, status, response));
  }

  #onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    conn.lastFrameAt = Date.now();
    if (this.#draining) return;
    if (isBinary) return this.#malformed(conn, 'binary_not_supported');
    const d = decodeFrame(data.toString('utf8'), this.#o.limits.maxFrameBytes);
    if (!d.ok) return this.#malformed(conn, d.reason, d.frame);
    const f = d.frame;
    if (f.topic === PHOENIX_TOPIC) {
      this.#m.framesIn.inc({ result: 'heartbeat' });
      if (f.event === PHX.heartbeat) return this.#reply(conn, f, 'ok');
      return this.#reply(conn, f, 'error', { reason: 'unknown event' });
    }
    this.#m.framesIn.inc({ result: 'ok' });
    conn.chain = conn.chain
      .then(() => this.#handle(conn, f))
      .catch((err) => {
        this.#log.error({ err, conn: conn.id, event: f.event }, 'realtime: frame handling failed');
        this.#reply(conn, f, 'error', { reason: 'internal error' });
      });
  }

  #malformed(conn: Connection, reason: string, partial?: Partial<Frame>): void {
    this.#m.framesIn.inc({ result: 'malformed' });
    conn.malformed++;
    if (conn.malformed > this.#o.limits.maxMalformedFrames) {
      this.#close(conn, CloseCodes.protocolError, 'too many malformed frames');
      return;
    }
    if (partial?.topic !== undefined && partial.ref !== undefined && partial.ref !== null)
      this.#reply(
        conn,
        { joinRef: partial.joinRef ?? null, ref: partial.ref, topic: partial.topic },
        'error',
        {
          reason: 'malformed frame',
          detail: reason,
        },
      );
  }

  async #handle(conn: Connection, f: Frame): Promise<void> {
    if (conn.closed) return;
    if (f.event === PHX.join) return this.#join(conn, f);
    const ch = conn.channels.get(f.topic);
    if (f.event === PHX.leave) {
      this.#reply(conn, f, 'ok');
      if (ch) {
        this.#send(conn, {
          joinRef: ch.joinRef,
          ref: ch.joinRef,
          topic: ch.topic,
          event: PHX.close,
          payload: {},
        });
        await this.#removeChannel(conn, ch);
      }
      return;
    }
    if (!ch || (f.joinRef !== null && f.joinRef !== ch.joinRef))
      return this.#reply(conn, f, 'error', { reason: 'unmatched topic' });
    if (ch.parsed.kind !== 'session') return this.#reply(conn, f, 'error', { reason: 'unknown event' });
    switch (f.event) {
      case 'message:send':
        return this.#messageSend(conn, ch, f);
      case 'typing': {
        if (typeof f.payload.typing !== 'boolean')
          return this.#reply(conn, f, 'error', { reason: 'invalid', detail: 'typing must be a boolean' });
        await this.#o.bus.broadcast(
          ch.key,
          'typing',
          { user_id: conn.claims.sub, staff: isStaff(conn.claims), typing: f.payload.typing },
          conn.id,
        );
        return this.#reply(conn, f, 'ok');
      }
      case 'read': {
        const seq = f.payload.seq;
        if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)
          return this.#reply(conn, f, 'error', { reason: 'invalid', detail: 'seq must be an integer ≥ 0' });
        await this.#o.bus.broadcast(ch.key, 'read', { user_id: conn.claims.sub, seq }, conn.id);
        return this.#reply(conn, f, 'ok');
      }
      default:
        return this.#reply(conn, f, 'error', { reason: 'unknown event' });
    }
  }

  // ---------------------------------------------------------------- joins

  async #join(conn: Connection, f: Frame): Promise<void> {
    const parsed = parseTopic(f.topic);
    const kind = parsed?.kind ?? 'unmatched';
    const refuse = (reason: string, result = reason) => {
      this.#m.joins.inc({ kind, result });
      this.#reply(conn, f, 'error', { reason });
    };
    if (!parsed) return refuse('unmatched topic', 'unmatched');
    const existing = conn.channels.get(f.topic);
    if (existing) {
      // Duplicate join (e.g. the client rejoins after an error we didn't see): close the old one.
      this.#send(conn, {
        joinRef: existing.joinRef,
        ref: existing.joinRef,
        topic: existing.topic,
        event: PHX.close,
        payload: {},
      });
      await this.#removeChannel(conn, existing);
    } else if (conn.channels.size >= this.#o.limits.maxChannelsPerSocket) {
      return refuse('too many channels', 'limit');
    }
    const since = recoveryParams(f.payload);
    if (since === 'invalid') return refuse('invalid recovery params', 'invalid');

    const decision = decideJoin(parsed, conn.claims);
    if ('allow' in decision && !decision.allow) return refuse('unauthorized');
    if ('check' in decision) {
      let owner: { found: boolean; customerId: string | null };
      try {
        owner = await withTenant(this.#o.pools.for(conn.tenant), conn.tenant.ref, async (c) => {
          const r = await c.query<{ customer_id: string | null }>(
            'SELECT customer_id FROM sessions WHERE id = $1',
            [decision.id],
          );
          return { found: r.rows.length > 0, customerId: r.rows[0]?.customer_id ?? null };
        });
      } catch (err) {
        this.#log.error({ err }, 'realtime: session lookup failed');
        return refuse('unavailable');
      }
      // Missing and not-yours look the same: a client can't probe for other sessions.
      if (!owner.found || (!decision.staff && owner.customerId !== conn.claims.sub))
        return refuse('unauthorized');
    }
    if (conn.closed) return;

    const ch: Channel = {
      topic: f.topic,
      key: topicKey(conn.tenant.name, f.topic),
      parsed,
      joinRef: f.joinRef ?? f.ref,
      epoch: '',
      lastSeq: 0,
      ready: false,
      pending: [],
    };
    conn.channels.set(ch.topic, ch);
    let subs = this.#subs.get(ch.key);
    if (!subs) this.#subs.set(ch.key, (subs = new Map()));
    subs.set(ch, conn);
    // Subscribe BEFORE reading the position/history: nothing published in between is missed
    // (live messages wait in `pending` and are de-duplicated by seq).
    await this.#o.bus.subscribe(ch.key);
    const rec = await this.#o.bus.recover(ch.key, since);
    if (conn.closed || conn.channels.get(ch.topic) !== ch) return;
    ch.epoch = rec.epoch;
    this.#m.joins.inc({ kind, result: 'ok' });
    this.#reply(conn, f, 'ok', {
      epoch: rec.epoch,
      seq: rec.seq,
      ...(since ? { recovered: rec.recovered } : {}),
    });
    if (rec.recovered) {
      ch.lastSeq = since ? since.lastSeq : rec.seq;
      for (const e of rec.entries) this.#deliverStored(conn, ch, rec.epoch, e);
    } else ch.lastSeq = rec.seq;
    ch.ready = true;
    const pending = ch.pending;
    ch.pending = [];
    for (const m of pending) this.#deliver(conn, ch, m);

    if (tracksPresence(parsed)) {
      const meta: PresenceMeta = {
        phx_ref: randomUUID(),
        role: isStaff(conn.claims) ? 'staff' : 'customer',
        online_at: Math.floor(Date.now() / 1000),
      };
      ch.presence = meta;
      await this.#o.presence.track(ch.key, conn.claims.sub, meta);
      const state = await this.#o.presence.list(ch.key);
      if (conn.channels.get(ch.topic) === ch)
        this.#send(conn, {
          joinRef: ch.joinRef,
          ref: null,
          topic: ch.topic,
          event: 'presence_state',
          payload: state,
        });
    }
  }

  async #removeChannel(conn: Connection, ch: Channel): Promise<void> {
    if (conn.channels.get(ch.topic) === ch) conn.channels.delete(ch.topic);
    const subs = this.#subs.get(ch.key);
    if (subs?.delete(ch)) {
      if (subs.size === 0) this.#subs.delete(ch.key);
      await this.#o.bus.unsubscribe(ch.key);
    }
    if (ch.presence) {
      const meta = ch.presence;
      ch.presence = undefined;
      await this.#o.presence.untrack(ch.key, conn.claims.sub, meta).catch((err) => {
        this.#log.warn({ err }, 'realtime: presence untrack failed');
      });
    }
  }

  /** Server-side channel failure: the client rejoins (with its last seq, and recovers). */
  #channelError(conn: Connection, ch: Channel): void {
    this.#send(conn, {
      joinRef: ch.joinRef,
      ref: ch.joinRef,
      topic: ch.topic,
      event: PHX.error,
      payload: {},
    });
    void this.#removeChannel(conn, ch);
  }

  // ---------------------------------------------------------------- delivery

  /** Everything published on a topic key this instance subscribes to. Synchronous. */
  onBusMessage(m: BusMessage): void {
    const subs = this.#subs.get(m.key);
    if (!subs) return;
    // Stages of what this instance's ingest stored (docs/realtime.md "Metrics").
    const receivedAt = m.kind === 'stored' ? m.entry.receivedAt : undefined;
    const t0 = receivedAt === undefined ? 0 : performance.now();
    if (receivedAt !== undefined) this.#m.stages.store.observe((t0 - receivedAt) / 1000);
    for (const [ch, conn] of subs) {
      if (!ch.ready) ch.pending.push(m);
      else this.#deliver(conn, ch, m);
    }
    if (receivedAt !== undefined) this.#m.stages.fanout.observe((performance.now() - t0) / 1000);
  }

  #deliver(conn: Connection, ch: Channel, m: BusMessage): void {
    if (m.kind === 'ephemeral') {
      if (m.exclude === conn.id) return;
      this.#send(conn, {
        joinRef: ch.joinRef,
        ref: null,
        topic: ch.topic,
        event: m.event,
        payload: m.payload,
      });
      return;
    }
    this.#deliverStored(conn, ch, m.epoch, m.entry);
  }

  #deliverStored(conn: Connection, ch: Channel, epoch: string, e: StoredEntry): void {
    if (e.seq <= ch.lastSeq && epoch === ch.epoch) return; // already delivered (recovery overlap)
    if (epoch !== ch.epoch || e.seq !== ch.lastSeq + 1) {
      // A publish this instance missed (Redis reconnect) or a reset stream.
      this.#m.gaps.inc();
      return this.#channelError(conn, ch);
    }
    const payload = this.#decode(conn.tenant.name, ch.key, e);
    ch.lastSeq = e.seq;
    if (!payload) return;
    const out = this.#outgoing(ch.topic, e, payload);
    if (!Number.isNaN(out.time)) this.#m.latency.observe(Math.max(0, (Date.now() - out.time) / 1000));
    if (conn.closed) return;
    const frame: Frame = {
      joinRef: ch.joinRef,
      ref: null,
      topic: ch.topic,
      event: payload.event,
      payload: out.payload,
    };
    conn.out.push(frame, out.text(ch.joinRef));
  }

  /**
   * What every subscriber of an entry gets, built once per entry (memoized on the entry object
   * like the decryption): the payload object and the frame text, which differs between sockets
   * only by the join ref (a small counter, so a handful of variants). Encoding a frame per
   * socket cost ~15% of the fan-out's send loop (bench/realtime).
   */
  #outgoing(topic: string, e: MemoEntry, p: EntryPayload): Outgoing {
    const hit = e.outgoing;
    if (hit && hit.topic === topic) return hit;
    const payload = { ...p.data, stream_seq: e.seq, event_id: p.id };
    // `[join_ref, null, topic, event, payload]` — the same text as encodeFrame.
    const tail = `,null,${JSON.stringify(topic)},${JSON.stringify(p.event)},${JSON.stringify(payload)}]`;
    // usually one join ref for all of an entry's subscribers: a Map only for the others
    let firstRef: Ref | undefined;
    let firstText = '';
    let others: Map<Ref, string> | undefined;
    const out: Outgoing = {
      topic,
      payload,
      time: Date.parse(p.time),
      text(joinRef) {
        if (firstRef === undefined) {
          firstRef = joinRef;
          return (firstText = `[${JSON.stringify(joinRef)}${tail}`);
        }
        if (joinRef === firstRef) return firstText;
        others ??= new Map();
        let t = others.get(joinRef);
        if (t === undefined) others.set(joinRef, (t = `[${JSON.stringify(joinRef)}${tail}`));
        return t;
      },
    };
    e.outgoing = out;
    return out;
  }

  /** Decrypts an entry (memoized per entry object: one decryption per instance, not per socket). */
  #decode(tenant: string, key: string, e: MemoEntry): EntryPayload | undefined {
    const hit = e.decoded;
    if (hit !== undefined) return hit ?? undefined;
    // Encrypted by this instance's ingest a moment ago: the plaintext came along (StreamBus).
    if (e.plain !== undefined) {
      const p = e.plain as EntryPayload;
      e.decoded = p;
      return p;
    }
    const cipher = this.#ciphers.get(tenant);
    let p: EntryPayload | null = null;
    try {
      if (cipher) p = decodeEntry(cipher, key, e.eventId, e.data);
    } catch (err) {
      this.#log.error({ err, key }, 'realtime: stream entry does not decrypt');
    }
    if (!p) this.#m.eventsDropped.inc({ reason: 'undecryptable' });
    e.decoded = p;
    return p ?? undefined;
  }

  // ---------------------------------------------------------------- client pushes

  async #messageSend(conn: Connection, ch: Channel, f: Frame): Promise<void> {
    if (ch.parsed.kind !== 'session') return;
    const parsed = parseSendPayload(f.payload, `conn:${conn.id}:${f.ref ?? ''}`);
    if (!parsed.ok) {
      this.#m.messagesSent.inc({ result: 'invalid' });
      return this.#reply(conn, f, 'error', { reason: 'invalid', detail: parsed.detail });
    }
    try {
      const cipher = await this.#o.ciphers.cipher(conn.tenant.name);
      const r = await sendMessage(
        this.#o.pools.for(conn.tenant),
        conn.tenant,
        cipher,
        conn.claims,
        ch.parsed.id,
        parsed.input,
      );
      if (!r.ok) {
        this.#m.messagesSent.inc({ result: r.reason });
        return this.#reply(conn, f, 'error', { reason: r.reason });
      }
      this.#m.messagesSent.inc({ result: r.result.duplicate ? 'duplicate' : 'ok' });
      this.#reply(conn, f, 'ok', { ...r.result });
    } catch (err) {
      const reason =
        err instanceof NotFoundError
          ? 'not_found'
          : err instanceof ValidationError
            ? 'invalid'
            : err instanceof SimptuError && err.code === DomainErrors.SESSION_CLOSED.code
              ? 'session_closed'
              : undefined;
      this.#m.messagesSent.inc({ result: reason ?? 'error' });
      if (!reason) this.#log.error({ err }, 'realtime: message:send failed');
      this.#reply(conn, f, 'error', { reason: reason ?? 'unavailable' });
    }
  }

  // ---------------------------------------------------------------- drain

  /**
   * Graceful drain: refuse new upgrades, let each connection's in-flight work finish (a
   * `message:send` still replies), then close with 1012 so clients reconnect (to another
   * instance behind the load balancer). Sockets still open after `timeoutMs` are terminated.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.#draining = true;
    this.#o.health.drain();
    const conns = [...this.#conns];
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      conns.map(async (c) => {
        await Promise.race([c.chain, sleep(Math.max(0, deadline - Date.now()))]);
        this.#close(c, CloseCodes.serviceRestart, 'server restarting');
      }),
    );
    while (this.#conns.size > 0 && Date.now() < deadline) await sleep(20);
    for (const c of this.#conns) c.ws.terminate();
    await Promise.all(conns.map((c) => this.#cleanup(c)));
  }

  /** Abrupt stop (tests of a crashed instance): sockets dropped, nothing announced. */
  kill(): void {
    this.#draining = true;
    for (const c of this.#conns) {
      c.closed = true;
      clearTimeout(c.expiry);
      c.out.close();
      c.ws.terminate();
    }
    this.#conns.clear();
    this.#subs.clear();
  }

  close(): void {
    clearInterval(this.#idleTimer);
    this.#wss.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `{last_seq, epoch}` from join params: undefined (not asked), the values, or 'invalid'. */
export function recoveryParams(p: Payload): { lastSeq: number; epoch: string } | undefined | 'invalid' {
  if (p.last_seq === undefined && p.epoch === undefined) return undefined;
  if (typeof p.last_seq !== 'number' || !Number.isSafeInteger(p.last_seq) || p.last_seq < 0) return 'invalid';
  if (typeof p.epoch !== 'string' || p.epoch.length === 0 || p.epoch.length > 64) return 'invalid';
  return { lastSeq: p.last_seq, epoch: p.epoch };
}
