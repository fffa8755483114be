/**
 * The SSO service assembled: pools, migrations, signing keys, the oidc-provider instance with
 * our pages and the access-code grant, health/readiness/metrics, and an HTTP server.
 *
 * Key rotation without restart: the provider's keystore is fixed when it is constructed, so
 * `reloadKeys()` (called every `keys.refreshMs`, and by tests) reads the published key set and,
 * when it changed, builds a new provider and swaps it in for the next request. Nothing is lost:
 * sessions, interactions and tokens live in Redis/Postgres, not in the provider object.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import {
  createLogger,
  createMetrics,
  Health,
  healthHandler,
  LocalKms,
  metricsHandler,
  type KmsProvider,
  type Logger,
  type Metrics,
} from '@simptu/common';
import { registerAccessCodeGrant } from './access-code-grant.ts';
import { purgeExpired } from './adapter.ts';
import { ClientResolver } from './clients.ts';
import type { AuthConfig } from './config.ts';
import { audit, migrateAuth } from './db.ts';
import { createInteractionRoutes } from './interactions.ts';
import { ensureActiveKey, loadSigningKeys, type LoadedKeys } from './keys.ts';
import { createMailer, type Mailer } from './mail.ts';
import { buildProvider, clientTenant } from './provider.ts';
import { RateLimiter } from './rate-limit.ts';
import { TenantDatabases } from './tenant-db.ts';

export interface AuthServiceDeps {
  db?: pg.Pool;
  redis?: Redis;
  kms?: KmsProvider;
  mailer?: Mailer;
  logger?: Logger;
  metrics?: Metrics;
}

export interface AuthService {
  readonly config: AuthConfig;
  readonly db: pg.Pool;
  readonly redis: Redis;
  readonly kms: KmsProvider;
  readonly health: Health;
  readonly metrics: Metrics;
  /** the provider serving requests now */
  provider(): Provider;
  /** node:http request handler (health, metrics, then the provider) */
  handler(req: IncomingMessage, res: ServerResponse): void;
  /** listens on config.port/host; resolves to the bound base URL */
  listen(): Promise<string>;
  /** re-reads the signing keys; true when the published set changed (new provider in place) */
  reloadKeys(): Promise<boolean>;
  close(): Promise<void>;
}

/** The longest lifetime of anything a signing key signs: how long a retired key stays published. */
export function maxTokenLifetimeSec(config: AuthConfig): number {
  return Math.max(config.ttl.accessTokenSec, config.ttl.idTokenSec, config.ttl.accessCodeTokenSec);
}

export async function createAuthService(
  config: AuthConfig,
  deps: AuthServiceDeps = {},
): Promise<AuthService> {
  const logger = deps.logger ?? createLogger({ service: 'auth', level: config.logLevel });
  const metrics = deps.metrics ?? createMetrics({ service: 'auth' });
  const ownDb = !deps.db;
  const ownRedis = !deps.redis;
  const ownMailer = !deps.mailer;
  const db = deps.db ?? new pg.Pool({ connectionString: config.databaseUrl, max: config.databasePoolMax });
  // An idle client's error (a Postgres restart, a failover) must not crash the process.
  if (ownDb) db.on('error', (err) => logger.warn({ err }, 'idle postgres connection failed'));
  const redis = deps.redis ?? new Redis(config.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 });
  const kms = deps.kms ?? LocalKms.fromBase64(config.kek);
  const mailer = deps.mailer ?? createMailer({ smtpUrl: config.mail.smtpUrl, from: config.mail.from });
  const timers: NodeJS.Timeout[] = [];
  let server: Server | undefined;

  const requests = metrics.counter({
    name: 'auth_http_requests_total',
    help: 'HTTP requests served by the SSO service, by route and status',
    labelNames: ['route', 'status'],
  });
  const keyReloads = metrics.counter({
    name: 'auth_signing_key_reloads_total',
    help: 'signing key sets loaded',
  });
  const reuse = metrics.counter({
    name: 'auth_refresh_token_reuse_total',
    help: 'refresh tokens presented again after rotation (the grant was revoked)',
  });

  const tenants = new TenantDatabases({ platform: db, platformUrl: config.databaseUrl, kms, poolMax: 4 });
  const cleanup = async () => {
    for (const t of timers) clearInterval(t);
    await tenants.close();
    if (ownMailer) mailer.close();
    if (ownRedis) redis.disconnect();
    if (ownDb) await db.end();
  };

  try {
    if (config.migrate) await migrateAuth(db);
    await ensureActiveKey(db, kms, {
      alg: config.keys.alg,
      maxTokenLifetimeSec: maxTokenLifetimeSec(config),
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const clients = new ClientResolver(db, kms);
  const limiter = new RateLimiter(redis, config.redisPrefix);
  const clientIp = (ctx: KoaContextWithOIDC) => ctx.ip || 'unknown';

  let current: {
    provider: Provider;
    callback: (req: IncomingMessage, res: ServerResponse) => void;
    keys: LoadedKeys;
  };

  const build = (keys: LoadedKeys) => {
    const provider = buildProvider({ config, db, redis, clients, jwks: keys.jwks });
    registerAccessCodeGrant(provider, { config, db, clients, tenants, limiter, clientIp });
    provider.use(async (ctx, next) => {
      await next();
      // Coarse route label: no ids in metric labels.
      const route = ctx.path
        .replace(/\/interaction\/[^/]+/, '/interaction/:uid')
        .replace(/\/t\/[^/]+\//, '/t/:tenant/');
      requests.inc({ route: route.length > 60 ? 'other' : route, status: String(ctx.status) });
    });
    // Refresh-token reuse: oidc-provider already revoked the grant (the whole token family);
    // we record it for the tenant's security audit.
    provider.use(async (ctx, next) => {
      await next();
      const oidc = (ctx as KoaContextWithOIDC).oidc as KoaContextWithOIDC['oidc'] | undefined;
      const rt = oidc?.entities?.RefreshToken as
        { consumed?: unknown; grantId?: string; accountId?: string; jti?: string } | undefined;
      if (oidc?.route === 'token' && ctx.status === 400 && rt?.consumed) {
        reuse.inc();
        await audit(db, {
          event: 'refresh_token.reuse',
          tenant: clientTenant(oidc.client) ?? null,
          subject: rt.accountId ?? null,
          clientId: oidc.client?.clientId ?? null,
          ip: clientIp(ctx as KoaContextWithOIDC),
          details: { grantId: rt.grantId, action: 'grant_revoked' },
        }).catch((err) => logger.error({ err }, 'audit write failed'));
        logger.warn(
          { grantId: rt.grantId, clientId: oidc.client?.clientId },
          'refresh token reuse: grant revoked',
        );
      }
    });
    provider.use(
      createInteractionRoutes({
        config,
        db,
        clients,
        tenants,
        limiter,
        mailer,
        logger,
        provider: () => current.provider,
        clientIp,
      }),
    );
    provider.on('server_error', (_ctx, err) => logger.error({ err }, 'oidc-provider server error'));
    keyReloads.inc();
    return { provider, callback: provider.callback(), keys };
  };

  try {
    current = build(await loadSigningKeys(db, kms));
  } catch (err) {
    await cleanup();
    throw err;
  }

  const health = new Health({
    readiness: [
      { name: 'postgres', check: () => db.query('SELECT 1') },
      { name: 'redis', check: () => redis.ping() },
    ],
  });
  const onHealth = healthHandler(health);
  const onMetrics = metricsHandler(metrics);

  const reloadKeys = async () => {
    const keys = await loadSigningKeys(db, kms);
    if (keys.fingerprint === current.keys.fingerprint) return false;
    current = build(keys);
    logger.info({ activeKid: keys.activeKid, published: keys.jwks.length }, 'signing keys reloaded');
    return true;
  };

  timers.push(
    setInterval(() => {
      reloadKeys().catch((err) => logger.error({ err }, 'signing key reload failed'));
    }, config.keys.refreshMs).unref(),
    setInterval(() => {
      purgeExpired(db).catch((err) => logger.error({ err }, 'purging expired artefacts failed'));
    }, 3_600_000).unref(),
  );

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics' && req.method === 'GET') {
      void onMetrics(req, res);
      return;
    }
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      void onHealth(req, res);
      return;
    }
    current.callback(req, res);
  };

  return {
    config,
    db,
    redis,
    kms,
    health,
    metrics,
    provider: () => current.provider,
    handler,
    reloadKeys,
    async listen() {
      server = createServer(handler);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(config.port, config.host, resolve);
      });
      const a = server.address() as AddressInfo;
      const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      logger.info({ port: a.port, issuer: config.issuer }, 'auth listening');
      return `http://${host}:${a.port}`;
    },
    async close() {
      health.drain();
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
      await cleanup();
    },
  };
}
