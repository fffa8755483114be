/**
 * Outbox → idempotent producer → Kafka → de-duplicating consumer, against the real Postgres and
 * Kafka of the test environment.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import kafkajs from 'kafkajs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/identifiers.ts';
import { withTenant, type TenantDbRef } from '../src/db/tenant-db.ts';
import { CommonErrors } from '../src/errors.ts';
import {
  CLOUDEVENTS_CONTENT_TYPE,
  fromKafkaRecord,
  newCloudEvent,
  TENANT_HEADER,
  type CloudEvent,
} from '../src/events/cloudevents.ts';
import { EventConsumer, type ProcessOutcome } from '../src/events/consumer.ts';
import {
  enqueue,
  OUTBOX_CHANNEL,
  OUTBOX_INSTANCE,
  OutboxRelay,
  type OutboxRelayOptions,
  outboxPayloadLocation,
} from '../src/events/outbox.ts';
import { createKafka, EventProducer } from '../src/events/producer.ts';
import { PLATFORM_TOPIC, tenantTopics } from '../src/names.ts';
import { uniqueName } from '../src/db/scratch.ts';
import { createTenantFixture, uniqueTenantName, type TenantFixture } from './tenant-fixture.ts';

let fx: TenantFixture;
let A: TenantDbRef;
let B: TenantDbRef;
/** direct publishing's tenant */
let C: TenantDbRef;
let producer: EventProducer;

beforeAll(async () => {
  fx = await createTenantFixture([uniqueTenantName('ev'), uniqueTenantName('ev'), uniqueTenantName('ev')]);
  [A, B, C] = fx.tenants as [TenantDbRef, TenantDbRef, TenantDbRef];
  producer = new EventProducer({ kafka: fx.kafka });
  // A table the consumers' handlers write to, so "applied once" is observable.
  for (const t of fx.tenants) {
    await fx.admin.query(
      `CREATE TABLE ${quoteIdent(t.schema)}.applied (event_id text NOT NULL, aggregate text NOT NULL, n int NOT NULL)`,
    );
    await fx.admin.query(`GRANT SELECT, INSERT ON ${quoteIdent(t.schema)}.applied TO ${quoteIdent(t.role)}`);
  }
});

afterAll(async () => {
  await producer?.disconnect();
  await fx?.close();
});

const source = '/simptu/test';

/** A relay over `tenant` with the fixture's pool, producer and keys; `o` sets the rest. */
const relayFor = (tenant: TenantDbRef, o: Partial<OutboxRelayOptions> = {}) =>
  new OutboxRelay({ pool: fx.app, producer, ciphers: fx.keyrings, tenants: () => [tenant], ...o });

async function enqueueBooking(t: TenantDbRef, aggregateId: string, n: number): Promise<CloudEvent> {
  const cipher = await fx.keyrings.cipher(t.name);
  return withTenant(fx.app, t, (c) =>
    enqueue(c, cipher, {
      type: 'io.simptu.booking.updated',
      source,
      aggregateType: 'booking',
      aggregateId,
      data: { n, phone: '+40700000000' },
    }),
  );
}

async function outboxRows(t: TenantDbRef) {
  const { rows } = await fx.admin.query<{
    id: string;
    published_at: Date | null;
    attempts: number;
    last_error: string | null;
    payload: Buffer;
  }>(
    `SELECT id, published_at, attempts, last_error, payload FROM ${quoteIdent(t.schema)}.outbox ORDER BY seq`,
  );
  return rows;
}

/**
 * A row another process enqueued (the row `enqueue` writes, inserted by the admin: no
 * notification), optionally claimed by that process for `claimMs`.
 */
async function insertForeignRow(
  t: TenantDbRef,
  aggregateId: string,
  n: number,
  claimMs?: number,
): Promise<CloudEvent> {
  const cipher = await fx.keyrings.cipher(t.name);
  const event = newCloudEvent({
    id: randomUUID(),
    type: 'io.simptu.booking.updated',
    source,
    tenant: t.name,
    data: { n },
  });
  await fx.admin.query(
    `INSERT INTO ${quoteIdent(t.schema)}.outbox
       (id, aggregate_type, aggregate_id, event_type, payload, headers, claimed_by, claimed_until)
     VALUES ($1, 'booking', $2, $3, $4, $5, $6, clock_timestamp() + $7 * interval '1 millisecond')`,
    [
      event.id,
      aggregateId,
      event.type,
      cipher.encrypt(JSON.stringify(event), outboxPayloadLocation(event.id)),
      { topic: tenantTopics(t.name).domain },
      claimMs === undefined ? null : 'feedfacecafe',
      claimMs ?? null,
    ],
  );
  return event;
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Counts what the consumer did with each record. */
class CountingConsumer extends EventConsumer {
  readonly outcomes: ProcessOutcome[] = [];
  override async process(...args: Parameters<EventConsumer['process']>): Promise<ProcessOutcome> {
    const o = await super.process(...args);
    this.outcomes.push(o);
    return o;
  }
}

function applyingConsumer(groupId: string, topics: string[]) {
  return new CountingConsumer({
    kafka: fx.kafka,
    groupId,
    topics,
    fromBeginning: true,
    pool: fx.app,
    handler: async (event, { client, key }) => {
      await client.query('INSERT INTO applied (event_id, aggregate, n) VALUES ($1, $2, $3)', [
        event.id,
        key,
        (event.data as { n: number }).n,
      ]);
    },
  });
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('EventProducer tenant binding', () => {
  it('refuses to cross tenants at the Kafka hop, before sending anything', async () => {
    const a = (data: unknown = {}) =>
      newCloudEvent({ type: 'io.simptu.booking.created', source, tenant: A.name, data });
    const bToA = newCloudEvent({ type: 'io.simptu.booking.created', source, tenant: B.name, data: {} });
    const boundA = new EventProducer({ kafka: fx.kafka, tenant: A.name });
    const refused = async (p: Promise<unknown>) => {
      await expect(p).rejects.toBeInstanceOf(CommonErrors.TOPIC_TENANT_MISMATCH);
    };
    await refused(boundA.send(tenantTopics(B.name).domain, a(), 'k')); // A's event to B's topic
    await refused(boundA.send(tenantTopics(B.name).domain, bToA, 'k')); // B's event through A's producer
    await refused(boundA.send(tenantTopics(A.name).domain, bToA, 'k')); // … even to A's topic
    await refused(boundA.send(PLATFORM_TOPIC, a(), 'k'));
    await refused(producer.send(tenantTopics(B.name).domain, a(), 'k')); // unbound: topic must match event
    await refused(producer.send('some.other.topic', a(), 'k'));
    await refused(producer.forTenant(A.name).send(tenantTopics(A.name).domain, bToA, 'k'));
    // one bad event refuses the whole batch
    await refused(
      producer.sendBatch([
        { topic: tenantTopics(A.name).domain, event: a(), key: 'k' },
        { topic: tenantTopics(A.name).domain, event: bToA, key: 'k' },
      ]),
    );
    expect(boundA.connected).toBe(false); // nothing was even connected
    expect(() => boundA.forTenant(B.name)).toThrow(CommonErrors.TOPIC_TENANT_MISMATCH);
    const ok = await boundA.send(tenantTopics(A.name).inbound, a(), 'k');
    expect(ok[0]?.errorCode).toBe(0);
    await boundA.disconnect();
  });
});

describe('outbox', () => {
  it('stores the event encrypted, bound to its row, only with the transaction, only in its own tenant', async () => {
    const cipherA = await fx.keyrings.cipher(A.name);
    const ev = await enqueueBooking(A, 'enc-1', 1);
    const rows = await outboxRows(A);
    const row = rows.find((r) => r.id === ev.id)!;
    expect(row.payload.toString('latin1')).not.toContain('+40700000000');
    expect(
      JSON.parse(cipherA.decryptString(row.payload, { table: 'outbox', column: 'payload', rowId: row.id })),
    ).toEqual(ev);
    expect(() =>
      cipherA.decrypt(row.payload, {
        table: 'outbox',
        column: 'payload',
        rowId: rows[0]!.id === row.id ? 'x' : rows[0]!.id,
      }),
    ).toThrow();

    // rolled back with the business write
    await expect(
      withTenant(fx.app, A, async (c) => {
        await enqueue(c, cipherA, {
          type: 'io.simptu.booking.created',
          source,
          aggregateType: 'booking',
          aggregateId: 'rb',
          data: {},
        });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    // A's cipher inside B's transaction: refused
    await expect(
      withTenant(fx.app, B, (c) =>
        enqueue(c, cipherA, {
          type: 'io.simptu.booking.created',
          source,
          aggregateType: 'booking',
          aggregateId: 'x',
          data: {},
        }),
      ),
    ).rejects.toBeInstanceOf(CommonErrors.TENANT_CONTEXT_MISSING);
    // to another tenant's topic: refused
    await expect(
      withTenant(fx.app, A, (c) =>
        enqueue(c, cipherA, {
          type: 'io.simptu.booking.created',
          source,
          aggregateType: 'booking',
          aggregateId: 'x',
          data: {},
          topic: tenantTopics(B.name).domain,
        }),
      ),
    ).rejects.toBeInstanceOf(CommonErrors.TOPIC_TENANT_MISMATCH);
    expect((await outboxRows(A)).map((r) => r.id)).toEqual(rows.map((r) => r.id));
    expect(await outboxRows(B)).toEqual([]);
  });

  it('survives Kafka being down, then delivers in order per key, exactly once to a de-duplicating consumer', async () => {
    // Tenant B: a clean outbox for this flow.
    const deadKafka = createKafka({
      clientId: 'dead',
      brokers: [`127.0.0.1:${await closedPort()}`],
      connectionTimeout: 300,
      config: { retry: { retries: 0 } },
    });
    const dead = new EventProducer({ kafka: deadKafka, retries: 1 });
    const deadRelay = relayFor(B, {
      producer: dead,
      listen: false,
      pollIntervalMs: 20,
      backoffMs: { initial: 400, max: 5000 },
    });

    const expected = new Map<string, number[]>();
    for (let n = 1; n <= 12; n++) {
      const key = `booking-${n % 3}`;
      await enqueueBooking(B, key, n);
      expected.set(key, [...(expected.get(key) ?? []), n]);
    }
    const down = await deadRelay.relayTenant(B);
    expect(down).toMatchObject({ published: 0, failed: 12 });
    let rows = await outboxRows(B);
    expect(rows.every((r) => r.published_at === null && r.attempts === 1)).toBe(true);
    expect(rows[0]!.last_error).toMatch(/connect|ECONNREFUSED/i);
    // Running against the dead broker it backs off (≈ 0.4 s, 0.8 s, …) instead of spinning every 20 ms.
    deadRelay.start();
    await new Promise((r) => setTimeout(r, 1500));
    await deadRelay.stop();
    rows = await outboxRows(B);
    expect(rows.every((r) => r.published_at === null)).toBe(true);
    expect(rows[0]!.attempts).toBeGreaterThanOrEqual(2);
    expect(rows[0]!.attempts).toBeLessThanOrEqual(5);

    // Kafka is back (the relay now reaches the real broker).
    const relay = relayFor(B, {
      listen: false,
      batchSize: 5,
    });
    let published = 0;
    for (;;) {
      const r = await relay.relayTenant(B);
      published += r.published;
      if (!r.more) break;
    }
    expect(published).toBe(12);
    rows = await outboxRows(B);
    expect(rows.every((r) => r.published_at !== null && r.last_error === null)).toBe(true);

    // A crash after publishing but before marking: the relay publishes the first 5 again.
    await fx.admin.query(
      `UPDATE ${quoteIdent(B.schema)}.outbox SET published_at = NULL WHERE id = ANY($1::uuid[])`,
      [rows.slice(0, 5).map((r) => r.id)],
    );
    expect((await relay.relayTenant(B)).published).toBe(5);

    const consumer = applyingConsumer(uniqueName('g'), [tenantTopics(B.name).domain]);
    await consumer.start();
    try {
      await until('17 records consumed', async () => consumer.outcomes.length >= 17);
      expect(consumer.outcomes.filter((o) => o === 'applied')).toHaveLength(12);
      expect(consumer.outcomes.filter((o) => o === 'duplicate')).toHaveLength(5);
    } finally {
      await consumer.stop();
    }
    const { rows: applied } = await fx.admin.query<{ aggregate: string; n: number }>(
      `SELECT aggregate, n FROM ${quoteIdent(B.schema)}.applied ORDER BY ctid`,
    );
    expect(applied).toHaveLength(12);
    const byKey = new Map<string, number[]>();
    for (const r of applied) byKey.set(r.aggregate, [...(byKey.get(r.aggregate) ?? []), r.n]);
    expect(byKey).toEqual(expected); // order per key preserved
    await dead.disconnect();
  });

  it('withCommit: the row is written with COMMIT (not before), only in its own tenant', async () => {
    const cipher = await fx.keyrings.cipher(A.name);
    const input = {
      type: 'io.simptu.booking.updated',
      source,
      aggregateType: 'booking',
      aggregateId: 'with-commit',
      data: { n: 1 },
    };
    const ev = await withTenant(fx.app, A, async (c) => {
      const e = await enqueue(c, cipher, input, { withCommit: true });
      const { rows } = await c.query(`SELECT count(*)::int AS n FROM outbox WHERE id = $1`, [e.id]);
      expect(rows[0].n).toBe(0); // not yet
      return e;
    });
    const row = (await outboxRows(A)).find((r) => r.id === ev.id);
    expect(row).toBeDefined();
    expect(JSON.parse(cipher.decryptString(row!.payload, outboxPayloadLocation(ev.id)))).toEqual(ev);
    // Another tenant's transaction, or none: refused before anything is queued.
    const err = await withTenant(fx.app, B, (c) => enqueue(c, cipher, input, { withCommit: true })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CommonErrors.TENANT_CONTEXT_MISSING);
    const plain = await fx.app.connect();
    try {
      await expect(enqueue(plain, cipher, input, { withCommit: true })).rejects.toBeInstanceOf(
        CommonErrors.TENANT_CONTEXT_MISSING,
      );
    } finally {
      plain.release();
    }
  });

  it('relays a batch in two round trips, and takes nothing while another relay holds the tenant', async () => {
    for (let i = 0; i < 3; i++) await enqueueBooking(A, 'two-round-trips', i);
    // What each connection the relay takes is asked to run (first word of each query).
    const sent: string[] = [];
    const pool = new Proxy(fx.app, {
      get(target, prop, receiver) {
        if (prop !== 'connect') return Reflect.get(target, prop, receiver) as unknown;
        return async () => {
          const c = await target.connect();
          const query = c.query;
          const release = c.release;
          (c as unknown as { query: unknown }).query = (...a: unknown[]) => {
            const text = typeof a[0] === 'string' ? a[0] : String((a[0] as { text?: string }).text);
            sent.push(text.trim());
            return (query as (...x: unknown[]) => unknown).apply(c, a);
          };
          c.release = (err?: Error | boolean) => {
            c.query = query;
            c.release = release;
            return release.call(c, err);
          };
          return c;
        };
      },
    });
    const relay = relayFor(A, {
      pool,
      listen: false,
    });
    const holder = await fx.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock(hashtext('simptu.outbox'), hashtext($1))`, [A.schema]);
      expect(await relay.relayTenant(A)).toMatchObject({ locked: true, published: 0 });
      expect((await outboxRows(A)).some((r) => r.published_at === null)).toBe(true);
    } finally {
      await holder.query('COMMIT');
      holder.release();
    }
    sent.length = 0;
    const r = await relay.relayTenant(A);
    expect(r.locked).toBe(false);
    expect(r.published).toBeGreaterThanOrEqual(3);
    expect((await outboxRows(A)).every((row) => row.published_at !== null)).toBe(true);
    // (1) preamble + relay lock + batch, (2) marking them published + COMMIT
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatch(/^BEGIN; SET LOCAL ROLE .*pg_try_advisory_xact_lock.*FOR UPDATE SKIP LOCKED$/s);
    expect(sent[1]).toMatch(/^UPDATE outbox SET published_at = now\(\).*;\nCOMMIT$/s);
  });

  it("acts at once only on its own process's notifications; another's rows wait for a periodic pass", async () => {
    const relay = relayFor(B, {
      pollIntervalMs: 120_000, // no periodic pass during the test after the first
    });
    relay.start();
    try {
      await until('backlog relayed', async () => (await outboxRows(B)).every((r) => r.published_at !== null));
      await new Promise((r) => setTimeout(r, 300)); // LISTEN is established
      // Another process enqueues: the same row enqueue() writes, its own origin in the notification.
      const foreign = await insertForeignRow(B, 'foreign-1', 1);
      expect(OUTBOX_INSTANCE).toMatch(/^[0-9a-f]{12}$/);
      await fx.admin.query(`SELECT pg_notify($1, $2)`, [OUTBOX_CHANNEL, `${B.name} 0123456789ab`]);
      await new Promise((r) => setTimeout(r, 1500));
      // not this relay's to publish promptly
      expect((await outboxRows(B)).find((r) => r.id === foreign.id)?.published_at).toBeNull();
      // This process enqueues: its relay wakes and publishes the tenant's pending rows, both.
      const own = await enqueueBooking(B, 'own-1', 2);
      await until('own row published', async () => {
        const rows = await outboxRows(B);
        return [foreign.id, own.id].every((id) => rows.find((r) => r.id === id)?.published_at) || undefined;
      });
    } finally {
      await relay.stop();
    }
  });

  it('the running relay is woken by NOTIFY and recovers from dropped Postgres connections', async () => {
    // Poll interval far beyond the test: only NOTIFY can make it prompt.
    const relay = relayFor(A, {
      pollIntervalMs: 120_000,
      backoffMs: { initial: 100, max: 1000 },
    });
    relay.start();
    try {
      // The first full pass publishes what earlier tests left.
      await until('backlog relayed', async () => (await outboxRows(A)).every((r) => r.published_at !== null));
      await new Promise((r) => setTimeout(r, 300)); // LISTEN is established
      const ev = await enqueueBooking(A, 'live-1', 1);
      const started = Date.now();
      await until(
        'prompt publish',
        async () => (await outboxRows(A)).find((r) => r.id === ev.id)?.published_at,
      );
      expect(Date.now() - started).toBeLessThan(5000);

      // Postgres drops every connection of the services' login role (a restart, a failover).
      const login = new URL(fx.app.options.connectionString!).username;
      const killed = await fx.admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND datname = current_database()`,
        [login],
      );
      expect(killed.rowCount).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 1000)); // the relay re-LISTENs after its backoff
      const ev2 = await enqueueBooking(A, 'live-2', 2);
      await until(
        'publish after reconnect',
        async () => (await outboxRows(A)).find((r) => r.id === ev2.id)?.published_at,
        10_000,
      );
    } finally {
      await relay.stop();
    }
  });
});

describe('outbox: direct publishing', () => {
  /** C's domain topic as a consumer sees it, in order */
  const seen: Array<{ key: string; n: number; id: string }> = [];
  let watcher: kafkajs.Consumer;
  /** C's outbox notifications */
  const notes: string[] = [];
  let listener: pg.PoolClient;

  beforeAll(async () => {
    watcher = fx.kafka.consumer({ groupId: uniqueName('watch'), maxWaitTimeInMs: 100 });
    await watcher.connect();
    await watcher.subscribe({ topics: [tenantTopics(C.name).domain], fromBeginning: true });
    await watcher.run({
      eachMessage: async ({ message }) => {
        const d = fromKafkaRecord(message);
        if (d.ok)
          seen.push({
            key: message.key?.toString() ?? '',
            n: (d.event.data as { n: number }).n,
            id: d.event.id,
          });
      },
    });
    listener = await fx.admin.connect();
    listener.on('notification', (n) => {
      if (n.payload === C.name || n.payload?.startsWith(`${C.name} `)) notes.push(n.payload);
    });
    await listener.query(`LISTEN ${OUTBOX_CHANNEL}`);
  });
  afterAll(async () => {
    await watcher?.disconnect();
    listener?.release(true);
  });

  const claims = async () => {
    const { rows } = await fx.admin.query<{
      id: string;
      aggregate_id: string;
      claimed_by: string | null;
      claimed_until: Date | null;
      published_at: Date | null;
      attempts: number;
      last_error: string | null;
    }>(
      `SELECT id, aggregate_id, claimed_by, claimed_until, published_at, attempts, last_error
         FROM ${quoteIdent(C.schema)}.outbox ORDER BY seq`,
    );
    return new Map(rows.map((r) => [r.id, r]));
  };
  const ns = (key: string) => seen.filter((e) => e.key === key).map((e) => e.n);
  const enqueueWithCommit = async (t: TenantDbRef, aggregateId: string, n: number) => {
    const cipher = await fx.keyrings.cipher(t.name);
    return withTenant(fx.app, t, async (c) =>
      enqueue(
        c,
        cipher,
        { type: 'io.simptu.booking.updated', source, aggregateType: 'booking', aggregateId, data: { n } },
        { withCommit: true },
      ),
    );
  };

  it('publishes each row from its own process right after COMMIT (no NOTIFY, no relay pass), in order; marks them in batches', async () => {
    // No LISTEN and no periodic pass during the test: only direct publishing can be prompt.
    const relay = relayFor(C, { direct: { markIntervalMs: 60_000 }, listen: false, pollIntervalMs: 120_000 });
    relay.start();
    let stopped = false;
    try {
      const before = notes.length;
      const e1 = await enqueueBooking(C, 'direct-1', 1); // parameterized insert
      const e2 = await enqueueWithCommit(C, 'direct-1', 2); // inserted with COMMIT
      const e3 = await enqueueBooking(C, 'direct-2', 3);
      const cipher = await fx.keyrings.cipher(C.name);
      await expect(
        withTenant(fx.app, C, async (c) => {
          await enqueue(c, cipher, {
            type: 'io.simptu.booking.updated',
            source,
            aggregateType: 'booking',
            aggregateId: 'direct-1',
            data: { n: 99 },
          });
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      const e4 = await enqueueWithCommit(C, 'direct-1', 4);
      await until('all four on Kafka', async () =>
        [e1, e2, e3, e4].every((e) => seen.some((s) => s.id === e.id)),
      );
      expect(ns('direct-1')).toEqual([1, 2, 4]);
      expect(ns('direct-2')).toEqual([3]);
      expect(notes.length).toBe(before); // nobody was woken
      let rows = await claims();
      for (const e of [e1, e2, e3, e4]) {
        expect(rows.get(e.id)).toMatchObject({ claimed_by: OUTBOX_INSTANCE, published_at: null });
        expect(rows.get(e.id)!.claimed_until!.getTime()).toBeGreaterThan(Date.now());
      }
      // Sent, not yet marked: another relay leaves them alone (they are claimed).
      expect(await relayFor(C, { listen: false }).relayTenant(C)).toMatchObject({ published: 0 });
      // Stopping marks everything sent, before it resolves.
      await relay.stop();
      stopped = true;
      rows = await claims();
      for (const e of [e1, e2, e3, e4]) expect(rows.get(e.id)?.published_at).not.toBeNull();
      // Stopped: rows enqueued now are left to the relays again (unclaimed, with a wake-up).
      const e5 = await enqueueBooking(C, 'direct-2', 5);
      expect((await claims()).get(e5.id)).toMatchObject({ claimed_by: null, claimed_until: null });
      await until('a notification', async () => notes.length > before);
      expect(notes.at(-1)).toBe(`${C.name} ${OUTBOX_INSTANCE}`);
      expect(await relayFor(C, { listen: false }).relayTenant(C)).toMatchObject({ published: 1 });
      await until('e5 on Kafka', async () => seen.some((s) => s.id === e5.id));
      expect(seen.filter((s) => [e1, e2, e3, e4, e5].some((e) => e.id === s.id))).toHaveLength(5); // once each
    } finally {
      if (!stopped) await relay.stop();
    }
  });

  it("leaves another process's live claim, and the later rows of its key, to that process until the lease runs out", async () => {
    const relay = relayFor(C, { direct: { markIntervalMs: 20 }, listen: false, pollIntervalMs: 120_000 });
    relay.start();
    try {
      // A process that claimed a row and died before sending it.
      const orphan = await insertForeignRow(C, 'claimed-1', 1, 1500);
      const before = notes.length;
      // This process: the same key is not claimed (it would overtake the orphan) and goes to the
      // relays with a wake-up; another key is claimed and sent at once.
      const later = await enqueueBooking(C, 'claimed-1', 2);
      const other = await enqueueBooking(C, 'claimed-2', 3);
      let rows = await claims();
      expect(rows.get(later.id)).toMatchObject({ claimed_by: null, claimed_until: null });
      expect(rows.get(other.id)).toMatchObject({ claimed_by: OUTBOX_INSTANCE });
      await until('the wake-up', async () => notes.length > before);
      await until('the other key on Kafka', async () => seen.some((s) => s.id === other.id));
      await until('the other key marked', async () => (await claims()).get(other.id)?.published_at);
      // A relay pass now publishes nothing of that key: the orphan's lease is live, `later` waits.
      const peer = relayFor(C, { listen: false });
      expect(await peer.relayTenant(C)).toMatchObject({ published: 0, failed: 0 });
      rows = await claims();
      expect([rows.get(orphan.id)?.published_at, rows.get(later.id)?.published_at]).toEqual([null, null]);
      // The lease runs out: the next pass publishes both, in order.
      await until(
        'the lease ran out',
        async () => (await claims()).get(orphan.id)!.claimed_until! < new Date(),
      );
      expect(await peer.relayTenant(C)).toMatchObject({ published: 2 });
      await until('both on Kafka', async () => ns('claimed-1').length === 2);
      expect(ns('claimed-1')).toEqual([1, 2]);
    } finally {
      await relay.stop();
    }
  });

  it('wakes the relays when a row that waited behind its claim can go, instead of the next periodic pass', async () => {
    // Listening, no periodic pass during the test.
    const relay = relayFor(C, { direct: { markIntervalMs: 3000 }, pollIntervalMs: 120_000 });
    relay.start();
    try {
      await new Promise((r) => setTimeout(r, 300)); // LISTEN is established
      const first = await enqueueBooking(C, 'waits-1', 1); // claimed, sent, marked 3 s later
      // Another process enqueues on the same key meanwhile (no claim of its own, no wake-up here).
      const next = await insertForeignRow(C, 'waits-1', 2);
      const before = notes.length;
      // Marking the first row wakes every relay (no origin); this one publishes the waiting row.
      await until(
        'the waiting row published',
        async () => (await claims()).get(next.id)?.published_at,
        15_000,
      );
      expect(notes.slice(before)).toContain(C.name);
      await until('both on Kafka', async () => ns('waits-1').length === 2);
      expect(ns('waits-1')).toEqual([1, 2]);
      expect((await claims()).get(first.id)?.claimed_by).toBe(OUTBOX_INSTANCE);
    } finally {
      await relay.stop();
    }
  });

  it('a failed send hands the rows back to the relays; for a lease the tenant goes through them; order holds', async () => {
    const deadKafka = createKafka({
      clientId: 'dead-direct',
      brokers: [`127.0.0.1:${await closedPort()}`],
      connectionTimeout: 300,
      config: { retry: { retries: 0 } },
    });
    const dead = new EventProducer({ kafka: deadKafka, retries: 1 });
    const relay = relayFor(C, {
      producer: dead,
      direct: { leaseMs: 60_000 },
      listen: false,
      pollIntervalMs: 120_000,
    });
    relay.start();
    try {
      expect(relay.claimLeaseMs(C.name)).toBe(60_000);
      // One transaction: both claimed, both handed over at COMMIT, both refused by the broker.
      const cipher = await fx.keyrings.cipher(C.name);
      const input = (n: number) => ({
        type: 'io.simptu.booking.updated',
        source,
        aggregateType: 'booking',
        aggregateId: 'failed-1',
        data: { n },
      });
      const [e1, e2] = await withTenant(fx.app, C, async (c) => [
        await enqueue(c, cipher, input(1)),
        await enqueue(c, cipher, input(2), { withCommit: true }),
      ]);
      await until('both released', async () => {
        const rows = await claims();
        return [e1, e2].every((e) => rows.get(e.id)?.last_error && rows.get(e.id)?.claimed_until === null);
      });
      const rows = await claims();
      for (const e of [e1, e2])
        expect(rows.get(e.id)).toMatchObject({ claimed_by: null, published_at: null, attempts: 1 });
      // Within the lease after the failure nothing is claimed: the relay's backoff applies.
      expect(relay.claimLeaseMs(C.name)).toBeUndefined();
      const e3 = await enqueueBooking(C, 'failed-1', 3);
      expect((await claims()).get(e3.id)).toMatchObject({ claimed_by: null });
      // Kafka is back (a relay reaching the real broker): everything, in order.
      expect(await relayFor(C, { listen: false }).relayTenant(C)).toMatchObject({ published: 3 });
      await until('all three on Kafka', async () => ns('failed-1').length === 3);
      expect(ns('failed-1')).toEqual([1, 2, 3]);
    } finally {
      await relay.stop();
      await dead.disconnect();
    }
  });
});

describe('EventConsumer', () => {
  const consumer = () =>
    new EventConsumer({
      kafka: fx.kafka,
      groupId: 'unused',
      topics: [],
      pool: fx.app,
      handler: async (event, { client }) => {
        await client.query('INSERT INTO applied (event_id, aggregate, n) VALUES ($1, $2, $3)', [
          event.id,
          'direct',
          0,
        ]);
      },
    });
  const record = (event: CloudEvent, headers: Record<string, string> = {}, offset = '0') => ({
    key: Buffer.from('k'),
    value: Buffer.from(JSON.stringify(event)),
    headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE, ...headers },
    offset,
  });
  const appliedCount = async (t: TenantDbRef, id: string) =>
    (
      await fx.admin.query(
        `SELECT count(*)::int AS n FROM ${quoteIdent(t.schema)}.applied WHERE event_id = $1`,
        [id],
      )
    ).rows[0].n as number;

  it('applies an event once, in its tenant, and rejects cross-tenant and undecodable records', async () => {
    const c = consumer();
    const ev = newCloudEvent({ type: 'io.simptu.booking.created', source, tenant: A.name, data: {} });
    expect(await c.process(tenantTopics(A.name).domain, 0, record(ev))).toBe('applied');
    expect(await c.process(tenantTopics(A.name).domain, 0, record(ev))).toBe('duplicate');
    expect(await appliedCount(A, ev.id)).toBe(1);

    // A's event on B's topic, or a header that lies: never handled.
    expect(await c.process(tenantTopics(B.name).domain, 0, record(ev))).toBe('rejected');
    expect(await c.process(tenantTopics(A.name).domain, 0, record(ev, { [TENANT_HEADER]: B.name }))).toBe(
      'rejected',
    );
    expect(await c.process(tenantTopics(A.name).domain, 0, { ...record(ev), value: Buffer.from('{') })).toBe(
      'rejected',
    );
    expect(await c.process(PLATFORM_TOPIC, 0, record(ev))).toBe('rejected');
    expect(await appliedCount(B, ev.id)).toBe(0);
  });

  it('rolls back the processed marker with a failing handler, so a retry applies it', async () => {
    let fail = true;
    const c = new EventConsumer({
      kafka: fx.kafka,
      groupId: 'unused',
      topics: [],
      pool: fx.app,
      handler: async (event, { client }) => {
        await client.query('INSERT INTO applied (event_id, aggregate, n) VALUES ($1, $2, $3)', [
          event.id,
          'retry',
          0,
        ]);
        if (fail) throw new Error('transient');
      },
    });
    const ev = newCloudEvent({ type: 'io.simptu.booking.created', source, tenant: A.name, data: {} });
    await expect(c.process(tenantTopics(A.name).domain, 0, record(ev))).rejects.toThrow('transient');
    expect(await appliedCount(A, ev.id)).toBe(0);
    fail = false;
    expect(await c.process(tenantTopics(A.name).domain, 0, record(ev))).toBe('applied');
    expect(await appliedCount(A, ev.id)).toBe(1);
  });

  it('markInHandler: the handler writes the marker (inlined in its own round trip or not), once', async () => {
    const sent: string[] = [];
    let forget = false;
    const c = new EventConsumer({
      kafka: fx.kafka,
      groupId: 'unused',
      consumerName: 'marker-test',
      topics: [],
      pool: fx.app,
      markInHandler: true,
      handler: async (event, { client, marker }) => {
        if (forget) return;
        if (marker!.inlineSql) {
          // The marker and the handler's first statement in one simple-protocol round trip.
          sent.push('inline');
          const [r] = (await client.query(`${marker!.inlineSql}; SELECT 1`)) as unknown as Array<{
            rowCount: number;
          }>;
          marker!.written(r!.rowCount !== 0);
          if (r!.rowCount === 0) return;
        } else {
          sent.push('write');
          if (!(await marker!.write())) return;
        }
        await client.query('INSERT INTO applied (event_id, aggregate, n) VALUES ($1, $2, $3)', [
          event.id,
          'marker',
          0,
        ]);
      },
    });
    const topic = tenantTopics(A.name).domain;
    const uuid = newCloudEvent({ type: 'io.simptu.booking.created', source, tenant: A.name, data: {} });
    expect(await c.process(topic, 0, record(uuid))).toBe('applied');
    expect(await c.process(topic, 0, record(uuid))).toBe('duplicate');
    // Not a UUID (or one with a quote in it): never inlined, written as a parameter.
    const other = { ...uuid, id: `x'); DROP TABLE applied; --` };
    expect(await c.process(topic, 0, record(other))).toBe('applied');
    expect(await c.process(topic, 0, record(other))).toBe('duplicate');
    expect(sent).toEqual(['inline', 'inline', 'write', 'write']);
    expect(await appliedCount(A, uuid.id)).toBe(1);
    expect(await appliedCount(A, other.id)).toBe(1);
    const { rows } = await fx.admin.query(
      `SELECT event_id FROM ${quoteIdent(A.schema)}.processed_events WHERE consumer = 'marker-test' ORDER BY event_id`,
    );
    expect(rows.map((r: { event_id: string }) => r.event_id).sort()).toEqual([uuid.id, other.id].sort());

    // A handler that returns without writing it fails the record (rolled back, retried).
    forget = true;
    const third = newCloudEvent({ type: 'io.simptu.booking.created', source, tenant: A.name, data: {} });
    await expect(c.process(topic, 0, record(third))).rejects.toThrow(/did not write the processed marker/);
  });

  it('over Kafka: a record forged onto a tenant topic with another tenant inside is skipped, later ones still flow', async () => {
    // A raw producer, bypassing our checks, writes B's event onto A's inbound topic. (The topic
    // already holds the record sent by the binding test above, with data {}.)
    const raw = fx.kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
    await raw.connect();
    const forged = newCloudEvent({
      type: 'io.simptu.message.received',
      source,
      tenant: B.name,
      data: { n: 0 },
    });
    const good = newCloudEvent({
      type: 'io.simptu.message.received',
      source,
      tenant: A.name,
      data: { n: 7 },
    });
    const topic = tenantTopics(A.name).inbound;
    await raw.send({
      topic,
      messages: [0, 1].map((i) => ({
        key: 'conv-1',
        value: JSON.stringify(i === 0 ? forged : good),
        headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE },
      })),
    });
    await raw.disconnect();
    const rejected: string[] = [];
    const c = new EventConsumer({
      kafka: fx.kafka,
      groupId: uniqueName('g'),
      topics: [topic],
      fromBeginning: true,
      pool: fx.app,
      onRejected: (r) => rejected.push(r.reason),
      handler: async (event, { client }) => {
        await client.query('INSERT INTO applied (event_id, aggregate, n) VALUES ($1, $2, $3)', [
          event.id,
          'kafka',
          (event.data as { n?: number }).n ?? -1,
        ]);
      },
    });
    await c.start();
    try {
      await until('good event applied', async () => (await appliedCount(A, good.id)) === 1);
      expect(rejected.some((r) => r.includes(`tenant ${B.name}`))).toBe(true);
      expect(await appliedCount(B, forged.id)).toBe(0);
      expect(await appliedCount(A, forged.id)).toBe(0);
    } finally {
      await c.stop();
    }
  });
});
