/**
 * Shared by the provider tests (providers-*.test.ts): the scripted "model" behind a local
 * provider server — first turn: call the availability tool for tomorrow (the date the system
 * prompt gives as today + 1); after the tool result: an answer built from the slots in it — and
 * one conversation turn through the agent runtime, with what came out of it.
 */
import { addDays, type CloudEvent } from '@simptu/common';
import { streamLocation } from '../../src/runtime.ts';
import type { AgentHarness, TestTenant } from '../support.ts';
import { waitFor } from '../support.ts';

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
