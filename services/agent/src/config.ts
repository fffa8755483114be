/**
 * The agent's configuration (CONVENTIONS 11): one TypeBox schema with defaults, validated at
 * start-up from `SIMPTU_AGENT_*` variables (plain `DATABASE_URL`, `REDIS_URL`, `KAFKA_BROKERS`
 * accepted as fallbacks), then passed in.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ConfigObject, loadConfigFromEnv } from '@simptu/common';

export const ENV_PREFIX = 'SIMPTU_AGENT_';

export const AgentConfigSchema = ConfigObject({
  /** `pool`: every tenant the registry marks agent-shared; `dedicated`: only `tenant` */
  mode: Type.Union([Type.Literal('pool'), Type.Literal('dedicated')], { default: 'pool' }),
  /** the one tenant of a dedicated agent (the operator sets SIMPTU_AGENT_TENANT) */
  tenant: Type.Optional(Type.String({ minLength: 3 })),
  /** the services' NOINHERIT login role on the platform database */
  databaseUrl: Type.String({ minLength: 1 }),
  databasePoolMax: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
  redisUrl: Type.String({ minLength: 1 }),
  redisPrefix: Type.String({ default: 'simptu:agent:' }),
  kafkaBrokers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  kafkaClientId: Type.String({ default: 'simptu-agent' }),
  /** consumer group; one per deployment (pool) or per tenant (dedicated) */
  groupId: Type.String({ default: 'simptu-agent' }),
  /** Kafka consumer session timeout: how soon a dead agent's partitions move to another one */
  kafkaSessionTimeoutMs: Type.Integer({ minimum: 6000, maximum: 300_000, default: 30_000 }),
  /** inbound partitions of one database fetched and dispatched at the same time */
  kafkaPartitionsConcurrently: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
  /**
   * Runs of one database in progress at the same time, whatever partition their conversations
   * hash to (a conversation's own messages still run one after another, in order). Each holds a
   * database connection: capped at `databasePoolMax - 2` (the outbox relay listens on one and
   * publishes on another).
   */
  concurrentRuns: Type.Integer({ minimum: 1, maximum: 200, default: 8 }),
  /**
   * the consumer group's heartbeat interval (runs don't hold up the fetch loop, which heartbeats;
   * also while fetching waits for room, so long LLM turns don't exceed the session timeout)
   */
  kafkaHeartbeatIntervalMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 3000 }),
  /**
   * When a partition's committed offset (the lowest record not yet done) moves: `record` at once,
   * `batch` at most once a second (safe: a redelivered message finds its processed marker and is
   * skipped)
   */
  kafkaOffsetCommit: Type.Union([Type.Literal('record'), Type.Literal('batch')], { default: 'batch' }),
  /** base64 256-bit KEK of the `local` KMS */
  kek: Type.String({ minLength: 40 }),
  /** how often the registry is re-read for tenants joining or leaving the pool */
  registryRefreshMs: Type.Integer({ minimum: 100, default: 15_000 }),
  /**
   * a run's events leave right after COMMIT from this replica (outbox direct publishing), the
   * outbox relay being the safety net; false: every event waits for a relay pass
   */
  outboxDirect: Type.Boolean({ default: true }),
  /** token deltas are coalesced into one event per window */
  tokenWindowMs: Type.Integer({ minimum: 0, maximum: 5000, default: 50 }),
  /** diagnostics: record per-turn stage times, written as JSON to this file on SIGUSR2 (turn-trace.ts) */
  turnTrace: Type.Optional(Type.String({ minLength: 1 })),
  checkpoints: ConfigObject({
    keepLatest: Type.Integer({ minimum: 1, default: 10 }),
    maxAgeDays: Type.Integer({ minimum: 1, default: 90 }),
  }),
  secrets: ConfigObject({
    /** mounted Secrets: `<dir>/<name>/<key>` */
    dir: Type.Optional(Type.String()),
    /** `{"<name>": {"<key>": "<value>"}}` */
    json: Type.Optional(Type.String()),
  }),
  channels: ConfigObject({
    twilioBaseUrl: Type.String({ default: 'https://api.twilio.com' }),
    metaBaseUrl: Type.String({ default: 'https://graph.facebook.com' }),
    metaApiVersion: Type.String({ default: 'v21.0' }),
    /** outbound messages per tenant per minute */
    ratePerMinute: Type.Integer({ minimum: 1, default: 60 }),
    /** SMTP server for e-mail replies, `smtp://[user:pass@]host[:port]` or `smtps://…`; unset = none sent */
    smtpUrl: Type.Optional(
      Type.String({
        pattern: '^smtps?://([^\\s@/]+@)?([^\\s@/:?\\[\\]]+|\\[[0-9a-fA-F:.]+\\])(:[0-9]{1,5})?([/?]\\S*)?$',
      }),
    ),
    /** e-mail replies to one address per hour, a loop breaker */
    emailPerRecipientPerHour: Type.Integer({ minimum: 1, default: 10 }),
  }),
  metricsPort: Type.Integer({ minimum: 0, maximum: 65535, default: 9464 }),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
});

export type AgentConfig = Static<typeof AgentConfigSchema>;

const FALLBACKS: Record<string, string> = {
  DATABASE_URL: `${ENV_PREFIX}DATABASE_URL`,
  REDIS_URL: `${ENV_PREFIX}REDIS_URL`,
  KAFKA_BROKERS: `${ENV_PREFIX}KAFKA_BROKERS`,
  SIMPTU_TENANT: `${ENV_PREFIX}TENANT`,
};

export function loadAgentConfig(env: Record<string, string | undefined> = process.env): AgentConfig {
  const merged: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith(ENV_PREFIX)) merged[k] = v;
  for (const [plain, prefixed] of Object.entries(FALLBACKS))
    if (merged[prefixed] === undefined && env[plain] !== undefined) merged[prefixed] = env[plain];
  if (merged[`${ENV_PREFIX}TENANT`] !== undefined && merged[`${ENV_PREFIX}MODE`] === undefined)
    merged[`${ENV_PREFIX}MODE`] = 'dedicated';
  return loadConfigFromEnv(AgentConfigSchema, merged, { prefix: ENV_PREFIX });
}
