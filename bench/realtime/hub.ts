/**
 * The hub under test (`node bench/realtime/hub.ts`, started by run.ts): `startRealtime` exactly as
 * `services/realtime/src/main.ts` runs it, with the configuration from `BENCH_HUB_CONFIG`, in its
 * own process so its RSS is its own. One extra command, `localFanout`, hands a stored event to
 * `Hub.onBusMessage` directly — the hub's in-process fan-out without Kafka and Redis in front.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { GCProfiler } from 'node:v8';
import pg from 'pg';
import {
  createLogger,
  KeyringCache,
  LocalKms,
  newCloudEvent,
  tenantTopics,
  toKafkaRecord,
} from '@simptu/common';
import { startRealtime } from '../../services/realtime/src/app.ts';
import type { RealtimeConfig } from '../../services/realtime/src/config.ts';
import { encodeEntry, type EntryPayload } from '../../services/realtime/src/entry.ts';
import { streamLocation } from '../../services/realtime/src/events.ts';
import type { IncomingMessage } from '../../services/realtime/src/ingest.ts';
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

/**
 * Bytes the hub's JS heap allocated over a window: heap used at its end − at its start + what
 * every GC in between freed (V8's GCProfiler reports the heap before and after each GC).
 */
let gcProfiler: GCProfiler | undefined;
let inspector: Session | undefined;
let heapUsedAtStart = 0;

serve({
  allocStart() {
    gcProfiler?.stop();
    gcProfiler = new GCProfiler();
    heapUsedAtStart = process.memoryUsage().heapUsed;
    gcProfiler.start();
    return null;
  },
  allocStop() {
    const heapUsedAtEnd = process.memoryUsage().heapUsed;
    const r = gcProfiler?.stop();
    gcProfiler = undefined;
    let freed = 0;
    for (const s of r?.statistics ?? [])
      freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
    return { bytes: heapUsedAtEnd - heapUsedAtStart + freed, gcs: r?.statistics.length ?? 0 };
  },
  /**
   * BENCH_HUB_HEAP_PROF: a sampling allocation profile of the window (objects collected since
   * included, so it shows what allocates, not what stays), written to that file.
   */
  async heapProfStart() {
    if (!process.env.BENCH_HUB_HEAP_PROF) return null;
    inspector ??= new Session();
    inspector.connect();
    await inspector.post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    return null;
  },
  async heapProfStop() {
    if (!inspector || !process.env.BENCH_HUB_HEAP_PROF) return null;
    const { profile } = await inspector.post('HeapProfiler.stopSampling');
    writeFileSync(process.env.BENCH_HUB_HEAP_PROF, JSON.stringify(profile));
    inspector.disconnect();
    return null;
  },
  /**
   * The ingest without Kafka's timing: `events` token events of `sessions` (as the agent writes
   * them, or with `delta` in clear), built beforehand as kafkajs hands records over, then fed to
   * `Ingest.handleBatch` `batch` at a time, each batch awaited as the consumer does — store,
   * publish and fan-out to the sockets joined to those sessions included. Returns the process's
   * CPU and JS heap allocation per event over that (+ 300 ms for the last deliveries), which
   * don't depend on how the machine's load shapes Kafka's batches.
   */
  async ingestDrive(a: {
    tenant: string;
    sessions: string[];
    events: number;
    batch: number;
    format: 'encrypted' | 'clear';
  }) {
    const cipher = await keyrings.cipher(a.tenant);
    const topic = tenantTopics(a.tenant).agent;
    const runId = randomUUID();
    const messages: IncomingMessage[] = [];
    for (let i = 0; i < a.events; i++) {
      const session = a.sessions[i % a.sessions.length]!;
      const id = randomUUID();
      const text =
        a.format === 'clear'
          ? { delta: 'lorem ' }
          : { payload_enc: cipher.encryptText('{"text":"lorem "}', streamLocation(id)) };
      const r = toKafkaRecord(
        newCloudEvent({
          id,
          type: 'io.simptu.agent.token',
          source: '/simptu/agent',
          tenant: a.tenant,
          data: { session_id: session, run_id: runId, seq: i, ...text },
        }),
        session,
      );
      messages.push({
        key: Buffer.from(r.key),
        value: Buffer.from(r.value),
        headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, Buffer.from(v)])),
      });
    }
    (globalThis as { gc?: () => void }).gc?.();
    const heap0 = process.memoryUsage().heapUsed;
    const profiler = new GCProfiler();
    profiler.start();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < messages.length; i += a.batch)
      await app.ingest.handleBatch(topic, messages.slice(i, i + a.batch));
    await new Promise((r) => setTimeout(r, 300));
    const cpu = process.cpuUsage(cpu0);
    const heap1 = process.memoryUsage().heapUsed;
    let freed = 0;
    for (const g of profiler.stop().statistics)
      freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
    return {
      cpuUsPerEvent: (cpu.user + cpu.system) / a.events,
      allocKBPerEvent: (heap1 - heap0 + freed) / 1024 / a.events,
    };
  },
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
