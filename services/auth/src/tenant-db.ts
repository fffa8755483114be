/**
 * Reaching a tenant's own schema (invitations, access codes live there, DESIGN §5.3): shared
 * tenants in the platform database, dedicated ones in their own database with the same login
 * role. Every unit of work runs inside `withTenant` with the tenant's field cipher, as the
 * domain functions of `@simptu/common` expect.
 */
import pg from 'pg';
import {
  KeyringCache,
  tenantDbRef,
  withDatabase,
  withTenant,
  type DomainContext,
  type KmsProvider,
} from '@simptu/common';
import type { TenantInfo } from './clients.ts';

export const AUTH_EVENT_SOURCE = '/simptu/auth';

export class TenantDatabases {
  readonly #platform: pg.Pool;
  readonly #platformUrl: string;
  readonly #platformDb: string;
  readonly #poolMax: number;
  readonly #dedicated = new Map<string, pg.Pool>();
  readonly keyrings: KeyringCache;

  constructor(opts: { platform: pg.Pool; platformUrl: string; kms: KmsProvider; poolMax?: number }) {
    this.#platform = opts.platform;
    this.#platformUrl = opts.platformUrl;
    this.#platformDb = decodeURIComponent(new URL(opts.platformUrl).pathname.replace(/^\//, ''));
    this.#poolMax = opts.poolMax ?? 4;
    this.keyrings = new KeyringCache({ db: opts.platform, kms: opts.kms });
  }

  #pool(t: TenantInfo): pg.Pool {
    if (t.databaseIsolation === 'shared' || t.databaseName === this.#platformDb) return this.#platform;
    let p = this.#dedicated.get(t.databaseName);
    if (!p) {
      p = new pg.Pool({
        connectionString: withDatabase(this.#platformUrl, t.databaseName),
        max: this.#poolMax,
      });
      // An idle client's error (a Postgres restart) must not crash the process.
      p.on('error', () => undefined);
      this.#dedicated.set(t.databaseName, p);
    }
    return p;
  }

  /** Runs `fn` in the tenant's transaction with a domain context (cipher, time zone). */
  async run<T>(t: TenantInfo, fn: (ctx: DomainContext) => Promise<T>): Promise<T> {
    const cipher = await this.keyrings.cipher(t.name);
    return withTenant(this.#pool(t), tenantDbRef(t.name), (client) =>
      fn({ client, cipher, timeZone: t.timezone, source: AUTH_EVENT_SOURCE }),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.#dedicated.values()].map((p) => p.end()));
    this.#dedicated.clear();
  }
}
