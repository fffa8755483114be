/**
 * End to end with the REAL agent: a customer's `message:send` on `session:<id>` (official
 * `phoenix` client) → the hub's outbox → the tenant's `inbound` topic → the agent runtime of
 * services/agent (builtin scripted model, real tools against the tenant schema) → its stream
 * events (`payload_enc`, `tool_call_id`, exactly as the agent writes them) and its final
 * message on `simptu.t.<name>.agent` → the hub's Kafka ingest → the customer's channel.
 *
 * Nothing here hand-crafts an agent event: if the agent's event shape and the hub's validation
 * ever disagree again (the hub once dropped every real token), the tokens don't spell the
 * message and this fails. Other tenants' and other customers' sockets, joined all along and
 * shown to be live by their own conversations, get none of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Channel, Socket } from 'phoenix';
import { startTestIssuer, type TestIssuer } from '@simptu/common';
import type { RealtimeApp } from '../src/app.ts';
import { seedDentalCatalog, startAgent, type RunningAgent } from './agent-support.ts';
import {
  createPlatform,
  join,
  newUuid,
  openSocket,
  push,
  startHub,
  uniqueTenantName,
  waitFor,
  type Platform,
} from './support.ts';

const A = uniqueTenantName('rtea');
const B = uniqueTenantName('rteb');

let issuer: TestIssuer;
let p: Platform;
let hub: RealtimeApp;
let agent: RunningAgent | undefined;
const sockets: Socket[] = [];

let customerA: string;
let customerA2: string;
let customerB: string;
let sessionA: string;
let sessionA2: string;
let sessionB: string;

interface Got {
  event: string;
  payload: Record<string, unknown>;
}

/** Every server push a channel gets (replies, presence and channel control excluded), in order. */
function record(ch: Channel): Got[] {
  const out: Got[] = [];
  const inner = ch.onMessage.bind(ch);
  ch.onMessage = (event: string, payload: unknown, ref: number) => {
    if (!/^(phx_|presence_|chan_reply_)/.test(event))
      out.push({ event, payload: payload as Record<string, unknown> });
    return inner(event, payload, ref) as unknown;
  };
  return out;
}

async function joined(tenant: string, sub: string, roles: string[], topic: string) {
  const s = await openSocket(hub.socketUrl, await issuer.signAccessToken({ tenant, sub, roles }), {
    heartbeatIntervalMs: 5000,
  });
  sockets.push(s);
  const ch = s.channel(topic);
  const got = record(ch);
  expect((await join(ch)).status).toBe('ok');
  return { ch, got };
}

/** Sends a customer message through the hub and waits for the agent's final answer to it. */
async function converse(ch: Channel, got: Got[], body: string) {
  const r = await push(ch, 'message:send', { body, client_msg_id: newUuid() });
  expect(r.status).toBe('ok');
  const runId = r.response.message_id as string;
  const answer = await waitFor(
    () => got.find((g) => g.event === 'agent.message' && g.payload.in_reply_to === runId),
    60_000,
    `the agent's answer to "${body}"`,
  );
  return { runId, answer, at: got.indexOf(answer) };
}

const tomorrowUtc = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

beforeAll(async () => {
  issuer = await startTestIssuer();
  p = await createPlatform([A, B]);
  await seedDentalCatalog(p, A);
  await seedDentalCatalog(p, B);
  customerA = await p.createCustomer(A);
  customerA2 = await p.createCustomer(A);
  customerB = await p.createCustomer(B);
  sessionA = await p.createSession(A, customerA);
  sessionA2 = await p.createSession(A, customerA2);
  sessionB = await p.createSession(B, customerB);
  hub = await startHub(p, issuer);
  agent = await startAgent(p);
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await agent?.stop();
  await hub?.drain();
  await p?.close();
  await issuer?.close();
});

describe('a real agent run streamed to the customer', () => {
  it('tokens spell the final message, with the tool call and result, in order; nobody else sees any of it', async () => {
    const mine = await joined(A, customerA, ['customer'], `session:${sessionA}`);
    // Watching all along: another customer of A, a customer and the staff of B.
    const otherCustomer = await joined(A, customerA2, ['customer'], `session:${sessionA2}`);
    const otherCustomerUser = await joined(A, customerA2, ['customer'], `user:${customerA2}`);
    const otherTenant = await joined(B, customerB, ['customer'], `session:${sessionB}`);
    const otherTenantUser = await joined(B, customerB, ['customer'], `user:${customerB}`);
    const otherTenantStaff = await joined(B, 'staff-b', ['staff'], 'staff:lobby');

    const day = tomorrowUtc();
    const question = `Any free slots for a cleaning on ${day}?`;
    const { runId, answer, at } = await converse(mine.ch, mine.got, question);
    const text = answer.payload.body as string;
    expect(text.length).toBeGreaterThan(0);
    expect(answer.payload).toMatchObject({ session_id: sessionA, in_reply_to: runId });
    expect(answer.payload).not.toHaveProperty('body_enc');

    // The run's stream events, as they arrived — all before the final message (one partition
    // per conversation, and the agent hands its stream to Kafka before it commits the reply).
    const isRun = (g: Got) => g.payload.run_id === runId && g.event !== 'agent.message';
    const run = mine.got.filter(isRun);
    expect(mine.got.slice(at + 1).filter(isRun)).toEqual([]);
    // the agent's own sequence: 1..n in arrival order, no gaps
    expect(run.map((g) => g.payload.seq)).toEqual(run.map((_, i) => i + 1));
    for (const g of run) {
      expect(g.payload).not.toHaveProperty('payload_enc');
      expect(g.payload).not.toHaveProperty('tool_call_id');
    }

    // The deltas, in seq order, are exactly the final message (one per word: several).
    const tokens = run.filter((g) => g.event === 'agent.token');
    expect(tokens.length).toBeGreaterThan(1);
    expect(tokens.map((g) => g.payload.delta).join('')).toBe(text);
    expect(text).toContain(day);

    // The tool: called with the decrypted arguments, answered, both before the answer's tokens.
    const kinds = run.map((g) => g.event);
    expect(kinds.filter((k) => k === 'agent.tool_call')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'agent.tool_result')).toHaveLength(1);
    const call = run[kinds.indexOf('agent.tool_call')]!.payload;
    const result = run[kinds.indexOf('agent.tool_result')]!.payload;
    expect(call).toMatchObject({
      session_id: sessionA,
      name: 'check_availability',
      call_id: expect.any(String),
      args: expect.objectContaining({ date: day }),
    });
    expect(result).toMatchObject({ call_id: call.call_id, name: 'check_availability', ok: true });
    expect(result.result).toBeDefined();
    expect(kinds.indexOf('agent.tool_call')).toBeLessThan(kinds.indexOf('agent.tool_result'));
    expect(kinds.indexOf('agent.tool_result')).toBeLessThan(kinds.indexOf('agent.token'));

    // The customer's own message came back too (domain topic), body decrypted; and the
    // channel's stream numbers have no gap: nothing was dropped or reordered on the way.
    expect(
      mine.got.find((g) => g.event === 'message.created' && g.payload.message_id === runId)?.payload,
    ).toMatchObject({ body: question, role: 'user' });
    const streamSeqs = mine.got.map((g) => g.payload.stream_seq as number);
    expect(streamSeqs).toEqual(streamSeqs.map((_, i) => streamSeqs[0]! + i));
    for (const g of mine.got) expect(g.payload.session_id).toBe(sessionA);

    // The others are live — each gets its own conversation — and got nothing of A's.
    const [b, a2] = await Promise.all([
      converse(otherTenant.ch, otherTenant.got, 'Hello!'),
      converse(otherCustomer.ch, otherCustomer.got, 'Hello!'),
    ]);
    expect(b.answer.payload.body).toMatch(/assistant of Test rteb-/);
    expect(a2.answer.payload.body).toMatch(/assistant of Test rtea-/);
    for (const [who, got, own] of [
      ['A2 session', otherCustomer.got, sessionA2],
      ['B session', otherTenant.got, sessionB],
    ] as const) {
      expect(got.length, who).toBeGreaterThan(1);
      for (const g of got) expect(g.payload.session_id, `${who}: ${g.event}`).toBe(own);
    }
    for (const [who, got] of [
      ['A2 user', otherCustomerUser.got],
      ['B user', otherTenantUser.got],
      ['B staff lobby', otherTenantStaff.got],
    ] as const)
      for (const g of got) expect(g.payload.session_id, `${who}: ${g.event}`).not.toBe(sessionA);
    const everythingElse = JSON.stringify([
      otherCustomer.got,
      otherCustomerUser.got,
      otherTenant.got,
      otherTenantUser.got,
      otherTenantStaff.got,
    ]);
    expect(everythingElse).not.toContain(runId);
    expect(everythingElse).not.toContain(text);
    expect(everythingElse).not.toContain(String(call.call_id));
    // … and A's customer got nothing of theirs.
    expect(JSON.stringify(mine.got)).not.toContain(b.runId);
    expect(JSON.stringify(mine.got)).not.toContain(a2.runId);

    // Every event the agent wrote passed the hub's validation and decrypted.
    const dropped = await hub.metrics.registry.getSingleMetric('simptu_realtime_events_dropped_total')!.get();
    const bad = dropped.values.filter(
      (v) => v.labels.reason === 'invalid_payload' || v.labels.reason === 'undecryptable',
    );
    expect(bad.reduce((n, v) => n + v.value, 0)).toBe(0);
    // … and each was timed through the hub's stages (docs/realtime.md "Metrics").
    const stages = await hub.metrics.registry
      .getSingleMetric('simptu_realtime_delivery_stage_seconds')!
      .get();
    for (const stage of ['kafka', 'store', 'fanout'])
      expect(
        stages.values.find(
          (v) => (v as { metricName?: string }).metricName?.endsWith('_count') && v.labels.stage === stage,
        )?.value,
        stage,
      ).toBeGreaterThanOrEqual(run.length);
  }, 180_000);
});
