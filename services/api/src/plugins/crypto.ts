/**
 * Envelope encryption for the API (DESIGN §5.2, §6): the KMS (the `local` KEK from config, the
 * one the operator wraps data keys with) unwraps tenants' data keys read from
 * `platform.tenant_keys`; `KeyringCache` keeps them in memory. `app.cipherFor(tenant)` is the
 * tenant's `FieldCipher` (active key for encryption, every version for decryption).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { KeyringCache, type FieldCipher, type KmsProvider } from '@simptu/common';

declare module 'fastify' {
  interface FastifyInstance {
    /** the keyring cache (a `CipherSource` for the outbox relay) */
    keyrings: KeyringCache;
  }
}

export interface CryptoPluginOptions {
  kms: KmsProvider;
  refreshMs: number;
}

export default fp(
  async (app: FastifyInstance, opts: CryptoPluginOptions) => {
    const keyrings = new KeyringCache({ db: app.db, kms: opts.kms, refreshMs: opts.refreshMs });
    app.decorate('keyrings', keyrings);
    app.decorate('cipherFor', (tenant: string): Promise<FieldCipher> => keyrings.cipher(tenant));
  },
  { name: 'simptu-crypto', fastify: '5.x', dependencies: ['simptu-db'] },
);
