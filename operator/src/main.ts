/**
 * `node operator/src/main.ts` — the Simptu operator (DESIGN §5). Configuration comes from the
 * environment (see config.ts and docs/operator.md), the cluster from $KUBECONFIG or the
 * in-cluster ServiceAccount.
 */
import { pino } from 'pino';
import { ConfigError, fromEnv, parseConfig } from './config.ts';
import { loadKubeConfig, startOperator } from './manager.ts';

let config;
try {
  config = parseConfig(fromEnv(process.env));
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const log = pino({ level: config.logLevel, base: { service: 'simptu-operator' } });
const handle = await startOperator(config, { kc: await loadKubeConfig(), logger: log });

let stopping = false;
async function shutdown(signal: string, code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down');
  const timer = setTimeout(() => {
    log.error('shutdown took too long; exiting');
    process.exit(1);
  }, 30_000);
  timer.unref();
  await handle.stop();
  process.exit(code);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
// Like controller-runtime: a replica that lost its lease exits and restarts clean as a candidate.
void handle.lostLeadership.then(() => shutdown('lost-leadership', 1));
