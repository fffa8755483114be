import { randomBytes } from 'node:crypto';
import {
  createScratchDatabase,
  KeyringCache,
  LocalKms,
  migratePlatform,
  type KmsProvider,
  type ScratchDatabase,
} from '@simptu/common';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, KIND, type Tenant } from '../../src/api/types.ts';
import {
  encryptionReconciler,
  MAX_ENCRYPTION_REQUEUE_MS,
  ROTATE_KEY_ANNOTATION,
  type EncryptionDeps,
} from '../../src/reconcile/encryption.ts';
import type { StepResult } from '../../src/reconcile/types.ts';

const DAY = 86_400_000;
let db: ScratchDatabase;
let pool: pg.Pool;
const kms = LocalKms.generate();

function adminUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url)
    throw new Error("DATABASE_URL is not set: run the tests through 'make test' (or 'make testenv-up')");
  return url;
}

function tenant(
  overrides: {
    rotationDays?: number;
    deletionPolicy?: 'Retain' | 'Delete';
    annotations?: Record<string, string>;
  } = {},
): Tenant {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: `enc-${randomBytes(5).toString('hex')}`,
      generation: 1,
      annotations: overrides.annotations ?? {},
    },
    spec: {
      displayName: 'Test',
      businessType: 'dental',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: overrides.rotationDays ?? 90 },
      deletionPolicy: overrides.deletionPolicy ?? 'Retain',
      deletionProtection: false,
      suspended: false,
    },
  };
}

class Counter {
  n = 0;
  inc(backend: string, by = 1): void {
    expect(backend).toBe('postgres');
    this.n += by;
  }
}

function deps(over: Partial<EncryptionDeps> = {}): EncryptionDeps & { writes: Counter } {
  return {
    pg: pool,
    adminUrl: db.url,
    kms,
    appRole: 'unused',
    writes: new Counter(),
    ...over,
  } as EncryptionDeps & { writes: Counter };
}

async function keys(name: string): Promise<Array<{ version: number; wrapped_dek: Buffer; kek_id: string }>> {
  const { rows } = await pool.query(
    'SELECT version, wrapped_dek, kek_id FROM platform.tenant_keys WHERE tenant = $1 ORDER BY version',
    [name],
  );
  return rows;
}

function expectReady(r: StepResult): Extract<StepResult, { kind: 'ready' }> {
  if (r.kind !== 'ready') throw new Error(`expected ready, got ${JSON.stringify(r)}`);
  return r;
}

beforeAll(async () => {
  db = await createScratchDatabase(adminUrl());
  pool = new pg.Pool({ connectionString: db.url, max: 8 });
  pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  await migratePlatform(pool);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('encryptionReconciler', () => {
  it('creates version 1 once, and a steady state writes nothing', async () => {
    const t = tenant();
    const d = deps();
    const first = expectReady(await encryptionReconciler.reconcile(t, d));
    expect(first.status?.encryption?.activeKeyVersion).toBe(1);
    expect(d.writes.n).toBe(1);
    const stored = await keys(t.metadata.name);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.kek_id).toBe(kms.kekId);

    d.writes.n = 0;
    const second = expectReady(await encryptionReconciler.reconcile(t, d));
    expect(d.writes.n).toBe(0);
    expect(second.status).toEqual(first.status);
    expect((await keys(t.metadata.name))[0]!.wrapped_dek).toEqual(stored[0]!.wrapped_dek);

    // the stored key is usable by the services (wrap AAD matches what KeyringCache unwraps with)
    const cipher = await new KeyringCache({ db: pool, kms }).cipher(t.metadata.name);
    const loc = { table: 'customers', column: 'email', rowId: '1' };
    expect(cipher.decryptString(cipher.encrypt('ana@example.com', loc), loc)).toBe('ana@example.com');
  });

  it('concurrent reconciles store exactly one key and all report it', async () => {
    const t = tenant();
    const results = await Promise.all(
      Array.from({ length: 6 }, () => encryptionReconciler.reconcile(t, deps())),
    );
    for (const r of results) expect(expectReady(r).status?.encryption?.activeKeyVersion).toBe(1);
    const stored = await keys(t.metadata.name);
    expect(stored).toHaveLength(1);
    const rotatedAt = new Set(results.map((r) => expectReady(r).status?.encryption?.rotatedAt));
    expect(rotatedAt.size).toBe(1);
  });

  it('never overwrites a key that appeared between generating and inserting (racing operator)', async () => {
    const t = tenant();
    let winner: Buffer | undefined;
    // The competitor (a second operator, real reconciler, real KMS) stores its key while we are
    // between generate+wrap and INSERT.
    const racing: KmsProvider = {
      kekId: kms.kekId,
      unwrap: (w, aad) => kms.unwrap(w, aad),
      wrap: async (dek, aad) => {
        const mine = await kms.wrap(dek, aad);
        if (!winner) {
          expectReady(await encryptionReconciler.reconcile(t, deps()));
          winner = (await keys(t.metadata.name))[0]!.wrapped_dek;
        }
        return mine;
      },
    };
    const r = expectReady(await encryptionReconciler.reconcile(t, deps({ kms: racing })));
    expect(r.status?.encryption?.activeKeyVersion).toBe(1);
    const stored = await keys(t.metadata.name);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.wrapped_dek).toEqual(winner);
  });

  it('a crash between generating and inserting leaves nothing behind; the next run creates the key', async () => {
    const t = tenant();
    const crashing: KmsProvider = {
      kekId: kms.kekId,
      unwrap: (w, aad) => kms.unwrap(w, aad),
      wrap: async (dek, aad) => {
        await kms.wrap(dek, aad);
        throw new Error('operator killed before INSERT');
      },
    };
    const d = deps({ kms: crashing });
    const failed = await encryptionReconciler.reconcile(t, d);
    expect(failed.kind).toBe('error');
    expect(d.writes.n).toBe(0);
    expect(await keys(t.metadata.name)).toHaveLength(0);
    expectReady(await encryptionReconciler.reconcile(t, deps()));
    expect(await keys(t.metadata.name)).toHaveLength(1);
  });

  it('blocks with KekMismatch under another KEK and touches nothing', async () => {
    const t = tenant();
    expectReady(await encryptionReconciler.reconcile(t, deps()));
    const before = await keys(t.metadata.name);
    const d = deps({ kms: LocalKms.generate() });
    const r = await encryptionReconciler.reconcile(t, d);
    expect(r).toMatchObject({ kind: 'blocked', reason: 'KekMismatch' });
    expect(d.writes.n).toBe(0);
    expect(await keys(t.metadata.name)).toEqual(before);
  });

  it('rotates by age: adds a version, keeps the old, requeues until the next rotation (capped)', async () => {
    const t = tenant({ rotationDays: 90 });
    const t0 = new Date('2030-01-01T00:00:00Z');
    const r0 = expectReady(await encryptionReconciler.reconcile(t, deps({ now: () => t0 })));
    expect(r0.requeueAfterMs).toBe(MAX_ENCRYPTION_REQUEUE_MS);

    const almost = new Date(t0.getTime() + 90 * DAY - 10 * 60_000);
    const d1 = deps({ now: () => almost });
    const r1 = expectReady(await encryptionReconciler.reconcile(t, d1));
    expect(r1.requeueAfterMs).toBe(10 * 60_000);
    expect(d1.writes.n).toBe(0);

    const due = new Date(t0.getTime() + 90 * DAY);
    const d2 = deps({ now: () => due });
    const r2 = expectReady(await encryptionReconciler.reconcile(t, d2));
    expect(r2.reason).toBe('KeyRotated');
    expect(r2.status?.encryption).toEqual({ activeKeyVersion: 2, rotatedAt: due.toISOString() });
    expect(d2.writes.n).toBe(1);
    expect((await keys(t.metadata.name)).map((k) => k.version)).toEqual([1, 2]);

    const d3 = deps({ now: () => due });
    expectReady(await encryptionReconciler.reconcile(t, d3));
    expect(d3.writes.n).toBe(0);
    const ring = await new KeyringCache({ db: pool, kms }).keyring(t.metadata.name);
    expect(ring.versions).toEqual([1, 2]);
  });

  it('rotates once per rotate-key annotation value, and blocks on a value that is not a timestamp', async () => {
    const t = tenant();
    const t0 = new Date('2031-05-01T00:00:00Z');
    expectReady(await encryptionReconciler.reconcile(t, deps({ now: () => t0 })));
    const later = new Date(t0.getTime() + 3600_000);
    t.metadata.annotations = { [ROTATE_KEY_ANNOTATION]: new Date(t0.getTime() + 60_000).toISOString() };
    const r = expectReady(await encryptionReconciler.reconcile(t, deps({ now: () => later })));
    expect(r.status?.encryption?.activeKeyVersion).toBe(2);
    const again = deps({ now: () => later });
    expectReady(await encryptionReconciler.reconcile(t, again));
    expect(again.writes.n).toBe(0);

    t.metadata.annotations = { [ROTATE_KEY_ANNOTATION]: 'now' };
    const bad = deps({ now: () => later });
    expect(await encryptionReconciler.reconcile(t, bad)).toMatchObject({
      kind: 'blocked',
      reason: 'InvalidRotateKeyAnnotation',
    });
    expect(bad.writes.n).toBe(0);
  });

  it('finalize: Retain keeps the keys, Delete shreds every version, both idempotent', async () => {
    const t = tenant({ rotationDays: 1 });
    const t0 = new Date('2032-01-01T00:00:00Z');
    expectReady(await encryptionReconciler.reconcile(t, deps({ now: () => t0 })));
    expectReady(
      await encryptionReconciler.reconcile(t, deps({ now: () => new Date(t0.getTime() + 2 * DAY) })),
    );
    expect(await keys(t.metadata.name)).toHaveLength(2);

    const retain = deps();
    expect(await encryptionReconciler.finalize(t, retain)).toMatchObject({
      kind: 'ready',
      reason: 'KeysRetained',
    });
    expect(retain.writes.n).toBe(0);
    expect(await keys(t.metadata.name)).toHaveLength(2);

    t.spec.deletionPolicy = 'Delete';
    const del = deps();
    expect(await encryptionReconciler.finalize(t, del)).toMatchObject({
      kind: 'ready',
      reason: 'KeysDestroyed',
    });
    expect(del.writes.n).toBe(1);
    expect(await keys(t.metadata.name)).toHaveLength(0);
    const again = deps();
    expectReady(await encryptionReconciler.finalize(t, again));
    expect(again.writes.n).toBe(0);
  });

  it('reports a transient error when the key store is unreachable', async () => {
    const dead = new pg.Pool({
      connectionString: 'postgres://nobody@127.0.0.1:1/none',
      connectionTimeoutMillis: 500,
    });
    dead.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
    try {
      const r = await encryptionReconciler.reconcile(tenant(), deps({ pg: dead }));
      expect(r).toMatchObject({ kind: 'error', reason: 'KeyStoreUnavailable' });
    } finally {
      await dead.end();
    }
  });
});
