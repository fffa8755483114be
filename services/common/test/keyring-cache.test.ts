import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ciphertextKeyVersion, generateDek } from '../src/crypto/envelope.ts';
import { KekMismatchError, KeyringCache, TenantKeysMissingError } from '../src/crypto/keyring-cache.ts';
import { dekWrapAad, LocalKms, type KmsProvider } from '../src/crypto/kms.ts';
import { migratePlatform } from '../src/db/migrations.ts';
import { createScratchDatabase, type ScratchDatabase } from '../src/db/scratch.ts';
import { adminUrl } from './support.ts';

let db: ScratchDatabase;
let pool: pg.Pool;
const kms = LocalKms.generate();
const loc = { table: 'customers', column: 'email', rowId: 'r1' };

/** Counts unwraps of the real LocalKms, to show the cache saves KMS calls. */
class CountingKms implements KmsProvider {
  readonly inner: KmsProvider;
  unwraps = 0;
  constructor(inner: KmsProvider) {
    this.inner = inner;
  }
  get kekId() {
    return this.inner.kekId;
  }
  wrap(dek: Buffer, aad: string) {
    return this.inner.wrap(dek, aad);
  }
  unwrap(w: Buffer, aad: string) {
    this.unwraps++;
    return this.inner.unwrap(w, aad);
  }
}

async function addKey(tenant: string, version: number, k: KmsProvider = kms): Promise<void> {
  const wrapped = await k.wrap(generateDek(), dekWrapAad(tenant, version));
  await pool.query(
    'INSERT INTO platform.tenant_keys (tenant, version, wrapped_dek, kek_id) VALUES ($1, $2, $3, $4)',
    [tenant, version, wrapped, k.kekId],
  );
}

beforeAll(async () => {
  db = await createScratchDatabase(adminUrl());
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  await migratePlatform(pool);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('KeyringCache', () => {
  it('loads, unwraps once per version, and picks up a rotation on demand', async () => {
    await addKey('alpha', 1);
    const counting = new CountingKms(kms);
    let now = 0;
    const cache = new KeyringCache({ db: pool, kms: counting, refreshMs: 1000, now: () => now });
    const c1 = await cache.cipher('alpha');
    const blob = c1.encrypt('ana@example.com', loc);
    await cache.cipher('alpha');
    expect(counting.unwraps).toBe(1);

    await addKey('alpha', 2);
    // another instance rotated; a ciphertext with version 2 forces a reload
    const other = new KeyringCache({ db: pool, kms });
    const blob2 = (await other.cipher('alpha')).encrypt('x', loc);
    expect(ciphertextKeyVersion(blob2)).toBe(2);
    const c2 = await cache.cipher('alpha', { requireVersion: ciphertextKeyVersion(blob2) });
    expect(c2.keyring.activeVersion).toBe(2);
    expect(c2.decryptString(blob, loc)).toBe('ana@example.com');
    expect(c2.decryptString(blob2, loc)).toBe('x');
    expect(counting.unwraps).toBe(2); // version 1 came from the cache

    now = 5000; // after refreshMs the list is re-read, still no new unwraps
    await cache.keyring('alpha');
    expect(counting.unwraps).toBe(2);
  });

  it('shares one load between concurrent callers', async () => {
    await addKey('beta', 1);
    const counting = new CountingKms(kms);
    const cache = new KeyringCache({ db: pool, kms: counting });
    const rings = await Promise.all([cache.keyring('beta'), cache.keyring('beta'), cache.keyring('beta')]);
    expect(new Set(rings).size).toBe(1);
    expect(counting.unwraps).toBe(1);
  });

  it('reports a tenant without keys and a key wrapped by another KEK', async () => {
    const cache = new KeyringCache({ db: pool, kms });
    await expect(cache.keyring('nobody')).rejects.toBeInstanceOf(TenantKeysMissingError);
    await addKey('gamma', 1, LocalKms.generate());
    await expect(cache.keyring('gamma')).rejects.toBeInstanceOf(KekMismatchError);
  });

  it('forgets a tenant whose keys were shredded', async () => {
    await addKey('delta', 1);
    const cache = new KeyringCache({ db: pool, kms, refreshMs: 0 });
    await cache.keyring('delta');
    await pool.query(`DELETE FROM platform.tenant_keys WHERE tenant = 'delta'`);
    await expect(cache.keyring('delta')).rejects.toBeInstanceOf(TenantKeysMissingError);
  });
});
