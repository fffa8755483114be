/**
 * `TenantCheckpointSaver.put` writes the checkpoint and all its changed channel blobs in ONE
 * statement, on the run's transaction, with the library's row shapes and conflict handling:
 * values (and "empty" channels) load back decrypted, a repeated version is kept as first
 * written, and a run that fails after the write rolls the checkpoint back with its savepoint.
 * With a retention policy the same statement prunes the thread (blobs left without a
 * checkpoint in a second one, only when something was pruned). Message lists are stored in
 * the compact `StoredMessage` form and load back as the same messages; lists stored by the
 * generic serializer (before) still load.
 */
import {
  AIMessage,
  HumanMessage,
  RemoveMessage,
  SystemMessage,
  ToolMessage,
  type BaseMessage,
} from '@langchain/core/messages';
import { JsonPlusSerializer } from '@langchain/langgraph-checkpoint';
import { emptyCheckpoint, type Checkpoint } from '@langchain/langgraph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { EncryptedSerde, Mutex, parseByteaArray, TenantCheckpointSaver } from '../src/checkpoint.ts';
import { createTestPlatform, provisionTenant, type TestPlatform, type TestTenant } from './support.ts';

let platform: TestPlatform;
let t: TestTenant;
const thread = '6f1b1a0e-2d2c-4a53-9d41-000000000001';

beforeAll(async () => {
  platform = await createTestPlatform();
  t = await provisionTenant(platform);
}, 120_000);

afterAll(async () => {
  await t?.deprovision();
  await platform?.close();
}, 120_000);

function checkpoint(
  id: string,
  values: Record<string, unknown>,
  versions: Record<string, number>,
): Checkpoint {
  return { ...emptyCheckpoint(), id, channel_values: values, channel_versions: versions };
}

/** `sql` sent on the saver's transaction client, as the runtime sends its combined query. */
const clients = new WeakMap<TenantCheckpointSaver, { query: (q: unknown) => Promise<unknown> }>();
async function ctxQuery(saver: TenantCheckpointSaver, sql: string): Promise<pg.QueryResult> {
  return (await clients
    .get(saver)!
    .query({ text: sql, types: TenantCheckpointSaver.types })) as pg.QueryResult;
}

/** Runs `fn` with a saver on a tenant transaction, counting the statements it sends. */
async function withSaver<T>(
  fn: (saver: TenantCheckpointSaver, statements: string[]) => Promise<T>,
  retention?: { keepLatest: number; maxAgeDays: number },
  threadId = thread,
): Promise<T> {
  return t.run(async (ctx) => {
    const statements: string[] = [];
    const client = new Proxy(ctx.client, {
      get(target, prop, receiver) {
        if (prop === 'query')
          return (q: string | { text: string }, values?: unknown[]) => {
            const text = typeof q === 'string' ? q : q.text;
            statements.push(text.trim().split(/\s+/)[0]!.toUpperCase());
            return target.query(q as string, values);
          };
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const saver = new TenantCheckpointSaver(
      client,
      new Mutex(),
      t.ref.schema,
      ctx.cipher,
      threadId,
      retention,
    );
    clients.set(saver, client as unknown as { query: (q: unknown) => Promise<unknown> });
    return fn(saver, statements);
  });
}

describe('TenantCheckpointSaver.put', () => {
  it('writes blobs and checkpoint in one statement; they load back; a repeated version keeps the first', async () => {
    const config = { configurable: { thread_id: thread, checkpoint_ns: '' } };
    await withSaver(async (saver, statements) => {
      const cp = checkpoint(
        '1ef00000-0000-6000-8000-000000000001',
        { a: { n: 1 }, b: 'text' },
        { a: 1, b: 1, c: 1 },
      );
      const next = await saver.put(
        config,
        cp,
        { source: 'loop', step: 1, parents: {} },
        { a: 1, b: 1, c: 1 },
      );
      expect(next.configurable?.checkpoint_id).toBe(cp.id);
      expect(statements).toEqual(['WITH']); // no BEGIN/SAVEPOINT, no INSERT per blob

      // version 1 of `a` again with another value, plus version 2 of `b`
      const cp2 = checkpoint(
        '1ef00000-0000-6000-8000-000000000002',
        { a: { n: 99 }, b: 'newer' },
        { a: 1, b: 2, c: 1 },
      );
      await saver.put(
        { configurable: { ...config.configurable, checkpoint_id: cp.id } },
        cp2,
        { source: 'loop', step: 2, parents: {} },
        { a: 1, b: 2 },
      );

      const first = await saver.getTuple({ configurable: { ...config.configurable, checkpoint_id: cp.id } });
      expect(first?.checkpoint.channel_values).toEqual({ a: { n: 1 }, b: 'text' }); // `c` was empty
      const latest = await saver.getTuple(config);
      expect(latest?.checkpoint.id).toBe(cp2.id);
      expect(latest?.parentConfig?.configurable?.checkpoint_id).toBe(cp.id);
      expect(latest?.checkpoint.channel_values).toEqual({ a: { n: 1 }, b: 'newer' });
      expect(latest?.metadata).toMatchObject({ step: 2 });
    });
    const { rows } = await t.adminQuery<{ channel: string; version: string; type: string; plain: boolean }>(
      `SELECT channel, version, type, blob IS NULL AS plain FROM ${t.table('checkpoint_blobs')} WHERE thread_id = $1 ORDER BY channel, version`,
      [thread],
    );
    expect(rows.map((r) => `${r.channel}:${r.version}:${r.type.slice(0, 5)}`)).toEqual([
      'a:1:enc1:',
      'b:1:enc1:',
      'b:2:enc1:',
      'c:1:empty',
    ]);
  });

  it('latestCheckpointSql (inlined, no parameters) + preload answer the first getTuple without a statement', async () => {
    const threadId = '6f1b1a0e-2d2c-4a53-9d41-0000000000e7';
    const config = { configurable: { thread_id: threadId, checkpoint_ns: '' } };
    await withSaver(
      async (saver, statements) => {
        const cp = checkpoint('1ef00000-0000-6000-8000-0000000000a1', { a: { n: 7 } }, { a: 1 });
        await saver.put(config, cp, { source: 'loop', step: 1, parents: {} }, { a: 1 });
        const sql = saver.latestCheckpointSql();
        expect(sql).not.toMatch(/\$\d/);
        expect(sql).toContain(`'${threadId}'`);
        const expected = await saver.getTuple(config); // the library's parameterized load
        statements.length = 0;
        saver.preload(await ctxQuery(saver, sql));
        expect(statements).toEqual(['SELECT']); // the caller's own (here: alone) round trip
        const preloaded = await saver.getTuple(config);
        expect(statements).toEqual(['SELECT']); // answered from the preload
        expect(saver.preloadHits).toBe(1);
        expect(preloaded).toEqual(expected);
        await saver.getTuple(config); // only once: the next load is a statement again
        expect(statements).toEqual(['SELECT', 'SELECT']);
      },
      undefined,
      threadId,
    );
    // Nothing but a UUID is inlined.
    await withSaver(
      async (saver) => expect(() => saver.latestCheckpointSql()).toThrow(/not a UUID/),
      undefined,
      "x'--",
    );
  });

  it("a write rolled back to the run's savepoint is gone, what came before stays", async () => {
    const kept = '1ef00000-0000-6000-8000-0000000000fe';
    const dropped = '1ef00000-0000-6000-8000-0000000000ff';
    const config = { configurable: { thread_id: thread, checkpoint_ns: '' } };
    await withSaver(async (saver) => {
      await saver.put(
        config,
        checkpoint(kept, { a: 'kept' }, { a: 6 }),
        { source: 'loop', step: 3, parents: {} },
        { a: 6 },
      );
    });
    // what runtime.ts does around a run: SAVEPOINT agent_run … ROLLBACK TO SAVEPOINT agent_run
    await t.run(async (ctx) => {
      const saver = new TenantCheckpointSaver(ctx.client, new Mutex(), t.ref.schema, ctx.cipher, thread);
      await ctx.client.query('SAVEPOINT agent_run');
      await saver.put(
        config,
        checkpoint(dropped, { a: 'dropped' }, { a: 7 }),
        { source: 'loop', step: 4, parents: {} },
        { a: 7 },
      );
      await ctx.client.query('ROLLBACK TO SAVEPOINT agent_run');
      expect((await saver.getTuple(config))?.checkpoint.id).toBe(kept);
    });
    const { rows } = await t.adminQuery<{ checkpoint_id: string }>(
      `SELECT checkpoint_id FROM ${t.table('checkpoints')} WHERE checkpoint_id = ANY($1)`,
      [[kept, dropped]],
    );
    expect(rows.map((r) => r.checkpoint_id)).toEqual([kept]);
    const blobs = await t.adminQuery(
      `SELECT 1 FROM ${t.table('checkpoint_blobs')} WHERE thread_id = $1 AND version = '7'`,
      [thread],
    );
    expect(blobs.rows).toHaveLength(0);
  });
});

describe('TenantCheckpointSaver retention (in put)', () => {
  const ids = (n: number) => `1ef00000-0000-6000-8000-${String(n).padStart(12, '0')}`;
  async function threadRows(threadId: string) {
    const q = async (table: string) =>
      (
        await t.adminQuery<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${t.table(table)} WHERE thread_id = $1`,
          [threadId],
        )
      ).rows[0]!.n;
    const cps = await t.adminQuery<{ checkpoint_id: string }>(
      `SELECT checkpoint_id FROM ${t.table('checkpoints')} WHERE thread_id = $1 ORDER BY checkpoint_id`,
      [threadId],
    );
    const orphans = await t.adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${t.table('checkpoint_blobs')} b WHERE b.thread_id = $1
         AND NOT EXISTS (SELECT 1 FROM ${t.table('checkpoints')} c WHERE c.thread_id = b.thread_id
                           AND c.checkpoint_ns = b.checkpoint_ns AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)`,
      [threadId],
    );
    return {
      checkpoints: cps.rows.map((r) => r.checkpoint_id),
      writes: await q('checkpoint_writes'),
      orphanBlobs: orphans.rows[0]!.n,
    };
  }

  it('keeps the newest keepLatest of the thread with their blobs and writes; other threads untouched', async () => {
    const a = '6f1b1a0e-2d2c-4a53-9d41-0000000000a1';
    const b = '6f1b1a0e-2d2c-4a53-9d41-0000000000b1';
    const config = (threadId: string) => ({ configurable: { thread_id: threadId, checkpoint_ns: '' } });
    // thread b: 4 checkpoints, no retention
    await withSaver(
      async (saver) => {
        for (let i = 1; i <= 4; i++)
          await saver.put(
            config(b),
            checkpoint(ids(i), { m: `b${i}` }, { m: i }),
            { source: 'loop', step: i, parents: {} },
            { m: i },
          );
      },
      undefined,
      b,
    );
    // thread a: 6 checkpoints, a pending write on each, keepLatest 3
    const statementsPerPut: string[][] = [];
    await withSaver(
      async (saver, statements) => {
        for (let i = 1; i <= 6; i++) {
          statements.length = 0;
          // `k` changes every time, `fixed` only once: its blob must stay while referenced
          const next = await saver.put(
            config(a),
            checkpoint(ids(i), { k: `a${i}`, fixed: 'same' }, { k: i, fixed: 1 }),
            { source: 'loop', step: i, parents: {} },
            i === 1 ? { k: i, fixed: 1 } : { k: i },
          );
          await saver.putWrites(next, [['k', `pending${i}`]], `task-${i}`);
          statementsPerPut.push([...statements]);
        }
        expect(saver.pruned).toBe(3);
        const latest = await saver.getTuple(config(a));
        expect(latest?.checkpoint.channel_values).toEqual({ k: 'a6', fixed: 'same' });
        expect(latest?.pendingWrites?.map((w) => w[2])).toEqual(['pending6']);
      },
      { keepLatest: 3, maxAgeDays: 90 },
      a,
    );
    // no pruning needed: the write alone; pruning: the write + the orphan-blob delete
    expect(statementsPerPut.slice(0, 3).map((s) => s[0])).toEqual(['WITH', 'WITH', 'WITH']);
    expect(statementsPerPut[0]!.filter((s) => s !== 'INSERT')).toEqual(['WITH']);
    expect(statementsPerPut[3]!.filter((s) => s !== 'INSERT')).toEqual(['WITH', 'DELETE']);
    const after = await threadRows(a);
    expect(after.checkpoints).toEqual([ids(4), ids(5), ids(6)]);
    expect(after.writes).toBe(3);
    expect(after.orphanBlobs).toBe(0);
    const other = await threadRows(b);
    expect(other.checkpoints).toEqual([ids(1), ids(2), ids(3), ids(4)]);
  });

  it('drops checkpoints older than maxAgeDays, keeping the one being written', async () => {
    const c = '6f1b1a0e-2d2c-4a53-9d41-0000000000c1';
    const config = { configurable: { thread_id: c, checkpoint_ns: '' } };
    await withSaver(
      async (saver) => {
        for (let i = 1; i <= 2; i++)
          await saver.put(
            config,
            checkpoint(ids(i), { k: `c${i}` }, { k: i }),
            { source: 'loop', step: i, parents: {} },
            { k: i },
          );
      },
      undefined,
      c,
    );
    await t.adminQuery(
      `UPDATE ${t.table('checkpoints')} SET created_at = now() - interval '10 days' WHERE thread_id = $1`,
      [c],
    );
    await withSaver(
      async (saver) => {
        await saver.put(
          config,
          checkpoint(ids(3), { k: 'c3' }, { k: 3 }),
          { source: 'loop', step: 3, parents: {} },
          { k: 3 },
        );
        expect(saver.pruned).toBe(2);
        expect((await saver.getTuple(config))?.checkpoint.channel_values).toEqual({ k: 'c3' });
      },
      { keepLatest: 10, maxAgeDays: 7 },
      c,
    );
    const after = await threadRows(c);
    expect(after.checkpoints).toEqual([ids(3)]);
    expect(after.orphanBlobs).toBe(0);
  });
});

describe('EncryptedSerde: message lists', () => {
  const messages = (): BaseMessage[] => [
    new SystemMessage({ content: 'rules', id: 's1' }),
    new HumanMessage({ content: 'Ce prețuri aveți? 🦷', id: 'h1' }),
    new AIMessage({
      content: '',
      id: 'a1',
      tool_calls: [{ id: 'call_1', name: 'list_treatments', args: { q: 'x' }, type: 'tool_call' }],
      additional_kwargs: { builtin: { pending: { intent: 'book', date: '2026-12-01' } } },
      response_metadata: { model: 'builtin' },
      usage_metadata: { input_tokens: 3, output_tokens: 5, total_tokens: 8 },
    }),
    new ToolMessage({
      content: JSON.stringify({ treatments: [{ name: 'Cleaning', price: '200 RON' }] }),
      tool_call_id: 'call_1',
      name: 'list_treatments',
      status: 'success',
      id: 't1',
    }),
    new AIMessage({ content: [{ type: 'text', text: 'Cleaning: 200 RON.' }], id: 'a2' }),
  ];
  const shape = (ms: BaseMessage[]) =>
    ms.map((m) => ({ cls: m.constructor.name, ...(m.toDict() as { type: string; data: object }) }));

  it('stores plain message lists compactly and loads the same messages; other values as before', async () => {
    const cipher = await t.cipher();
    const serde = new EncryptedSerde(new JsonPlusSerializer(), cipher, thread);
    const [type, bytes] = await serde.dumpsTyped(messages());
    expect(type).toBe('enc1:simptu-messages');
    expect(Buffer.from(bytes).toString('utf8')).not.toContain('Cleaning'); // encrypted
    const back = (await serde.loadsTyped(type, bytes)) as BaseMessage[];
    expect(shape(back)).toEqual(shape(messages()));
    expect((back[2] as AIMessage).tool_calls).toEqual([
      { id: 'call_1', name: 'list_treatments', args: { q: 'x' }, type: 'tool_call' },
    ]);

    // what the generic serializer wrote before loads too, to the same messages
    const [oldType, oldBytes] = await new JsonPlusSerializer().dumpsTyped(messages());
    const old = new Uint8Array(
      cipher.encrypt(Buffer.from(oldBytes), { table: 'checkpoints', column: 'payload', rowId: thread }),
    );
    expect(shape((await serde.loadsTyped(`enc1:${oldType}`, old)) as BaseMessage[])).toEqual(
      shape(messages()),
    );

    // anything else (empty lists, a RemoveMessage, plain values) takes the generic path
    for (const v of [[], [new RemoveMessage({ id: 'h1' })], { a: 1 }, 'text', 7]) {
      const [ty, by] = await serde.dumpsTyped(v);
      expect(ty).not.toBe('enc1:simptu-messages');
      const got = await serde.loadsTyped(ty, by);
      if (Array.isArray(v) && v.length === 1) expect((got as BaseMessage[])[0]!.getType()).toBe('remove');
      else expect(got).toEqual(v);
    }
  });
});

describe('parseByteaArray (the saver load query’s bytea[] columns)', () => {
  it("parses like pg's own array parser, from PostgreSQL's real output; odd input falls back to it", async () => {
    const generic = pg.types.getTypeParser(1001 as Parameters<typeof pg.types.getTypeParser>[0], 'text');
    const { rows } = await t.adminQuery<{ a: string; b: string; c: string; d: string }>(
      `SELECT array[array['messages'::bytea, 'json'::bytea, decode(repeat('00ff7f', 2000), 'hex')],
                    array['x'::bytea, ''::bytea, NULL]]::text AS a,
              array[]::bytea[]::text AS b,
              array[NULL::bytea]::text AS c,
              array[decode('22275c2c7b7d', 'hex')]::text AS d`,
    );
    const samples = [...Object.values(rows[0]!), '{"abc"}', '{{"\\\\x0g"}}', '{"\\\\x012"}'];
    expect(rows[0]!.a.startsWith('{{"\\\\x')).toBe(true); // hex output: what the fast path reads
    for (const text of samples) expect(parseByteaArray(text)).toEqual(generic(text));
    expect((parseByteaArray(rows[0]!.a) as Buffer[][])[0]![2]!.length).toBe(6000);
  });
});
