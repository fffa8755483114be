/**
 * The history cache (src/history-cache.ts, docs/api.md "History cache") against real Postgres,
 * Redis and Kafka, with TWO API instances sharing Redis (and a third whose Redis link can be cut):
 * every write path is seen by the next read on either instance (customer message, staff reply,
 * handover, close, an agent reply through the consumer, a write by other code in the process),
 * the role and tenant checks hold on cached pages, and without Redis the answers come from the
 * database. Each test would fail with a cache that served a page it shouldn't.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendMessage,
  EventProducer,
  messageBodyLocation,
  newCloudEvent,
  sessionVersionKey,
  type Customer,
} from '@simptu/common';
import { buildApp } from '../src/app.ts';
import { HistoryCache, historyCacheKey } from '../src/history-cache.ts';
import { buildTestApp, env, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
/** a second instance: same database, same Redis (and prefix), no relay/consumers of its own */
let app2: FastifyInstance;
let redis: Redis;
let producer: EventProducer | undefined;
let alice: Customer;
let bob: Customer;
let aliceToken: string;
let bobToken: string;
let staffA: string;

beforeAll(async () => {
  t = await buildTestApp({ tenants: [{}, {}] });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  app2 = await buildApp({ ...t.config, events: { ...t.config.events, relay: false, consumers: false } });
  await app2.ready();
  redis = new Redis(env('REDIS_URL'));
  alice = await t.createCustomer(a, { displayName: 'Alice' });
  bob = await t.createCustomer(a, { displayName: 'Bob' });
  aliceToken = await t.tokenFor(a, { sub: alice.id, roles: ['customer'] });
  bobToken = await t.tokenFor(a, { sub: bob.id, roles: ['customer'] });
  staffA = await t.tokenFor(a, { roles: ['staff'] });
});
afterAll(async () => {
  await producer?.disconnect();
  redis?.disconnect();
  await app2?.close();
  await t?.cleanup();
});

const call = (
  app: FastifyInstance,
  method: 'GET' | 'POST',
  url: string,
  token: string,
  payload?: Record<string, unknown>,
) => {
  const opts: InjectOptions = { method, url, headers: t.auth(token) };
  if (payload !== undefined) opts.payload = payload;
  return app.inject(opts);
};

/** The cache counters of an instance (its /metrics). */
async function outcomes(app: FastifyInstance): Promise<Record<'hit' | 'miss' | 'bypass', number>> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  const n = (o: string) =>
    Number(
      new RegExp(`^simptu_api_history_cache_requests_total\\{[^}]*outcome="${o}"[^}]*\\} (\\d+)`, 'm').exec(
        text,
      )?.[1] ?? 0,
    );
  return { hit: n('hit'), miss: n('miss'), bypass: n('bypass') };
}

/** GET the history on `app`; returns the bodies, and how the cache served it. */
async function history(app: FastifyInstance, sessionId: string, token: string, query = '') {
  const before = await outcomes(app);
  const res = await call(app, 'GET', `/v1/sessions/${sessionId}/messages${query}`, token);
  const after = await outcomes(app);
  const served = (['hit', 'miss', 'bypass'] as const).find((o) => after[o] > before[o]);
  const items = res.statusCode === 200 ? (res.json().items as Array<{ body: string; role: string }>) : [];
  return { res, served, bodies: items.map((m) => m.body), roles: items.map((m) => m.role) };
}

async function newSession(token = aliceToken, bodies: string[] = []) {
  const res = await call(t.app, 'POST', '/v1/sessions', token, {});
  expect(res.statusCode, res.body).toBe(201);
  const id = res.json().id as string;
  for (const body of bodies)
    expect((await call(t.app, 'POST', `/v1/sessions/${id}/messages`, token, { body })).statusCode).toBe(201);
  return id;
}

/** Reads the page on both instances until each serves it from its cache. */
async function cacheOnBoth(id: string, token = aliceToken) {
  for (const app of [t.app, app2]) {
    await history(app, id, token);
    expect((await history(app, id, token)).served).toBe('hit');
  }
}

const version = (tenant: TestTenant, id: string) => redis.get(sessionVersionKey(tenant.name, id));

describe('history cache', () => {
  it('serves a repeated read from memory: same status, headers and bytes as the database read', async () => {
    const id = await newSession(aliceToken, ['one', 'two', 'three']);
    const first = await history(t.app, id, aliceToken, '?limit=2');
    const second = await history(t.app, id, aliceToken, '?limit=2');
    expect([first.served, second.served]).toEqual(['miss', 'hit']);
    expect(second.res.statusCode).toBe(200);
    expect(second.res.body).toBe(first.res.body);
    expect(second.res.headers['content-type']).toBe(first.res.headers['content-type']);
    expect(second.bodies).toEqual(['two', 'three']);
    // another page query is another entry
    expect((await history(t.app, id, aliceToken, '?limit=3')).served).toBe('miss');
    const cursor = first.res.json().nextCursor as string;
    const back = await history(t.app, id, aliceToken, `?limit=2&cursor=${cursor}`);
    expect(back.bodies).toEqual(['one']);
    // Proof that a hit doesn't read the database: a row deleted behind the API's back (no
    // version bump — no writer should ever do this) is still in the cached page…
    await a.adminQuery(`DELETE FROM ${a.table('messages')} WHERE session_id = $1 AND seq = 3`, [id]);
    expect((await history(t.app, id, aliceToken, '?limit=2')).bodies).toEqual(['two', 'three']);
    // …and a new version (what every writer does after its commit) makes it go.
    await redis.set(sessionVersionKey(a.name, id), randomUUID());
    const fresh = await history(t.app, id, aliceToken, '?limit=2');
    expect(fresh.served).toBe('miss');
    expect(fresh.bodies).toEqual(['one', 'two']);
  });

  it("a customer's message posted on one instance is in the next read on both", async () => {
    const id = await newSession(aliceToken, ['hello']);
    await cacheOnBoth(id);
    const v0 = await version(a, id);
    expect(v0).toEqual(expect.any(String));
    expect(
      (await call(t.app, 'POST', `/v1/sessions/${id}/messages`, aliceToken, { body: 'again' })).statusCode,
    ).toBe(201);
    expect(await version(a, id)).not.toBe(v0);
    for (const app of [app2, t.app]) {
      const r = await history(app, id, aliceToken);
      expect(r.served).toBe('miss');
      expect(r.bodies).toEqual(['hello', 'again']);
    }
    // the same is true for the staff's view (another entry of the same session)
    await history(app2, id, staffA);
    await call(app2, 'POST', `/v1/sessions/${id}/staff-replies`, staffA, { body: 'Staff here' });
    expect((await history(t.app, id, staffA)).bodies).toEqual(['hello', 'again', 'Staff here']);
    expect((await history(app2, id, aliceToken)).bodies).toEqual(['hello', 'again', 'Staff here']);
  });

  it('handover (with its system message) and close are seen by the next read on both', async () => {
    const id = await newSession(aliceToken, ['I need a human']);
    await cacheOnBoth(id);
    const h = await call(app2, 'POST', `/v1/sessions/${id}/handover`, aliceToken, { reason: 'complex case' });
    expect(h.statusCode, h.body).toBe(200);
    for (const app of [t.app, app2])
      expect((await history(app, id, aliceToken)).bodies).toEqual([
        'I need a human',
        'Handover requested: complex case',
      ]);
    await cacheOnBoth(id);
    const v0 = await version(a, id);
    expect((await call(t.app, 'POST', `/v1/sessions/${id}/close`, aliceToken)).statusCode).toBe(200);
    expect(await version(a, id)).not.toBe(v0);
    const after = await history(app2, id, aliceToken);
    expect(after.served).toBe('miss'); // re-read after the change
    expect(after.bodies).toHaveLength(2);
    expect(
      (await call(app2, 'POST', `/v1/sessions/${id}/messages`, aliceToken, { body: 'x' })).statusCode,
    ).toBe(409);
  });

  it('an agent reply stored by the consumer is in the next read on both instances', async () => {
    const id = await newSession(aliceToken, ['When are you open?']);
    await cacheOnBoth(id);
    const v0 = await version(a, id);
    producer = new EventProducer({ kafka: t.app.events.kafka });
    const messageId = randomUUID();
    const cipher = await a.cipher();
    await producer.send(
      a.topics.agent,
      newCloudEvent({
        type: 'io.simptu.agent.message',
        source: '/simptu/agent',
        tenant: a.name,
        subject: id,
        data: {
          session_id: id,
          message_id: messageId,
          body_enc: cipher.encryptText('We open at 9.', messageBodyLocation(messageId)),
        },
      }),
      id,
    );
    // The consumer commits, then bumps the version (after-commit hook): wait for the bump, which
    // would never come if the consumer's write were not tracked.
    await expect.poll(() => version(a, id), { timeout: 45_000, interval: 200 }).not.toBe(v0);
    for (const app of [app2, t.app])
      expect(await history(app, id, aliceToken)).toMatchObject({
        served: 'miss',
        bodies: ['When are you open?', 'We open at 9.'],
        roles: ['user', 'assistant'],
      });
  });

  it('a write by other domain code in the process (as the agent and hub write) bumps the version too', async () => {
    const id = await newSession(aliceToken, ['first']);
    await cacheOnBoth(id);
    await a.run((ctx) => appendMessage(ctx, id, { role: 'assistant', body: 'written elsewhere' }));
    for (const app of [t.app, app2])
      expect((await history(app, id, aliceToken)).bodies).toEqual(['first', 'written elsewhere']);
  });

  it("a customer never gets another customer's cached page; staff share the entry", async () => {
    const id = await newSession(aliceToken, ['private']);
    await cacheOnBoth(id);
    for (const app of [t.app, app2]) {
      const r = await history(app, id, bobToken);
      expect(r.served).toBe('hit'); // the page is there, and still refused
      expect(r.res.statusCode).toBe(404);
      expect(r.res.json().error).toMatchObject({ code: 'SIMPTU_ERR_NOT_FOUND', details: { sessionId: id } });
      expect(r.res.body).not.toContain('private');
      const staff = await history(app, id, staffA);
      expect(staff).toMatchObject({ served: 'hit', bodies: ['private'] });
    }
    // the same refusal when the page was first cached by staff, and before anything is cached
    const other = await newSession(bobToken, ['bob only']);
    await history(t.app, other, staffA);
    expect((await history(t.app, other, aliceToken)).res.statusCode).toBe(404);
    const fresh = await newSession(bobToken, ['bob again']);
    expect((await history(app2, fresh, aliceToken)).res.statusCode).toBe(404);
    expect((await history(app2, fresh, bobToken)).bodies).toEqual(['bob again']);
  });

  it("another tenant's token gets 404 for a cached session id, even with the owner's subject", async () => {
    const id = await newSession(aliceToken, ['tenant A only']);
    await cacheOnBoth(id);
    const staffB = await t.tokenFor(b, { roles: ['owner'] });
    const aliceInB = await t.tokenFor(b, { sub: alice.id, roles: ['customer'] });
    for (const app of [t.app, app2])
      for (const token of [staffB, aliceInB]) {
        const r = await history(app, id, token);
        expect(r.res.statusCode).toBe(404);
        expect(r.res.body).not.toContain('tenant A only');
      }
    // and the key the cache uses carries the tenant
    expect(historyCacheKey(a.name, id, 20, '')).not.toBe(historyCacheKey(b.name, id, 20, ''));
  });
});

/** A TCP relay to the real Redis whose link can be cut (the Redis server itself stays up). */
async function redisLink() {
  const target = new URL(env('REDIS_URL'));
  const sockets = new Set<net.Socket>();
  let up = true;
  const server = net.createServer((client) => {
    if (!up) return void client.destroy();
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = new URL(env('REDIS_URL'));
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    cut() {
      up = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      up = true;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('history cache without Redis', () => {
  let link: Awaited<ReturnType<typeof redisLink>>;
  let app3: FastifyInstance;
  beforeAll(async () => {
    link = await redisLink();
    app3 = await buildApp({
      ...t.config,
      redisUrl: link.url,
      events: { ...t.config.events, relay: false, consumers: false },
    });
    await app3.ready();
  });
  afterAll(async () => {
    link?.restore();
    await app3?.close();
    await link?.close();
  });

  /** until app3 reaches Redis again */
  const reconnected = () =>
    expect
      .poll(async () => (await history(app3, randomUUID(), staffA)).served, {
        timeout: 30_000,
        interval: 200,
      })
      .not.toBe('bypass');

  it('answers from the database when Redis is unreachable, never from a page it cannot validate', async () => {
    const id = await newSession(aliceToken, ['before']);
    await history(app3, id, aliceToken);
    expect((await history(app3, id, aliceToken)).served).toBe('hit');
    link.cut();
    try {
      // written through an instance that reaches Redis: app3 can't see the new version…
      await call(t.app, 'POST', `/v1/sessions/${id}/messages`, aliceToken, { body: 'during the outage' });
      // …so it must not use its cached page at all
      const r = await history(app3, id, aliceToken);
      expect(r.res.statusCode).toBe(200);
      expect(r.served).toBe('bypass');
      expect(r.bodies).toEqual(['before', 'during the outage']);
      // the role and tenant checks hold on the database path too
      expect((await history(app3, id, bobToken)).res.statusCode).toBe(404);
      expect((await history(app3, id, await t.tokenFor(b, { roles: ['owner'] }))).res.statusCode).toBe(404);
      // a write through the cut-off instance succeeds; its version bump fails, and is counted
      const posted = await call(app3, 'POST', `/v1/sessions/${id}/messages`, aliceToken, {
        body: 'from app3',
      });
      expect(posted.statusCode, posted.body).toBe(201);
      const metrics = (await app3.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/^simptu_api_session_version_bump_failures_total(\{[^}]*\})? [1-9]/m);
      expect((await history(app3, id, aliceToken)).bodies).toEqual([
        'before',
        'during the outage',
        'from app3',
      ]);
    } finally {
      link.restore();
    }
    await reconnected();
    expect((await history(app3, id, aliceToken)).bodies).toEqual([
      'before',
      'during the outage',
      'from app3',
    ]);
  });

  it('drops its cached pages when its Redis connection comes back', async () => {
    await reconnected();
    const id = await newSession(aliceToken, ['one', 'two']);
    await history(app3, id, aliceToken);
    expect((await history(app3, id, aliceToken)).served).toBe('hit');
    // A change whose version bump never reached Redis (as a write during an outage whose writer
    // could not retry): here, a row deleted behind the API's back.
    await a.adminQuery(`DELETE FROM ${a.table('messages')} WHERE session_id = $1 AND seq = 2`, [id]);
    expect((await history(app3, id, aliceToken)).bodies).toEqual(['one', 'two']); // still cached
    link.cut();
    link.restore();
    await reconnected();
    const r = await history(app3, id, aliceToken);
    expect(r.served).toBe('miss');
    expect(r.bodies).toEqual(['one']);
  });
});

describe('HistoryCache', () => {
  it('is bounded by bytes, checks the version, and shares one load among concurrent misses', async () => {
    const cache = new HistoryCache({ maxBytes: 4096, ttlMs: 60_000 });
    const body = Buffer.alloc(1000, 'x');
    for (let i = 0; i < 10; i++) await cache.load(`k${i}`, 'v1', async () => ({ owner: null, body }));
    expect(cache.bytes).toBeLessThanOrEqual(4096);
    expect(cache.size).toBeLessThan(10);
    expect(cache.get('k9', 'v1')?.body).toBe(body); // the most recent stays
    expect(cache.get('k0', 'v1')).toBeUndefined(); // the oldest went
    expect(cache.get('k9', 'v2')).toBeUndefined(); // another version is a miss
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((r) => setImmediate(r));
      return { owner: 'o', body };
    };
    const pages = await Promise.all([cache.load('s', 'v', load), cache.load('s', 'v', load)]);
    expect(loads).toBe(1);
    expect(pages[0]).toBe(pages[1]);
    expect(await cache.load('gone', 'v', async () => null)).toBeNull();
    expect(cache.get('gone', 'v')).toBeUndefined(); // a missing session is not cached
    expect(new HistoryCache({ maxBytes: 0, ttlMs: 1 }).enabled).toBe(false);
  });
});
