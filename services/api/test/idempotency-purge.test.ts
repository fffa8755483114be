/**
 * The retention purge of `idempotency_keys` (plugins/idempotency-purge.ts) against real
 * Postgres: rows older than the retention go, newer ones stay, in every active tenant, in
 * batches; a purged key runs its request again; the metrics count it; two instances don't
 * both work on one tenant at once; and the timer runs the job by itself.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '@simptu/common';
import { buildApp } from '../src/app.ts';
import { purgeIdempotencyKeys } from '../src/idempotency.ts';
import { buildTestApp, type TestApp, type TestTenant } from './support/index.ts';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;

beforeAll(async () => {
  t = await buildTestApp({ tenants: [{}, {}], waitForEvents: false });
  [a, b] = t.tenants as [TestTenant, TestTenant];
});
afterAll(async () => {
  await t?.cleanup();
});

/** Inserts `n` rows aged `hours`, directly (superuser): what the table holds after that long. */
async function seed(tenant: TestTenant, n: number, hours: number): Promise<void> {
  await tenant.adminQuery(
    `INSERT INTO ${tenant.table('idempotency_keys')} (key, principal, request_hash, status_code, response, created_at)
     SELECT 'k-' || gen_random_uuid(), 'p-' || g, 'h', 201, '{"ciphertext":"x"}', now() - make_interval(hours => $2)
       FROM generate_series(1, $1) g`,
    [n, hours],
  );
}

const count = async (tenant: TestTenant, olderThanHours = 0) =>
  Number(
    (
      await tenant.adminQuery<{ n: string }>(
        `SELECT count(*) AS n FROM ${tenant.table('idempotency_keys')} WHERE created_at < now() - make_interval(hours => $1)`,
        [olderThanHours],
      )
    ).rows[0]!.n,
  );

const metric = async (app: FastifyInstance, re: RegExp) =>
  Number(re.exec((await app.inject({ method: 'GET', url: '/metrics' })).body)?.[1] ?? 0);
const PURGED = /^simptu_api_idempotency_keys_purged_total(?:\{[^}]*\})? (\d+)/m;
const RUNS_OK = /^simptu_api_idempotency_purge_runs_total\{[^}]*outcome="ok"[^}]*\} (\d+)/m;

describe('idempotency key purge', () => {
  it('deletes the rows older than the retention in every active tenant, in batches, and counts them', async () => {
    await seed(a, 5_100, 48); // more than one batch (5000)
    await seed(a, 3, 1);
    await seed(b, 2, 30);
    await seed(b, 4, 23);
    const purgedBefore = await metric(t.app, PURGED);
    const run = await t.app.idempotencyPurge.runNow();
    expect(run).toMatchObject({ deleted: 5_102, failed: 0, skipped: 0 });
    expect(run.tenants).toBeGreaterThanOrEqual(2);
    expect(await count(a, 24)).toBe(0);
    expect(await count(b, 24)).toBe(0);
    expect(await count(a)).toBe(3); // younger than 24 h: kept
    expect(await count(b)).toBe(4);
    expect((await metric(t.app, PURGED)) - purgedBefore).toBe(5_102);
    expect(await metric(t.app, RUNS_OK)).toBeGreaterThanOrEqual(1);
    // nothing left to do
    expect((await t.app.idempotencyPurge.runNow()).deleted).toBe(0);
  });

  it('a key whose row was purged runs its request again (a new effect); a kept key replays', async () => {
    const staff = await t.tokenFor(a, { roles: ['staff'] });
    const post = (key: string, name: string) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/customers',
        headers: { ...t.auth(staff), 'idempotency-key': key },
        payload: { displayName: name },
      });
    const kept = randomUUID();
    const purged = randomUUID();
    const k1 = await post(kept, 'Kept');
    const p1 = await post(purged, 'Purged');
    expect([k1.statusCode, p1.statusCode]).toEqual([201, 201]);
    await a.adminQuery(
      `UPDATE ${a.table('idempotency_keys')} SET created_at = now() - interval '25 hours' WHERE key = $1`,
      [purged],
    );
    expect((await t.app.idempotencyPurge.runNow()).deleted).toBe(1);
    const k2 = await post(kept, 'Kept');
    expect(k2.headers['idempotent-replayed']).toBe('true');
    expect(k2.json().id).toBe(k1.json().id);
    const p2 = await post(purged, 'Purged');
    expect(p2.statusCode).toBe(201);
    expect(p2.headers['idempotent-replayed']).toBeUndefined();
    expect(p2.json().id).not.toBe(p1.json().id);
  });

  it('skips a tenant another process is purging (advisory lock), and does not touch other tenants', async () => {
    await seed(a, 3, 48);
    await seed(b, 3, 48);
    // hold a's purge lock in an open transaction, as a concurrent purge would
    const appPool = t.app.dbFor(a.info);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = withTenant(appPool, a.ref, async (client) => {
      const first = await purgeIdempotencyKeys({ client }, 24, 1);
      expect(first).toBe(1);
      locked();
      await held;
    });
    await isLocked;
    try {
      const run = await t.app.idempotencyPurge.runNow();
      expect(run.skipped).toBe(1);
      expect(run.deleted).toBe(3); // b's rows
      expect(await count(b, 24)).toBe(0);
    } finally {
      release();
      await holder;
    }
    expect(await count(a, 24)).toBe(2); // a was left to the holder
    expect((await t.app.idempotencyPurge.runNow()).deleted).toBe(2);
  });

  it('runs by itself every purgeIntervalSec', async () => {
    await seed(a, 2, 48);
    const app: FastifyInstance = await buildApp({
      ...t.config,
      idempotency: { retentionHours: 24, purgeIntervalSec: 1 },
      events: { ...t.config.events, relay: false, consumers: false },
    });
    try {
      await app.ready();
      await expect.poll(() => count(a, 24), { timeout: 20_000, interval: 200 }).toBe(0);
      await expect.poll(() => metric(app, RUNS_OK), { timeout: 20_000, interval: 200 }).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });
});
