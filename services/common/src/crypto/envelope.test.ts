import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ciphertextKeyVersion,
  DecryptionError,
  FieldCipher,
  fromText,
  generateDek,
  normalizeEmail,
  normalizePhone,
  reencrypt,
  TenantKeyring,
  toText,
  type FieldLocation,
} from './envelope.ts';

const loc: FieldLocation = {
  table: 'customers',
  column: 'email',
  rowId: '7d0c1c5e-0000-4000-8000-000000000001',
};

function cipherWith(tenant: string, ...versions: Array<[number, Buffer]>): FieldCipher {
  return new FieldCipher(new TenantKeyring(tenant, versions));
}

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof DecryptionError) return err.reason;
    throw err;
  }
  return undefined;
}

describe('FieldCipher', () => {
  const v1 = generateDek();
  const v2 = generateDek();
  const a = cipherWith('smile-dental', [1, v1]);

  it('round-trips strings and bytes; format is 0x01 | version | nonce | ct | tag', () => {
    const blob = a.encrypt('ana@example.com', loc);
    expect(blob[0]).toBe(0x01);
    expect(ciphertextKeyVersion(blob)).toBe(1);
    expect(blob.length).toBe(1 + 4 + 12 + 'ana@example.com'.length + 16);
    expect(a.decryptString(blob, loc)).toBe('ana@example.com');
    const bytes = randomBytes(100);
    expect(a.decrypt(a.encrypt(bytes, loc), loc)).toEqual(bytes);
    expect(a.decryptString(a.encrypt('', loc), loc)).toBe('');
  });

  it('text form round-trips', () => {
    const text = a.encryptText('héllo', loc);
    expect(text).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    expect(a.decryptText(text, loc)).toBe('héllo');
    expect(toText(fromText(text))).toBe(text);
  });

  it('never reuses a nonce', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(a.encrypt('x', loc).subarray(5, 17).toString('hex'));
    expect(seen.size).toBe(1000);
  });

  it('fails with DecryptionError when moved to another row, column, table or tenant', () => {
    const blob = a.encrypt('secret', loc);
    expect(reasonOf(() => a.decrypt(blob, { ...loc, rowId: 'another-row' }))).toBe('authentication-failed');
    expect(reasonOf(() => a.decrypt(blob, { ...loc, column: 'phone' }))).toBe('authentication-failed');
    expect(reasonOf(() => a.decrypt(blob, { ...loc, table: 'staff' }))).toBe('authentication-failed');
    // another tenant holding the very same DEK still can't open it: the tenant is in the AAD
    const sameKeyOtherTenant = cipherWith('gym-one', [1, v1]);
    expect(reasonOf(() => sameKeyOtherTenant.decrypt(blob, loc))).toBe('authentication-failed');
  });

  it('fails when the key version in the header is changed, and on any flipped bit', () => {
    const both = cipherWith('smile-dental', [1, v1], [2, v1]); // same key under two versions: only the AAD differs
    const blob = both.encrypt('secret', loc);
    expect(ciphertextKeyVersion(blob)).toBe(2);
    const relabelled = Buffer.from(blob);
    relabelled.writeUInt32BE(1, 1);
    expect(reasonOf(() => both.decrypt(relabelled, loc))).toBe('authentication-failed');
    for (let i = 5; i < blob.length; i++) {
      const t = Buffer.from(blob);
      t[i]! ^= 0x80;
      expect(reasonOf(() => both.decrypt(t, loc))).toBe('authentication-failed');
    }
  });

  it('reports unknown key versions and malformed input', () => {
    const b = cipherWith('smile-dental', [2, v2]);
    expect(reasonOf(() => a.decrypt(b.encrypt('x', loc), loc))).toBe('unknown-key-version');
    expect(reasonOf(() => a.decrypt(Buffer.from('plain text, not a ciphertext at all'), loc))).toBe(
      'malformed',
    );
    expect(reasonOf(() => a.decrypt(Buffer.alloc(10), loc))).toBe('malformed');
    expect(reasonOf(() => fromText('garbage'))).toBe('malformed');
  });

  it('picks the key version from the ciphertext and re-encrypts to the active one', () => {
    const old = a.encrypt('secret', loc);
    const rotated = cipherWith('smile-dental', [1, v1], [2, v2]);
    expect(rotated.keyring.activeVersion).toBe(2);
    expect(rotated.decryptString(old, loc)).toBe('secret');
    const fresh = reencrypt(rotated, old, loc);
    expect(ciphertextKeyVersion(fresh)).toBe(2);
    expect(rotated.decryptString(fresh, loc)).toBe('secret');
    expect(rotated.reencrypt(fresh, loc)).toBe(fresh); // already current: no write needed
    expect(reasonOf(() => a.decrypt(fresh, loc))).toBe('unknown-key-version');
  });

  it('refuses names that would make the AAD ambiguous', () => {
    expect(() => a.encrypt('x', { ...loc, table: 'a|b' })).toThrow(TypeError);
    expect(() => new TenantKeyring('a|b', [[1, v1]])).toThrow(TypeError);
    expect(() => new TenantKeyring('t', [])).toThrow(/no keys/);
    expect(() => new TenantKeyring('t', [[1, randomBytes(16)]])).toThrow(/256 bits/);
  });
});

describe('blind index', () => {
  const dek = generateDek();
  const a = cipherWith('smile-dental', [1, dek]);

  it('is stable under normalization and 32 bytes', () => {
    const x = a.blindIndex('customers', 'email', 'email', ' Ana@Example.COM ');
    expect(x.length).toBe(32);
    expect(a.blindIndex('customers', 'email', 'email', 'ana@example.com')).toEqual(x);
    expect(a.blindIndex('customers', 'email', 'email', 'ana2@example.com')).not.toEqual(x);
    expect(a.blindIndex('customers', 'phone', 'phone', '+40 (721) 123-456')).toEqual(
      a.blindIndex('customers', 'phone', 'phone', '0040721123456'),
    );
  });

  it('differs per tenant, per column, and from a plain HMAC of the DEK', () => {
    const x = a.blindIndex('customers', 'email', 'email', 'ana@example.com');
    expect(
      cipherWith('gym-one', [1, dek]).blindIndex('customers', 'email', 'email', 'ana@example.com'),
    ).not.toEqual(x);
    expect(
      cipherWith('smile-dental', [1, generateDek()]).blindIndex(
        'customers',
        'email',
        'email',
        'ana@example.com',
      ),
    ).not.toEqual(x);
    expect(a.blindIndex('staff', 'email', 'email', 'ana@example.com')).not.toEqual(x);
  });

  it('after a rotation, lookups match rows indexed under every held version', () => {
    const before = a.blindIndex('customers', 'email', 'email', 'ana@example.com');
    const rotated = cipherWith('smile-dental', [1, dek], [2, generateDek()]);
    const candidates = rotated.blindIndexes('customers', 'email', 'email', 'ana@example.com');
    expect(candidates).toHaveLength(2);
    expect(candidates[0]).toEqual(rotated.blindIndex('customers', 'email', 'email', 'ana@example.com'));
    expect(candidates[1]).toEqual(before);
  });

  it('normalizes e-mail and phone, refusing what it cannot normalize', () => {
    expect(normalizeEmail('  Ana@Example.com\n')).toBe('ana@example.com');
    expect(() => normalizeEmail('not an email')).toThrow(TypeError);
    expect(normalizePhone('+1 (415) 555-2671')).toBe('+14155552671');
    expect(normalizePhone('0040 721 123 456')).toBe('+40721123456');
    expect(() => normalizePhone('0721 123 456')).toThrow(TypeError); // no country code: refuse, don't guess
    expect(() => normalizePhone('+12')).toThrow(TypeError);
  });
});
