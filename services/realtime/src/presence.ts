/**
 * Presence across hub instances, in Phoenix's format (`Phoenix.Presence`; the client's
 * `presence.js` consumes it): `presence_state` = `{<key>: {metas: [{phx_ref, …}]}}` after a
 * join, then `presence_diff` = `{joins: {…}, leaves: {…}}` broadcasts; metas are matched by
 * `phx_ref`.
 *
 * Redis layout:
 * - `rt:{<tenant>/<topic>}:p` hash `<instance>|<phx_ref>` → `{key, meta}`;
 * - `rt:i:<instance>:t` set of topic keys where that instance tracks someone;
 * - `rt:instances` set of instances; `rt:i:<instance>:hb` their heartbeat (PX instanceTtlMs).
 * Each instance refreshes its heartbeat every `heartbeatMs` and reaps instances whose heartbeat
 * expired: their presences leave (with a `presence_diff`). The reap removes entries in a Lua
 * script that returns what it removed, so with several reapers each leave is announced once.
 * @see https://hexdocs.pm/phoenix/Phoenix.Presence.html
 * @see https://github.com/phoenixframework/phoenix/blob/main/assets/js/phoenix/presence.js
 */
import type { Redis } from 'ioredis';
import type { StreamBus } from './streams.ts';

export interface PresenceMeta {
  phx_ref: string;
  [k: string]: unknown;
}

export type PresenceState = Record<string, { metas: PresenceMeta[] }>;

const INSTANCES = 'rt:instances';
const presenceKey = (key: string) => `rt:{${key}}:p`;
const topicsKey = (instance: string) => `rt:i:${instance}:t`;
const heartbeatKey = (instance: string) => `rt:i:${instance}:hb`;

/** Removes the fields of one instance from a presence hash; returns the removed values. */
const REAP_LUA = `
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(out, all[i + 1])
  end
end
return out
`;

export interface PresenceOptions {
  redis: Redis;
  bus: StreamBus;
  instanceId: string;
  heartbeatMs: number;
  instanceTtlMs: number;
  onError?: (err: unknown) => void;
}

export class Presence {
  readonly #redis: Redis;
  readonly #bus: StreamBus;
  readonly #id: string;
  readonly #o: PresenceOptions;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: PresenceOptions) {
    this.#redis = options.redis;
    this.#bus = options.bus;
    this.#id = options.instanceId;
    this.#o = options;
  }

  get instanceId(): string {
    return this.#id;
  }

  /** Starts heartbeating and reaping. */
  async start(): Promise<void> {
    await this.heartbeat();
    const tick = async () => {
      try {
        await this.heartbeat();
        await this.reap();
      } catch (err) {
        this.#o.onError?.(err);
      }
      if (this.#timer) this.#timer = setTimeout(tick, this.#o.heartbeatMs);
    };
    this.#timer = setTimeout(tick, this.#o.heartbeatMs);
  }

  /** Stops heartbeating; `leaveAll` first announces this instance's leaves (graceful drain). */
  async stop(opts: { leaveAll?: boolean } = {}): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (opts.leaveAll) {
      await this.#reapInstance(this.#id);
      await this.#redis.multi().srem(INSTANCES, this.#id).del(heartbeatKey(this.#id)).exec();
    }
  }

  async heartbeat(): Promise<void> {
    await this.#redis
      .multi()
      .sadd(INSTANCES, this.#id)
      .set(heartbeatKey(this.#id), String(Date.now()), 'PX', this.#o.instanceTtlMs)
      .exec();
  }

  async track(key: string, who: string, meta: PresenceMeta): Promise<void> {
    const field = `${this.#id}|${meta.phx_ref}`;
    await this.#redis
      .multi()
      .hset(presenceKey(key), field, JSON.stringify({ key: who, meta }))
      .sadd(topicsKey(this.#id), key)
      .exec();
    await this.#bus.broadcast(key, 'presence_diff', { joins: { [who]: { metas: [meta] } }, leaves: {} });
  }

  async untrack(key: string, who: string, meta: PresenceMeta): Promise<void> {
    const removed = await this.#redis.hdel(presenceKey(key), `${this.#id}|${meta.phx_ref}`);
    if (removed === 1)
      await this.#bus.broadcast(key, 'presence_diff', { joins: {}, leaves: { [who]: { metas: [meta] } } });
  }

  async list(key: string): Promise<PresenceState> {
    const all = await this.#redis.hgetall(presenceKey(key));
    const state: PresenceState = {};
    for (const raw of Object.values(all)) {
      try {
        const { key: who, meta } = JSON.parse(raw) as { key: string; meta: PresenceMeta };
        (state[who] ??= { metas: [] }).metas.push(meta);
      } catch {
        // a corrupt entry is skipped rather than breaking every join
      }
    }
    return state;
  }

  /** Removes the presences of instances whose heartbeat expired. */
  async reap(): Promise<number> {
    const instances = await this.#redis.smembers(INSTANCES);
    let n = 0;
    for (const id of instances) {
      if (id === this.#id) continue;
      if ((await this.#redis.exists(heartbeatKey(id))) === 1) continue;
      n += await this.#reapInstance(id);
      await this.#redis.srem(INSTANCES, id);
    }
    return n;
  }

  async #reapInstance(id: string): Promise<number> {
    const keys = await this.#redis.smembers(topicsKey(id));
    let n = 0;
    for (const key of keys) {
      const removed = (await this.#redis.eval(REAP_LUA, 1, presenceKey(key), `${id}|`)) as string[];
      if (removed.length === 0) continue;
      const leaves: PresenceState = {};
      for (const raw of removed) {
        try {
          const { key: who, meta } = JSON.parse(raw) as { key: string; meta: PresenceMeta };
          (leaves[who] ??= { metas: [] }).metas.push(meta);
          n++;
        } catch {
          // skip
        }
      }
      await this.#bus.broadcast(key, 'presence_diff', { joins: {}, leaves });
    }
    await this.#redis.del(topicsKey(id));
    return n;
  }
}
