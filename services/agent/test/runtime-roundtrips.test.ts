/**
 * Database round trips of a turn, from "inbound record fetched" to the model's first call: ONE
 * simple-protocol query — the `withTenant` preamble (BEGIN, SET LOCAL ROLE …; `deferBegin`),
 * processed marker, the session's run lock, the session's state, the conversation's latest
 * checkpoint, `SAVEPOINT agent_run` — (before: 6 round trips, then 2); the turn's writes after the
 * model go with COMMIT. The state and checkpoint in that query are read AFTER the lock is
 * held (each statement of a multi-statement query takes its own snapshot): a run that waited
 * for the lock sees what the holder committed. The savepoint taken in that query is where a
 * failing run rolls back to: its checkpoint and tool effects go, the polite reply still goes out.
 */
import { setSessionState } from '@simptu/common';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { BuiltinChatModel } from '../src/model/builtin.ts';
import type { RunFaults } from '../src/runtime.ts';
import { seedCatalog, startAgentHarness, waitFor, type AgentHarness } from './support.ts';

let h: AgentHarness;
/** the runtime's fault hooks (read at each run), set by a test */
const faults: RunFaults = {};

beforeAll(async () => {
  h = await startAgentHarness([{ businessType: 'dental', timezone: 'Europe/Bucharest' }], { faults });
  await seedCatalog(h.tenants[0]!, {
    kind: 'treatment',
    services: [{ name: 'Cleaning', durationMinutes: 30, priceCents: 20000 }],
    resource: { kind: 'chair', name: 'Chair 1' },
  });
}, 300_000);

afterAll(async () => {
  await h?.close();
}, 120_000);

afterEach(() => {
  vi.restoreAllMocks();
});

/** Every statement sent by any client (first word, whether it carries the run lock) and model calls, in order. */
function record() {
  const log: Array<{ client: object; first: string; lock: boolean; text: string } | 'model'> = [];
  const query = pg.Client.prototype.query;
  vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
    const q = args[0] as string | { text?: string } | undefined;
    const text = typeof q === 'string' ? q : (q?.text ?? '');
    log.push({
      client: this,
      first: text.trim().split(/\s+/)[0]!.toUpperCase(),
      lock: text.includes('simptu.agent-run'),
      text: text.trim(),
    });
    return (query as (...a: unknown[]) => unknown).apply(this, args) as never;
  });
  for (const m of ['_streamResponseChunks', '_generate'] as const) {
    const orig = BuiltinChatModel.prototype[m] as (...a: unknown[]) => unknown;
    vi.spyOn(BuiltinChatModel.prototype, m).mockImplementation(function (this: unknown, ...args: unknown[]) {
      log.push('model');
      return orig.apply(this, args) as never;
    });
  }
  /** the statements of the transaction holding the run lock: [before the first model call, all] */
  return () => {
    const i = log.findIndex((e) => e !== 'model' && e.lock);
    const client = (log[i] as { client: object }).client;
    let start = i;
    // the run lock's statement opens the transaction itself (deferBegin); else look back for it
    if ((log[i] as { first: string }).first !== 'BEGIN;')
      while (start > 0) {
        const e = log[--start]!;
        if (e !== 'model' && e.client === client && e.first === 'BEGIN;') break;
      }
    const before: string[] = [];
    const all: string[] = [];
    const texts: string[] = [];
    let modelSeen = false;
    for (const e of log.slice(start)) {
      if (e === 'model') modelSeen = true;
      else if (e.client === client) {
        all.push(e.first);
        texts.push(e.text);
        if (!modelSeen) before.push(e.first);
        // the transaction's end, on its own or after the statements sent with it
        if (/(^|;\s*)(COMMIT|ROLLBACK)$/.test(e.text)) break;
      }
    }
    return { before, all, texts };
  };
}

describe('round trips of a turn', () => {
  it('one before the model: preamble + marker + lock + session + checkpoint + savepoint', async () => {
    const t = h.tenants[0]!;
    const { sessionId } = await h.newConversation(t);
    // A first turn, so the second loads a checkpoint.
    expect(await h.reply(t, await h.say(t, sessionId, 'Hello'))).toBeTruthy();

    const turn = record();
    const inboundId = await h.say(t, sessionId, 'How much is a cleaning?');
    const reply = await h.reply(t, inboundId);
    expect(reply).toMatch(/cleaning/i);
    const { before, all, texts } = turn();
    // 'BEGIN;' = the multi-statement query, opened by the withTenant preamble (marker next).
    expect(before).toEqual(['BEGIN;']);
    // The whole turn: 3 round trips (before: 10, then 6) — after the model the price tool's
    // SELECT, then the reply's outbox row and the checkpoint write (with the orphaned blobs'
    // delete) sent with COMMIT. A new round trip on the path fails here.
    expect(all).toEqual(['BEGIN;', 'SELECT', 'WITH']);
    expect(texts.at(-1)).toMatch(
      /^WITH ins AS \(.*INSERT INTO outbox .*;\s*WITH blobs AS \(.*;\nDELETE FROM checkpoint_blobs .*;\nCOMMIT$/s,
    );
  });

  it('reads the session after the run lock is held: a run that waited sees what the holder committed', async () => {
    const t = h.tenants[0]!;
    const { sessionId } = await h.newConversation(t);
    const processed = () =>
      t.run(async (ctx) => {
        const { rows } = await ctx.client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM processed_events WHERE consumer = 'agent.inbound'`,
        );
        return rows[0]!.n;
      });
    const processedBefore = await processed();
    const holder = await h.pool.connect();
    try {
      // Another run of the session holds the lock and hands the conversation to staff.
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock(hashtext('simptu.agent-run'), hashtext($1::text))`, [
        sessionId,
      ]);
      const inboundId = await h.say(t, sessionId, 'Hi, I would like a cleaning');
      // The agent's turn is waiting for the lock (its query started before the state changed).
      await waitFor('the turn waiting for the run lock', async () => {
        const { rows } = await h.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        );
        return rows[0]!.n > 0 ? true : undefined;
      });
      await t.run((ctx) => setSessionState(ctx, sessionId, 'pending_human'));
      await holder.query('COMMIT');

      // The turn committed (its processed marker) without running: no checkpoint, no reply.
      await waitFor('the turn committed', async () =>
        (await processed()) > processedBefore ? true : undefined,
      );
      const checkpoints = await t.run(async (ctx) => {
        const { rows } = await ctx.client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM checkpoints WHERE thread_id = $1`,
          [sessionId],
        );
        return rows[0]!.n;
      });
      expect(checkpoints).toBe(0);
      expect(await h.tokens(t, inboundId)).toEqual([]);
    } finally {
      holder.release();
    }
  });

  it('a run that fails after writing rolls back to the savepoint of that query; the polite reply goes out', async () => {
    const t = h.tenants[0]!;
    const { sessionId } = await h.newConversation(t);
    faults.afterToolResult = () => {
      throw new Error('injected after the checkpoint write');
    };
    try {
      const reply = await h.reply(t, await h.say(t, sessionId, 'How much is a cleaning?'));
      expect(reply).toMatch(/something went wrong/);
    } finally {
      delete faults.afterToolResult;
    }
    const checkpoints = await t.run(async (ctx) => {
      const { rows } = await ctx.client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM checkpoints WHERE thread_id = $1`,
        [sessionId],
      );
      return rows[0]!.n;
    });
    expect(checkpoints).toBe(0); // written by the run, rolled back with it
    // The conversation goes on from there.
    expect(await h.reply(t, await h.say(t, sessionId, 'How much is a cleaning?'))).toMatch(/cleaning/i);
  });
});
