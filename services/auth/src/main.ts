/**
 * `node services/auth/src/main.ts`: config from `SIMPTU_AUTH_*` (validated, fails fast with
 * every problem listed), migrations, then the server. SIGTERM/SIGINT drain and stop.
 */
import { ConfigError } from '@simptu/common';
import { createAuthService } from './app.ts';
import { loadAuthConfig } from './config.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadAuthConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const service = await createAuthService(config);
  await service.listen();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    service.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `auth failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
