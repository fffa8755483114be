import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dekWrapAad, kekFingerprint, KeyUnwrapError, LocalKms } from './kms.ts';

describe('LocalKms', () => {
  const kek = randomBytes(32);
  const kms = new LocalKms(kek);
  const dek = randomBytes(32);

  it('round-trips a DEK and never emits it in the clear', async () => {
    const wrapped = await kms.wrap(dek, dekWrapAad('smile-dental', 1));
    expect(wrapped.includes(dek)).toBe(false);
    expect(await kms.unwrap(wrapped, dekWrapAad('smile-dental', 1))).toEqual(dek);
  });

  it('uses a fresh nonce per wrap', async () => {
    const a = await kms.wrap(dek, 'x');
    const b = await kms.wrap(dek, 'x');
    expect(a.equals(b)).toBe(false);
  });

  it('has a stable, non-secret kekId derived from the KEK', () => {
    expect(kms.kekId).toMatch(/^[0-9a-f]{16}$/);
    expect(new LocalKms(Buffer.from(kek)).kekId).toBe(kms.kekId);
    expect(kms.kekId).toBe(kekFingerprint(kek));
    expect(LocalKms.generate().kekId).not.toBe(kms.kekId);
    // domain-separated: not simply a prefix of sha256(kek)
    expect(kek.toString('hex').startsWith(kms.kekId)).toBe(false);
  });

  it('detects a wrong KEK instead of producing garbage', async () => {
    const wrapped = await kms.wrap(dek, 'aad');
    const other = LocalKms.generate();
    const err = await other.unwrap(wrapped, 'aad').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyUnwrapError);
    expect((err as KeyUnwrapError).reason).toBe('kek-mismatch');
  });

  it('binds the wrapped key to tenant and version', async () => {
    const wrapped = await kms.wrap(dek, dekWrapAad('smile-dental', 1));
    for (const aad of [dekWrapAad('smile-dental', 2), dekWrapAad('other-tenant', 1)]) {
      const err = await kms.unwrap(wrapped, aad).catch((e: unknown) => e);
      expect((err as KeyUnwrapError).reason).toBe('authentication-failed');
    }
  });

  it('rejects tampered and malformed blobs', async () => {
    const wrapped = await kms.wrap(dek, 'aad');
    for (let i = 0; i < wrapped.length; i += 7) {
      const t = Buffer.from(wrapped);
      t[i]! ^= 0x01;
      await expect(kms.unwrap(t, 'aad')).rejects.toBeInstanceOf(KeyUnwrapError);
    }
    await expect(kms.unwrap(Buffer.alloc(3), 'aad')).rejects.toMatchObject({ reason: 'malformed' });
  });

  it('refuses a KEK that is not 256 bits', () => {
    expect(() => new LocalKms(randomBytes(16))).toThrow(/256-bit/);
    expect(LocalKms.fromBase64(kek.toString('base64') + '\n').kekId).toBe(kms.kekId);
  });
});
