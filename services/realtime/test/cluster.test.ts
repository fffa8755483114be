/**
 * Several hub instances on the same Redis and Kafka: each event reaches each subscriber once
 * whatever instance it is connected to; presence spans instances and a dead instance's
 * presences leave; SIGTERM drains one instance (a real `node src/main.ts` process) and its
 * clients reconnect through the load balancer to another and recover what they missed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Presence as PhxPresence, type Socket } from 'phoenix';
import { newCloudEvent, startTestIssuer, tenantTopics, type TestIssuer } from '@simptu/common';
import type { RealtimeApp } from '../src/app.ts';
import { ENV_PREFIX } from '../src/config.ts';
import {
  collect,
  createPlatform,
  hubConfig,
  join,
  openSocket,
  phoenixSocket,
  sleep,
  startBalancer,
  startHub,
  uniqueTenantName,
  waitFor,
  type Platform,
} from './support.ts';

const here = dirname(fileURLToPath(import.meta.url));
const T = uniqueTenantName('rtc');

let issuer: TestIssuer;
let p: Platform;
const hubs: RealtimeApp[] = [];
const sockets: Socket[] = [];
const children: ChildProcess[] = [];
let customer: string;
let session: string;

const token = (sub: string, roles: string[]) =>
  issuer.signAccessToken({ tenant: T, sub, roles }, { expiresIn: '10m' });

beforeAll(async () => {
  issuer = await startTestIssuer();
  p = await createPlatform([T]);
  customer = await p.createCustomer(T);
  session = await p.createSession(T, customer);
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  for (const h of hubs) await h.drain().catch(() => undefined);
  for (const c of children) c.kill('SIGKILL');
  await p?.close();
  await issuer?.close();
});

describe('several instances', () => {
  it('one event produced once reaches each subscriber once, in order, on every instance', async () => {
    const [h1, h2] = await Promise.all([startHub(p, issuer), startHub(p, issuer)]);
    hubs.push(h1!, h2!);
    const got: Array<ReturnType<typeof collect>> = [];
    for (const h of [h1!, h1!, h2!]) {
      const s = await openSocket(h.socketUrl, await token(customer, ['customer']));
      sockets.push(s);
      const ch = s.channel(`session:${session}`);
      got.push(collect(ch, ['agent.token']));
      expect((await join(ch)).status).toBe('ok');
    }
    for (let i = 0; i < 15; i++)
      await p.produce(T, 'agent', 'io.simptu.agent.token', { session_id: session, delta: `d${i}`, seq: i });
    await waitFor(() => got.every((g) => g.length >= 15), 20_000, 'events on every socket');
    await sleep(500);
    for (const g of got) {
      expect(g.map((e) => e.payload.delta)).toEqual(Array.from({ length: 15 }, (_, i) => `d${i}`));
      const seqs = g.map((e) => e.payload.stream_seq as number);
      expect(seqs).toEqual(Array.from({ length: 15 }, (_, i) => seqs[0]! + i));
    }
    // The same seq on every instance: one numbering, not one per instance.
    expect(got[2]!.map((e) => e.payload.stream_seq)).toEqual(got[0]!.map((e) => e.payload.stream_seq));
  });

  it('several events in one Kafka batch: in order, consecutive seqs, one numbering on every instance; recovery returns exactly the missed ones', async () => {
    // the first test's two instances (or two of its own when run alone)
    if (hubs.length < 2) hubs.push(...(await Promise.all([startHub(p, issuer), startHub(p, issuer)])));
    const [h1, h2] = hubs;
    const sess = await p.createSession(T, customer);
    const batchesOver10 = async (h: RealtimeApp) => {
      const m = await h.metrics.registry.getSingleMetric('simptu_realtime_ingest_batch_records')!.get();
      const values = m.values as Array<{
        metricName?: string;
        labels: Record<string, unknown>;
        value: number;
      }>;
      const at = (le: string) =>
        values.find((v) => v.metricName?.endsWith('_bucket') && String(v.labels.le) === le)?.value ?? 0;
      return at('+Inf') - at('10');
    };
    const over10Before = await Promise.all([h1!, h2!].map(batchesOver10));

    // A reconnecting client (h1) and a steady one (h2).
    let params: Record<string, unknown> = {};
    const s1 = phoenixSocket(h1!.socketUrl, { token: await token(customer, ['customer']) });
    sockets.push(s1);
    s1.connect();
    const ch1 = s1.channel(`session:${sess}`, () => params);
    const got1 = collect(ch1, ['agent.token']);
    const joined = await join(ch1);
    expect(joined.status).toBe('ok');
    const epoch = joined.response.epoch as string;
    const seq0 = joined.response.seq as number;
    const s2 = await openSocket(h2!.socketUrl, await token(customer, ['customer']));
    sockets.push(s2);
    const ch2 = s2.channel(`session:${sess}`);
    const got2 = collect(ch2, ['agent.token']);
    expect((await join(ch2)).status).toBe('ok');

    // One produce request, one key: one record batch, handed to each instance's ingest at once.
    const produceBatch = (prefix: string) =>
      p.producer.sendBatch(
        Array.from({ length: 12 }, (_, i) => ({
          topic: tenantTopics(T).agent,
          key: sess,
          event: newCloudEvent({
            type: 'io.simptu.agent.token',
            source: '/simptu/test',
            tenant: T,
            data: { session_id: sess, delta: `${prefix}${i}`, seq: i },
          }),
        })),
      );
    await produceBatch('b');
    await waitFor(() => got1.length >= 12 && got2.length >= 12, 20_000, 'the batch on both sockets');
    await sleep(300);
    const first = Array.from({ length: 12 }, (_, i) => `b${i}`);
    for (const g of [got1, got2]) {
      expect(g.map((e) => e.payload.delta)).toEqual(first);
      expect(g.map((e) => e.payload.stream_seq)).toEqual(Array.from({ length: 12 }, (_, i) => seq0 + 1 + i));
    }
    // Each instance really took the twelve records as one batch (one pipelined Redis round trip).
    const over10After = await Promise.all([h1!, h2!].map(batchesOver10));
    expect(over10After[0]! - over10Before[0]!).toBeGreaterThanOrEqual(1);
    expect(over10After[1]! - over10Before[1]!).toBeGreaterThanOrEqual(1);

    // The h1 client goes away in the middle of what it read (after b5), another batch follows.
    s1.disconnect();
    await waitFor(() => !s1.isConnected());
    await produceBatch('c');
    await waitFor(() => got2.length >= 24, 20_000, 'the second batch on h2');
    got1.length = 0;
    params = { last_seq: seq0 + 6, epoch };
    const replies: Array<Record<string, unknown>> = [];
    (
      ch1 as unknown as { joinPush: { receive(s: string, cb: (r: Record<string, unknown>) => void): void } }
    ).joinPush.receive('ok', (resp) => replies.push(resp));
    s1.connect();
    await waitFor(() => replies.length >= 2 && got1.length >= 18, 20_000, 'recovery');
    await sleep(300);
    expect(replies.at(-1)).toMatchObject({ recovered: true, epoch, seq: seq0 + 24 });
    expect(got1.map((e) => e.payload.delta)).toEqual([
      ...first.slice(6),
      ...Array.from({ length: 12 }, (_, i) => `c${i}`),
    ]);
    expect(got1.map((e) => e.payload.stream_seq)).toEqual(Array.from({ length: 18 }, (_, i) => seq0 + 7 + i));
    expect(got2.map((e) => e.payload.stream_seq)).toEqual(Array.from({ length: 24 }, (_, i) => seq0 + 1 + i));
  });

  it('presence spans instances; a killed instance’s presences leave', async () => {
    const [h1, h2] = hubs;
    const h3 = await startHub(p, issuer);
    const watcher = await openSocket(h1!.socketUrl, await token('staff-watch', ['staff']));
    sockets.push(watcher);
    const lobby = watcher.channel('staff:lobby');
    const presence = new PhxPresence(lobby);
    expect((await join(lobby)).status).toBe('ok');
    const online = () => presence.list((id: string) => id).sort();

    const a = await openSocket(h2!.socketUrl, await token('staff-a', ['staff']));
    const b = await openSocket(h3.socketUrl, await token('staff-b', ['owner']));
    sockets.push(a, b);
    expect((await join(a.channel('staff:lobby'))).status).toBe('ok');
    expect((await join(b.channel('staff:lobby'))).status).toBe('ok');
    await waitFor(() => online().length === 3, 10_000, 'three online');
    expect(online()).toEqual(['staff-a', 'staff-b', 'staff-watch']);
    // A late joiner on another instance gets the full state.
    const late = await openSocket(h2!.socketUrl, await token('staff-late', ['admin']));
    sockets.push(late);
    const lateLobby = late.channel('staff:lobby');
    const latePresence = new PhxPresence(lateLobby);
    expect((await join(lateLobby)).status).toBe('ok');
    await waitFor(() => latePresence.list((id: string) => id).length === 4, 10_000, 'late state');

    // A clean leave is a diff at once.
    a.disconnect();
    await waitFor(() => !online().includes('staff-a'), 10_000, 'staff-a left');
    // A crash: no goodbye; the instance's heartbeat expires and another instance reaps it.
    await h3.kill();
    await waitFor(() => !online().includes('staff-b'), 10_000, 'staff-b reaped');
    expect(online()).toEqual(['staff-late', 'staff-watch']);
  });

  it('SIGTERM drains a real hub process: clients get 1012, reconnect to another instance and recover', async () => {
    const h2 = hubs[1]!;
    const cfg = hubConfig(p, issuer, { instanceId: `proc-${Date.now()}` });
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      [`${ENV_PREFIX}HOST`]: '127.0.0.1',
      [`${ENV_PREFIX}PORT`]: '0',
      [`${ENV_PREFIX}INSTANCE_ID`]: cfg.instanceId!,
      [`${ENV_PREFIX}LOG_LEVEL`]: 'warn',
      [`${ENV_PREFIX}DATABASE_URL`]: cfg.databaseUrl,
      [`${ENV_PREFIX}REDIS_URL`]: cfg.redisUrl,
      [`${ENV_PREFIX}KAFKA_BROKERS`]: cfg.kafkaBrokers.join(','),
      [`${ENV_PREFIX}KAFKA_GROUP_PREFIX`]: cfg.kafkaGroupPrefix,
      [`${ENV_PREFIX}AUTH_ISSUER`]: cfg.auth.issuer,
      [`${ENV_PREFIX}AUTH_AUDIENCE`]: cfg.auth.audience.join(','),
      [`${ENV_PREFIX}AUTH_JWKS_URI`]: cfg.auth.jwksUri,
      [`${ENV_PREFIX}KEK_BASE64`]: cfg.kekBase64,
      [`${ENV_PREFIX}OUTBOX_RELAY`]: 'false',
      [`${ENV_PREFIX}PRESENCE_HEARTBEAT_MS`]: '300',
      [`${ENV_PREFIX}PRESENCE_INSTANCE_TTL_MS`]: '1500',
    };
    const child = spawn(process.execPath, [resolve(here, '../src/main.ts')], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const port = await waitFor(
      () => Number(/"port":(\d+)/.exec(out)?.[1] ?? 0),
      30_000,
      `hub process (${out})`,
    );
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200,
      30_000,
      'hub process ready',
    );
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);

    // The balancer sends each connection to the first instance that accepts it: the process first.
    const lb = await startBalancer(() => [port, h2.port]);
    try {
      // Tracked by the app, passed on every (re)join: what makes the rejoin a recovery.
      const last = { seq: 0, epoch: '' };
      const s = phoenixSocket(`ws://127.0.0.1:${lb.port}/socket`, {
        token: await token(customer, ['customer']),
      });
      sockets.push(s);
      const closes: number[] = [];
      s.onClose((e: { code: number }) => {
        closes.push(e.code);
      });
      s.connect();
      const ch = s.channel(`session:${session}`, () =>
        last.epoch ? { last_seq: last.seq, epoch: last.epoch } : {},
      );
      const got = collect(ch, ['agent.token']);
      ch.on('agent.token', (pl: { stream_seq: number }) => {
        last.seq = pl.stream_seq;
      });
      const first = await join(ch);
      expect(first.status).toBe('ok');
      last.seq = first.response.seq as number;
      last.epoch = first.response.epoch as string;
      await p.produce(T, 'agent', 'io.simptu.agent.token', { session_id: session, delta: 'before', seq: 0 });
      await waitFor(() => got.length === 1, 20_000, 'event before drain');

      child.kill('SIGTERM');
      await waitFor(() => closes.length > 0, 10_000, 'close');
      expect(closes[0]).toBe(1012);
      // While nobody is connected, events keep coming (consumed by the other instance).
      for (let i = 0; i < 10; i++)
        await p.produce(T, 'agent', 'io.simptu.agent.token', {
          session_id: session,
          delta: `gap${i}`,
          seq: i + 1,
        });
      expect(await exited).toBe(0);
      await waitFor(() => got.length >= 11, 20_000, 'recovered after reconnect');
      await sleep(300);
      expect(got.map((g) => g.payload.delta)).toEqual([
        'before',
        ...Array.from({ length: 10 }, (_, i) => `gap${i}`),
      ]);
      expect(s.isConnected()).toBe(true);
      expect(h2.hub.connections).toBeGreaterThanOrEqual(1);
    } finally {
      await lb.close();
    }
  });
});
