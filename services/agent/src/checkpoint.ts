/**
 * LangGraph checkpoints in the TENANT schema, under the TENANT role, encrypted with the tenant
 * key (DESIGN §5.3, §6).
 *
 *  - `TenantCheckpointSaver` is @langchain/langgraph-checkpoint-postgres' `PostgresSaver`
 *    given a pool adapter (`TransactionPool`) that runs every statement on the run's own
 *    `withTenant` transaction client, so checkpoints commit atomically with the run's tool side
 *    effects and its processed-event marker (a crash rolls all of it back together), and
 *    `SET LOCAL ROLE` applies to them. The saver's own BEGIN/COMMIT/ROLLBACK are dropped: the
 *    caller wraps the whole graph run in a savepoint (runtime.ts `agent_run`) and rolls back
 *    to it when the run throws, which a failed checkpoint write makes it do, so a savepoint per
 *    write would only add two round trips. `put` writes the checkpoint and all its changed
 *    channel blobs in ONE statement (the library sends one INSERT per blob).
 *    The tables come from the tenant migration 0005 (the saver's `setup()` is never called:
 *    the tenant role has no CREATE).
 *  - `EncryptedSerde` wraps the saver's serializer: every channel value and pending write is
 *    AES-256-GCM ciphertext (tenant DEK) bound to `tenant | checkpoints | payload | thread`.
 *    Metadata stays plain JSON (the saver queries it as jsonb); LangGraph writes only
 *    `{source, step, parents}` there and the runtime adds nothing personal.
 * @see https://langchain-ai.github.io/langgraphjs/reference/classes/checkpoint_postgres.PostgresSaver.html
 */
import type pg from 'pg';
import { PostgresSaver } from '@langchain/langgraph-checkpoint-postgres';
import { quoteIdent, type FieldCipher, type FieldLocation } from '@simptu/common';

interface SerializerProtocol {
  dumpsTyped(data: unknown): Promise<[string, Uint8Array]>;
  loadsTyped(type: string, data: Uint8Array | string): Promise<unknown>;
}

const ENC_PREFIX = 'enc1:';

export function checkpointLocation(threadId: string): FieldLocation {
  return { table: 'checkpoints', column: 'payload', rowId: threadId };
}

export class PlaintextCheckpointError extends Error {
  constructor(type: string) {
    super(`checkpoint value of type ${JSON.stringify(type)} is not encrypted: refusing to load it`);
    this.name = 'PlaintextCheckpointError';
  }
}

/** Encrypts what the inner serializer produces; refuses plaintext on load. */
export class EncryptedSerde implements SerializerProtocol {
  readonly #inner: SerializerProtocol;
  readonly #cipher: FieldCipher;
  readonly #loc: FieldLocation;

  constructor(inner: SerializerProtocol, cipher: FieldCipher, threadId: string) {
    this.#inner = inner;
    this.#cipher = cipher;
    this.#loc = checkpointLocation(threadId);
  }

  async dumpsTyped(data: unknown): Promise<[string, Uint8Array]> {
    const [type, bytes] = await this.#inner.dumpsTyped(data);
    return [ENC_PREFIX + type, new Uint8Array(this.#cipher.encrypt(Buffer.from(bytes), this.#loc))];
  }

  async loadsTyped(type: string, data: Uint8Array | string): Promise<unknown> {
    if (!type.startsWith(ENC_PREFIX)) throw new PlaintextCheckpointError(type);
    const blob = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    const plain = this.#cipher.decrypt(blob, this.#loc);
    return this.#inner.loadsTyped(type.slice(ENC_PREFIX.length), new Uint8Array(plain));
  }
}

/** A FIFO mutex: statements of the saver and the tools never interleave on one client. */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  async acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.#tail;
    this.#tail = prev.then(() => next);
    await prev;
    return release;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/**
 * Looks like a `pg.Pool` to the saver; every statement runs on `client` (the run's tenant
 * transaction), under `lock`. BEGIN/COMMIT/ROLLBACK of a "connection" are no-ops: the caller's
 * savepoint around the run is the unit that rolls back (see the file comment).
 */
export class TransactionPool {
  readonly #client: pg.ClientBase;
  readonly #lock: Mutex;

  constructor(client: pg.ClientBase, lock: Mutex) {
    this.#client = client;
    this.#lock = lock;
  }

  query(text: string, values?: unknown[]): Promise<pg.QueryResult> {
    return this.#lock.run(() => this.#client.query(text, values));
  }

  async connect(): Promise<{
    query: (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
    release: () => void;
  }> {
    const release = await this.#lock.acquire();
    const client = this.#client;
    return {
      query: (text, values) => {
        const t = text.trim().toUpperCase();
        if (t === 'BEGIN' || t === 'COMMIT' || t === 'ROLLBACK')
          return Promise.resolve({ command: t, rowCount: null, oid: 0, fields: [], rows: [] });
        return client.query(text, values);
      },
      release,
    };
  }

  async end(): Promise<void> {
    // The run owns the connection; nothing to close here.
  }
}

export class TenantCheckpointSaver extends PostgresSaver {
  readonly #plain: SerializerProtocol;
  readonly #pool: TransactionPool;
  readonly #blobs: string;
  readonly #checkpoints: string;

  constructor(client: pg.ClientBase, lock: Mutex, schema: string, cipher: FieldCipher, threadId: string) {
    const pool = new TransactionPool(client, lock);
    super(pool as unknown as pg.Pool, undefined, { schema });
    this.#pool = pool;
    this.#blobs = `${quoteIdent(schema, 'schema')}.checkpoint_blobs`;
    this.#checkpoints = `${quoteIdent(schema, 'schema')}.checkpoints`;
    this.#plain = this.serde as SerializerProtocol;
    this.serde = new EncryptedSerde(this.#plain, cipher, threadId) as unknown as typeof this.serde;
  }

  /**
   * `PostgresSaver.put` (same rows, same conflict handling) in one statement: the changed
   * channel blobs in a data-modifying CTE, then the checkpoint row.
   */
  override async put(
    ...[config, checkpoint, metadata, newVersions]: Parameters<PostgresSaver['put']>
  ): ReturnType<PostgresSaver['put']> {
    if (config.configurable === undefined) throw new Error('Missing "configurable" field in "config" param');
    const {
      thread_id,
      checkpoint_ns = '',
      checkpoint_id,
    } = config.configurable as {
      thread_id: string;
      checkpoint_ns?: string;
      checkpoint_id?: string;
    };
    const [blobs, meta] = await Promise.all([
      this._dumpBlobs(thread_id, checkpoint_ns, checkpoint.channel_values, newVersions),
      this._dumpMetadata(metadata),
    ]);
    const values: unknown[] = [
      thread_id,
      checkpoint_ns,
      checkpoint.id,
      checkpoint_id,
      this._dumpCheckpoint(checkpoint),
      meta,
    ];
    const rows: string[] = [];
    for (const [, , channel, version, type, blob] of blobs) {
      const n = values.push(channel, version, type, blob ?? null);
      rows.push(`($1, $2, $${n - 3}, $${n - 2}, $${n - 1}, $${n}::bytea)`);
    }
    const upsertCheckpoint = `INSERT INTO ${this.#checkpoints} (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
       DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata`;
    await this.#pool.query(
      rows.length === 0
        ? upsertCheckpoint
        : `WITH blobs AS (
             INSERT INTO ${this.#blobs} (thread_id, checkpoint_ns, channel, version, type, blob)
             VALUES ${rows.join(', ')}
             ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING)
           ${upsertCheckpoint}`,
      values,
    );
    return { configurable: { thread_id, checkpoint_ns, checkpoint_id: checkpoint.id } };
  }

  // Metadata is stored as jsonb (the saver filters on it), so it bypasses the encryption; it
  // holds only LangGraph's {source, step, parents}.
  protected override async _dumpMetadata(metadata: Parameters<PostgresSaver['put']>[2]): Promise<unknown> {
    const [, bytes] = await this.#plain.dumpsTyped(metadata);
    return JSON.parse(new TextDecoder().decode(bytes).replace(/\0/g, ''));
  }

  protected override async _loadMetadata(metadata: Record<string, unknown>): Promise<never> {
    return metadata as never;
  }
}

export interface RetentionPolicy {
  /** checkpoints kept per conversation (the newest); @default 10 */
  keepLatest: number;
  /** checkpoints older than this are deleted whatever their rank; @default 90 */
  maxAgeDays: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { keepLatest: 10, maxAgeDays: 90 };

/**
 * Deletes old checkpoints (beyond the newest `keepLatest` of a thread, or older than
 * `maxAgeDays`), their pending writes, and blobs no remaining checkpoint references. With
 * `threadId`, only that conversation (cheap, after each run); without, the whole tenant.
 * Runs on a client inside the tenant's transaction. Returns the checkpoints deleted.
 */
export async function pruneCheckpoints(
  client: pg.ClientBase,
  policy: RetentionPolicy,
  threadId?: string,
): Promise<number> {
  const r = await client.query(
    `WITH ranked AS (
       SELECT thread_id, checkpoint_ns, checkpoint_id, created_at,
              row_number() OVER (PARTITION BY thread_id, checkpoint_ns ORDER BY checkpoint_id DESC) AS rn
         FROM checkpoints WHERE ($1::text IS NULL OR thread_id = $1)),
     doomed AS (
       DELETE FROM checkpoints c USING ranked r
        WHERE c.thread_id = r.thread_id AND c.checkpoint_ns = r.checkpoint_ns AND c.checkpoint_id = r.checkpoint_id
          AND (r.rn > $2 OR r.created_at < now() - make_interval(days => $3))
        RETURNING c.thread_id, c.checkpoint_ns, c.checkpoint_id),
     w AS (
       DELETE FROM checkpoint_writes cw USING doomed d
        WHERE cw.thread_id = d.thread_id AND cw.checkpoint_ns = d.checkpoint_ns AND cw.checkpoint_id = d.checkpoint_id)
     SELECT count(*)::int AS n FROM doomed`,
    [threadId ?? null, policy.keepLatest, policy.maxAgeDays],
  );
  const n = (r.rows[0] as { n: number } | undefined)?.n ?? 0;
  if (n > 0)
    await client.query(
      `DELETE FROM checkpoint_blobs b
        WHERE ($1::text IS NULL OR b.thread_id = $1)
          AND NOT EXISTS (SELECT 1 FROM checkpoints c
                           WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
                             AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)`,
      [threadId ?? null],
    );
  return n;
}
