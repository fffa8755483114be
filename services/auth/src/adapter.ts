/**
 * oidc-provider storage: durable artefacts (grants, refresh tokens, client-credentials tokens)
 * in Postgres (`auth.oidc_payloads`), short-lived ones (sessions, interactions, authorization
 * codes, opaque userinfo access tokens, replay detection) in Redis with their TTL, and clients
 * resolved on demand by `ClientResolver` (tenant registry + `auth.clients`).
 *
 * `revokeByGrantId` removes every artefact of a grant ("token family") from both stores: a
 * grant index set per grant in Redis, an indexed `grant_id` column in Postgres.
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md#adapter
 * @see https://github.com/panva/node-oidc-provider/blob/main/example/adapters/redis.js
 */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { ClientResolver } from './clients.ts';

/** Models kept in Redis: they live minutes, and losing them only costs a re-login. */
export const REDIS_MODELS = new Set([
  'Session',
  'Interaction',
  'AuthorizationCode',
  'AccessToken',
  'ReplayDetection',
  'PushedAuthorizationRequest',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

export class RedisAdapter implements Adapter {
  readonly #redis: Redis;
  readonly #model: string;
  readonly #prefix: string;

  constructor(model: string, redis: Redis, prefix: string) {
    this.#model = model;
    this.#redis = redis;
    this.#prefix = prefix;
  }

  #key(id: string): string {
    return `${this.#prefix}oidc:${this.#model}:${id}`;
  }
  #grantKey(grantId: string): string {
    return `${this.#prefix}oidc:grant:${grantId}`;
  }
  #uidKey(uid: string): string {
    return `${this.#prefix}oidc:uid:${uid}`;
  }
  #userCodeKey(code: string): string {
    return `${this.#prefix}oidc:usercode:${code}`;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = this.#key(id);
    const multi = this.#redis.multi();
    // A hash so `consume` can stamp a field without a read-modify-write race.
    multi.del(key);
    multi.hset(key, 'payload', JSON.stringify(payload));
    if (expiresIn) multi.expire(key, expiresIn);
    if (GRANTABLE.has(this.#model) && payload.grantId) {
      const gk = this.#grantKey(payload.grantId);
      multi.rpush(gk, key);
      // The index outlives its longest member.
      const ttl = await this.#redis.ttl(gk);
      if (expiresIn && ttl < expiresIn) multi.expire(gk, expiresIn);
    }
    if (payload.userCode) {
      multi.set(this.#userCodeKey(payload.userCode), id);
      if (expiresIn) multi.expire(this.#userCodeKey(payload.userCode), expiresIn);
    }
    if (payload.uid) {
      multi.set(this.#uidKey(payload.uid), id);
      if (expiresIn) multi.expire(this.#uidKey(payload.uid), expiresIn);
    }
    await multi.exec();
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const data = await this.#redis.hgetall(this.#key(id));
    if (!data.payload) return undefined;
    const payload = JSON.parse(data.payload) as AdapterPayload;
    if (data.consumed) payload.consumed = Number(data.consumed);
    return payload;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await this.#redis.get(this.#uidKey(uid));
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await this.#redis.get(this.#userCodeKey(userCode));
    return id ? this.find(id) : undefined;
  }

  async consume(id: string): Promise<void> {
    // Only stamps an existing entry (HSET on a missing key would create one without a TTL).
    await this.#redis.eval(
      `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'consumed', ARGV[1]) end`,
      1,
      this.#key(id),
      String(Math.floor(Date.now() / 1000)),
    );
  }

  async destroy(id: string): Promise<void> {
    await this.#redis.del(this.#key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const gk = this.#grantKey(grantId);
    const keys = await this.#redis.lrange(gk, 0, -1);
    const multi = this.#redis.multi();
    for (const k of keys) multi.del(k);
    multi.del(gk);
    await multi.exec();
  }
}

export class PostgresAdapter implements Adapter {
  readonly #db: pg.Pool;
  readonly #model: string;

  constructor(model: string, db: pg.Pool) {
    this.#model = model;
    this.#db = db;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    await this.#db.query(
      `INSERT INTO auth.oidc_payloads (model, id, payload, grant_id, uid, user_code, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::int > 0 THEN now() + make_interval(secs => $7::int) END)
       ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id,
         uid = EXCLUDED.uid, user_code = EXCLUDED.user_code, expires_at = EXCLUDED.expires_at`,
      [
        this.#model,
        id,
        payload,
        payload.grantId ?? null,
        payload.uid ?? null,
        payload.userCode ?? null,
        expiresIn ?? 0,
      ],
    );
  }

  async #findBy(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
    const { rows } = await this.#db.query<{ payload: AdapterPayload; consumed_at: Date | null }>(
      `SELECT payload, consumed_at FROM auth.oidc_payloads
        WHERE model = $1 AND ${column} = $2 AND (expires_at IS NULL OR expires_at > now())`,
      [this.#model, value],
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      ...row.payload,
      ...(row.consumed_at ? { consumed: Math.floor(row.consumed_at.getTime() / 1000) } : {}),
    };
  }

  find(id: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('id', id);
  }
  findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('uid', uid);
  }
  findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('user_code', userCode);
  }

  async consume(id: string): Promise<void> {
    await this.#db.query(
      `UPDATE auth.oidc_payloads SET consumed_at = now() WHERE model = $1 AND id = $2 AND consumed_at IS NULL`,
      [this.#model, id],
    );
  }

  async destroy(id: string): Promise<void> {
    await this.#db.query(`DELETE FROM auth.oidc_payloads WHERE model = $1 AND id = $2`, [this.#model, id]);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#db.query(`DELETE FROM auth.oidc_payloads WHERE model = $1 AND grant_id = $2`, [
      this.#model,
      grantId,
    ]);
  }
}

/** Clients are not stored by oidc-provider here: they are resolved from the registry on every lookup. */
export class ClientAdapter implements Adapter {
  readonly #clients: ClientResolver;
  constructor(clients: ClientResolver) {
    this.#clients = clients;
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await this.#clients.find(id)) as AdapterPayload | undefined;
  }
  async upsert(): Promise<void> {
    throw new Error('clients are managed in platform.tenants and auth.clients, not through oidc-provider');
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

export interface AdapterDeps {
  db: pg.Pool;
  redis: Redis;
  redisPrefix: string;
  clients: ClientResolver;
}

/** The `adapter` option of oidc-provider: a factory called once per model name. */
export function adapterFactory(deps: AdapterDeps): (model: string) => Adapter {
  return (model) => {
    if (model === 'Client') return new ClientAdapter(deps.clients);
    if (REDIS_MODELS.has(model)) return new RedisAdapter(model, deps.redis, deps.redisPrefix);
    return new PostgresAdapter(model, deps.db);
  };
}

/** Deletes expired durable artefacts (Redis expires its own). */
export async function purgeExpired(db: pg.Pool): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM auth.oidc_payloads WHERE expires_at < now() - interval '1 hour'`,
  );
  return rowCount ?? 0;
}
