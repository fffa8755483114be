import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { kekFromSecretData } from './kek.ts';

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

describe('kekFromSecretData', () => {
  const key = randomBytes(32);
  it('reads 32 raw bytes under kek', () => {
    expect(kekFromSecretData({ kek: b64(key) })).toEqual(key);
  });
  it('reads the base64 text of the key, under kek or kek-base64', () => {
    expect(kekFromSecretData({ kek: b64(key.toString('base64')) })).toEqual(key);
    expect(kekFromSecretData({ 'kek-base64': b64(key.toString('base64')) })).toEqual(key);
  });
  it('refuses anything that is not a 256-bit key', () => {
    expect(kekFromSecretData({ kek: b64(randomBytes(16)) })).toBeUndefined();
    expect(kekFromSecretData({ kek: b64('not a key') })).toBeUndefined();
    expect(kekFromSecretData(undefined)).toBeUndefined();
  });
});
