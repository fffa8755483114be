import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { ConfigError, ConfigObject, envToConfig, loadConfig, loadConfigFromEnv } from './config.ts';

const Schema = ConfigObject({
  port: Type.Integer({ minimum: 1, maximum: 65535, default: 3003 }),
  logLevel: Type.Union([Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn')], {
    default: 'info',
  }),
  database: ConfigObject({
    url: Type.String({ minLength: 1 }),
    poolMax: Type.Integer({ minimum: 1, default: 10 }),
  }),
  kafka: ConfigObject({ brokers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }) }),
  tracing: Type.Boolean({ default: false }),
  issuer: Type.Optional(Type.String()),
});

describe('loadConfig', () => {
  it('applies defaults and converts strings', () => {
    const input = {
      database: { url: 'postgres://x' },
      kafka: { brokers: ['k:9092'] },
      port: '8080',
      tracing: 'true',
    };
    const cfg = loadConfig(Schema, input);
    expect(cfg).toEqual({
      port: 8080,
      logLevel: 'info',
      database: { url: 'postgres://x', poolMax: 10 },
      kafka: { brokers: ['k:9092'] },
      tracing: true,
    });
    expect(input.port).toBe('8080'); // input untouched
  });

  it('reports every bad field at once, by path, without echoing values', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig(Schema, {
        port: 70000,
        logLevel: 'loud',
        database: { poolMax: 's3cret-value' },
        kafka: { brokers: [] },
        extra: 1,
      });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const paths = err!.issues.map((i) => i.path).sort();
    expect(paths).toEqual(
      expect.arrayContaining([
        'port',
        'logLevel',
        'database.url',
        'database.poolMax',
        'kafka.brokers',
        'extra',
      ]),
    );
    expect(err!.message).toContain('database.url');
    expect(err!.message).not.toContain('s3cret-value');
  });

  it('requires closed objects in the schema', () => {
    expect(() => loadConfig(Type.Object({ a: Type.String() }), { a: 'x' })).toThrow(
      /additionalProperties: false/,
    );
  });
});

describe('config from the environment', () => {
  const env = {
    SIMPTU_PORT: '4000',
    SIMPTU_DATABASE_URL: 'postgres://db',
    SIMPTU_DATABASE_POOL_MAX: '4',
    SIMPTU_KAFKA_BROKERS: 'a:1, b:2',
    PATH: '/usr/bin',
  };

  it('maps variables by path, camelCase → SNAKE_CASE, lists by comma', () => {
    const { value, names } = envToConfig(Schema, env, 'SIMPTU_');
    expect(value).toEqual({
      port: '4000',
      database: { url: 'postgres://db', poolMax: '4' },
      kafka: { brokers: ['a:1', 'b:2'] },
    });
    expect(names.get('database.poolMax')).toBe('SIMPTU_DATABASE_POOL_MAX');
    expect(loadConfigFromEnv(Schema, env, { prefix: 'SIMPTU_' })).toMatchObject({
      port: 4000,
      database: { poolMax: 4 },
      logLevel: 'info',
    });
  });

  it('names the variable in errors, and refuses unknown prefixed variables', () => {
    try {
      loadConfigFromEnv(
        Schema,
        { SIMPTU_PORT: 'abc', SIMPTU_DATABSE_URL: 'typo', SIMPTU_KAFKA_BROKERS: 'a:1' },
        { prefix: 'SIMPTU_' },
      );
      expect.unreachable();
    } catch (e) {
      const err = e as ConfigError;
      expect(err.issues).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ path: 'port', env: 'SIMPTU_PORT' }),
          expect.objectContaining({ path: 'database.url', env: 'SIMPTU_DATABASE_URL' }),
          expect.objectContaining({ env: 'SIMPTU_DATABSE_URL' }),
        ]),
      );
    }
  });
});
