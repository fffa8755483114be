/**
 * The hub under test (`node bench/realtime/hub.ts`, started by run.ts): `startRealtime` exactly as
 * `services/realtime/src/main.ts` runs it, with the configuration from `BENCH_HUB_CONFIG`, in its
 * own process so its RSS is its own. One extra command, `localFanout`, hands a stored event to
 * `Hub.onBusMessage` directly — the hub's in-process fan-out without Kafka and Redis in front.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createLogger, KeyringCache, LocalKms } from '@simptu/common';
import { startRealtime } from '../../services/realtime/src/app.ts';
import type { RealtimeConfig } from '../../services/realtime/src/config.ts';
import { encodeEntry, type EntryPayload } from '../../services/realtime/src/entry.ts';
import { topicKey } from '../../services/realtime/src/topics.ts';
import { nofileLimits, now, serve } from './rpc.ts';

const config = JSON.parse(process.env.BENCH_HUB_CONFIG ?? '{}') as RealtimeConfig;
const app = await startRealtime(config, {
  logger: createLogger({ service: 'realtime', level: config.logLevel }),
});
await app.ingest.whenReady();

// To encrypt the in-process event as the ingest would (the hub decrypts it once per event).
const keyPool = new pg.Pool({ connectionString: config.databaseUrl, max: 1 });
const keyrings = new KeyringCache({ db: keyPool, kms: LocalKms.fromBase64(config.kekBase64) });

serve({
  info() {
    return {
      port: app.port,
      connections: app.hub.connections,
      nofile: nofileLimits(),
      mem: process.memoryUsage(),
    };
  },
  gc() {
    (globalThis as { gc?: () => void }).gc?.();
    (globalThis as { gc?: () => void }).gc?.();
    return process.memoryUsage();
  },
  /**
   * Delivers one stored event (`seq` must follow the stream's last one) to the topic's sockets
   * on this instance, synchronously, as a Redis publish would; `t0` is when delivery started.
   */
  async localFanout(a: {
    tenant: string;
    topic: string;
    epoch: string;
    seq: number;
    event: string;
    data: Record<string, unknown>;
  }) {
    const key = topicKey(a.tenant, a.topic);
    const id = randomUUID();
    const cipher = await keyrings.cipher(a.tenant);
    const payload: EntryPayload = { event: a.event, data: a.data, time: new Date().toISOString(), id };
    const data = encodeEntry(cipher, key, id, payload);
    const t0 = now();
    app.hub.onBusMessage({
      kind: 'stored',
      key,
      epoch: a.epoch,
      entry: { seq: a.seq, ts: Date.now(), eventId: id, data },
    });
    return { t0, syncMs: now() - t0, eventId: id };
  },
  async stop() {
    setImmediate(() => {
      void app
        .drain()
        .catch(() => undefined)
        .then(() => keyPool.end())
        .finally(() => process.exit(0));
    });
    return null;
  },
});
