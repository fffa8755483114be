/**
 * `node services/realtime/src/main.ts`: validates the configuration (every problem at once, by
 * variable name), starts the hub, and drains on SIGTERM/SIGINT (DESIGN §7: close with 1012 so
 * clients reconnect to another instance, finish in-flight work, then exit).
 */
import { ConfigError, createLogger } from '@simptu/common';
import { startRealtime } from './app.ts';
import { loadRealtimeConfig } from './config.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadRealtimeConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ service: 'realtime', level: config.logLevel });
  const app = await startRealtime(config, { logger });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'realtime: draining');
    app.drain().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'realtime: drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Printed for scripts (tests, make dev) that start the hub on port 0.
  process.stdout.write(
    JSON.stringify({ msg: 'realtime hub listening', port: app.port, instanceId: app.instanceId }) + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(
    `realtime: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
