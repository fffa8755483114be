/**
 * `TenantCheckpointSaver.put` writes the checkpoint and all its changed channel blobs in ONE
 * statement, on the run's transaction, with the library's row shapes and conflict handling:
 * values (and "empty" channels) load back decrypted, a repeated version is kept as first
 * written, and a run that fails after the write rolls the checkpoint back with its savepoint.
 */
import { emptyCheckpoint, type Checkpoint } from '@langchain/langgraph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mutex, TenantCheckpointSaver } from '../src/checkpoint.ts';
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

/** Runs `fn` with a saver on a tenant transaction, counting the statements it sends. */
async function withSaver<T>(
  fn: (saver: TenantCheckpointSaver, statements: string[]) => Promise<T>,
): Promise<T> {
  return t.run(async (ctx) => {
    const statements: string[] = [];
    const client = new Proxy(ctx.client, {
      get(target, prop, receiver) {
        if (prop === 'query')
          return (text: string, values?: unknown[]) => {
            statements.push(text.trim().split(/\s+/)[0]!.toUpperCase());
            return target.query(text, values);
          };
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    return fn(new TenantCheckpointSaver(client, new Mutex(), t.ref.schema, ctx.cipher, thread), statements);
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
