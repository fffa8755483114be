/**
 * The API's Kafka consumers against real Postgres, Redis and Kafka:
 *   - cache invalidation by domain events: a booking written by ANOTHER service (the domain
 *     layer in the tenant's transaction + its outbox, relayed to `simptu.t.<name>.domain`, never
 *     through the API) changes the cached availability long before the availability TTL;
 *   - agent replies keep the agent's `message_id` as the stored message's id (the realtime hub
 *     pushes that id, the history must show the same), and a second event carrying an id that is
 *     already stored writes nothing.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createBooking,
  EventProducer,
  messageBodyLocation,
  newCloudEvent,
  OutboxRelay,
  toKafkaRecord,
} from '@simptu/common';
import { generationKey } from '../src/cache.ts';
import { handleDomainRecord } from '../src/consumers/domain-events.ts';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
let owner: string;
let customerToken: string;
let customerId: string;
let serviceId: string;
let producer: EventProducer | undefined;

async function inject(method: 'GET' | 'POST' | 'PUT', url: string, token: string, payload?: object) {
  return t.app.inject({ method, url, headers: t.auth(token), ...(payload ? { payload } : {}) });
}

beforeAll(async () => {
  t = await buildTestApp({
    tenants: [{ timezone: 'Europe/Bucharest' }, {}],
    // Long TTL: only an invalidation can make the cached availability change within the test.
    config: { cache: { availabilityTtlSec: 3600 }, events: { relay: false } },
  });
  [a, b] = t.tenants as [TestTenant, TestTenant];
  owner = await t.tokenFor(a, { roles: ['owner'] });
  customerId = (await t.createCustomer(a)).id;
  customerToken = await t.tokenFor(a, { sub: customerId, roles: ['customer'] });
  serviceId = (
    await inject('POST', '/v1/catalog/services', owner, {
      kind: 'treatment',
      name: 'Check-up',
      durationMinutes: 60,
      priceCents: 10000,
      currency: 'RON',
    })
  ).json().id;
  const chair = (
    await inject('POST', '/v1/catalog/resources', owner, { kind: 'chair', name: 'Chair 1' })
  ).json().id;
  await inject('PUT', `/v1/catalog/services/${serviceId}/resources`, owner, { resourceIds: [chair] });
  await inject('PUT', '/v1/catalog/opening-hours', owner, {
    hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '09:00', closes: '17:00' })),
  });
}, 120_000);

afterAll(async () => {
  await producer?.disconnect();
  await t?.cleanup();
});

describe('cache invalidation by domain events', () => {
  it('a booking written outside the API (domain layer + outbox relay) invalidates the cached availability', async () => {
    const url =
      '/v1/availability?' +
      new URLSearchParams({
        serviceId,
        from: '2031-06-02T00:00:00+03:00',
        to: '2031-06-03T00:00:00+03:00',
        stepMinutes: '60',
      }).toString();
    const starts = async () =>
      ((await inject('GET', url, customerToken)).json().slots as Array<{ start: string }>).map(
        (s) => s.start,
      );
    const slot = '2031-06-02T10:00:00+03:00';
    expect(await starts()).toContain(slot); // now cached for an hour

    // The agent's path: the domain layer in the tenant's transaction, the event in its outbox.
    await a.run((ctx) =>
      createBooking(
        { ...ctx, source: '/simptu/agent' },
        { customerId, serviceId, start: new Date(slot), source: 'web' },
      ),
    );
    // Still served from the cache: nothing has told the API yet (the app's relay is off here).
    expect(await starts()).toContain(slot);
    const generation = await t.app.redis.get(generationKey(a.name, 'availability'));

    // Another service's relay publishes the outbox row on simptu.t.<name>.domain.
    const pool = (await import('pg')).default;
    const agentPool = new pool.Pool({ connectionString: t.platform.appUrl, max: 1 });
    producer = new EventProducer({ kafka: t.app.events.kafka });
    const relay = new OutboxRelay({
      pool: agentPool,
      producer,
      ciphers: t.platform.keyrings,
      tenants: () => [a.ref],
    });
    try {
      await relay.relayAll();
    } finally {
      await agentPool.end();
    }

    await expect.poll(starts, { timeout: 45_000, interval: 300 }).not.toContain(slot);
    // …because the consumer bumped the tenant's availability generation (not the TTL).
    expect(Number(await t.app.redis.get(generationKey(a.name, 'availability')))).toBeGreaterThan(
      Number(generation ?? 0),
    );
    // The other tenant's cache was not touched.
    expect(await t.app.redis.get(generationKey(b.name, 'availability'))).toBeNull();
  });

  it('ignores other event types and refuses an event of another tenant on this tenant’s topic', async () => {
    const deps = { redis: t.app.redis };
    const record = (tenant: string, type: string) => {
      const r = toKafkaRecord(newCloudEvent({ type, source: '/test', tenant, data: {} }), 'k');
      return { key: Buffer.from(r.key), offset: '0', headers: r.headers, value: Buffer.from(r.value) };
    };
    const before = await t.app.redis.get(generationKey(b.name, 'availability'));
    expect(await handleDomainRecord(deps, b.topics.domain, record(b.name, 'io.simptu.session.created'))).toBe(
      'ignored',
    );
    expect(await handleDomainRecord(deps, b.topics.domain, record(a.name, 'io.simptu.booking.created'))).toBe(
      'rejected',
    );
    expect(
      await handleDomainRecord(deps, b.topics.domain, {
        key: null,
        offset: '1',
        headers: record(b.name, 'io.simptu.test.x').headers,
        value: Buffer.from('{'),
      }),
    ).toBe('rejected');
    expect(await t.app.redis.get(generationKey(b.name, 'availability'))).toBe(before);
    expect(
      await handleDomainRecord(deps, b.topics.domain, record(b.name, 'io.simptu.booking.cancelled')),
    ).toBe('invalidated');
    expect(Number(await t.app.redis.get(generationKey(b.name, 'availability')))).toBe(
      Number(before ?? 0) + 1,
    );
  });
});

describe('agent replies', () => {
  it("stores the agent's message under the agent's message_id, once", async () => {
    const s = (await inject('POST', '/v1/sessions', customerToken, {})).json();
    producer ??= new EventProducer({ kafka: t.app.events.kafka });
    const cipher = await a.cipher();
    const messageId = randomUUID();
    const reply = (id: string, body: string) =>
      newCloudEvent({
        type: 'io.simptu.agent.message',
        source: '/simptu/agent',
        tenant: a.name,
        subject: s.id,
        data: {
          session_id: s.id,
          message_id: id,
          body_enc: cipher.encryptText(body, messageBodyLocation(id)),
        },
      });
    await producer.send(a.topics.agent, reply(messageId, 'Hello from the agent'), s.id);
    // A different event (new event id) for the same message: must not store a second copy.
    await producer.send(a.topics.agent, reply(messageId, 'Hello from the agent'), s.id);
    const marker = randomUUID();
    await producer.send(a.topics.agent, reply(marker, 'marker'), s.id);
    const history = async () =>
      (await inject('GET', `/v1/sessions/${s.id}/messages`, customerToken)).json().items as Array<{
        id: string;
        role: string;
        body: string;
        seq: number;
      }>;
    await expect
      .poll(async () => (await history()).map((m) => m.id), { timeout: 45_000, interval: 300 })
      .toContain(marker);
    const items = await history();
    expect(items.map((m) => [m.id, m.role, m.body, m.seq])).toEqual([
      [messageId, 'assistant', 'Hello from the agent', 1],
      [marker, 'assistant', 'marker', 2],
    ]);
  });
});
