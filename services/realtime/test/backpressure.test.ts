/**
 * Back-pressure against a real hub: a client that stops reading is disconnected once its
 * buffer exceeds the bound, and never delays another client of the same topic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'phoenix';
import { startTestIssuer, type TestIssuer } from '@simptu/common';
import type { RealtimeApp } from '../src/app.ts';
import {
  collect,
  createPlatform,
  join,
  openSocket,
  rawClient,
  startHub,
  uniqueTenantName,
  waitFor,
  type Platform,
} from './support.ts';

const T = uniqueTenantName('rtp');
let issuer: TestIssuer;
let p: Platform;
let hub: RealtimeApp;
const sockets: Socket[] = [];

beforeAll(async () => {
  issuer = await startTestIssuer();
  p = await createPlatform([T], { partitions: 1 });
  hub = await startHub(p, issuer, {
    outboxRelay: false,
    limits: {
      maxFrameBytes: 64 * 1024,
      idleTimeoutMs: 60_000,
      maxChannelsPerSocket: 100,
      maxMalformedFrames: 10,
      highWaterBytes: 16 * 1024,
      maxBufferedBytes: 256 * 1024,
    },
  });
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await hub?.drain();
  await p?.close();
  await issuer?.close();
});

describe('back-pressure', () => {
  it('disconnects a client that stops reading; the others get everything, in order', async () => {
    const customer = await p.createCustomer(T);
    const session = await p.createSession(T, customer);
    const token = await issuer.signAccessToken({ tenant: T, sub: customer, roles: ['customer'] });
    const fast = await openSocket(hub.socketUrl, token);
    sockets.push(fast);
    const ch = fast.channel(`session:${session}`);
    const got = collect(ch, ['agent.token']);
    expect((await join(ch)).status).toBe('ok');

    const slow = await rawClient(`${hub.socketUrl}/websocket?vsn=2.0.0&token=${token}`);
    slow.ws.send(JSON.stringify(['1', '1', `session:${session}`, 'phx_join', {}]));
    await waitFor(() => slow.frames.find((f) => f[1] === '1'), 5000, 'slow join');
    // Stop reading: the kernel buffers fill, then ws's bufferedAmount, then the hub's queue.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();

    const chunk = 'y'.repeat(15_000);
    const n = 400; // ~6 MB: more than loopback socket buffers hold
    const events = Array.from({ length: n }, (_, i) => ({
      session_id: session,
      delta: `${i}:${chunk}`,
      seq: i,
    }));
    for (let i = 0; i < n; i += 50)
      await p.producer.sendBatch(
        events.slice(i, i + 50).map((data) => ({
          topic: `simptu.t.${T}.agent`,
          key: session,
          event: {
            specversion: '1.0',
            id: crypto.randomUUID(),
            source: '/t',
            type: 'io.simptu.agent.token',
            time: new Date().toISOString(),
            datacontenttype: 'application/json',
            tenant: T,
            data,
          },
        })),
      );
    // (Should the fast client's buffer also pass the high-water mark, its deltas merge: compare text.)
    const want = events.map((e) => e.delta).join('');
    const text = () => got.map((g) => String(g.payload.delta)).join('');
    await waitFor(() => text().length >= want.length, 60_000, 'all events on the fast client');
    expect(text() === want).toBe(true);
    expect(got.at(-1)!.payload.seq).toBe(n - 1);
    const metrics = await hub.metrics.expose();
    await waitFor(
      async () =>
        /simptu_realtime_slow_client_disconnects_total\{[^}]*\} [1-9]/.test(
          (await hub.metrics.expose()).body,
        ),
      20_000,
      `slow client disconnected (${metrics.body.length})`,
    );
    slow.ws.terminate();
  });
});
