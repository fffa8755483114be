/**
 * Entry point: `node services/agent/src/main.ts`. Validates the configuration (every problem
 * listed, exit 2), connects Postgres/Redis/Kafka, starts the runtime and the staff relay
 * (staff-relay.ts: staff replies out to external channels), serves /metrics,
 * /healthz, /readyz; on SIGTERM/SIGINT stops consuming (the run in progress finishes and
 * commits), then closes everything.
 *
 * Fault injection for tests only: SIMPTU_FAULT_KILL_AFTER_TOOL=<tool name> SIGKILLs the process
 * after that tool ran and before the run committed; SIMPTU_FAULT_HOLD_AFTER_TOOL=<tool name>
 * leaves that run hanging there (uncommitted) while the process goes on with other work.
 */
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import {
  ConfigError,
  createKafka,
  createLogger,
  createMetrics,
  EventProducer,
  Health,
  healthHandler,
  KeyringCache,
  LocalKms,
  metricsHandler,
  trackSessionVersions,
} from '@simptu/common';
import { OutboundSender } from './channels/outbound.ts';
import { loadAgentConfig, type AgentConfig } from './config.ts';
import { ModelCache } from './model/providers.ts';
import { DatabasePools } from './pools.ts';
import { AgentRuntime } from './runtime.ts';
import { secretSource } from './secrets.ts';
import { StaffRelay } from './staff-relay.ts';
import { enableTurnTrace } from './turn-trace.ts';

async function main(): Promise<void> {
  let config: AgentConfig;
  try {
    config = loadAgentConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (config.mode === 'dedicated' && !config.tenant) {
    process.stderr.write('SIMPTU_AGENT_TENANT (or SIMPTU_TENANT) is required in dedicated mode\n');
    process.exit(2);
  }
  const logger = createLogger({ service: 'agent', level: config.logLevel });
  if (config.turnTrace) {
    enableTurnTrace(config.turnTrace);
    logger.warn({ file: config.turnTrace }, 'turn trace on (diagnostics): SIGUSR2 writes it');
  }
  // One set of database pools for the runtime and the staff relay (pools.ts), closed once.
  const pools = new DatabasePools({
    databaseUrl: config.databaseUrl,
    max: config.databasePoolMax,
    logger,
  });
  const pool = pools.shared;
  const redis = new Redis(config.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 3 });
  // New history versions for the sessions this process changes (the API's history cache).
  trackSessionVersions(redis, { onError: (err) => logger.warn({ err }, 'session version bump failed') });
  const kafka = createKafka({ clientId: config.kafkaClientId, brokers: config.kafkaBrokers, logger });
  const producer = new EventProducer({ kafka });
  await producer.connect();
  // Stream events (tokens) on a producer of their own: see AgentRuntimeOptions.streamProducer.
  const streamProducer = new EventProducer({ kafka });
  await streamProducer.connect();
  const secrets = secretSource({ dir: config.secrets.dir, json: config.secrets.json });
  const killAfter = process.env.SIMPTU_FAULT_KILL_AFTER_TOOL;
  const holdAfter = process.env.SIMPTU_FAULT_HOLD_AFTER_TOOL;
  const outbound = new OutboundSender({
    redis,
    redisPrefix: config.redisPrefix,
    secrets,
    twilioBaseUrl: config.channels.twilioBaseUrl,
    metaBaseUrl: config.channels.metaBaseUrl,
    metaApiVersion: config.channels.metaApiVersion,
    ratePerMinute: config.channels.ratePerMinute,
    ...(config.channels.smtpUrl ? { smtpUrl: config.channels.smtpUrl } : {}),
    emailPerRecipientPerHour: config.channels.emailPerRecipientPerHour,
    logger,
  });
  // An unreachable SMTP server is not fatal (replies stay pending and are retried), but say so.
  outbound.verifySmtp().catch((err: unknown) => logger.warn({ err }, 'SMTP server does not answer'));
  const keyrings = new KeyringCache({ db: pool, kms: LocalKms.fromBase64(config.kek) });
  const runtime = new AgentRuntime({
    kafka,
    producer,
    streamProducer,
    pool,
    databaseUrl: config.databaseUrl,
    databasePoolMax: config.databasePoolMax,
    pools,
    keyrings,
    redis,
    models: new ModelCache(secrets),
    outbound,
    select: config.mode === 'pool' ? { mode: 'pool' } : { mode: 'dedicated', tenant: config.tenant! },
    groupId: config.groupId,
    registryRefreshMs: config.registryRefreshMs,
    tokenWindowMs: config.tokenWindowMs,
    outboxDirect: config.outboxDirect,
    retention: config.checkpoints,
    logger,
    consumerConfig: {
      sessionTimeout: config.kafkaSessionTimeoutMs,
      rebalanceTimeout: config.kafkaSessionTimeoutMs * 2,
      heartbeatInterval: Math.min(
        config.kafkaHeartbeatIntervalMs,
        Math.floor(config.kafkaSessionTimeoutMs / 3),
      ),
    },
    partitionsConsumedConcurrently: config.kafkaPartitionsConcurrently,
    concurrentRuns: Math.max(1, Math.min(config.concurrentRuns, config.databasePoolMax - 2)),
    heartbeatIntervalMs: config.kafkaHeartbeatIntervalMs,
    offsetCommit: config.kafkaOffsetCommit,
    ...(killAfter || holdAfter
      ? {
          faults: {
            afterToolResult: (name: string) => {
              if (name === killAfter) process.kill(process.pid, 'SIGKILL');
              // never settles: the run stays open (its transaction too) until the process dies
              if (name === holdAfter) return new Promise<void>(() => undefined);
            },
          },
        }
      : {}),
  });

  const metrics = createMetrics({ service: 'agent' });
  // Staff replies on SMS/WhatsApp/Messenger/Instagram/e-mail sessions go out like agent replies.
  const staffRelay = new StaffRelay({
    kafka,
    pool,
    databaseUrl: config.databaseUrl,
    pools,
    keyrings,
    outbound,
    select: config.mode === 'pool' ? { mode: 'pool' } : { mode: 'dedicated', tenant: config.tenant! },
    groupId: config.groupId,
    registryRefreshMs: config.registryRefreshMs,
    logger,
    metrics,
  });
  const health = new Health({
    readiness: [{ name: 'postgres', check: async () => void (await pool.query('SELECT 1')) }],
  });
  const onHealth = healthHandler(health);
  const onMetrics = metricsHandler(metrics);
  const server = createServer((req, res) => {
    if (req.url === '/metrics') return void onMetrics(req, res);
    void onHealth(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  server.listen(config.metricsPort);
  await runtime.start();
  await staffRelay.start();
  logger.info({ mode: config.mode, tenants: runtime.tenants.map((t) => t.name) }, 'agent started');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(1), 30_000).unref();
    runtime
      .stop()
      .then(() => staffRelay.stop())
      .then(() => outbound.close())
      .then(() => Promise.all([producer.disconnect(), streamProducer.disconnect()]))
      .then(() => redis.quit())
      .then(() => pools.close())
      .then(() => server.close(() => process.exit(0)))
      .catch((err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `agent failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
