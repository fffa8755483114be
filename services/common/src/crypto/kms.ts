/**
 * Key-encryption-key (KEK) providers for envelope encryption (DESIGN §5.2).
 *
 * A tenant's data key (DEK) is only ever stored wrapped by a KEK. The provider interface is
 * async so remote KMSs (AWS KMS `Encrypt`/`Decrypt` with an EncryptionContext, Vault Transit
 * `encrypt`/`decrypt` with `context`) can implement it without changing callers; `aad` maps to
 * that encryption context.
 * @see https://docs.aws.amazon.com/kms/latest/developerguide/encrypt_context.html
 * @see https://developer.hashicorp.com/vault/api-docs/secret/transit#encrypt-data
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

export interface KmsProvider {
  /** Identifies the KEK (not secret). Stored beside every wrapped key so a wrong KEK is detected. */
  readonly kekId: string;
  wrap(dek: Buffer, aad: string): Promise<Buffer>;
  unwrap(wrapped: Buffer, aad: string): Promise<Buffer>;
}

export type KeyUnwrapFailure = 'malformed' | 'kek-mismatch' | 'authentication-failed';

/** The wrapped key can't be opened: wrong KEK, tampered blob, or wrong tenant/version (AAD). */
export class KeyUnwrapError extends Error {
  readonly reason: KeyUnwrapFailure;
  constructor(reason: KeyUnwrapFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KeyUnwrapError';
    this.reason = reason;
  }
}

/** The AAD that binds a wrapped DEK to its tenant and key version. */
export function dekWrapAad(tenant: string, version: number): string {
  return `simptu.dek.v1|${tenant}|${version}`;
}

const WRAP_FORMAT = 0x01;
const KEK_ID_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEK_ID_BYTES + NONCE_BYTES;

/**
 * Fingerprint of a KEK: first 16 hex digits of SHA-256 over a domain-separated input, so it
 * identifies the key without being usable as (or colliding with any other use of) the key.
 */
export function kekFingerprint(kek: Buffer): string {
  return createHash('sha256')
    .update('simptu.kek-id.v1\0')
    .update(kek)
    .digest('hex')
    .slice(0, KEK_ID_BYTES * 2);
}

/**
 * `local` provider: a 256-bit KEK held in memory (loaded from a Secret of the platform
 * namespace). Wrapped format: `0x01 | kekId(8) | nonce(12) | AES-256-GCM(dek) | tag(16)`.
 */
export class LocalKms implements KmsProvider {
  readonly kekId: string;
  readonly #kek: Buffer;

  constructor(kek: Buffer) {
    if (kek.length !== 32) throw new TypeError(`LocalKms needs a 256-bit KEK, got ${kek.length * 8} bits`);
    this.#kek = Buffer.from(kek);
    this.kekId = kekFingerprint(this.#kek);
  }

  /** From the base64 text a Secret holds (`openssl rand -base64 32`). */
  static fromBase64(text: string): LocalKms {
    return new LocalKms(Buffer.from(text.trim(), 'base64'));
  }

  /** A fresh random KEK, for development and tests. */
  static generate(): LocalKms {
    return new LocalKms(randomBytes(32));
  }

  async wrap(dek: Buffer, aad: string): Promise<Buffer> {
    const nonce = randomBytes(NONCE_BYTES);
    const header = Buffer.concat([Buffer.of(WRAP_FORMAT), Buffer.from(this.kekId, 'hex'), nonce]);
    const cipher = createCipheriv('aes-256-gcm', this.#kek, nonce);
    cipher.setAAD(Buffer.concat([header, Buffer.from(aad, 'utf8')]));
    const ct = Buffer.concat([cipher.update(dek), cipher.final()]);
    return Buffer.concat([header, ct, cipher.getAuthTag()]);
  }

  async unwrap(wrapped: Buffer, aad: string): Promise<Buffer> {
    if (wrapped.length < HEADER_BYTES + TAG_BYTES + 1 || wrapped[0] !== WRAP_FORMAT) {
      throw new KeyUnwrapError('malformed', 'wrapped key has an unknown format');
    }
    const kekId = wrapped.subarray(1, 1 + KEK_ID_BYTES).toString('hex');
    if (kekId !== this.kekId) {
      throw new KeyUnwrapError(
        'kek-mismatch',
        `key was wrapped by KEK ${kekId}, this KMS holds ${this.kekId}`,
      );
    }
    const header = wrapped.subarray(0, HEADER_BYTES);
    const nonce = wrapped.subarray(1 + KEK_ID_BYTES, HEADER_BYTES);
    const ct = wrapped.subarray(HEADER_BYTES, wrapped.length - TAG_BYTES);
    const tag = wrapped.subarray(wrapped.length - TAG_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#kek, nonce);
      decipher.setAAD(Buffer.concat([header, Buffer.from(aad, 'utf8')]));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ct), decipher.final()]);
    } catch (cause) {
      throw new KeyUnwrapError(
        'authentication-failed',
        'wrapped key failed authentication (tampered, or wrong tenant/version)',
        { cause },
      );
    }
  }
}
