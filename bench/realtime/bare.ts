/**
 * The baseline (`node bench/realtime/bare.ts`, started by run.ts): a bare `ws` server doing the
 * same work as the hub for the benchmark's traffic and nothing more — the upgrade on
 * `/socket/websocket` with the token verified by the same verifier (`@simptu/common`, ES256 via
 * the issuer's JWKS), per-connection claims, Phoenix frames parsed, heartbeats and `phx_join`
 * answered (`user:<sub>` only for that sub, as the hub decides), a topic → sockets map, and a
 * broadcast that sends one precomputed text to every socket of a topic. No Redis, Kafka,
 * Postgres, metrics, back-pressure queue, recovery or presence.
 * @see https://github.com/websockets/ws#server-broadcast
 */
import type { Duplex } from 'node:stream';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createAccessTokenVerifier, type AccessTokenClaims } from '@simptu/common';
import { nofileLimits, now, serve } from './rpc.ts';

interface Conn {
  ws: WebSocket;
  claims: AccessTokenClaims;
  topics: Map<string, string>;
}

const cfg = JSON.parse(process.env.BENCH_BARE_CONFIG ?? '{}') as {
  issuer: string;
  audience: string;
  jwksUri: string;
  maxPayload: number;
};
const verifier = createAccessTokenVerifier({
  issuer: cfg.issuer,
  audience: [cfg.audience],
  jwksUri: cfg.jwksUri,
});
const conns = new Set<Conn>();
const subs = new Map<string, Set<Conn>>();
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: cfg.maxPayload });
const server = createServer((_req, res) => res.writeHead(404).end());

const refuse = (socket: Duplex, status: number) =>
  socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => undefined);
  const url = new URL(req.url ?? '/', 'http://localhost');
  const token = url.searchParams.get('token');
  if (url.pathname !== '/socket/websocket' || !token) return refuse(socket, 400);
  verifier.verify(token).then(
    (claims) => wss.handleUpgrade(req, socket, head, (ws) => accept(ws, claims)),
    () => refuse(socket, 401),
  );
});

/**
 * In its own function, as the hub's `#accept`: closures created inside the upgrade handler would
 * keep its whole scope (the request, the token) alive as long as the socket.
 */
function accept(ws: WebSocket, claims: AccessTokenClaims): void {
  const c: Conn = { ws, claims, topics: new Map() };
  conns.add(c);
  ws.on('message', (d) => onMessage(c, d as Buffer));
  ws.on('close', () => {
    conns.delete(c);
    for (const t of c.topics.keys()) subs.get(t)?.delete(c);
  });
  ws.on('error', () => undefined);
}

function onMessage(c: Conn, d: Buffer): void {
  let f: unknown[];
  try {
    f = JSON.parse(d.toString('utf8')) as unknown[];
  } catch {
    return;
  }
  if (!Array.isArray(f) || f.length !== 5) return;
  const [joinRef, ref, topic, event] = f as [string | null, string | null, string, string];
  const reply = (status: string, response: Record<string, unknown> = {}) =>
    c.ws.send(JSON.stringify([joinRef, ref, topic, 'phx_reply', { status, response }]));
  if (topic === 'phoenix') return reply(event === 'heartbeat' ? 'ok' : 'error');
  if (event !== 'phx_join') return reply('error', { reason: 'unknown event' });
  if (topic !== `user:${c.claims.sub}`) return reply('error', { reason: 'unauthorized' });
  c.topics.set(topic, joinRef ?? ref ?? '');
  let s = subs.get(topic);
  if (!s) subs.set(topic, (s = new Set()));
  s.add(c);
  reply('ok', {});
}

await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as AddressInfo).port;

serve({
  info() {
    return { port, connections: conns.size, nofile: nofileLimits(), mem: process.memoryUsage() };
  },
  gc() {
    (globalThis as { gc?: () => void }).gc?.();
    (globalThis as { gc?: () => void }).gc?.();
    return process.memoryUsage();
  },
  /** Sends `text` to every socket joined to `topic`; `t0` is when the loop started. */
  broadcast(a: { topic: string; text: string }) {
    const t0 = now();
    let n = 0;
    for (const c of subs.get(a.topic) ?? []) {
      c.ws.send(a.text);
      n++;
    }
    return { t0, syncMs: now() - t0, sent: n };
  },
  stop() {
    for (const c of conns) c.ws.terminate();
    server.close();
    setImmediate(() => process.exit(0));
    return null;
  },
});
