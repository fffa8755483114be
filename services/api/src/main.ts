/**
 * Entry point: validate the configuration (fail fast with every problem listed), build the app,
 * listen; on SIGTERM/SIGINT fail readiness first (so the load balancer stops sending), then
 * close: in-flight requests finish, the outbox relay finishes its batch, consumers leave their
 * groups, pools end.
 * @see https://fastify.dev/docs/latest/Guides/Recommendations/#kubernetes
 */
import { ConfigError } from '@simptu/common';
import { buildApp } from './app.ts';
import { loadApiConfig } from './config.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadApiConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const app = await buildApp(config);
  const drainDelayMs = config.shutdownDelayMs;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'shutting down');
    app.health.drain();
    setTimeout(() => {
      app
        .close()
        .then(() => process.exit(0))
        .catch((err: unknown) => {
          app.log.error({ err }, 'shutdown failed');
          process.exit(1);
        });
    }, drainDelayMs).unref();
    // Hard stop if something hangs.
    setTimeout(() => process.exit(1), drainDelayMs + 30_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await app.listen({ port: config.port, host: config.host });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `api failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
