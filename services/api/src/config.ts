/**
 * The API's configuration (CONVENTIONS 11): one TypeBox schema with defaults, validated at
 * start-up from `SIMPTU_API_*` variables, then passed in — nothing below reads `process.env`.
 *
 * The test environment's plain `DATABASE_URL`, `REDIS_URL`, `KAFKA_BROKERS` are accepted as
 * fallbacks for the prefixed ones (`make dev` and the tests export those), the prefixed variable
 * winning when both are set.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ConfigObject, loadConfigFromEnv, withDatabase } from '@simptu/common';

export const ENV_PREFIX = 'SIMPTU_API_';

export const ApiConfigSchema = ConfigObject({
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 3003 }),
  host: Type.String({ default: '0.0.0.0' }),
  /**
   * The services' NOINHERIT login role on the PLATFORM database (shared tenants' schemas live
   * there). Dedicated tenants are reached with the same credentials, database name swapped.
   */
  databaseUrl: Type.String({ minLength: 1 }),
  /** connections per database pool */
  databasePoolMax: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
  redisUrl: Type.String({ minLength: 1 }),
  /** Redis key prefix, so several deployments (or test files) can share one Redis */
  redisPrefix: Type.String({ default: 'simptu:api:' }),
  kafkaBrokers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  kafkaClientId: Type.String({ default: 'simptu-api' }),
  /** base64 of the 256-bit `local` KMS key-encryption key (the one the operator wraps DEKs with) */
  kek: Type.String({ minLength: 40 }),
  auth: ConfigObject({
    issuer: Type.String({ minLength: 1 }),
    audience: Type.String({ default: 'simptu-api' }),
    jwksUri: Type.String({ minLength: 1 }),
  }),
  rateLimit: ConfigObject({
    /** requests per minute for one principal of one tenant */
    perPrincipal: Type.Integer({ minimum: 1, default: 600 }),
    /** requests per minute for a whole tenant */
    perTenant: Type.Integer({ minimum: 1, default: 6000 }),
    /**
     * requests per minute per client IP that fail authentication or read the public docs
     * (`/v1/openapi.json`, `/docs`); requests with a valid token never count (plugins/rate-limit.ts)
     */
    anonymous: Type.Integer({ minimum: 1, default: 120 }),
  }),
  cache: ConfigObject({
    /** tenant registry rows */
    registryTtlMs: Type.Integer({ minimum: 0, default: 5000 }),
    /** hot reads (catalog) in Redis */
    catalogTtlSec: Type.Integer({ minimum: 1, default: 300 }),
    /** availability in Redis */
    availabilityTtlSec: Type.Integer({ minimum: 1, default: 30 }),
    /** data keys' version list */
    keyringRefreshMs: Type.Integer({ minimum: 1000, default: 60_000 }),
    /**
     * per-process memory for decrypted history pages (docs/api.md "History cache"), bytes;
     * 0 turns the cache off (every read goes to the database)
     */
    historyMaxBytes: Type.Integer({ minimum: 0, default: 64 * 1024 * 1024 }),
    /**
     * longest a cached history page is served (it is also checked against the session's
     * version on every request): bounds staleness only when a writer could not reach Redis
     */
    historyTtlSec: Type.Integer({ minimum: 1, default: 60 }),
  }),
  idempotency: ConfigObject({
    /** `idempotency_keys` rows older than this are deleted (a key then no longer replays) */
    retentionHours: Type.Integer({ minimum: 1, default: 24 }),
    /** how often this process purges old rows of every active tenant; 0 disables the job */
    purgeIntervalSec: Type.Integer({ minimum: 0, default: 900 }),
  }),
  events: ConfigObject({
    /** run the outbox relay in this process */
    relay: Type.Boolean({ default: true }),
    /** run the consumers (agent replies → history; domain events → cache invalidation) in this process */
    consumers: Type.Boolean({ default: true }),
    /** how often the tenant list of relays/consumers is refreshed */
    tenantRefreshMs: Type.Integer({ minimum: 100, default: 15_000 }),
    /** consumer group id prefix */
    groupPrefix: Type.String({ default: 'simptu-api' }),
  }),
  /** on SIGTERM, readiness fails this long before the server stops accepting (load balancers catch up) */
  shutdownDelayMs: Type.Integer({ minimum: 0, default: 0 }),
  /** public base URL put into the OpenAPI document's `servers` */
  publicUrl: Type.Optional(Type.String()),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
});

export type ApiConfig = Static<typeof ApiConfigSchema>;

/** Plain names the test environment and `make dev` export, used when the prefixed one is unset. */
const FALLBACKS: Record<string, string> = {
  DATABASE_URL: `${ENV_PREFIX}DATABASE_URL`,
  REDIS_URL: `${ENV_PREFIX}REDIS_URL`,
  KAFKA_BROKERS: `${ENV_PREFIX}KAFKA_BROKERS`,
};

/** Validates the environment; throws `ConfigError` listing every bad or missing variable. */
export function loadApiConfig(env: Record<string, string | undefined> = process.env): ApiConfig {
  const merged: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith(ENV_PREFIX)) merged[k] = v;
  for (const [plain, prefixed] of Object.entries(FALLBACKS))
    if (merged[prefixed] === undefined && env[plain] !== undefined) merged[prefixed] = env[plain];
  return loadConfigFromEnv(ApiConfigSchema, merged, { prefix: ENV_PREFIX });
}

/** Connection URL of a dedicated tenant's database: the platform URL with the database swapped. */
export function tenantDatabaseUrl(config: Pick<ApiConfig, 'databaseUrl'>, database: string): string {
  return withDatabase(config.databaseUrl, database);
}

/** The platform database's name (shared tenants' schemas live there). */
export function platformDatabaseName(config: Pick<ApiConfig, 'databaseUrl'>): string {
  return decodeURIComponent(new URL(config.databaseUrl).pathname.replace(/^\//, ''));
}
