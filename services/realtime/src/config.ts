/**
 * Hub configuration (CONVENTIONS 11): one schema with defaults, validated once at start-up by
 * `loadConfigFromEnv` from `@simptu/common`; every variable is `SIMPTU_REALTIME_<PATH>`, e.g.
 * `SIMPTU_REALTIME_AUTH_JWKS_URI`, `SIMPTU_REALTIME_HISTORY_MAX_COUNT`. Unknown
 * `SIMPTU_REALTIME_*` variables are errors (a typo must not fall back to a default).
 */
import { Type, type Static } from '@sinclair/typebox';
import { ConfigObject, loadConfigFromEnv } from '@simptu/common';

export const ENV_PREFIX = 'SIMPTU_REALTIME_';

const Ms = (def: number, min = 1) => Type.Integer({ minimum: min, default: def });

export const RealtimeConfigSchema = ConfigObject({
  host: Type.String({ default: '0.0.0.0' }),
  /** DESIGN §3: realtime listens on 4000 by default; 0 picks a free port */
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 4000 }),
  /** identifies this instance in presence and its Kafka consumer group; @default hostname + random */
  instanceId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,100}$' })),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  /** the services' NOINHERIT login role on the platform database */
  databaseUrl: Type.String({ minLength: 1 }),
  databasePoolMax: Type.Integer({ minimum: 1, default: 10 }),
  redisUrl: Type.String({ minLength: 1 }),
  kafkaBrokers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  /** each instance consumes with its own group `<prefix>-<instanceId>` (see docs/realtime.md) */
  kafkaGroupPrefix: Type.String({ default: 'simptu-realtime', pattern: '^[A-Za-z0-9._-]{1,100}$' }),
  /** partitions whose record batches the ingest handles at once (one partition stays in order) */
  kafkaPartitionsConcurrency: Type.Integer({ minimum: 1, maximum: 64, default: 8 }),
  /** consumed offsets are committed at most this often, not after every batch (see src/kafka.ts) */
  kafkaCommitIntervalMs: Ms(5000, 100),
  auth: ConfigObject({
    issuer: Type.String({ minLength: 1 }),
    audience: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, default: ['simptu-api'] }),
    jwksUri: Type.String({ minLength: 1 }),
  }),
  /** the local KMS key-encryption key, base64 (256 bits): to read tenants' data keys */
  kekBase64: Type.String({ minLength: 40 }),
  limits: Type.Object(
    {
      /** larger text frames close the socket with 1009 */
      maxFrameBytes: Type.Integer({ minimum: 1024, default: 64 * 1024 }),
      /** no frame for this long → closed (the client heartbeats every 30 s) */
      idleTimeoutMs: Ms(60_000, 1000),
      maxChannelsPerSocket: Type.Integer({ minimum: 1, default: 100 }),
      /** malformed frames tolerated per socket before it is closed */
      maxMalformedFrames: Type.Integer({ minimum: 0, default: 10 }),
      /** queue and coalesce above this many buffered bytes */
      highWaterBytes: Type.Integer({ minimum: 1024, default: 64 * 1024 }),
      /** disconnect a client whose buffered + queued bytes exceed this */
      maxBufferedBytes: Type.Integer({ minimum: 4096, default: 4 * 1024 * 1024 }),
    },
    { additionalProperties: false, default: {} },
  ),
  history: Type.Object(
    {
      maxCount: Type.Integer({ minimum: 1, default: 200 }),
      maxAgeMs: Ms(10 * 60_000),
      /** a quiet stream's epoch/seq live this long; then a new epoch starts */
      streamTtlMs: Ms(24 * 3600_000),
      /** how long an event id is remembered per topic (Kafka redelivery, several instances) */
      dedupTtlMs: Ms(3600_000),
    },
    { additionalProperties: false, default: {} },
  ),
  presence: Type.Object(
    {
      heartbeatMs: Ms(5000, 100),
      /** an instance silent for this long is dead: its presences leave */
      instanceTtlMs: Ms(15_000, 300),
    },
    { additionalProperties: false, default: {} },
  ),
  registryRefreshMs: Ms(10_000, 100),
  /** relay the outbox rows the hub writes (and others'); safe beside other relays */
  outboxRelay: Type.Boolean({ default: true }),
  drainTimeoutMs: Ms(10_000),
});

export type RealtimeConfig = Static<typeof RealtimeConfigSchema>;

export function loadRealtimeConfig(env: Record<string, string | undefined> = process.env): RealtimeConfig {
  return loadConfigFromEnv(RealtimeConfigSchema, env, { prefix: ENV_PREFIX });
}
