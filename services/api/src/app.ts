/**
 * `buildApp(config, deps)`: the API as a fastify instance, plugins registered in the order of
 * CONVENTIONS 8 — infrastructure (errors, observability, Postgres, Redis, registry, crypto, rate
 * limits, auth, history cache, OpenAPI, Kafka, idempotency purge), then the routes under `/v1`.
 * Each plugin is a fastify-plugin with a name and dependencies, so a wrong order fails at
 * start-up, not at the first request.
 * `main.ts` listens; tests call `app.inject()`.
 * @see https://github.com/fastify/demo/blob/main/src/app.ts
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  createLogger,
  LocalKms,
  runWithContext,
  type AccessTokenVerifier,
  type KmsProvider,
  type Logger,
  type Metrics,
} from '@simptu/common';
import type { ApiConfig } from './config.ts';
import authPlugin from './plugins/auth.ts';
import cryptoPlugin from './plugins/crypto.ts';
import dbPlugin from './plugins/db.ts';
import errorsPlugin, { frameworkErrorHandler } from './plugins/errors.ts';
import eventsPlugin from './plugins/events.ts';
import historyPlugin from './plugins/history.ts';
import idempotencyPurgePlugin from './plugins/idempotency-purge.ts';
import { lazyChild } from './logging.ts';
import observabilityPlugin from './plugins/observability.ts';
import openapiPlugin from './plugins/openapi.ts';
import rateLimitPlugin from './plugins/rate-limit.ts';
import redisPlugin from './plugins/redis.ts';
import registryPlugin from './plugins/registry.ts';
import routes from './routes/index.ts';
import { AJV_OPTIONS, buildValidatorFactory } from './validation.ts';
import './types.ts';

export interface AppDeps {
  /** @default a pino logger at `config.logLevel` */
  logger?: Logger;
  /** @default the `local` KMS from `config.kek` */
  kms?: KmsProvider;
  metrics?: Metrics;
  verifier?: AccessTokenVerifier;
  /** outbox relay poll interval (tests shorten it) */
  relayPollMs?: number;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp(config: ApiConfig, deps: AppDeps = {}): Promise<FastifyInstance> {
  const logger = deps.logger ?? createLogger({ service: 'api', level: config.logLevel });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // A caller's (or the ingress') X-Request-Id is kept when it is sane, so logs join up;
    // `genReqId` decides (fastify's own header option would take any value).
    requestIdHeader: false,
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID_RE.test(h) ? h : randomUUID();
    },
    // Per-request child loggers are created when they first log (logging.ts).
    childLoggerFactory: (parent, bindings, opts) => lazyChild(parent, bindings, opts),
    bodyLimit: 1_048_576,
    // Pre-routing errors (414 param too long, 400 bad URL) in our error format (plugins/errors.ts).
    frameworkErrors: frameworkErrorHandler,
    // Coercion for querystring/params/headers only; JSON bodies are validated strictly (validation.ts).
    ajv: { customOptions: AJV_OPTIONS },
    schemaController: { compilersFactory: { buildValidator: buildValidatorFactory() } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.decorate('config', config);

  // Every request runs in a request context (request id now; the tenant is added by
  // `request.withTenant`), so log lines from library code carry it.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    runWithContext({ requestId: request.id }, done);
  });

  await app.register(errorsPlugin);
  await app.register(dbPlugin, { config });
  await app.register(redisPlugin, { url: config.redisUrl, prefix: config.redisPrefix });
  await app.register(observabilityPlugin, deps.metrics ? { metrics: deps.metrics } : {});
  await app.register(registryPlugin, { ttlMs: config.cache.registryTtlMs });
  await app.register(cryptoPlugin, {
    kms: deps.kms ?? LocalKms.fromBase64(config.kek),
    refreshMs: config.cache.keyringRefreshMs,
  });
  await app.register(rateLimitPlugin, {
    perPrincipal: config.rateLimit.perPrincipal,
    perTenant: config.rateLimit.perTenant,
    anonymous: config.rateLimit.anonymous,
  });
  await app.register(authPlugin, { ...config.auth, ...(deps.verifier ? { verifier: deps.verifier } : {}) });
  await app.register(historyPlugin, {
    maxBytes: config.cache.historyMaxBytes,
    ttlSec: config.cache.historyTtlSec,
  });
  await app.register(openapiPlugin, config.publicUrl ? { publicUrl: config.publicUrl } : {});
  await app.register(eventsPlugin, {
    brokers: config.kafkaBrokers,
    clientId: config.kafkaClientId,
    groupPrefix: config.events.groupPrefix,
    relay: config.events.relay,
    consumers: config.events.consumers,
    tenantRefreshMs: config.events.tenantRefreshMs,
    ...(deps.relayPollMs ? { relayPollMs: deps.relayPollMs } : {}),
  });
  await app.register(idempotencyPurgePlugin, {
    retentionHours: config.idempotency.retentionHours,
    intervalSec: config.idempotency.purgeIntervalSec,
  });
  await app.register(routes);
  return app;
}
