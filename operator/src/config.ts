/**
 * Operator configuration: one schema with defaults, validated at start-up, passed in — never read
 * from process.env deep inside (CONVENTIONS 11). Environment variables map onto it in `fromEnv`.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { PLATFORM_NAMESPACE } from '@simptu/common';

// IPv4 a.b.c.d/n or IPv6 x:y::/n; the TenantAgent construct checks the ranges.
const CIDR_PATTERN = '^([0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}|[0-9a-fA-F:]*:[0-9a-fA-F:]*/[0-9]{1,3})$';
const SECRET_NAME_PATTERN = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';

const SecretKeyRefSchema = (def: { name: string; key: string }) =>
  Type.Object(
    {
      name: Type.String({ pattern: SECRET_NAME_PATTERN, default: def.name }),
      key: Type.String({ pattern: '^[-._a-zA-Z0-9]+$', default: def.key }),
    },
    { additionalProperties: false, default: {} },
  );

export const OperatorConfigSchema = Type.Object(
  {
    databaseUrl: Type.String({
      minLength: 1,
      description: 'admin (migrator) connection to the platform database',
    }),
    kafkaBrokers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    kafkaReplicationFactor: Type.Integer({ minimum: 1, default: 1 }),
    platformNamespace: Type.String({ default: PLATFORM_NAMESPACE }),
    /** the services' NOINHERIT login role, granted membership in every tenant role */
    appRole: Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}$', default: 'simptu_app' }),
    appRolePassword: Type.Optional(Type.String({ minLength: 8 })),
    kms: Type.Object(
      {
        provider: Type.Literal('local', { default: 'local' }),
        secretName: Type.String({ default: 'simptu-kek' }),
        /** development only: create the KEK Secret (and the platform namespace) when missing */
        createIfMissing: Type.Boolean({ default: false }),
      },
      { additionalProperties: false, default: {} },
    ),
    workers: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
    resyncPeriodMs: Type.Integer({ minimum: 1000, default: 10 * 60_000 }),
    leaderElection: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        leaseName: Type.String({ default: 'simptu-operator' }),
        leaseDurationMs: Type.Integer({ minimum: 1000, default: 15_000 }),
        renewDeadlineMs: Type.Integer({ minimum: 500, default: 10_000 }),
        retryPeriodMs: Type.Integer({ minimum: 100, default: 2_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    metricsPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    probePort: Type.Integer({ minimum: 0, maximum: 65535, default: 8081 }),
    /** dedicated agents (reconcile/agent.ts) */
    agent: Type.Object(
      {
        image: Type.String({ default: 'simptu/agent:latest' }),
        /** 'rollout': AgentReady waits for available replicas; 'applied': ready once applied (clusters without nodes) */
        readiness: Type.Union([Type.Literal('rollout'), Type.Literal('applied')], { default: 'rollout' }),
        /**
         * Secrets of the platform namespace the runtime Secret of each dedicated agent is composed
         * from (the KEK comes from `kms.secretName`), and the brokers as the agent pods reach them.
         */
        runtime: Type.Object(
          {
            databaseUrl: SecretKeyRefSchema({ name: 'simptu-database', key: 'app-url' }),
            redisUrl: SecretKeyRefSchema({ name: 'simptu-redis', key: 'url' }),
            /** @default the operator's own `kafkaBrokers` */
            kafkaBrokers: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
          },
          { additionalProperties: false, default: {} },
        ),
        /** NetworkPolicy egress of dedicated agents to backends outside the cluster */
        egress: Type.Object(
          {
            cidrs: Type.Array(Type.String({ pattern: CIDR_PATTERN }), { default: [] }),
            ports: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), {
              minItems: 1,
              default: [5432, 6379, 9092],
            }),
            /** SMTP ports to public addresses, opened when the platform has an SMTP URL; [] = none */
            smtpPorts: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { default: [587, 465] }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    endpoints: Type.Object(
      {
        /** templates; `{tenant}` is replaced by the tenant name */
        api: Type.String({ default: 'https://api.simptu.io/v1' }),
        websocket: Type.String({ default: 'wss://rt.simptu.io/socket/websocket' }),
        issuer: Type.String({ default: 'https://auth.simptu.io' }),
      },
      { additionalProperties: false, default: {} },
    ),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    /** manage only Tenants matching this label selector (shards, canaries, tests side by side) */
    tenantSelector: Type.Optional(Type.String()),
    /** crash-safety tests: exit the process when this point is reached (e.g. `database:after`) */
    faultPoint: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type OperatorConfig = Static<typeof OperatorConfigSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Applies defaults and validates; throws one ConfigError naming every bad field. */
export function parseConfig(input: unknown): OperatorConfig {
  const withDefaults = Value.Default(OperatorConfigSchema, Value.Clone(input));
  const errors = [...Value.Errors(OperatorConfigSchema, withDefaults)];
  if (errors.length > 0) {
    const lines = errors.slice(0, 10).map((e) => `  ${e.path || '/'}: ${e.message}`);
    throw new ConfigError(`invalid operator configuration:\n${lines.join('\n')}`);
  }
  return withDefaults as OperatorConfig;
}

const int = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
/** true/false/1/0/yes/no; anything else stays a string so validation names the variable. */
const bool = (v: string | undefined): boolean | string | undefined => {
  if (v === undefined || v === '') return undefined;
  const s = v.toLowerCase();
  if (['true', '1', 'yes'].includes(s)) return true;
  if (['false', '0', 'no'].includes(s)) return false;
  return v;
};

/** Comma-separated, blanks dropped; undefined when unset or empty. */
const list = (v: string | undefined): string[] | undefined => {
  const items = v
    ?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  return items && items.length > 0 ? items : undefined;
};

/** Maps SIMPTU_* (and the test environment's DATABASE_URL / KAFKA_BROKERS) onto the schema. */
export function fromEnv(env: NodeJS.ProcessEnv): unknown {
  const prune = (o: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(o)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [
          k,
          v && typeof v === 'object' && !Array.isArray(v) ? prune(v as Record<string, unknown>) : v,
        ]),
    );
  return prune({
    databaseUrl: env.SIMPTU_DATABASE_URL ?? env.DATABASE_URL,
    kafkaBrokers: (env.SIMPTU_KAFKA_BROKERS ?? env.KAFKA_BROKERS)
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    kafkaReplicationFactor: int(env.SIMPTU_KAFKA_REPLICATION_FACTOR),
    platformNamespace: env.SIMPTU_PLATFORM_NAMESPACE,
    appRole: env.SIMPTU_APP_ROLE,
    appRolePassword: env.SIMPTU_APP_ROLE_PASSWORD,
    kms: { secretName: env.SIMPTU_KEK_SECRET, createIfMissing: bool(env.SIMPTU_KEK_CREATE_IF_MISSING) },
    workers: int(env.SIMPTU_WORKERS),
    resyncPeriodMs: int(env.SIMPTU_RESYNC_PERIOD_MS),
    leaderElection: {
      enabled: bool(env.SIMPTU_LEADER_ELECTION),
      leaseName: env.SIMPTU_LEASE_NAME,
      leaseDurationMs: int(env.SIMPTU_LEASE_DURATION_MS),
      renewDeadlineMs: int(env.SIMPTU_RENEW_DEADLINE_MS),
      retryPeriodMs: int(env.SIMPTU_RETRY_PERIOD_MS),
    },
    metricsPort: int(env.SIMPTU_METRICS_PORT),
    probePort: int(env.SIMPTU_PROBE_PORT),
    // not SIMPTU_AGENT_*: that prefix belongs to the agent service's own configuration
    agent: {
      image: env.SIMPTU_DEDICATED_AGENT_IMAGE,
      readiness: env.SIMPTU_DEDICATED_AGENT_READINESS,
      runtime: {
        databaseUrl: {
          name: env.SIMPTU_DEDICATED_AGENT_DATABASE_URL_SECRET,
          key: env.SIMPTU_DEDICATED_AGENT_DATABASE_URL_KEY,
        },
        redisUrl: {
          name: env.SIMPTU_DEDICATED_AGENT_REDIS_URL_SECRET,
          key: env.SIMPTU_DEDICATED_AGENT_REDIS_URL_KEY,
        },
        kafkaBrokers: list(env.SIMPTU_DEDICATED_AGENT_KAFKA_BROKERS),
      },
      egress: {
        // set but empty means none (a chart value defaulting to '')
        cidrs:
          env.SIMPTU_DEDICATED_AGENT_EGRESS_CIDRS === undefined
            ? undefined
            : (list(env.SIMPTU_DEDICATED_AGENT_EGRESS_CIDRS) ?? []),
        ports: list(env.SIMPTU_DEDICATED_AGENT_EGRESS_PORTS)?.map((p) => (/^\d+$/.test(p) ? Number(p) : p)),
        // set but empty means none
        smtpPorts:
          env.SIMPTU_DEDICATED_AGENT_SMTP_EGRESS_PORTS === undefined
            ? undefined
            : (list(env.SIMPTU_DEDICATED_AGENT_SMTP_EGRESS_PORTS) ?? []).map((p) =>
                /^\d+$/.test(p) ? Number(p) : p,
              ),
      },
    },
    endpoints: {
      api: env.SIMPTU_ENDPOINT_API,
      websocket: env.SIMPTU_ENDPOINT_WEBSOCKET,
      issuer: env.SIMPTU_ENDPOINT_ISSUER,
    },
    logLevel: env.SIMPTU_LOG_LEVEL,
    tenantSelector: env.SIMPTU_TENANT_SELECTOR,
    faultPoint: env.SIMPTU_FAULT_POINT,
  });
}
