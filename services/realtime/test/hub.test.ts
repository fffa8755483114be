/**
 * One hub instance against real Postgres, Redis and Kafka, driven by the official `phoenix`
 * client (with `ws` as its transport) and, for what that client can't send, raw `ws` frames:
 * protocol semantics, authentication and authorization, server push from Kafka, client push,
 * recovery, malformed frames.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'phoenix';
import { newCloudEvent, startTestIssuer, tenantTopics, type TestIssuer } from '@simptu/common';
import { streamLocation } from '../src/events.ts';
import type { RealtimeApp } from '../src/app.ts';
import {
  collect,
  createPlatform,
  join,
  newUuid,
  openSocket,
  phoenixSocket,
  push,
  rawClient,
  sleep,
  startHub,
  uniqueTenantName,
  upgradeStatus,
  waitFor,
  type Platform,
} from './support.ts';

const A = uniqueTenantName('rta');
const B = uniqueTenantName('rtb');
const ORIGIN_A = 'https://clinic-a.example';

let issuer: TestIssuer;
let p: Platform;
let hub: RealtimeApp;
let url: string;
let wsUrl: string;
const sockets: Socket[] = [];

let customerA: string;
let customerA2: string;
let customerB: string;
let sessionA: string;
let sessionA2: string;
let sessionB: string;

const token = (tenant: string, sub: string, roles: string[], expiresIn: string | number = '10m') =>
  issuer.signAccessToken({ tenant, sub, roles }, { expiresIn });

async function socketFor(tenant: string, sub: string, roles: string[]): Promise<Socket> {
  const s = await openSocket(url, await token(tenant, sub, roles), { heartbeatIntervalMs: 1000 });
  sockets.push(s);
  return s;
}

beforeAll(async () => {
  issuer = await startTestIssuer();
  p = await createPlatform([A, B], { origins: { [A]: [ORIGIN_A] } });
  customerA = await p.createCustomer(A);
  customerA2 = await p.createCustomer(A);
  customerB = await p.createCustomer(B);
  sessionA = await p.createSession(A, customerA);
  sessionA2 = await p.createSession(A, customerA2);
  sessionB = await p.createSession(B, customerB);
  hub = await startHub(p, issuer, {
    limits: {
      maxFrameBytes: 64 * 1024,
      idleTimeoutMs: 3000,
      maxChannelsPerSocket: 100,
      maxMalformedFrames: 5,
      highWaterBytes: 64 * 1024,
      maxBufferedBytes: 4 * 1024 * 1024,
    },
    history: { maxCount: 60, maxAgeMs: 600_000, streamTtlMs: 3600_000, dedupTtlMs: 3600_000 },
  });
  url = hub.socketUrl;
  wsUrl = `${url}/websocket`;
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await hub?.drain();
  await p?.close();
  await issuer?.close();
});

describe('connect', () => {
  it('refuses bad tokens, other protocol versions and foreign Origins during the upgrade', async () => {
    const good = await token(A, customerA, ['customer']);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=${good}`)).toBe(101);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=${good}`, { Origin: ORIGIN_A })).toBe(101);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=${good}`, { Origin: 'https://evil.example' })).toBe(
      403,
    );
    expect(await upgradeStatus(`${wsUrl}?vsn=1.0.0&token=${good}`)).toBe(400);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0`)).toBe(401);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=not.a.jwt`)).toBe(401);
    const foreign = await (
      await startTestIssuer()
    ).signAccessToken({ tenant: A, sub: customerA, roles: ['customer'] });
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=${foreign}`)).toBe(401);
    const expired = await token(A, customerA, ['customer'], Math.floor(Date.now() / 1000) - 5);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=${expired}`)).toBe(401);
    const unknownTenant = await token('no-such-tenant', 'x', ['customer']);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=${unknownTenant}`)).toBe(403);
    // B allows no browser origin at all; a non-browser client (no Origin) is fine.
    const b = await token(B, customerB, ['customer']);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=${b}`, { Origin: ORIGIN_A })).toBe(403);
    expect(await upgradeStatus(`${wsUrl}?vsn=2.0.0&token=${b}`)).toBe(101);
  });

  it('takes the token from the authToken subprotocol and selects "phoenix"', async () => {
    const s = phoenixSocket(url, {}, { authToken: await token(A, customerA, ['customer']) });
    sockets.push(s);
    await new Promise<void>((resolve) => {
      s.onOpen(() => resolve());
      s.connect();
    });
    expect((s as unknown as { conn: { protocol: string } }).conn.protocol).toBe('phoenix');
    const r = await join(s.channel(`session:${sessionA}`));
    expect(r.status).toBe('ok');
    s.disconnect();
  });

  it('closes the socket when the token expires', async () => {
    const t = await token(A, customerA, ['customer'], Math.floor(Date.now() / 1000) + 2);
    const c = await rawClient(`${wsUrl}?vsn=2.0.0&token=${t}`);
    const started = Date.now();
    const closed = await c.closed;
    expect(closed).toEqual({ code: 4001, reason: 'token expired' });
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('closes a socket idle for longer than the idle timeout; heartbeats keep one open', async () => {
    const t = await token(A, customerA, ['customer']);
    const idle = await rawClient(`${wsUrl}?vsn=2.0.0&token=${t}`);
    const live = await socketFor(A, customerA, ['customer']);
    expect(await idle.closed).toEqual({ code: 4003, reason: 'idle timeout' });
    await sleep(1500);
    expect(live.isConnected()).toBe(true);
    const rtt = await new Promise<number>((r) => live.ping(r));
    expect(rtt).toBeGreaterThanOrEqual(0);
  });
});

describe('channels', () => {
  it('join, reply, heartbeat, leave', async () => {
    const s = await socketFor(A, customerA, ['customer']);
    const ch = s.channel(`session:${sessionA}`);
    const r = await join(ch);
    expect(r.status).toBe('ok');
    expect(r.response).toMatchObject({ seq: expect.any(Number), epoch: expect.any(String) });
    expect(await new Promise<number>((res) => s.ping(res))).toBeGreaterThanOrEqual(0);
    const closed = new Promise<void>((res) => ch.onClose(() => res()));
    const left = await new Promise<string>((res) => ch.leave().receive('ok', () => res('ok')));
    expect(left).toBe('ok');
    await closed;
  });

  it('refuses unmatched topics and everything the token does not allow', async () => {
    const cust = await socketFor(A, customerA, ['customer']);
    const staff = await socketFor(A, 'staff-1', ['staff']);
    const custB = await socketFor(B, customerB, ['customer']);
    expect(await join(cust.channel('room:lobby'))).toEqual({
      status: 'error',
      response: { reason: 'unmatched topic' },
    });
    expect(await join(cust.channel('session:not-a-uuid'))).toEqual({
      status: 'error',
      response: { reason: 'unmatched topic' },
    });
    // another customer's session of the same tenant
    expect(await join(cust.channel(`session:${sessionA2}`))).toEqual({
      status: 'error',
      response: { reason: 'unauthorized' },
    });
    // another tenant's session (the topic can't name a tenant: it is looked up in A)
    expect(await join(cust.channel(`session:${sessionB}`))).toEqual({
      status: 'error',
      response: { reason: 'unauthorized' },
    });
    expect(await join(custB.channel(`session:${sessionA}`))).toEqual({
      status: 'error',
      response: { reason: 'unauthorized' },
    });
    expect(await join(cust.channel(`session:${newUuid()}`))).toEqual({
      status: 'error',
      response: { reason: 'unauthorized' },
    });
    expect(await join(cust.channel('staff:lobby'))).toEqual({
      status: 'error',
      response: { reason: 'unauthorized' },
    });
    expect(await join(cust.channel(`user:${customerA2}`))).toEqual({
      status: 'error',
      response: { reason: 'unauthorized' },
    });
    expect((await join(cust.channel(`user:${customerA}`))).status).toBe('ok');
    expect((await join(staff.channel('staff:lobby'))).status).toBe('ok');
    expect((await join(staff.channel(`session:${sessionA2}`))).status).toBe('ok');
    // staff of A are nobody in B
    expect((await join(staff.channel(`session:${sessionB}`))).status).toBe('error');
  });

  it('a duplicate join closes the old channel, then joins again', async () => {
    const t = await token(A, customerA, ['customer']);
    const c = await rawClient(`${wsUrl}?vsn=2.0.0&token=${t}`);
    const topic = `session:${sessionA}`;
    c.ws.send(JSON.stringify(['1', '1', topic, 'phx_join', {}]));
    await waitFor(() => c.frames.find((f) => f[1] === '1'), 5000, 'first join reply');
    c.ws.send(JSON.stringify(['2', '2', topic, 'phx_join', {}]));
    const reply2 = await waitFor(() => c.frames.find((f) => f[1] === '2'), 5000, 'second join reply');
    const close = c.frames.find((f) => f[3] === 'phx_close');
    expect(close).toEqual(['1', '1', topic, 'phx_close', {}]);
    expect(c.frames.indexOf(close!)).toBeLessThan(c.frames.indexOf(reply2));
    expect(reply2).toMatchObject(['2', '2', topic, 'phx_reply', { status: 'ok' }]);
    // pushes for the old join are refused, the new join works
    c.ws.send(JSON.stringify(['1', '3', topic, 'typing', { typing: true }]));
    c.ws.send(JSON.stringify(['2', '4', topic, 'typing', { typing: true }]));
    expect(await waitFor(() => c.frames.find((f) => f[1] === '3'))).toMatchObject([
      '1',
      '3',
      topic,
      'phx_reply',
      { status: 'error', response: { reason: 'unmatched topic' } },
    ]);
    expect(await waitFor(() => c.frames.find((f) => f[1] === '4'))).toMatchObject(
      [null, '4', topic, 'phx_reply', { status: 'ok' }].map((x, i) => (i === 0 ? '2' : x)),
    );
    c.ws.close();
  });

  it('answers malformed frames with errors or a close, and keeps serving everybody else', async () => {
    const other = await socketFor(A, customerA, ['customer']);
    const otherCh = other.channel(`session:${sessionA}`);
    expect((await join(otherCh)).status).toBe('ok');
    const t = await token(A, customerA, ['customer']);
    const c = await rawClient(`${wsUrl}?vsn=2.0.0&token=${t}`);
    c.ws.send('not json');
    c.ws.send(JSON.stringify({ an: 'object' }));
    c.ws.send(JSON.stringify(['1', '7', 'session:x', 'phx_join']));
    c.ws.send(JSON.stringify(['1', '8', `session:${sessionA}`, 'phx_join', 'a string']));
    c.ws.send(JSON.stringify([null, '9', 'phoenix', 'nonsense', {}]));
    c.ws.send(JSON.stringify([null, '10', `session:${sessionA}`, 'who-knows', {}]));
    expect(await waitFor(() => c.frames.find((f) => f[1] === '8'))).toMatchObject([
      '1',
      '8',
      `session:${sessionA}`,
      'phx_reply',
      { status: 'error', response: { reason: 'malformed frame', detail: 'bad_payload' } },
    ]);
    expect(await waitFor(() => c.frames.find((f) => f[1] === '9'))).toMatchObject([
      null,
      '9',
      'phoenix',
      'phx_reply',
      { status: 'error' },
    ]);
    expect(await waitFor(() => c.frames.find((f) => f[1] === '10'))).toMatchObject([
      null,
      '10',
      `session:${sessionA}`,
      'phx_reply',
      { status: 'error', response: { reason: 'unmatched topic' } },
    ]);
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    c.ws.send('}');
    c.ws.send('{');
    expect(await c.closed).toEqual({ code: 4002, reason: 'too many malformed frames' });

    // A frame over the size limit closes that socket with 1009.
    const big = await rawClient(`${wsUrl}?vsn=2.0.0&token=${t}`);
    big.ws.send(
      JSON.stringify(['1', '1', `session:${sessionA}`, 'message:send', { body: 'x'.repeat(70 * 1024) }]),
    );
    expect((await big.closed).code).toBe(1009);

    // The other client noticed nothing.
    expect(other.isConnected()).toBe(true);
    expect((await push(otherCh, 'typing', { typing: false })).status).toBe('ok');
  });
});

describe('server push from Kafka', () => {
  it('delivers agent events in order to the session, and never to another tenant', async () => {
    const s = await socketFor(A, customerA, ['customer']);
    const ch = s.channel(`session:${sessionA}`);
    const got = collect(ch, ['agent.token', 'agent.message', 'agent.tool_call']);
    expect((await join(ch)).status).toBe('ok');
    const staff = await socketFor(A, 'staff-2', ['staff']);
    const lobby = staff.channel('staff:lobby');
    const lobbyGot = collect(lobby, ['agent.handoff', 'agent.token']);
    expect((await join(lobby)).status).toBe('ok');

    // B's agent names A's session id: it lands in B/session:<id>, which nobody here joined.
    await p.produce(B, 'agent', 'io.simptu.agent.token', { session_id: sessionA, delta: 'LEAK', seq: 0 });
    // Invalid payloads are dropped, valid ones delivered in order.
    await p.produce(A, 'agent', 'io.simptu.agent.token', { session_id: sessionA, delta: 42, seq: 0 });
    for (let i = 0; i < 20; i++)
      await p.produce(A, 'agent', 'io.simptu.agent.token', { session_id: sessionA, delta: `t${i} `, seq: i });
    await p.produce(A, 'agent', 'io.simptu.agent.tool_call', {
      session_id: sessionA,
      call_id: 'c1',
      name: 'find_slots',
      args: { day: 'mon' },
    });
    await p.produce(A, 'agent', 'io.simptu.agent.handoff', {
      session_id: sessionA,
      reason: 'asks for a human',
    });

    await waitFor(() => got.length >= 21 && lobbyGot.length >= 1, 20_000, 'events');
    await sleep(300);
    const tokens = got.filter((g) => g.event === 'agent.token');
    expect(tokens.map((g) => g.payload.delta)).toEqual(Array.from({ length: 20 }, (_, i) => `t${i} `));
    const seqs = got.map((g) => g.payload.stream_seq as number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(got.at(-1)).toMatchObject({
      event: 'agent.tool_call',
      payload: { name: 'find_slots', args: { day: 'mon' } },
    });
    expect(lobbyGot).toEqual([
      { event: 'agent.handoff', payload: expect.objectContaining({ session_id: sessionA }) },
    ]);
    expect(JSON.stringify(got)).not.toContain('LEAK');
  });

  it('delivers the agent’s stream events as the agent sends them (payload_enc, tool_call_id)', async () => {
    const s = await socketFor(A, customerA2, ['customer']);
    const ch = s.channel(`session:${sessionA2}`);
    const got = collect(ch, ['agent.token', 'agent.tool_call']);
    expect((await join(ch)).status).toBe('ok');
    // What services/agent's RunStream emits (docs/agent.md): ciphertext bound to the event id.
    const cipher = await p.keyrings.cipher(A);
    const runId = newUuid();
    const agentEvent = (type: string, seq: number, clear: Record<string, unknown>, secret: unknown) => {
      const id = newUuid();
      return newCloudEvent({
        id,
        type,
        source: '/simptu/agent',
        tenant: A,
        subject: sessionA2,
        data: {
          session_id: sessionA2,
          run_id: runId,
          seq,
          ...clear,
          payload_enc: cipher.encryptText(JSON.stringify(secret), streamLocation(id)),
        },
      });
    };
    const topic = tenantTopics(A).agent;
    await p.producer.sendBatch([
      { topic, key: sessionA2, event: agentEvent('io.simptu.agent.token', 1, {}, { text: 'Let me ' }) },
      { topic, key: sessionA2, event: agentEvent('io.simptu.agent.token', 2, {}, { text: 'check.' }) },
      {
        topic,
        key: sessionA2,
        event: agentEvent(
          'io.simptu.agent.tool_call',
          3,
          { tool_call_id: 'call-1', name: 'find_slots' },
          { args: { day: 'mon' } },
        ),
      },
    ]);
    // A payload bound to another event (copied ciphertext) doesn't decrypt: dropped, not pushed.
    const other = agentEvent('io.simptu.agent.token', 4, {}, { text: 'COPIED' });
    const copied = agentEvent('io.simptu.agent.token', 5, {}, { text: 'x' });
    (copied.data as Record<string, unknown>).payload_enc = (
      other.data as Record<string, unknown>
    ).payload_enc;
    await p.producer.send(topic, copied, sessionA2);
    await p.produce(A, 'agent', 'io.simptu.agent.token', { session_id: sessionA2, delta: 'end', seq: 6 });

    await waitFor(() => got.length >= 4, 20_000, 'stream events');
    await sleep(300);
    expect(got.map((g) => [g.event, g.payload.delta ?? g.payload.call_id])).toEqual([
      ['agent.token', 'Let me '],
      ['agent.token', 'check.'],
      ['agent.tool_call', 'call-1'],
      ['agent.token', 'end'],
    ]);
    expect(got[2]!.payload).toMatchObject({ name: 'find_slots', args: { day: 'mon' }, run_id: runId });
    expect(JSON.stringify(got)).not.toContain('payload_enc');
  });

  it('commits what it stored when its consumer stops (offsets are otherwise committed every few seconds)', async () => {
    // no periodic commit during this test: only the one at stop can commit
    const h = await startHub(p, issuer, { kafkaCommitIntervalMs: 600_000 });
    const groupId = `simptu-realtime-test-${h.instanceId}-${h.instanceId}`;
    const s = await openSocket(h.socketUrl, await token(A, customerA2, ['customer']));
    sockets.push(s);
    const ch = s.channel(`session:${sessionA2}`);
    const got = collect(ch, ['agent.token']);
    expect((await join(ch)).status).toBe('ok');
    for (let i = 0; i < 3; i++)
      await p.produce(A, 'agent', 'io.simptu.agent.token', { session_id: sessionA2, delta: `c${i}`, seq: i });
    await waitFor(() => got.length === 3, 20_000, 'events');
    await h.drain();
    const admin = p.kafka.admin();
    await admin.connect();
    try {
      const topic = tenantTopics(A).agent;
      const end = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const byPartition = new Map(committed!.partitions.map((x) => [x.partition, x.offset]));
      // The partition these events went to (one key) is committed up to its end.
      const used = end.filter((e) => Number(e.high) > 0);
      expect(used.some((e) => byPartition.get(e.partition) === e.high)).toBe(true);
      for (const e of used) expect(Number(byPartition.get(e.partition))).toBeLessThanOrEqual(Number(e.high));
    } finally {
      await admin.disconnect();
    }
  });

  it('delivers bookings to the staff lobby and the customer’s user topic', async () => {
    const cust = await socketFor(A, customerA, ['customer']);
    const mine = cust.channel(`user:${customerA}`);
    const mineGot = collect(mine, ['booking.created']);
    expect((await join(mine)).status).toBe('ok');
    const cust2 = await socketFor(A, customerA2, ['customer']);
    const theirs = cust2.channel(`user:${customerA2}`);
    const theirsGot = collect(theirs, ['booking.created']);
    expect((await join(theirs)).status).toBe('ok');
    await p.produce(A, 'domain', 'io.simptu.booking.created', {
      booking_id: 'bk-1',
      customer_id: customerA,
      status: 'confirmed',
    });
    await waitFor(() => mineGot.length === 1, 20_000, 'booking');
    await sleep(300);
    expect(mineGot[0]!.payload).toMatchObject({ booking_id: 'bk-1', status: 'confirmed' });
    expect(theirsGot).toHaveLength(0);
  });
});

describe('recovery', () => {
  it('a rejoin with last_seq gets exactly the missed events in order; beyond the bound, recovered false', async () => {
    const t = await token(A, customerA, ['customer']);
    let params: Record<string, unknown> = {};
    const s = phoenixSocket(url, { token: t });
    sockets.push(s);
    s.connect();
    const ch = s.channel(`session:${sessionA}`, () => params);
    const got = collect(ch, ['agent.token']);
    const first = await join(ch);
    expect(first.status).toBe('ok');
    const epoch = first.response.epoch as string;
    await p.produce(A, 'agent', 'io.simptu.agent.token', { session_id: sessionA, delta: 'before', seq: 0 });
    await waitFor(() => got.length === 1, 20_000, 'first event');
    const lastSeq = got[0]!.payload.stream_seq as number;
    s.disconnect();
    await waitFor(() => !s.isConnected());

    for (let i = 0; i < 50; i++)
      await p.produce(A, 'agent', 'io.simptu.agent.token', {
        session_id: sessionA,
        delta: `m${i}`,
        seq: i + 1,
      });
    // Wait until the hub stored them (the stream's seq moved by 50).
    const key = `rt:{${A}/session:${sessionA}}:m`;
    const { Redis } = await import('ioredis');
    const r = new Redis(process.env.REDIS_URL!);
    try {
      await waitFor(async () => Number(await r.hget(key, 'seq')) >= lastSeq + 50, 30_000, 'stored events');
    } finally {
      r.disconnect();
    }

    got.length = 0;
    params = { last_seq: lastSeq, epoch };
    const replies: Array<Record<string, unknown>> = [];
    // (receive() on a push that already replied calls back at once: replies[0] is the first join)
    (
      ch as unknown as { joinPush: { receive(s: string, cb: (r: Record<string, unknown>) => void): void } }
    ).joinPush.receive('ok', (resp) => replies.push(resp));
    s.connect();
    await waitFor(() => got.length >= 50 && replies.length >= 2, 20_000, 'recovered events');
    await sleep(200);
    expect(replies).toHaveLength(2);
    expect(replies.at(-1)).toMatchObject({ recovered: true, epoch, seq: lastSeq + 50 });
    expect(got.map((g) => g.payload.delta)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    expect(got.map((g) => g.payload.stream_seq)).toEqual(
      Array.from({ length: 50 }, (_, i) => lastSeq + 1 + i),
    );

    // History keeps 60 entries: 70 more events can't be recovered from lastSeq + 50.
    s.disconnect();
    await waitFor(() => !s.isConnected());
    const from = lastSeq + 50;
    for (let i = 0; i < 70; i++)
      await p.produce(A, 'agent', 'io.simptu.agent.token', { session_id: sessionA, delta: `x${i}`, seq: i });
    const r2 = new Redis(process.env.REDIS_URL!);
    try {
      await waitFor(async () => Number(await r2.hget(key, 'seq')) >= from + 70, 30_000, 'stored events');
    } finally {
      r2.disconnect();
    }
    got.length = 0;
    params = { last_seq: from, epoch };
    s.connect();
    await waitFor(() => replies.length >= 3, 20_000, 'rejoin');
    expect(replies.at(-1)).toMatchObject({ recovered: false, epoch, seq: from + 70 });
    await sleep(300);
    expect(got).toHaveLength(0);
    // A wrong epoch isn't recovered either.
    const s2 = await socketFor(A, customerA, ['customer']);
    expect(
      (await join(s2.channel(`session:${sessionA}`, { last_seq: from + 70, epoch: 'other' }))).response,
    ).toMatchObject({
      recovered: false,
    });
    expect((await join(s2.channel(`session:${sessionA2}`, { last_seq: -1, epoch }))).status).toBe('error');
  });
});

describe('client push', () => {
  it('message:send persists once (idempotent by client_msg_id), replies after commit, and reaches subscribers and the inbound topic', async () => {
    const cust = await socketFor(A, customerA, ['customer']);
    const ch = cust.channel(`session:${sessionA}`);
    expect((await join(ch)).status).toBe('ok');
    const staff = await socketFor(A, 'staff-3', ['staff']);
    const sch = staff.channel(`session:${sessionA}`);
    const staffGot = collect(sch, ['message.created', 'typing']);
    expect((await join(sch)).status).toBe('ok');

    const clientMsgId = newUuid();
    const r1 = await push(ch, 'message:send', { body: 'I have a toothache', client_msg_id: clientMsgId });
    expect(r1.status).toBe('ok');
    expect(r1.response).toMatchObject({
      message_id: expect.any(String),
      seq: expect.any(Number),
      duplicate: false,
    });
    // ok means committed: the row is there.
    const table = `"${p.tenants[0]!.schema}"`;
    const rows = await p.admin.query(`SELECT id, role FROM ${table}.messages WHERE id = $1`, [
      r1.response.message_id,
    ]);
    expect(rows.rows).toEqual([{ id: r1.response.message_id, role: 'user' }]);
    // A retry (lost reply) writes nothing new.
    const r2 = await push(ch, 'message:send', { body: 'I have a toothache', client_msg_id: clientMsgId });
    expect(r2.response).toMatchObject({
      message_id: r1.response.message_id,
      seq: r1.response.seq,
      duplicate: true,
    });
    const r3 = await push(ch, 'message:send', { body: 'something else', client_msg_id: clientMsgId });
    expect(r3).toEqual({ status: 'error', response: { reason: 'idempotency_key_reused' } });
    const count = await p.admin.query(
      `SELECT count(*)::int AS n FROM ${table}.messages WHERE session_id = $1`,
      [sessionA],
    );
    expect(count.rows[0].n).toBe(1);
    expect(await push(ch, 'message:send', { body: '' })).toMatchObject({
      status: 'error',
      response: { reason: 'invalid' },
    });

    // typing reaches the others, not the sender
    expect((await push(ch, 'typing', { typing: true })).status).toBe('ok');

    // The outbox relay publishes message.created (domain) → the hub pushes it, body decrypted.
    await waitFor(() => staffGot.find((g) => g.event === 'message.created'), 20_000, 'message.created');
    await waitFor(() => staffGot.find((g) => g.event === 'typing'), 5000, 'typing');
    expect(staffGot.find((g) => g.event === 'message.created')!.payload).toMatchObject({
      message_id: r1.response.message_id,
      body: 'I have a toothache',
      role: 'user',
      client_msg_id: clientMsgId,
    });
    expect(staffGot.find((g) => g.event === 'message.created')!.payload).not.toHaveProperty('body_enc');
    expect(staffGot.find((g) => g.event === 'typing')!.payload).toEqual({
      user_id: customerA,
      staff: false,
      typing: true,
    });

    // … and exactly one io.simptu.message.received on the inbound topic, with the body encrypted.
    const consumer = p.kafka.consumer({ groupId: `rt-test-inbound-${newUuid()}` });
    const seen: Array<Record<string, unknown>> = [];
    await consumer.connect();
    await consumer.subscribe({ topic: tenantTopics(A).inbound, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(JSON.parse(String(message.value)) as Record<string, unknown>);
      },
    });
    try {
      await waitFor(() => seen.length >= 1, 20_000, 'inbound event');
      await sleep(1000);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ type: 'io.simptu.message.received', tenant: A });
      expect(JSON.stringify(seen[0])).not.toContain('toothache');
    } finally {
      await consumer.disconnect();
    }
  });
});
