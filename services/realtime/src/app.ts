/**
 * Wires the hub: one node:http server for the WebSocket upgrade and `/healthz`, `/readyz`,
 * `/metrics`; Postgres pools, Redis (commands + subscriber), the Kafka ingest, presence, the
 * outbox relay. `startRealtime` is what `main.ts` and the integration tests run.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import {
  createAccessTokenVerifier,
  createKafka,
  createLogger,
  createMetrics,
  EventProducer,
  Health,
  healthHandler,
  KeyringCache,
  LocalKms,
  metricsHandler,
  OutboxRelay,
  trackSessionVersions,
  type AccessTokenVerifier,
  type Logger,
  type Metrics,
} from '@simptu/common';
import type { RealtimeConfig } from './config.ts';
import { Hub } from './hub.ts';
import { Ingest } from './ingest.ts';
import { hubMetrics } from './metrics.ts';
import { Presence } from './presence.ts';
import { TenantPools, TenantRegistry } from './registry.ts';
import { StreamBus } from './streams.ts';

export interface RealtimeApp {
  readonly instanceId: string;
  readonly port: number;
  /** `ws://host:port/socket` — what `new Socket(url)` takes */
  readonly socketUrl: string;
  readonly hub: Hub;
  readonly ingest: Ingest;
  readonly presence: Presence;
  readonly registry: TenantRegistry;
  readonly metrics: Metrics;
  readonly server: Server;
  /** SIGTERM: stop accepting, close sockets with 1012, finish in-flight work, release everything */
  drain(): Promise<void>;
  /** a crash, for tests: sockets dropped, no presence leaves announced, heartbeats stop */
  kill(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** a verifier other than the configured JWKS one (tests may share one) */
  verifier?: AccessTokenVerifier;
}

export async function startRealtime(config: RealtimeConfig, opts: StartOptions = {}): Promise<RealtimeApp> {
  const instanceId = config.instanceId ?? `${hostname().slice(0, 60)}-${randomBytes(4).toString('hex')}`;
  const logger = opts.logger ?? createLogger({ service: 'realtime', level: config.logLevel });
  const metrics = createMetrics({ service: 'realtime' });
  const m = hubMetrics(metrics);
  const pools = new TenantPools(config.databaseUrl, config.databasePoolMax);
  const registry = new TenantRegistry({ pool: pools.platform, refreshMs: config.registryRefreshMs });
  const keyrings = new KeyringCache({ db: pools.platform, kms: LocalKms.fromBase64(config.kekBase64) });
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3 });
  const subscriber = new Redis(config.redisUrl);
  const swallow = (what: string) => (err: Error) => logger.warn({ err }, `realtime: ${what} error`);
  redis.on('error', swallow('redis'));
  subscriber.on('error', swallow('redis subscriber'));
  // New history versions for the sessions `message:send` writes (the API's history cache).
  const untrackSessions = trackSessionVersions(redis, {
    onError: (err) => logger.warn({ err }, 'realtime: session version bump failed'),
  });
  const kafka = createKafka({
    clientId: `simptu-realtime-${instanceId}`,
    brokers: config.kafkaBrokers,
    logger,
  });

  // The bus delivers to the hub, which needs the bus: bound once both exist.
  const deliver: { hub?: Hub } = {};
  const bus = new StreamBus({
    redis,
    subscriber,
    limits: config.history,
    onMessage: (msg) => deliver.hub?.onBusMessage(msg),
    onInvalid: () => m.eventsDropped.inc({ reason: 'invalid_bus_message' }),
  });
  const presence = new Presence({
    redis,
    bus,
    instanceId,
    heartbeatMs: config.presence.heartbeatMs,
    instanceTtlMs: config.presence.instanceTtlMs,
    onError: (err) => logger.warn({ err }, 'realtime: presence heartbeat failed'),
  });
  const ingest = new Ingest({
    kafka,
    groupId: `${config.kafkaGroupPrefix}-${instanceId}`,
    bus,
    cipher: (t) => keyrings.cipher(t),
    tenants: () => registry.active(),
    logger,
    onDropped: (reason) => m.eventsDropped.inc({ reason }),
    onStored: () => m.eventsStored.inc(),
    onReceived: (seconds) => m.stages.kafka.observe(seconds),
    onBatch: (records, seconds) => {
      m.ingestBatchRecords.observe(records);
      m.ingestBatchSeconds.observe(seconds);
    },
    settings: {
      partitionsConcurrency: config.kafkaPartitionsConcurrency,
      commitIntervalMs: config.kafkaCommitIntervalMs,
    },
  });
  const health = new Health({
    liveness: [{ name: 'eventloop', check: async () => undefined }],
    readiness: [
      { name: 'postgres', check: () => pools.platform.query('SELECT 1') },
      { name: 'redis', check: () => redis.ping() },
      { name: 'kafka', check: () => ingest.whenReady() },
    ],
  });
  const verifier =
    opts.verifier ??
    createAccessTokenVerifier({
      issuer: config.auth.issuer,
      audience: config.auth.audience,
      jwksUri: config.auth.jwksUri,
    });
  const hub = new Hub({
    instanceId,
    limits: config.limits,
    verifier,
    registry,
    pools,
    ciphers: keyrings,
    bus,
    presence,
    metrics: m,
    health,
    logger,
  });
  deliver.hub = hub;

  let producer: EventProducer | undefined;
  let relay: OutboxRelay | undefined;
  if (config.outboxRelay) {
    producer = new EventProducer({ kafka });
    relay = new OutboxRelay({
      pool: pools.platform,
      producer,
      ciphers: keyrings,
      // Tenants whose schema is in the platform database; dedicated databases have their own relay.
      tenants: () =>
        registry
          .active()
          .filter((t) => pools.isPlatform(t))
          .map((t) => t.ref),
      logger,
      metrics,
      // this process's own events leave right after COMMIT (outbox.ts, direct publishing)
      direct: true,
    });
  }

  const health$ = healthHandler(health);
  const metrics$ = metricsHandler(metrics);
  const server = createServer((req, res) => {
    void (async () => {
      if (await health$(req, res)) return;
      if (req.url === '/metrics' && req.method === 'GET') return metrics$(req, res);
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"error":{"code":"SIMPTU_ERR_NOT_FOUND","message":"Not found"}}');
    })();
  });
  server.on('upgrade', (req, socket, head) => hub.handleUpgrade(req, socket, head));

  const stopAll = async () => {
    untrackSessions();
    await ingest.stop().catch(() => undefined);
    await relay?.stop();
    await producer?.disconnect();
    hub.close();
    await new Promise<void>((r) => server.close(() => r()));
    redis.disconnect();
    subscriber.disconnect();
    await pools.end();
  };

  try {
    await registry.refresh();
    await presence.start();
    await ingest.sync();
    relay?.start();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
  } catch (err) {
    await presence.stop().catch(() => undefined);
    await stopAll().catch(() => undefined);
    throw err;
  }
  const refresh = setInterval(() => {
    void registry
      .refresh()
      .then(() => ingest.sync())
      .catch((err) => logger.warn({ err }, 'realtime: registry refresh failed'));
  }, config.registryRefreshMs);
  refresh.unref();

  const port = (server.address() as AddressInfo).port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  logger.info({ port, instanceId }, 'realtime hub listening');
  let stopped = false;
  return {
    instanceId,
    port,
    socketUrl: `ws://${host}:${port}/socket`,
    hub,
    ingest,
    presence,
    registry,
    metrics,
    server,
    async drain() {
      if (stopped) return;
      stopped = true;
      clearInterval(refresh);
      // Stop listening first: new connections go to other instances.
      server.close();
      await hub.drain(config.drainTimeoutMs);
      await presence.stop({ leaveAll: true }).catch(() => undefined);
      await stopAll();
      logger.info({ instanceId }, 'realtime hub drained');
    },
    async kill() {
      if (stopped) return;
      stopped = true;
      clearInterval(refresh);
      await presence.stop();
      hub.kill();
      server.closeAllConnections();
      await stopAll();
    },
  };
}
