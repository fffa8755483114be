/**
 * The SSO service's configuration (CONVENTIONS 11): one TypeBox schema with defaults, validated
 * at start-up from `SIMPTU_AUTH_*` variables, then passed in — nothing below reads `process.env`.
 * The test environment's plain `DATABASE_URL` and `REDIS_URL` are accepted as fallbacks.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, ConfigObject, loadConfigFromEnv } from '@simptu/common';

export const ENV_PREFIX = 'SIMPTU_AUTH_';

const seconds = (def: number, min = 1) => Type.Integer({ minimum: min, default: def });

export const AuthConfigSchema = ConfigObject({
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 3001 }),
  host: Type.String({ default: '0.0.0.0' }),
  /** the `iss` of every token and the base URL of every endpoint, e.g. `https://auth.simptu.io` */
  issuer: Type.String({ minLength: 1, pattern: '^https?://[^/?#]+(/[^?#]*[^/?#])?$' }),
  /** login role of the platform database: owns schema `auth`, reads `platform.tenants`, member of tenant roles */
  databaseUrl: Type.String({ minLength: 1 }),
  databasePoolMax: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
  /** apply `services/auth/migrations` at start-up */
  migrate: Type.Boolean({ default: true }),
  redisUrl: Type.String({ minLength: 1 }),
  /** key prefix, so deployments (or test files) can share one Redis */
  redisPrefix: Type.String({ default: 'simptu:auth:' }),
  /** base64 of the 256-bit `local` KMS key-encryption key (signing keys and tenant DEKs are wrapped by it) */
  kek: Type.String({ minLength: 40 }),
  /** secrets that sign cookies, newest first (rotate by prepending) */
  cookieKeys: Type.Array(Type.String({ minLength: 32 }), { minItems: 1 }),
  api: ConfigObject({
    /** RFC 8707 resource indicator of the REST API */
    resource: Type.String({ default: 'https://api.simptu.io' }),
    /** `aud` of its access tokens (what `createAccessTokenVerifier` expects) */
    audience: Type.String({ default: 'simptu-api' }),
  }),
  ttl: ConfigObject({
    accessTokenSec: seconds(900),
    /** tokens from the patient access-code grant */
    accessCodeTokenSec: seconds(600),
    idTokenSec: seconds(3600),
    refreshTokenSec: seconds(14 * 86400),
    sessionSec: seconds(14 * 86400),
    interactionSec: seconds(900),
    authorizationCodeSec: seconds(60),
    passwordResetSec: seconds(1800),
  }),
  keys: ConfigObject({
    alg: Type.Union([Type.Literal('ES256'), Type.Literal('RS256')], { default: 'ES256' }),
    /** how often the running service looks for rotated keys */
    refreshMs: Type.Integer({ minimum: 1000, default: 60_000 }),
  }),
  login: ConfigObject({
    /** wrong passwords for one account within `windowSec` before it locks */
    maxFailuresPerAccount: Type.Integer({ minimum: 1, default: 5 }),
    lockoutSec: seconds(900),
    /** login attempts from one IP within `windowSec` */
    maxAttemptsPerIp: Type.Integer({ minimum: 1, default: 50 }),
    windowSec: seconds(900),
  }),
  accessCode: ConfigObject({
    /** exchange attempts from one IP within `windowSec` (unknown codes count here only) */
    maxAttemptsPerIp: Type.Integer({ minimum: 1, default: 20 }),
    windowSec: seconds(900),
  }),
  mail: ConfigObject({
    /** nodemailer SMTP URL, e.g. `smtps://user:pass@smtp.example:465` */
    smtpUrl: Type.String({ default: 'smtp://127.0.0.1:1025' }),
    from: Type.String({ default: 'Simptu <no-reply@simptu.io>' }),
  }),
  /** take the client IP from X-Forwarded-For (only behind a trusted proxy) */
  trustProxy: Type.Boolean({ default: false }),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
});

export type AuthConfig = Static<typeof AuthConfigSchema>;

const FALLBACKS: Record<string, string> = {
  DATABASE_URL: `${ENV_PREFIX}DATABASE_URL`,
  REDIS_URL: `${ENV_PREFIX}REDIS_URL`,
};

/** Validates the environment; throws `ConfigError` listing every bad or missing variable. */
export function loadAuthConfig(env: Record<string, string | undefined> = process.env): AuthConfig {
  const merged: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith(ENV_PREFIX)) merged[k] = v;
  for (const [plain, prefixed] of Object.entries(FALLBACKS))
    if (merged[prefixed] === undefined && env[plain] !== undefined) merged[prefixed] = env[plain];
  const config = loadConfigFromEnv(AuthConfigSchema, merged, { prefix: ENV_PREFIX });
  checkSemantics(config);
  return config;
}

/** What a schema can't say. */
export function checkSemantics(config: AuthConfig): void {
  const issues: { path: string; message: string }[] = [];
  if (Buffer.from(config.kek, 'base64').length !== 32)
    issues.push({ path: 'kek', message: 'must be the base64 of exactly 32 bytes' });
  try {
    new URL(config.api.resource);
  } catch {
    issues.push({ path: 'api.resource', message: 'must be an absolute URI (RFC 8707)' });
  }
  if (config.ttl.accessCodeTokenSec > config.ttl.accessTokenSec)
    issues.push({ path: 'ttl.accessCodeTokenSec', message: 'must not exceed ttl.accessTokenSec' });
  if (issues.length > 0) throw new ConfigError(issues);
}
