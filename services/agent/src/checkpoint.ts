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
 *    `{source, step, parents}` there and the runtime adds nothing personal. A list of plain
 *    chat messages (the `messages` channel, rewritten every turn) is stored as LangChain's
 *    `StoredMessage` JSON (`toDict()` / `mapStoredMessagesToChatMessages`, the same constructor
 *    fields) instead of the generic serializer's `lc` constructor tree: ≈ 5× less CPU to write
 *    and read back. Values stored either way load.
 *  - Retention (`RetentionPolicy`), when the saver is given one, is applied by `put` itself:
 *    the statement that writes a checkpoint also deletes the thread's checkpoints beyond the
 *    newest `keepLatest` (or older than `maxAgeDays`) with their pending writes — no separate
 *    pruning statement per run; blobs no checkpoint refers to any more go in a second statement,
 *    only when something was deleted. `pruneCheckpoints` does the same for a whole tenant.
 * @see https://langchain-ai.github.io/langgraphjs/reference/classes/checkpoint_postgres.PostgresSaver.html
 */
import pg from 'pg';
import {
  AIMessage,
  HumanMessage,
  mapStoredMessagesToChatMessages,
  SystemMessage,
  ToolMessage,
  type BaseMessage,
  type StoredMessage,
} from '@langchain/core/messages';
import { PostgresSaver } from '@langchain/langgraph-checkpoint-postgres';
import { inlineParams, isUuid, quoteIdent, type FieldCipher, type FieldLocation } from '@simptu/common';

interface SerializerProtocol {
  dumpsTyped(data: unknown): Promise<[string, Uint8Array]>;
  loadsTyped(type: string, data: Uint8Array | string): Promise<unknown>;
}

const ENC_PREFIX = 'enc1:';
/** inner type of a message list stored as `StoredMessage[]` JSON */
const MESSAGES_TYPE = 'simptu-messages';
const MESSAGE_CLASSES: ReadonlySet<unknown> = new Set([HumanMessage, AIMessage, ToolMessage, SystemMessage]);

/** A non-empty list of plain chat messages (no chunks, no RemoveMessage, no subclasses). */
function isMessageList(data: unknown): data is BaseMessage[] {
  if (!Array.isArray(data) || data.length === 0) return false;
  for (const m of data)
    if (m === null || typeof m !== 'object' || !MESSAGE_CLASSES.has(m.constructor)) return false;
  return true;
}

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
    if (isMessageList(data)) {
      const json = Buffer.from(JSON.stringify(data.map((m) => m.toDict())), 'utf8');
      return [ENC_PREFIX + MESSAGES_TYPE, new Uint8Array(this.#cipher.encrypt(json, this.#loc))];
    }
    const [type, bytes] = await this.#inner.dumpsTyped(data);
    return [ENC_PREFIX + type, new Uint8Array(this.#cipher.encrypt(Buffer.from(bytes), this.#loc))];
  }

  async loadsTyped(type: string, data: Uint8Array | string): Promise<unknown> {
    if (!type.startsWith(ENC_PREFIX)) throw new PlaintextCheckpointError(type);
    const blob = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    const plain = this.#cipher.decrypt(blob, this.#loc);
    const inner = type.slice(ENC_PREFIX.length);
    if (inner === MESSAGES_TYPE)
      return mapStoredMessagesToChatMessages(JSON.parse(plain.toString('utf8')) as StoredMessage[]);
    return this.#inner.loadsTyped(inner, new Uint8Array(plain));
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

/** bytea[] (not among pg-types' named builtins) */
const BYTEA_ARRAY_OID = 1001 as Parameters<typeof pg.types.getTypeParser>[0];
const HEX = /^[0-9a-fA-F]*$/;
class NotHexArray extends Error {}

/**
 * Parses PostgreSQL's text output of a `bytea[]` (any depth) in hex format — what the saver's
 * load query returns its channel blobs and pending writes in (`array_agg(array[…]::bytea)`) —
 * to the same nested arrays of Buffers (or null) as pg-types' generic array parser, which walks
 * the ≈ 2× hex text character by character. Anything else (escape format, odd input) falls back
 * to that parser.
 */
export function parseByteaArray(text: string): unknown {
  let i = 0;
  const list = (): unknown[] => {
    i++; // '{'
    const out: unknown[] = [];
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      if (text[i] === '{') out.push(list());
      else if (text.startsWith('"\\\\x', i)) {
        const end = text.indexOf('"', i + 4);
        const hex = end < 0 ? '' : text.slice(i + 4, end);
        if (end < 0 || hex.length % 2 !== 0 || !HEX.test(hex)) throw new NotHexArray();
        out.push(Buffer.from(hex, 'hex'));
        i = end + 1;
      } else if (text.startsWith('NULL', i)) {
        out.push(null);
        i += 4;
      } else throw new NotHexArray();
      if (text[i] === ',') i++;
      else if (text[i] === '}') {
        i++;
        return out;
      } else throw new NotHexArray();
    }
  };
  try {
    if (text[0] !== '{') throw new NotHexArray();
    const out = list();
    if (i !== text.length) throw new NotHexArray();
    return out;
  } catch (err) {
    if (!(err instanceof NotHexArray)) throw err;
    return pg.types.getTypeParser(BYTEA_ARRAY_OID, 'text')(text);
  }
}

const savedTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === BYTEA_ARRAY_OID && format !== 'binary'
      ? parseByteaArray
      : pg.types.getTypeParser(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * Looks like a `pg.Pool` to the saver; every statement runs on `client` (the run's tenant
 * transaction), under `lock`, with a faster `bytea[]` parser (`parseByteaArray`).
 * BEGIN/COMMIT/ROLLBACK of a "connection" are no-ops: the caller's savepoint around the run is
 * the unit that rolls back (see the file comment).
 */
export class TransactionPool {
  readonly #client: pg.ClientBase;
  readonly #lock: Mutex;
  /** the answer to one statement, read ahead by the caller (`TenantCheckpointSaver.preload`) */
  #preloaded: { text: string; values: readonly unknown[]; result: pg.QueryResult } | undefined;
  /** statements answered from `#preloaded` (tests) */
  preloadHits = 0;

  constructor(client: pg.ClientBase, lock: Mutex) {
    this.#client = client;
    this.#lock = lock;
  }

  /** The next `query(text, values)` with exactly these text and values resolves to `result`. */
  preload(text: string, values: readonly unknown[], result: pg.QueryResult): void {
    this.#preloaded = { text, values, result };
  }

  query(text: string, values?: unknown[]): Promise<pg.QueryResult> {
    const p = this.#preloaded;
    if (
      p &&
      p.text === text &&
      p.values.length === (values?.length ?? 0) &&
      p.values.every((v, i) => v === values?.[i])
    ) {
      this.#preloaded = undefined;
      this.preloadHits++;
      return Promise.resolve(p.result);
    }
    return this.#lock.run(() => this.#client.query({ text, values, types: savedTypes }));
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
        return client.query({ text, values, types: savedTypes });
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
  readonly #writes: string;
  readonly #retention: RetentionPolicy | undefined;
  /** checkpoints the last `put`s deleted under the retention policy (not counted when deferred) */
  pruned = 0;
  /** with `deferWrites()`: the writes `put` prepared, as statements without parameters */
  #deferred: string[] | undefined;

  /** @param retention applied by every `put` to its thread (see the file comment); none: keep all */
  constructor(
    client: pg.ClientBase,
    lock: Mutex,
    schema: string,
    cipher: FieldCipher,
    threadId: string,
    retention?: RetentionPolicy,
  ) {
    const pool = new TransactionPool(client, lock);
    super(pool as unknown as pg.Pool, undefined, { schema });
    this.#pool = pool;
    this.#blobs = `${quoteIdent(schema, 'schema')}.checkpoint_blobs`;
    this.#checkpoints = `${quoteIdent(schema, 'schema')}.checkpoints`;
    this.#writes = `${quoteIdent(schema, 'schema')}.checkpoint_writes`;
    this.#retention = retention;
    this.#plain = this.serde as SerializerProtocol;
    this.serde = new EncryptedSerde(this.#plain, cipher, threadId) as unknown as typeof this.serde;
    this.#threadId = threadId;
  }

  readonly #threadId: string;

  /** getTuple's load of the thread's latest checkpoint (the library's SELECT_SQL + its WHERE). */
  #latestQuery(): { text: string; values: string[] } {
    const select = (this as unknown as { SQL_STATEMENTS: { SELECT_SQL: string } }).SQL_STATEMENTS.SELECT_SQL;
    return {
      text: `${select}WHERE thread_id = $1 AND checkpoint_ns = $2 ORDER BY checkpoint_id DESC LIMIT 1`,
      values: [this.#threadId, ''],
    };
  }

  /**
   * The load of the thread's latest checkpoint (what the graph's first `getTuple` sends) as ONE
   * statement without parameters, for a caller that sends it in one simple-protocol round trip
   * with its own statements and hands the result to `preload`. The thread id must be a UUID
   * (validated, then quoted): nothing untrusted is inlined.
   */
  latestCheckpointSql(): string {
    if (!isUuid(this.#threadId)) throw new Error('latestCheckpointSql: the thread id is not a UUID');
    const { text, values } = this.#latestQuery();
    return inlineParams(text, values);
  }

  /**
   * From now on `put` does not write: it prepares its statements (parameters inlined as quoted
   * literals) for the caller to send with COMMIT (`takeDeferred`, tenant-db.ts `withCommit`) —
   * one round trip less per turn — or to drop when the run is rolled back (`discardDeferred`).
   * Only for a run that reads no checkpoint back after its write (`durability: 'exit'`).
   */
  deferWrites(): void {
    this.#deferred ??= [];
  }

  /** The statements prepared since the last call, in order. */
  takeDeferred(): string[] {
    const out = this.#deferred ?? [];
    if (this.#deferred) this.#deferred = [];
    return out;
  }

  discardDeferred(): void {
    if (this.#deferred) this.#deferred = [];
  }

  /** Answers the graph's first `getTuple` load with `result` (of `latestCheckpointSql`). */
  preload(result: pg.QueryResult): void {
    const { text, values } = this.#latestQuery();
    this.#pool.preload(text, values, result);
  }

  /** loads answered by `preload` (tests) */
  get preloadHits(): number {
    return this.#pool.preloadHits;
  }

  /** the `types` (fast bytea[] parser) to send `latestCheckpointSql` with */
  static readonly types = savedTypes;

  /**
   * `PostgresSaver.put` (same rows, same conflict handling) in one statement: the changed
   * channel blobs in a data-modifying CTE, then the checkpoint row; with a retention policy,
   * the thread's checkpoints it no longer keeps (and their pending writes) are deleted in the
   * same statement, then blobs left without a checkpoint in a second one.
   */
  override async put(
    ...[config, checkpoint, metadata, newVersions]: Parameters<PostgresSaver['put']>
  ): ReturnType<PostgresSaver['put']> {
    if (config.configurable === undefined) throw new Error('Missing "configurable" field in "config" param');
    // The write comes after the answer was streamed: I/O already waiting (other conversations'
    // next steps towards their first token) is handled first (setImmediate runs after the poll
    // phase), this turn's serializing and encrypting after it.
    await new Promise<void>((resolve) => setImmediate(resolve));
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
    const ctes: string[] = [];
    if (rows.length > 0)
      ctes.push(`blobs AS (
             INSERT INTO ${this.#blobs} (thread_id, checkpoint_ns, channel, version, type, blob)
             VALUES ${rows.join(', ')}
             ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING)`);
    const keep = this.#retention;
    if (keep) {
      // The new checkpoint is one of the `keepLatest` kept (the statement's snapshot does not
      // see it): the thread's other checkpoints beyond the newest keepLatest - 1 go.
      const k = values.push(Math.max(0, keep.keepLatest - 1), keep.maxAgeDays);
      ctes.push(`ranked AS (
             SELECT checkpoint_id, created_at,
                    row_number() OVER (ORDER BY checkpoint_id DESC) AS rn
               FROM ${this.#checkpoints}
              WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id <> $3),
           doomed AS (
             DELETE FROM ${this.#checkpoints} c USING ranked r
              WHERE c.thread_id = $1 AND c.checkpoint_ns = $2 AND c.checkpoint_id = r.checkpoint_id
                AND (r.rn > $${k - 1} OR r.created_at < now() - make_interval(days => $${k}))
              RETURNING c.checkpoint_id),
           doomed_writes AS (
             DELETE FROM ${this.#writes} w USING doomed d
              WHERE w.thread_id = $1 AND w.checkpoint_ns = $2 AND w.checkpoint_id = d.checkpoint_id)`);
    }
    const upsertCheckpoint = `INSERT INTO ${this.#checkpoints} (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
       DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata`;
    const text =
      (ctes.length > 0 ? `WITH ${ctes.join(',\n           ')}\n` : '') +
      upsertCheckpoint +
      (keep ? ` RETURNING (SELECT count(*) FROM doomed)::int AS pruned` : '');
    if (this.#deferred) {
      // The orphaned blobs' delete follows in the same round trip (it sees the statement before).
      this.#deferred.push(inlineParams(text, values));
      if (keep) this.#deferred.push(inlineParams(deleteOrphanBlobs, [thread_id]));
      return { configurable: { thread_id, checkpoint_ns, checkpoint_id: checkpoint.id } };
    }
    const r = await this.#pool.query(text, values);
    const pruned = keep ? ((r.rows[0] as { pruned: number } | undefined)?.pruned ?? 0) : 0;
    if (pruned > 0) {
      this.pruned += pruned;
      await this.#pool.query(deleteOrphanBlobs, [thread_id]);
    }
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
  if (n > 0) await client.query(deleteOrphanBlobs, [threadId ?? null]);
  return n;
}

/** Blobs (of one thread, or all with NULL) that no remaining checkpoint refers to. */
const deleteOrphanBlobs = `DELETE FROM checkpoint_blobs b
        WHERE ($1::text IS NULL OR b.thread_id = $1)
          AND NOT EXISTS (SELECT 1 FROM checkpoints c
                           WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
                             AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)`;
