/**
 * Shared by the provider tests (providers-*.test.ts): the scripted "model" behind a local
 * provider server — first turn: call the availability tool for tomorrow (the date the system
 * prompt gives as today + 1); after the tool result: an answer built from the slots in it — and
 * one conversation turn through the agent runtime, with what came out of it.
 */
import { expect } from 'vitest';
import { addDays, type CloudEvent } from '@simptu/common';
import { streamLocation } from '../../src/runtime.ts';
import type { AgentHarness, TestTenant } from '../support.ts';
import { seedCatalog, waitFor } from '../support.ts';

export const QUESTION = 'When can I come for a cleaning tomorrow?';
export const PREAMBLE = 'Let me check. ';
export const POLITE_ERROR =
  'Sorry, something went wrong on our side. Please try again, or ask to talk to a member of staff.';

/** "tomorrow" as the agent's system prompt defines today. */
export function tomorrowFromSystemPrompt(system: string): string {
  const today = /Today is (\d{4}-\d{2}-\d{2})/.exec(system)?.[1];
  if (!today) throw new Error(`no date in the system prompt: ${system}`);
  return addDays(today, 1);
}

export interface AvailabilityResult {
  service: string;
  date: string;
  slots: string[];
}

export function answerFrom(r: AvailabilityResult): string[] {
  return [`On ${r.date} `, `${r.service} is free at `, `${r.slots.slice(0, 3).join(', ')}.`];
}

export interface Turn {
  inboundId: string;
  sessionId: string;
  answer: string;
  tokens: string[];
  calls: Array<{ name: string; args: Record<string, unknown> }>;
  results: Array<{ name: string; ok: boolean; result: unknown }>;
}

const ofRun = (id: string) => (e: CloudEvent) => (e.data as { run_id?: string }).run_id === id;

/** One user message through the runtime (Kafka in, the graph, Kafka out) and its outcome. */
export async function converse(h: AgentHarness, t: TestTenant, text = QUESTION): Promise<Turn> {
  const { sessionId } = await h.newConversation(t);
  const inboundId = await h.say(t, sessionId, text);
  const answer = await h.reply(t, inboundId, 90_000);
  // the token and tool events precede the reply in the outbox, so they are here too
  const tokens = await h.tokens(t, inboundId);
  const cipher = await h.keyrings.cipher(t.name);
  const secret = (e: CloudEvent) =>
    JSON.parse(
      cipher.decryptText((e.data as { payload_enc: string }).payload_enc, streamLocation(e.id)),
    ) as Record<string, unknown>;
  const calls = h.watcher.ofType('io.simptu.agent.tool_call', ofRun(inboundId)).map((e) => ({
    name: (e.data as { name: string }).name,
    args: secret(e).args as Record<string, unknown>,
  }));
  const results = h.watcher.ofType('io.simptu.agent.tool_result', ofRun(inboundId)).map((e) => ({
    name: (e.data as { name: string }).name,
    ok: (e.data as { ok: boolean }).ok,
    result: secret(e).result,
  }));
  return { inboundId, sessionId, answer, tokens, calls, results };
}

/** The `agent.error` event of a run. */
export function errorEvent(h: AgentHarness, inboundId: string): Promise<CloudEvent> {
  return waitFor('agent.error event', () => h.watcher.ofType('io.simptu.agent.error', ofRun(inboundId))[0]);
}

/**
 * The first three slots tomorrow of the first two tenants `seedCatalogs` seeds: different
 * opening hours, so each answer shows whose data the tool read.
 */
export const FIRST_SLOTS = [
  ['08:00', '08:30', '09:00'],
  ['10:00', '10:30', '11:00'],
] as const;

/**
 * A dental catalog (a 30-minute cleaning on one chair) for each tenant: the first open
 * 08:00-20:00, the second 10:00-14:00 (see FIRST_SLOTS), any further ones default hours.
 */
export async function seedCatalogs(tenants: readonly TestTenant[]): Promise<void> {
  const cleaning = { name: 'Cleaning', durationMinutes: 30, priceCents: 20000 };
  const chair = { kind: 'chair', name: 'Chair 1' } as const;
  await seedCatalog(tenants[0]!, {
    kind: 'treatment',
    services: [cleaning],
    resource: chair,
    hours: { opens: '08:00', closes: '20:00' },
  });
  await seedCatalog(tenants[1]!, {
    kind: 'treatment',
    services: [cleaning],
    resource: chair,
    hours: { opens: '10:00', closes: '14:00' },
  });
  for (const t of tenants.slice(2))
    await seedCatalog(t, { kind: 'treatment', services: [cleaning], resource: { kind: 'chair', name: 'C' } });
}

/**
 * What the runtime made of a scripted turn (the availability tool for `tomorrow`, then an answer
 * from its first slots `first`); returns the answer.
 */
export function expectAnsweredTurn(turn: Turn, tomorrow: string, first: readonly string[]): string {
  const answer = `On ${tomorrow} Cleaning is free at ${first.join(', ')}.`;
  expect(turn.answer).toBe(answer);
  // every token streamed: the text before the tool call, then the answer
  expect(turn.tokens.join('')).toBe(PREAMBLE + answer);
  expect(turn.calls).toEqual([{ name: 'check_availability', args: { service: 'cleaning', date: tomorrow } }]);
  expect(turn.results).toEqual([
    { name: 'check_availability', ok: true, result: expect.objectContaining({ service: 'Cleaning' }) },
  ]);
  return answer;
}

/** The system prompt a provider received is this tenant's, with nothing of the other tenant. */
export function expectOwnSystemPrompt(system: string, name: string, other: string): void {
  expect(system).toContain(`You are the assistant of "${name}", a dental business.`);
  expect(system).not.toContain(other);
}

/** What the second request sent back: the model's tool call, and the tenant's slots as its result. */
export function expectToolRoundTrip(
  use: unknown,
  sent: AvailabilityResult,
  tomorrow: string,
  first: readonly string[],
): void {
  expect(use).toMatchObject({ name: 'check_availability', input: { service: 'cleaning', date: tomorrow } });
  expect(sent).toMatchObject({ service: 'Cleaning', date: tomorrow });
  expect(sent.slots.slice(0, 3)).toEqual(first);
}

/**
 * A run the provider refused: the polite reply, an `agent.error` event of the session, no tool
 * ran and no token streamed.
 */
export async function expectRefusedRun(h: AgentHarness, turn: Turn): Promise<void> {
  expect(turn.answer).toBe(POLITE_ERROR);
  const err = await errorEvent(h, turn.inboundId);
  expect(err.data).toMatchObject({ session_id: turn.sessionId, code: 'AGENT_RUN_FAILED' });
  expect(turn.calls).toEqual([]);
  expect(turn.tokens).toEqual([]);
}
