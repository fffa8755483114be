/**
 * Topic streams in Redis: sequence numbers, an epoch, bounded history, and the fan-out between
 * hub instances (DESIGN §7: recovery "like Centrifugo", several instances).
 *
 * Per `<tenant>/<topic>` key (hash-tagged so one topic's keys share a Redis Cluster slot):
 * - `rt:{key}:m`  hash `{epoch, seq}`: `seq` increments by one per stored event; the epoch is
 *   random and changes when the stream is lost (its hash expired after `streamTtlMs` of
 *   silence, or Redis was wiped) — a client holding another epoch can't be recovered;
 * - `rt:{key}:h`  sorted set `seq → entry`, trimmed to `maxCount` entries, expiring
 *   `maxAgeMs` after the last event; entries older than `maxAgeMs` are not recovered;
 * - `rt:{key}:d:<event id>` the seq an event got (TTL `dedupTtlMs`): the same CloudEvent
 *   seen again (Kafka redelivery, or another instance consuming the same partition) is
 *   stored and published once.
 * Storing, numbering and `PUBLISH`ing happen in one Lua script, so the publish order on
 * `rt:c:<key>` is the seq order and every instance sees each event once, in order.
 *
 * Entries hold no plaintext of the tenant's (DESIGN §6: a tenant's data is ciphertext
 * everywhere it rests): the frame encrypted with the tenant's data key, bound to the topic key
 * and event id, or the agent's stream event sealed as it came (entry.ts).
 * @see https://centrifugal.dev/docs/server/history_and_recovery
 * @see https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface HistoryLimits {
  maxCount: number;
  maxAgeMs: number;
  streamTtlMs: number;
  dedupTtlMs: number;
}

/** A stored event as it travels (history entry or live publish). */
export interface StoredEntry {
  seq: number;
  /** when it was stored, ms since the epoch */
  ts: number;
  eventId: string;
  /** the entry (entry.ts: encrypted or sealed) */
  data: string;
  /**
   * The plaintext of `data`, when this instance encrypted it itself moments ago (see
   * `PublishItem.plain`): the live delivery then skips decrypting what it just encrypted.
   */
  plain?: unknown;
  /**
   * With `plain`: when this instance's ingest got the event from Kafka (`performance.now()`),
   * for the `store` stage of `realtime_delivery_stage_seconds`.
   */
  receivedAt?: number;
}

export type BusMessage =
  | { kind: 'stored'; key: string; epoch: string; entry: StoredEntry }
  | { kind: 'ephemeral'; key: string; event: string; payload: Record<string, unknown>; exclude?: string };

export interface Position {
  epoch: string;
  seq: number;
}

export type Recovery =
  | { recovered: true; epoch: string; seq: number; entries: StoredEntry[] }
  | { recovered: false; epoch: string; seq: number; why: 'epoch' | 'ahead' | 'gone' | 'too_old' };

/**
 * Stores and publishes a batch of events, in order, each once per (topic, event id). KEYS: per
 * event meta, history, dedup; ARGV: now, maxCount, maxAgeMs, dedupTtlMs, streamTtlMs, then per
 * event channel, entry data, epoch candidate, event id. Returns per event published (1/0), seq,
 * epoch. One script per batch, not one per event: the hub's Redis client built, and allocated
 * for, one command (arguments, promise, RESP text) per event (docs/benchmarks.md "Realtime").
 */
const PUBLISH_BATCH_LUA = `
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local m, h, d = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local a = 6 + 4 * i
  local dup = redis.call('GET', d)
  if dup then
    out[#out + 1] = 0
    out[#out + 1] = tonumber(dup)
    out[#out + 1] = redis.call('HGET', m, 'epoch') or ''
  else
    local epoch = redis.call('HGET', m, 'epoch')
    if not epoch then epoch = ARGV[a + 2]; redis.call('HSET', m, 'epoch', epoch) end
    local seq = redis.call('HINCRBY', m, 'seq', 1)
    redis.call('ZADD', h, seq, cjson.encode({q = seq, t = ARGV[1], i = ARGV[a + 3], d = ARGV[a + 1]}))
    redis.call('ZREMRANGEBYRANK', h, 0, -(tonumber(ARGV[2]) + 1))
    redis.call('PEXPIRE', h, ARGV[3])
    redis.call('PEXPIRE', m, ARGV[5])
    redis.call('SET', d, seq, 'PX', ARGV[4])
    redis.call('PUBLISH', ARGV[a], cjson.encode({k = 's', e = epoch, q = seq, t = ARGV[1], i = ARGV[a + 3], d = ARGV[a + 1]}))
    out[#out + 1] = 1
    out[#out + 1] = seq
    out[#out + 1] = epoch
  end
end
return out
`;

/** events per script run: bounds how long one run keeps Redis busy (~10 µs of Redis each) */
const SCRIPT_BATCH = 100;

const RECOVER_LUA = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then epoch = ARGV[1]; redis.call('HSET', KEYS[1], 'epoch', epoch) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if ARGV[3] == '' then return {epoch, seq, {}} end
local last = tonumber(ARGV[3])
if last >= seq then return {epoch, seq, {}} end
return {epoch, seq, redis.call('ZRANGEBYSCORE', KEYS[2], last + 1, '+inf')}
`;

/** An entry's plaintext that this instance encrypted, waiting for its pub/sub message. */
interface LocalPlain {
  /** absent for a sealed entry (entry.ts): nothing was decrypted on ingest */
  plain?: unknown;
  receivedAt?: number;
}

/** how long (at least) an own entry's plaintext waits for its pub/sub message */
const LOCAL_PLAIN_MS = 2000;

const metaKey = (key: string) => `rt:{${key}}:m`;
const histKey = (key: string) => `rt:{${key}}:h`;
const dedupKey = (key: string, eventId: string) => `rt:{${key}}:d:${eventId}`;
export const channelOf = (key: string) => `rt:c:${key}`;
const CHANNEL_PREFIX = 'rt:c:';

/**
 * A fresh random epoch (12 hex digits). Every publish passes one in case its stream has none
 * yet, so they are cut from a pooled random buffer: a `randomBytes` call per event was ~2% of
 * the hub's CPU at 4,000 events/s (bench/realtime).
 */
const EPOCH_BYTES = 6;
let epochPool = Buffer.alloc(0);
let epochAt = 0;
function newEpoch(): string {
  if (epochAt + EPOCH_BYTES > epochPool.length) {
    epochPool = randomBytes(EPOCH_BYTES * 512);
    epochAt = 0;
  }
  const e = epochPool.toString('hex', epochAt, epochAt + EPOCH_BYTES);
  epochAt += EPOCH_BYTES;
  return e;
}

function parseEntry(raw: string): StoredEntry | undefined {
  try {
    const o = JSON.parse(raw) as { q?: unknown; t?: unknown; i?: unknown; d?: unknown };
    if (typeof o.q !== 'number' || typeof o.i !== 'string' || typeof o.d !== 'string') return undefined;
    return { seq: o.q, ts: Number(o.t), eventId: o.i, data: o.d };
  } catch {
    return undefined;
  }
}

/** Decides a recovery from what the script read. Pure, exported for unit tests. */
export function decideRecovery(
  current: Position,
  entries: StoredEntry[],
  since: { lastSeq: number; epoch: string },
  now: number,
  maxAgeMs: number,
): Recovery {
  const { epoch, seq } = current;
  if (since.epoch !== epoch) return { recovered: false, epoch, seq, why: 'epoch' };
  if (since.lastSeq > seq) return { recovered: false, epoch, seq, why: 'ahead' };
  const missed = seq - since.lastSeq;
  if (entries.length !== missed) return { recovered: false, epoch, seq, why: 'gone' };
  for (let i = 0; i < entries.length; i++)
    if (entries[i]!.seq !== since.lastSeq + 1 + i) return { recovered: false, epoch, seq, why: 'gone' };
  if (entries.length > 0 && entries[0]!.ts < now - maxAgeMs)
    return { recovered: false, epoch, seq, why: 'too_old' };
  return { recovered: true, epoch, seq, entries };
}

export interface StreamBusOptions {
  /** commands connection */
  redis: Redis;
  /** a second connection, used only for SUBSCRIBE */
  subscriber: Redis;
  limits: HistoryLimits;
  onMessage: (m: BusMessage) => void;
  onInvalid?: (channel: string) => void;
}

/** One event to store and publish on a topic stream. */
export interface PublishItem {
  key: string;
  eventId: string;
  /** the entry (entry.ts: encrypted or sealed) */
  data: string;
  /** what `data` decrypts to: kept briefly for this instance's own live delivery of it */
  plain?: unknown;
  /** when kafkajs handed the event over (`performance.now()`), travels with `plain` */
  receivedAt?: number;
}

export interface PublishResult {
  /** false: the event id was stored before (redelivery, or another instance got there first) */
  published: boolean;
  seq: number;
  epoch: string;
}

/** ioredis with the batch script defined as a command (EVALSHA; EVAL once per connection). */
type ScriptedRedis = Redis & {
  rtPublishBatch(numKeys: number, ...args: Array<string | number>): Promise<Array<number | string>>;
};

export class StreamBus {
  readonly #redis: ScriptedRedis;
  readonly #sub: Redis;
  readonly #limits: HistoryLimits;
  readonly #refs = new Map<string, number>();
  readonly #pending = new Map<string, Promise<unknown>>();
  /**
   * Ciphertext → plaintext of the entries this instance published on topics it subscribes
   * to, until their pub/sub message comes back (usually within the same millisecond). Two
   * generations swapped every LOCAL_PLAIN_MS, so what is never claimed (a lost publish) is
   * dropped after at most twice that. Keyed by the exact ciphertext: an entry published by
   * another instance (another ciphertext, even for the same event) is always decrypted.
   * Sealed entries (entry.ts) have no plaintext here, only their `receivedAt`; being the Kafka
   * record's data as is, the same event published by another instance can claim it — it
   * carries no plaintext, so that only times the `store` stage from this instance's receipt.
   */
  #plain = new Map<string, LocalPlain>();
  #plainOld = new Map<string, LocalPlain>();
  #plainSince = Date.now();

  constructor(options: StreamBusOptions) {
    // EVALSHA instead of shipping (and Redis hashing) the script text with every event.
    if (!('rtPublishBatch' in options.redis))
      options.redis.defineCommand('rtPublishBatch', { lua: PUBLISH_BATCH_LUA });
    this.#redis = options.redis as ScriptedRedis;
    this.#sub = options.subscriber;
    this.#limits = options.limits;
    this.#sub.on('message', (channel: string, message: string) => {
      if (!channel.startsWith(CHANNEL_PREFIX)) return;
      const key = channel.slice(CHANNEL_PREFIX.length);
      const m = this.#parse(key, message);
      if (m) options.onMessage(m);
      else options.onInvalid?.(channel);
    });
  }

  #parse(key: string, message: string): BusMessage | undefined {
    try {
      const o = JSON.parse(message) as Record<string, unknown>;
      if (
        o.k === 's' &&
        typeof o.e === 'string' &&
        typeof o.q === 'number' &&
        typeof o.i === 'string' &&
        typeof o.d === 'string'
      )
        return {
          kind: 'stored',
          key,
          epoch: o.e,
          entry: { seq: o.q, ts: Number(o.t), eventId: o.i, data: o.d, ...this.#claimPlain(o.d) },
        };
      if (o.k === 'e' && typeof o.ev === 'string' && typeof o.p === 'object' && o.p !== null)
        return {
          kind: 'ephemeral',
          key,
          event: o.ev,
          payload: o.p as Record<string, unknown>,
          ...(typeof o.x === 'string' ? { exclude: o.x } : {}),
        };
    } catch {
      // fall through
    }
    return undefined;
  }

  #rememberPlain(items: readonly PublishItem[]): void {
    const now = Date.now();
    if (now - this.#plainSince >= LOCAL_PLAIN_MS) {
      this.#plainOld = this.#plain;
      this.#plain = new Map();
      this.#plainSince = now;
    }
    for (const it of items)
      if ((it.plain !== undefined || it.receivedAt !== undefined) && this.#refs.has(it.key))
        this.#plain.set(it.data, {
          ...(it.plain !== undefined ? { plain: it.plain } : {}),
          ...(it.receivedAt !== undefined ? { receivedAt: it.receivedAt } : {}),
        });
  }

  #claimPlain(data: string): LocalPlain | Record<string, never> {
    let local = this.#plain.get(data);
    if (local !== undefined) this.#plain.delete(data);
    else {
      local = this.#plainOld.get(data);
      if (local === undefined) return {};
      this.#plainOld.delete(data);
    }
    return local;
  }

  /** Subscribes this instance to a topic key (reference-counted); resolves once subscribed. */
  async subscribe(key: string): Promise<void> {
    const n = this.#refs.get(key) ?? 0;
    this.#refs.set(key, n + 1);
    if (n === 0) {
      const p = this.#sub.subscribe(channelOf(key));
      this.#pending.set(key, p);
      try {
        await p;
      } finally {
        if (this.#pending.get(key) === p) this.#pending.delete(key);
      }
    } else {
      await this.#pending.get(key);
    }
  }

  async unsubscribe(key: string): Promise<void> {
    const n = this.#refs.get(key) ?? 0;
    if (n <= 1) {
      this.#refs.delete(key);
      await this.#sub.unsubscribe(channelOf(key)).catch(() => undefined);
    } else this.#refs.set(key, n - 1);
  }

  get subscriptions(): number {
    return this.#refs.size;
  }

  /** The batch script's arguments for `items`, after its number of keys. */
  #batchArgs(items: readonly PublishItem[], now: number): Array<string | number> {
    const l = this.#limits;
    const keys: string[] = [];
    const argv: Array<string | number> = [String(now), l.maxCount, l.maxAgeMs, l.dedupTtlMs, l.streamTtlMs];
    for (const { key, eventId, data } of items) {
      keys.push(metaKey(key), histKey(key), dedupKey(key, eventId));
      argv.push(channelOf(key), data, newEpoch(), eventId);
    }
    return [...keys, ...argv];
  }

  /** Stores and publishes an event once per (key, event id). */
  async publish(key: string, eventId: string, data: string, now = Date.now()): Promise<PublishResult> {
    return (await this.publishMany([{ key, eventId, data }], now))[0]!;
  }

  /**
   * Stores and publishes several events in order, each once per (key, event id): one script run
   * per up to SCRIPT_BATCH events, the runs pipelined (one write, one read). Redis runs a
   * script's events in array order and a connection's commands in the order they arrive, so per
   * topic the seqs follow the array order. A run that fails stops at the event that failed (the
   * ones before it are stored and published, the later ones not) and the runs after it still
   * run; rejects with the first failure.
   */
  async publishMany(items: readonly PublishItem[], now = Date.now()): Promise<PublishResult[]> {
    if (items.length === 0) return [];
    this.#rememberPlain(items);
    let replies: Array<Array<number | string>>;
    if (items.length <= SCRIPT_BATCH) {
      replies = [await this.#redis.rtPublishBatch(items.length * 3, ...this.#batchArgs(items, now))];
    } else {
      const pipeline = this.#redis.pipeline() as unknown as {
        rtPublishBatch(numKeys: number, ...args: Array<string | number>): unknown;
        exec(): Promise<Array<[Error | null, unknown]> | null>;
      };
      for (let i = 0; i < items.length; i += SCRIPT_BATCH) {
        const chunk = items.slice(i, i + SCRIPT_BATCH);
        pipeline.rtPublishBatch(chunk.length * 3, ...this.#batchArgs(chunk, now));
      }
      const r = await pipeline.exec();
      if (!r) throw new Error('redis pipeline discarded');
      replies = r.map(([err, v]) => {
        if (err) throw err;
        return v as Array<number | string>;
      });
    }
    const out: PublishResult[] = [];
    for (const v of replies)
      for (let i = 0; i + 2 < v.length; i += 3)
        out.push({ published: v[i] === 1, seq: Number(v[i + 1]), epoch: String(v[i + 2]) });
    return out;
  }

  /** The stream's position (creating its epoch), and what was missed since `since`. */
  async recover(
    key: string,
    since?: { lastSeq: number; epoch: string },
    now = Date.now(),
  ): Promise<Recovery> {
    const r = (await this.#redis.eval(
      RECOVER_LUA,
      2,
      metaKey(key),
      histKey(key),
      newEpoch(),
      this.#limits.streamTtlMs,
      since ? String(since.lastSeq) : '',
    )) as [string, number, string[]];
    const current = { epoch: String(r[0]), seq: Number(r[1]) };
    if (!since) return { recovered: true, ...current, entries: [] };
    const entries: StoredEntry[] = [];
    for (const raw of r[2]) {
      const e = parseEntry(raw);
      if (e) entries.push(e);
    }
    return decideRecovery(current, entries, since, now, this.#limits.maxAgeMs);
  }

  /** Not stored, no seq: typing, read receipts, presence diffs. */
  async broadcast(
    key: string,
    event: string,
    payload: Record<string, unknown>,
    exclude?: string,
  ): Promise<void> {
    await this.#redis.publish(
      channelOf(key),
      JSON.stringify({ k: 'e', ev: event, p: payload, ...(exclude ? { x: exclude } : {}) }),
    );
  }
}
