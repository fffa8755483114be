/**
 * The shared tools the scripted conversations don't reach — `identify_customer`,
 * `send_message`, `issue_access_code`, `ask_for_rating` — invoked directly on a real tenant
 * (its schema, role and key, inside `withTenant`), and through the graph with the builtin model
 * and the encrypted Postgres checkpointer; then checkpoint retention (`pruneCheckpoints`:
 * keepLatest and maxAgeDays) on the checkpoints those turns wrote.
 */
import { randomUUID } from 'node:crypto';
import { HumanMessage, type AIMessage, type BaseMessage } from '@langchain/core/messages';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCustomer,
  createSession,
  getSession,
  verifyAccessCode,
  type DomainContext,
} from '@simptu/common';
import { Mutex, pruneCheckpoints, TenantCheckpointSaver } from '../src/checkpoint.ts';
import { buildAgentGraph, historyWindow, STATE_HISTORY } from '../src/graph.ts';
import { BuiltinChatModel } from '../src/model/builtin.ts';
import {
  askForRating,
  identifyCustomer,
  issuePatientAccessCode,
  sendChannelMessage,
} from '../src/tools/shared.ts';
import { allowedTools } from '../src/tools/index.ts';
import {
  idempotencyKeyFor,
  type SessionContext,
  type TenantContext,
  type ToolContext,
} from '../src/tools/types.ts';
import {
  createTestPlatform,
  provisionTenant,
  uniqueTenantName,
  type TestPlatform,
  type TestTenant,
} from './fixture.ts';

let platform: TestPlatform;
let t: TestTenant;
let tenant: TenantContext;

beforeAll(async () => {
  platform = await createTestPlatform();
  t = await provisionTenant(platform, uniqueTenantName('tl'), {
    businessType: 'dental',
    displayName: 'Smile Tools',
  });
  tenant = {
    name: t.name,
    displayName: 'Smile Tools',
    businessType: 'dental',
    locale: 'en-US',
    timeZone: 'UTC',
  };
}, 120_000);

afterAll(async () => {
  await t?.deprovision();
  await platform?.close();
}, 120_000);

function toolCtx(
  ctx: DomainContext,
  session: SessionContext,
  callId = 'call_1',
  inboundId: string = randomUUID(),
): ToolContext & { handoff: string | null } {
  const tc = {
    tenant,
    session,
    inboundId,
    toolCallId: callId,
    idempotencyKey: '',
    db: <T>(fn: (c: DomainContext) => Promise<T>) => fn(ctx),
    untrusted: false,
    now: () => new Date(),
    handoff: null as string | null,
    requestHandoff(reason: string) {
      tc.handoff = reason;
    },
  };
  tc.idempotencyKey = idempotencyKeyFor(session.id, tc.inboundId, callId);
  return tc;
}

async function newSession(
  customer: { phone?: string } | null,
  channel: 'web' | 'sms' | 'messenger' = 'web',
): Promise<SessionContext> {
  return t.run(async (ctx) => {
    const c = customer ? await createCustomer(ctx, { displayName: 'Ana Pop', ...customer }) : null;
    const s = await createSession(ctx, { customerId: c?.id ?? null, channel });
    return { id: s.id, customerId: s.customerId, channel: s.channel };
  });
}

const randomPhone = () => `+4072${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;

describe('identify_customer', () => {
  it('creates the customer by phone and attaches them to the session; finds them again later', async () => {
    const phone = randomPhone();
    const customers = async () =>
      (await t.adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM ${t.table('customers')}`)).rows[0]!
        .n;
    const before = await customers();
    const session = await newSession(null);
    const r = await t.run((ctx) =>
      identifyCustomer.run({ phone: phone.replace(/^\+40/, '+40 '), name: 'Ion Pop' }, toolCtx(ctx, session)),
    );
    expect(r).toEqual({ identified: true });
    expect(session.customerId).toMatch(/^[0-9a-f-]{36}$/);
    const stored = await t.run(async (ctx) => getSession(ctx, session.id));
    expect(stored.customerId).toBe(session.customerId);
    // phone stored encrypted, found by its blind index
    const { rows } = await t.adminQuery<{ phone: Buffer; display_name: Buffer }>(
      `SELECT phone, display_name FROM ${t.table('customers')} WHERE id = $1`,
      [session.customerId],
    );
    expect(rows[0]!.phone.toString('latin1')).not.toContain(phone.slice(3));

    // the session already has a customer: nothing changes
    const again = await t.run((ctx) => identifyCustomer.run({ phone: randomPhone() }, toolCtx(ctx, session)));
    expect(again).toEqual({ customer: 'already identified' });

    // another conversation with the same number: the same customer, not a duplicate
    const other = await newSession(null, 'sms');
    await t.run((ctx) => identifyCustomer.run({ phone }, toolCtx(ctx, other)));
    expect(other.customerId).toBe(session.customerId);
    expect(await customers()).toBe(before + 1);
  }, 60_000);

  it('refuses a malformed number as a tool error, leaving the session anonymous', async () => {
    const session = await newSession(null);
    const r = (await t.run((ctx) =>
      identifyCustomer.run({ phone: 'call me maybe' }, toolCtx(ctx, session)),
    )) as { error: string };
    expect(r.error).toBe('SIMPTU_ERR_VALIDATION');
    expect(session.customerId).toBeNull();
    expect((await t.run((ctx) => getSession(ctx, session.id))).customerId).toBeNull();
  }, 60_000);
});

describe('send_message', () => {
  it("queues an SMS to the conversation's own customer, once per call, encrypted", async () => {
    const phone = randomPhone();
    const session = await newSession({ phone }, 'sms');
    const inbound = randomUUID();
    const call = (ctx: DomainContext, args: Record<string, unknown>) =>
      sendChannelMessage.run(args, toolCtx(ctx, session, 'call_sms', inbound));
    // a recipient in the arguments is ignored: there is no way to name anyone else
    const r = (await t.run((ctx) =>
      call(ctx, { channel: 'sms', text: 'See you tomorrow at 10:00', to: '+40799999999' }),
    )) as {
      queued: boolean;
      outbound_id: string;
    };
    expect(r.queued).toBe(true);
    // the same call replayed (a redelivered run) queues nothing new
    const again = (await t.run((ctx) =>
      call(ctx, { channel: 'sms', text: 'See you tomorrow at 10:00' }),
    )) as { outbound_id: string };
    expect(again.outbound_id).toBe(r.outbound_id);
    const { rows } = await t.adminQuery<{
      id: string;
      channel: string;
      status: string;
      recipient: Buffer;
      body: Buffer;
      session_id: string;
    }>(
      `SELECT id, channel, status, recipient, body, session_id FROM ${t.table('outbound_messages')} WHERE session_id = $1`,
      [session.id],
    );
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toMatchObject({ id: r.outbound_id, channel: 'sms', status: 'pending' });
    expect(row.body.toString('latin1')).not.toContain('tomorrow');
    const cipher = await t.cipher();
    expect(
      cipher.decryptString(row.recipient, { table: 'outbound_messages', column: 'recipient', rowId: row.id }),
    ).toBe(phone);
    expect(
      cipher.decryptString(row.body, { table: 'outbound_messages', column: 'body', rowId: row.id }),
    ).toBe('See you tomorrow at 10:00');
  }, 60_000);

  it('Messenger goes to the stored contact id; bad channel, bad text, unknown customer, no address are tool errors', async () => {
    const psid = '1357924680';
    const session = await newSession({ phone: randomPhone() }, 'messenger');
    const send = (s: SessionContext, args: Record<string, unknown>, id = 'call_m') =>
      t.run((ctx) => sendChannelMessage.run(args, toolCtx(ctx, s, id)));
    const err = (v: unknown) => (v as { error?: string }).error;

    expect(err(await send(session, { channel: 'messenger', text: 'hi' }))).toBe('NO_ADDRESS');
    await t.run(async (ctx) => {
      const id = randomUUID();
      await ctx.client.query(
        'INSERT INTO channel_contacts (id, channel, address, address_bidx, customer_id) VALUES ($1, $2, $3, $4, $5)',
        [
          id,
          'messenger',
          ctx.cipher.encrypt(psid, { table: 'channel_contacts', column: 'address', rowId: id }),
          ctx.cipher.blindIndex('channel_contacts', 'address', 'text', psid),
          session.customerId,
        ],
      );
    });
    const ok = (await send(session, { channel: 'messenger', text: 'Your booking is confirmed' })) as {
      outbound_id: string;
    };
    const { rows } = await t.adminQuery<{ id: string; recipient: Buffer }>(
      `SELECT id, recipient FROM ${t.table('outbound_messages')} WHERE id = $1`,
      [ok.outbound_id],
    );
    const cipher = await t.cipher();
    expect(
      cipher.decryptString(rows[0]!.recipient, {
        table: 'outbound_messages',
        column: 'recipient',
        rowId: rows[0]!.id,
      }),
    ).toBe(psid);

    expect(err(await send(session, { channel: 'email', text: 'hi' }))).toBe('BAD_CHANNEL');
    expect(err(await send(session, { channel: 'sms', text: '' }))).toBe('BAD_TEXT');
    expect(err(await send(session, { channel: 'sms', text: 'x'.repeat(1601) }))).toBe('BAD_TEXT');
    const anonymous = await newSession(null);
    expect(err(await send(anonymous, { channel: 'sms', text: 'hi' }))).toBe('CUSTOMER_UNKNOWN');
    // nothing else was queued
    const { rows: all } = await t.adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${t.table('outbound_messages')} WHERE session_id = ANY($1::uuid[])`,
      [[session.id, anonymous.id]],
    );
    expect(all[0]!.n).toBe(1);
  }, 60_000);
});

describe('issue_access_code', () => {
  it('needs an identified patient, then issues a 24-hour code that verifies with their phone', async () => {
    const anonymous = await newSession(null);
    expect(await t.run((ctx) => issuePatientAccessCode.run({}, toolCtx(ctx, anonymous)))).toMatchObject({
      error: 'CUSTOMER_UNKNOWN',
    });

    const phone = randomPhone();
    const session = await newSession({ phone });
    const before = Date.now();
    const r = (await t.run((ctx) => issuePatientAccessCode.run({}, toolCtx(ctx, session)))) as {
      code: string;
      expires_at: string;
    };
    expect(typeof r.code).toBe('string');
    expect(Math.abs(Date.parse(r.expires_at) - before - 24 * 3600_000)).toBeLessThan(120_000);
    // stored hashed, bound to this customer
    const { rows } = await t.adminQuery<{ customer_id: string; code_hash: Buffer }>(
      `SELECT customer_id, code_hash FROM ${t.table('access_codes')}`,
    );
    expect(rows.map((x) => x.customer_id)).toEqual([session.customerId]);
    expect(rows[0]!.code_hash.toString('latin1')).not.toContain(r.code);
    const wrong = await t.run((ctx) =>
      verifyAccessCode(ctx, r.code, { secondFactor: { phone: randomPhone() } }),
    );
    expect(wrong.ok).toBe(false);
    const right = await t.run((ctx) => verifyAccessCode(ctx, r.code, { secondFactor: { phone } }));
    expect(right).toMatchObject({ ok: true, customerId: session.customerId });
  }, 60_000);
});

describe('ask_for_rating', () => {
  it('asks about this conversation and writes nothing', async () => {
    const session = await newSession({ phone: randomPhone() });
    const r = await t.run((ctx) => askForRating.run({}, toolCtx(ctx, session)));
    expect(r).toEqual({ asked: true, subject: { type: 'session', id: session.id } });
    expect(askForRating.sideEffect).toBe(false);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// Through the graph: builtin model, Postgres checkpointer in the tenant schema, tenant role.

interface Turn {
  reply: string;
  tools: Array<{ name: string; ok: boolean; result: unknown }>;
  messages: number;
  /** the graph state's messages after the turn */
  history: BaseMessage[];
}

async function turn(
  sessionId: string,
  text: string,
  model: BuiltinChatModel = new BuiltinChatModel({}),
): Promise<Turn> {
  return t.run(async (ctx) => {
    const session = await getSession(ctx, sessionId);
    const lock = new Mutex();
    const tools: Turn['tools'] = [];
    const inboundId = randomUUID();
    const graph = buildAgentGraph({
      model,
      tools: allowedTools('dental'),
      policy: {},
      tenant,
      session: { id: session.id, customerId: session.customerId, channel: session.channel },
      inboundId,
      untrusted: false,
      db: (fn) => lock.run(() => fn(ctx)),
      now: () => new Date(),
      hooks: {
        onToken: () => undefined,
        onToolCall: () => undefined,
        onToolResult: (r) => tools.push({ name: r.name, ok: r.ok, result: r.result }),
      },
      checkpointer: new TenantCheckpointSaver(ctx.client, lock, t.ref.schema, ctx.cipher, session.id),
    });
    const out = await graph.invoke(
      {
        messages: [new HumanMessage({ content: text, id: inboundId })],
        context: {
          tenant: t.name,
          businessType: 'dental',
          customerId: session.customerId,
          channel: session.channel,
          state: session.state,
        },
        inboundId,
        handoffReason: null,
        modelCalls: 0,
      },
      { configurable: { thread_id: session.id }, durability: 'exit', recursionLimit: 30 },
    );
    const msgs = out.messages as BaseMessage[];
    const last = msgs[msgs.length - 1] as AIMessage;
    return { reply: String(last.content), tools, messages: msgs.length, history: msgs };
  });
}

async function checkpointIds(threadId: string): Promise<string[]> {
  const { rows } = await t.adminQuery<{ checkpoint_id: string }>(
    `SELECT checkpoint_id FROM ${t.table('checkpoints')} WHERE thread_id = $1 ORDER BY checkpoint_id`,
    [threadId],
  );
  return rows.map((r) => r.checkpoint_id);
}

async function rowCount(table: string, threadId: string): Promise<number> {
  const { rows } = await t.adminQuery<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${t.table(table)} WHERE thread_id = $1`,
    [threadId],
  );
  return rows[0]!.n;
}

describe('through the graph with the builtin model', () => {
  let sessionId = '';
  const phone = randomPhone();

  it('access code → asks for the phone → identifies by phone → issues the code; rating question', async () => {
    sessionId = (await newSession(null)).id;
    const ask = await turn(sessionId, 'I need an access code for the patient app');
    expect(ask.tools).toEqual([expect.objectContaining({ name: 'issue_access_code', ok: false })]);
    expect(ask.reply).toMatch(/phone number/);

    const id = await turn(sessionId, phone);
    expect(id.tools).toEqual([{ name: 'identify_customer', ok: true, result: { identified: true } }]);
    const s = await t.run((ctx) => getSession(ctx, sessionId));
    expect(s.customerId).not.toBeNull();

    const code = await turn(sessionId, 'Please send me an access code');
    expect(code.tools.map((x) => [x.name, x.ok])).toEqual([['issue_access_code', true]]);
    const issued = (code.tools[0]!.result as { code: string }).code;
    expect(code.reply).toContain(`Your access code is ${issued}`);
    expect(await t.run((ctx) => verifyAccessCode(ctx, issued, { secondFactor: { phone } }))).toMatchObject({
      ok: true,
      customerId: s.customerId,
    });

    const rate = await turn(sessionId, 'Can I leave some feedback?');
    expect(rate.tools.map((x) => x.name)).toEqual(['ask_for_rating']);
    expect(rate.reply).toBe('How would you rate our conversation, from 1 to 5?');
    // the conversation resumed from its checkpoint every turn: history grows
    expect(rate.messages).toBeGreaterThan(code.messages);
  }, 120_000);

  it('pruning keeps the newest keepLatest checkpoints (with their blobs and writes) and the thread still resumes', async () => {
    const ids = await checkpointIds(sessionId);
    expect(ids.length).toBeGreaterThanOrEqual(4);
    const blobsBefore = await rowCount('checkpoint_blobs', sessionId);
    const other = (await newSession({ phone: randomPhone() })).id;
    await turn(other, 'Hello!');
    const otherBefore = await checkpointIds(other);

    const deleted = await t.run((ctx) =>
      pruneCheckpoints(ctx.client, { keepLatest: 2, maxAgeDays: 90 }, sessionId),
    );
    expect(deleted).toBe(ids.length - 2);
    expect(await checkpointIds(sessionId)).toEqual(ids.slice(-2));
    expect(await rowCount('checkpoint_blobs', sessionId)).toBeLessThan(blobsBefore);
    // no write or blob left that no remaining checkpoint refers to
    const { rows: orphanWrites } = await t.adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${t.table('checkpoint_writes')} w WHERE w.thread_id = $1
         AND NOT EXISTS (SELECT 1 FROM ${t.table('checkpoints')} c WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns AND c.checkpoint_id = w.checkpoint_id)`,
      [sessionId],
    );
    expect(orphanWrites[0]!.n).toBe(0);
    const { rows: orphanBlobs } = await t.adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${t.table('checkpoint_blobs')} b WHERE b.thread_id = $1
         AND NOT EXISTS (SELECT 1 FROM ${t.table('checkpoints')} c WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
                           AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)`,
      [sessionId],
    );
    expect(orphanBlobs[0]!.n).toBe(0);
    // another conversation is not touched by a thread's pruning
    expect(await checkpointIds(other)).toEqual(otherBefore);

    // the newest checkpoint is intact: the conversation continues with its history
    const next = await turn(sessionId, 'Thank you!');
    expect(next.reply).toBe("You're welcome! Anything else?");
    expect(next.messages).toBeGreaterThan(8);
  }, 120_000);

  it('pruning deletes checkpoints older than maxAgeDays whatever their rank, across the tenant', async () => {
    const other = (await newSession({ phone: randomPhone() })).id;
    await turn(other, 'Hello!');
    expect((await checkpointIds(sessionId)).length).toBeGreaterThan(0);
    // age the first conversation's checkpoints; the other one stays fresh
    await t.adminQuery(
      `UPDATE ${t.table('checkpoints')} SET created_at = now() - interval '10 days' WHERE thread_id = $1`,
      [sessionId],
    );
    const kept = await checkpointIds(other);

    const none = await t.run((ctx) => pruneCheckpoints(ctx.client, { keepLatest: 10, maxAgeDays: 30 }));
    expect(none).toBe(0);
    const deleted = await t.run((ctx) => pruneCheckpoints(ctx.client, { keepLatest: 10, maxAgeDays: 7 }));
    expect(deleted).toBeGreaterThan(0);
    expect(await checkpointIds(sessionId)).toEqual([]);
    expect(await rowCount('checkpoint_blobs', sessionId)).toBe(0);
    expect(await rowCount('checkpoint_writes', sessionId)).toBe(0);
    expect(await checkpointIds(other)).toEqual(kept);

    // an expired conversation starts afresh rather than failing
    const fresh = await turn(sessionId, 'Hello!');
    expect(fresh.reply).toMatch(/assistant of Smile Tools/);
    expect(fresh.messages).toBe(2);
  }, 120_000);
});

describe('the checkpointed history is bounded to the model window', () => {
  it('keeps at most STATE_HISTORY messages, and the model sees what the whole history would show it', async () => {
    const sessionId = (await newSession(null)).id;
    const seen: BaseMessage[][] = [];
    class Capturing extends BuiltinChatModel {
      override async *_streamResponseChunks(
        ...args: Parameters<BuiltinChatModel['_streamResponseChunks']>
      ): ReturnType<BuiltinChatModel['_streamResponseChunks']> {
        seen.push(args[0]);
        yield* super._streamResponseChunks(...args);
      }
    }
    // the whole conversation, as the test sees it turn by turn
    const full: BaseMessage[] = [];
    const ids = (ms: BaseMessage[]) => ms.map((m) => m.id);
    let last: Turn | undefined;
    // 'What are your prices?' runs list_treatments: tool results land on window boundaries too
    for (let i = 0; i < 18; i++) {
      seen.length = 0;
      const text = i % 2 === 0 ? 'Hello!' : 'What are your prices?';
      last = await turn(sessionId, text, new Capturing({}));
      // every price question runs its tool, however long the conversation (tool call ids repeat
      // across turns only if the model repeats them; a repeated id must not be taken as answered)
      if (i % 2 === 1) expect(last.tools.map((x) => x.name)).toEqual(['list_treatments']);
      const known = new Set(ids(full));
      const added = last.history.filter((m) => !known.has(m.id));
      expect(added[0]?.getType()).toBe('human');
      // the first model call of the turn saw the window over the WHOLE history (+ the system prompt)
      expect(ids(seen[0]!.slice(1))).toEqual(ids(historyWindow([...full, added[0]!], STATE_HISTORY)));
      full.push(...added);
      expect(last.history.length).toBeLessThanOrEqual(STATE_HISTORY);
      expect(ids(last.history)).toEqual(ids(historyWindow(full, STATE_HISTORY)));
    }
    expect(full.length).toBeGreaterThan(STATE_HISTORY + 10);
    expect(last!.history[0]!.getType()).not.toBe('tool');
    expect(full.filter((m) => m.getType() === 'tool').length).toBeGreaterThan(5);
    expect(last!.tools.length).toBeGreaterThan(0);
    expect(last!.reply).not.toBe('');
  }, 120_000);
});
