import { describe, expect, it } from 'vitest';
import { ConfigError } from '@simptu/common';
import { loadAuthConfig } from './config.ts';

const base = {
  SIMPTU_AUTH_ISSUER: 'https://auth.simptu.io',
  DATABASE_URL: 'postgres://u:p@localhost/simptu',
  REDIS_URL: 'redis://localhost:6379',
  SIMPTU_AUTH_KEK: Buffer.alloc(32, 7).toString('base64'),
  SIMPTU_AUTH_COOKIE_KEYS: 'a'.repeat(32),
};

describe('loadAuthConfig', () => {
  it('fills defaults and takes the plain test-environment URLs', () => {
    const c = loadAuthConfig(base);
    expect(c).toMatchObject({
      port: 3001,
      databaseUrl: base.DATABASE_URL,
      redisUrl: base.REDIS_URL,
      api: { resource: 'https://api.simptu.io', audience: 'simptu-api' },
      keys: { alg: 'ES256' },
      login: { maxFailuresPerAccount: 5 },
    });
    expect(c.cookieKeys).toEqual(['a'.repeat(32)]);
  });

  it('reports every problem at once, by variable', () => {
    try {
      loadAuthConfig({
        ...base,
        SIMPTU_AUTH_ISSUER: 'auth.simptu.io/',
        SIMPTU_AUTH_COOKIE_KEYS: 'short',
        SIMPTU_AUTH_LOGIN_MAX_FAILURES_PER_ACOUNT: '3',
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const envs = (err as ConfigError).issues.map((i) => i.env ?? i.path);
      expect(envs).toEqual(
        expect.arrayContaining([
          'SIMPTU_AUTH_ISSUER',
          'cookieKeys.0',
          'SIMPTU_AUTH_LOGIN_MAX_FAILURES_PER_ACOUNT',
        ]),
      );
    }
  });

  it('refuses a KEK that is not 256 bits and an access-code token outliving access tokens', () => {
    expect(() =>
      loadAuthConfig({
        ...base,
        SIMPTU_AUTH_KEK: Buffer.alloc(16).toString('base64') + 'AAAAAAAAAAAAAAAAAAAA',
      }),
    ).toThrow(/kek/);
    expect(() =>
      loadAuthConfig({
        ...base,
        SIMPTU_AUTH_TTL_ACCESS_TOKEN_SEC: '60',
        SIMPTU_AUTH_TTL_ACCESS_CODE_TOKEN_SEC: '600',
      }),
    ).toThrow(/accessCodeTokenSec/);
  });
});
