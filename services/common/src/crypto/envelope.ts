/**
 * Application-level envelope encryption of tenant data (DESIGN §6).
 *
 * Stored format (canonical, for `bytea` columns, Kafka values, Redis values):
 *
 *     0x01 | keyVersion (uint32 BE) | nonce (12) | ciphertext | tag (16)
 *
 * The first byte is the format version; the key version tells decrypt which DEK to use.
 * For places that need text (JSON, headers) `toText`/`fromText` give `v1.<base64url>` of the
 * same bytes. AES-256-GCM, random 96-bit nonce per message (NIST SP 800-38D §8.2.2: ≤ 2^32
 * messages per key — rotation keeps each DEK far below that), associated data
 * `simptu.field.v1|tenant|table|column|rowId|keyVersion`, so a ciphertext moved to another
 * row, column, tenant or key version fails to decrypt.
 * @see https://nvlpubs.nist.gov/nistpubs/Legacy/SP/nistspecialpublication800-38d.pdf
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

const FORMAT_V1 = 0x01;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + 4 + NONCE_BYTES;
export const DEK_BYTES = 32;
const TEXT_PREFIX = 'v1.';

/** A fresh random 256-bit data key. */
export function generateDek(): Buffer {
  return randomBytes(DEK_BYTES);
}

/** Where a ciphertext lives; bound into the AAD. `rowId` may be any string (uuid, event id, …). */
export interface FieldLocation {
  table: string;
  column: string;
  rowId: string;
}

export type DecryptionFailure = 'malformed' | 'unknown-key-version' | 'authentication-failed';

/** Typed failure of decrypt: never returns garbage, never leaks which part mismatched. */
export class DecryptionError extends Error {
  readonly reason: DecryptionFailure;
  constructor(reason: DecryptionFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DecryptionError';
    this.reason = reason;
  }
}

// `|` separates AAD fields; tenant/table/column may not contain it, so the encoding is
// unambiguous (rowId is the only free-form field and the version after it is digits).
const AAD_NAME_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

function checkName(kind: string, value: string): void {
  if (!AAD_NAME_RE.test(value))
    throw new TypeError(`invalid ${kind} ${JSON.stringify(value)} for encryption context`);
}

export function fieldAad(tenant: string, loc: FieldLocation, keyVersion: number): Buffer {
  checkName('tenant', tenant);
  checkName('table', loc.table);
  checkName('column', loc.column);
  return Buffer.from(
    `simptu.field.v1|${tenant}|${loc.table}|${loc.column}|${loc.rowId}|${keyVersion}`,
    'utf8',
  );
}

/** The key version a stored ciphertext was made with, without decrypting it. */
export function ciphertextKeyVersion(blob: Buffer): number {
  if (blob.length < HEADER_BYTES + TAG_BYTES || blob[0] !== FORMAT_V1) {
    throw new DecryptionError('malformed', 'ciphertext has an unknown format');
  }
  return blob.readUInt32BE(1);
}

/** `v1.<base64url>` text form of a stored ciphertext. */
export function toText(blob: Buffer): string {
  return TEXT_PREFIX + blob.toString('base64url');
}

export function fromText(text: string): Buffer {
  if (!text.startsWith(TEXT_PREFIX))
    throw new DecryptionError('malformed', 'ciphertext text has an unknown format');
  return Buffer.from(text.slice(TEXT_PREFIX.length), 'base64url');
}

/**
 * The unwrapped DEKs of one tenant, by version. The active key (used for new ciphertexts) is
 * the highest version; older ones stay for decryption until re-encryption finishes.
 */
export class TenantKeyring {
  readonly tenant: string;
  readonly activeVersion: number;
  readonly #keys: ReadonlyMap<number, Buffer>;

  constructor(tenant: string, keys: Iterable<readonly [version: number, dek: Buffer]>) {
    checkName('tenant', tenant);
    const map = new Map<number, Buffer>();
    for (const [version, dek] of keys) {
      if (!Number.isInteger(version) || version < 1 || version > 0xffffffff)
        throw new TypeError(`invalid key version ${version}`);
      if (dek.length !== DEK_BYTES)
        throw new TypeError(`DEK version ${version} of ${tenant} is not 256 bits`);
      map.set(version, dek);
    }
    if (map.size === 0) throw new TypeError(`keyring of ${tenant} has no keys`);
    this.tenant = tenant;
    this.#keys = map;
    this.activeVersion = Math.max(...map.keys());
  }

  get versions(): number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b);
  }

  has(version: number): boolean {
    return this.#keys.has(version);
  }

  /** @internal the raw DEK; only the cipher below should need it. */
  dek(version: number): Buffer | undefined {
    return this.#keys.get(version);
  }

  readonly #indexKeys = new Map<string, Buffer>();

  /** @internal the memoized blind-index key of `table.column` under `version`. */
  indexKey(version: number, table: string, column: string): Buffer | undefined {
    const id = `${version}|${table}|${column}`;
    let key = this.#indexKeys.get(id);
    if (!key) {
      const dek = this.#keys.get(version);
      if (!dek) return undefined;
      key = blindIndexKey(dek, this.tenant, table, column);
      this.#indexKeys.set(id, key);
    }
    return key;
  }
}

export type BlindIndexKind = 'email' | 'phone' | 'text';

/** Trim, Unicode NFKC, lower-case. (Does not strip `+tags`: those are distinct mailboxes to us.) */
export function normalizeEmail(value: string): string {
  const v = value.normalize('NFKC').trim().toLowerCase();
  if (!/^[^\s@]+@[^\s@]+$/.test(v)) throw new TypeError('not an e-mail address');
  return v;
}

/**
 * E.164: `+` then 8–15 digits; spaces, dots, dashes and brackets are dropped, a leading `00`
 * becomes `+`. A number without country code is refused rather than guessed.
 * @see https://www.itu.int/rec/T-REC-E.164
 */
export function normalizePhone(value: string): string {
  let v = value
    .normalize('NFKC')
    .trim()
    .replace(/[\s().-]/g, '');
  if (v.startsWith('00')) v = '+' + v.slice(2);
  if (!/^\+[1-9]\d{7,14}$/.test(v)) throw new TypeError('not an E.164 phone number');
  return v;
}

export function normalizeForIndex(kind: BlindIndexKind, value: string): string {
  switch (kind) {
    case 'email':
      return normalizeEmail(value);
    case 'phone':
      return normalizePhone(value);
    case 'text':
      return value.normalize('NFKC').trim();
  }
}

/**
 * The per-tenant, per-column blind-index key: HKDF-SHA256 over the DEK with a
 * domain-separated salt and `tenant|table|column` as info (RFC 5869), so the index key is
 * never the encryption key and equal values in different columns or tenants don't match.
 * @see https://www.rfc-editor.org/rfc/rfc5869
 */
export function blindIndexKey(dek: Buffer, tenant: string, table: string, column: string): Buffer {
  checkName('tenant', tenant);
  checkName('table', table);
  checkName('column', column);
  return Buffer.from(hkdfSync('sha256', dek, 'simptu.blind-index.v1', `${tenant}|${table}|${column}`, 32));
}

export function computeBlindIndex(key: Buffer, kind: BlindIndexKind, value: string): Buffer {
  return createHmac('sha256', key).update(normalizeForIndex(kind, value), 'utf8').digest();
}

/** Encrypts and decrypts fields of one tenant with its keyring. */
export class FieldCipher {
  readonly keyring: TenantKeyring;

  constructor(keyring: TenantKeyring) {
    this.keyring = keyring;
  }

  get tenant(): string {
    return this.keyring.tenant;
  }

  /** Encrypt with the active key version. */
  encrypt(plaintext: Buffer | string, loc: FieldLocation): Buffer {
    return this.#encryptWith(this.keyring.activeVersion, plaintext, loc);
  }

  #encryptWith(version: number, plaintext: Buffer | string, loc: FieldLocation): Buffer {
    const dek = this.keyring.dek(version);
    if (!dek) throw new TypeError(`no key version ${version} for ${this.tenant}`);
    const header = Buffer.alloc(HEADER_BYTES);
    header[0] = FORMAT_V1;
    header.writeUInt32BE(version, 1);
    randomBytes(NONCE_BYTES).copy(header, 5);
    const cipher = createCipheriv('aes-256-gcm', dek, header.subarray(5));
    // The header is authenticated too, so flipping the version or format byte fails.
    cipher.setAAD(Buffer.concat([header, fieldAad(this.tenant, loc, version)]));
    const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
    return Buffer.concat([header, cipher.update(data), cipher.final(), cipher.getAuthTag()]);
  }

  /** Decrypt; the key version comes from the ciphertext. Throws `DecryptionError`. */
  decrypt(blob: Buffer, loc: FieldLocation): Buffer {
    const version = ciphertextKeyVersion(blob);
    const dek = this.keyring.dek(version);
    if (!dek)
      throw new DecryptionError('unknown-key-version', `no key version ${version} for ${this.tenant}`);
    const header = blob.subarray(0, HEADER_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', dek, header.subarray(5));
      decipher.setAAD(Buffer.concat([header, fieldAad(this.tenant, loc, version)]));
      decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
      return Buffer.concat([
        decipher.update(blob.subarray(HEADER_BYTES, blob.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch (cause) {
      throw new DecryptionError('authentication-failed', 'ciphertext does not belong here or was altered', {
        cause,
      });
    }
  }

  decryptString(blob: Buffer, loc: FieldLocation): string {
    return this.decrypt(blob, loc).toString('utf8');
  }

  /** Text form, for JSON payloads and headers: `v1.<base64url>`. */
  encryptText(plaintext: string, loc: FieldLocation): string {
    return toText(this.encrypt(plaintext, loc));
  }

  decryptText(text: string, loc: FieldLocation): string {
    return this.decryptString(fromText(text), loc);
  }

  /**
   * Re-encrypt under the active key version (after rotation). Returns the same buffer when it
   * already uses the active version, so callers can skip the write.
   */
  reencrypt(blob: Buffer, loc: FieldLocation): Buffer {
    if (ciphertextKeyVersion(blob) === this.keyring.activeVersion) return blob;
    return this.encrypt(this.decrypt(blob, loc), loc);
  }

  /** Blind index of a value for `table.column`, under the active key version (store beside the ciphertext). */
  blindIndex(table: string, column: string, kind: BlindIndexKind, value: string): Buffer {
    return this.#blindIndexWith(this.keyring.activeVersion, table, column, kind, value);
  }

  /**
   * Blind indexes under every held key version, newest first: look up with
   * `WHERE email_bidx = ANY($1)` so rows written before a rotation are still found.
   */
  blindIndexes(table: string, column: string, kind: BlindIndexKind, value: string): Buffer[] {
    return this.keyring.versions.reverse().map((v) => this.#blindIndexWith(v, table, column, kind, value));
  }

  #blindIndexWith(
    version: number,
    table: string,
    column: string,
    kind: BlindIndexKind,
    value: string,
  ): Buffer {
    const key = this.keyring.indexKey(version, table, column);
    if (!key) throw new TypeError(`no key version ${version} for ${this.tenant}`);
    return computeBlindIndex(key, kind, value);
  }
}

/** Decrypt with whatever version made `blob`, encrypt with the keyring's active version. */
export function reencrypt(cipher: FieldCipher, blob: Buffer, loc: FieldLocation): Buffer {
  return cipher.reencrypt(blob, loc);
}
