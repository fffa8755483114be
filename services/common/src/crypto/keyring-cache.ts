/**
 * Loads tenants' wrapped DEKs from `platform.tenant_keys`, unwraps them with the KMS and keeps
 * the plaintext keys in memory per tenant + version (an unwrap may be a paid, remote KMS call;
 * a DEK never changes once written, so a cached version is never stale). The version list is
 * re-read after `refreshMs` so a rotation is picked up, and on demand when a ciphertext names
 * a version the cache hasn't seen.
 */
import type { Queryable } from '../db/queryable.ts';
import { FieldCipher, TenantKeyring } from './envelope.ts';
import { dekWrapAad, type KmsProvider } from './kms.ts';

export class TenantKeysMissingError extends Error {
  readonly tenant: string;
  constructor(tenant: string) {
    super(`tenant ${tenant} has no data key in platform.tenant_keys`);
    this.name = 'TenantKeysMissingError';
    this.tenant = tenant;
  }
}

export class KekMismatchError extends Error {
  readonly tenant: string;
  readonly version: number;
  constructor(tenant: string, version: number, stored: string, current: string) {
    super(
      `key ${version} of tenant ${tenant} was wrapped by KEK ${stored}, the configured KMS holds ${current}`,
    );
    this.name = 'KekMismatchError';
    this.tenant = tenant;
    this.version = version;
  }
}

export interface KeyringCacheOptions {
  db: Queryable;
  kms: KmsProvider;
  /** how long a tenant's version list is trusted before re-reading it; @default 60_000 */
  refreshMs?: number;
  now?: () => number;
}

interface Entry {
  keyring: TenantKeyring;
  loadedAt: number;
}

export class KeyringCache {
  readonly #db: Queryable;
  readonly #kms: KmsProvider;
  readonly #refreshMs: number;
  readonly #now: () => number;
  readonly #deks = new Map<string, Buffer>(); // `${tenant}\0${version}`
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<TenantKeyring>>();

  constructor(options: KeyringCacheOptions) {
    this.#db = options.db;
    this.#kms = options.kms;
    this.#refreshMs = options.refreshMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The tenant's keyring. `requireVersion`: reload if the cached keyring lacks it (a
   * ciphertext made after a rotation this instance hasn't seen).
   */
  async keyring(tenant: string, opts: { requireVersion?: number } = {}): Promise<TenantKeyring> {
    const e = this.#entries.get(tenant);
    const fresh = e && this.#now() - e.loadedAt < this.#refreshMs;
    if (e && fresh && (opts.requireVersion === undefined || e.keyring.has(opts.requireVersion)))
      return e.keyring;
    let p = this.#inflight.get(tenant);
    if (!p) {
      p = this.#load(tenant).finally(() => this.#inflight.delete(tenant));
      this.#inflight.set(tenant, p);
    }
    return p;
  }

  async cipher(tenant: string, opts: { requireVersion?: number } = {}): Promise<FieldCipher> {
    return new FieldCipher(await this.keyring(tenant, opts));
  }

  /**
   * Forget a tenant (e.g. on `io.simptu.tenant.deleted`): its keys leave the cache. (Not
   * zeroed: keyrings already handed out still reference the buffers.)
   */
  invalidate(tenant: string): void {
    this.#entries.delete(tenant);
    for (const k of [...this.#deks.keys()]) if (k.startsWith(tenant + '\0')) this.#deks.delete(k);
  }

  async #load(tenant: string): Promise<TenantKeyring> {
    const { rows } = await this.#db.query<{ version: number; wrapped_dek: Buffer; kek_id: string }>(
      'SELECT version, wrapped_dek, kek_id FROM platform.tenant_keys WHERE tenant = $1 ORDER BY version',
      [tenant],
    );
    if (rows.length === 0) {
      this.invalidate(tenant);
      throw new TenantKeysMissingError(tenant);
    }
    const keys: Array<[number, Buffer]> = [];
    for (const row of rows) {
      const id = `${tenant}\0${row.version}`;
      let dek = this.#deks.get(id);
      if (!dek) {
        if (row.kek_id !== this.#kms.kekId)
          throw new KekMismatchError(tenant, row.version, row.kek_id, this.#kms.kekId);
        dek = await this.#kms.unwrap(row.wrapped_dek, dekWrapAad(tenant, row.version));
        this.#deks.set(id, dek);
      }
      keys.push([row.version, dek]);
    }
    const keyring = new TenantKeyring(tenant, keys);
    this.#entries.set(tenant, { keyring, loadedAt: this.#now() });
    return keyring;
  }
}
