/**
 * The `anthropic` model provider (ChatAnthropic) end to end: the real runtime and graph over
 * Kafka/Postgres, the model a local Anthropic Messages API (support/anthropic-server.ts) that
 * checks the key and version headers, validates the conversation and streams SSE. Two tenants
 * talk at once with their own keys and data; a tenant with a refused key and one whose Secret is
 * missing get the polite error reply and an `agent.error` event, never silence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startAnthropicServer,
  type AnthropicBlock,
  type AnthropicMessagesRequest,
  type AnthropicServer,
  type AnthropicTurn,
} from './support/anthropic-server.ts';
import {
  answerFrom,
  converse,
  errorEvent,
  expectAnsweredTurn,
  expectOwnSystemPrompt,
  expectRefusedRun,
  expectToolRoundTrip,
  FIRST_SLOTS,
  POLITE_ERROR,
  PREAMBLE,
  QUESTION,
  seedCatalogs,
  tomorrowFromSystemPrompt,
  type AvailabilityResult,
} from './support/provider-conversation.ts';
import { startAgentHarness, type AgentHarness } from './support.ts';

const TZ = 'Europe/Bucharest';
const KEYS = { a: 'sk-ant-api03-tenant-a-key', b: 'sk-ant-api03-tenant-b-key' };
const NAMES = { a: 'Anthropic Dental A', b: 'Anthropic Dental B' };

let h: AgentHarness;
let api: AnthropicServer;

function systemText(b: AnthropicMessagesRequest): string {
  return typeof b.system === 'string' ? b.system : (b.system ?? []).map((x) => x.text).join('\n');
}

function toolResultOf(b: AnthropicMessagesRequest) {
  const last = b.messages[b.messages.length - 1]!;
  if (typeof last.content === 'string') return undefined;
  return last.content.find((x) => x.type === 'tool_result') as
    Extract<AnthropicBlock, { type: 'tool_result' }> | undefined;
}

function resultText(r: Extract<AnthropicBlock, { type: 'tool_result' }>): string {
  return typeof r.content === 'string' ? r.content : (r.content ?? []).map((x) => x.text).join('');
}

/** The scripted model: look the slots up, then answer with them. */
function reply(b: AnthropicMessagesRequest): AnthropicTurn {
  const result = toolResultOf(b);
  if (result) return { text: answerFrom(JSON.parse(resultText(result)) as AvailabilityResult) };
  return {
    text: [PREAMBLE],
    toolUse: {
      name: 'check_availability',
      input: { service: 'cleaning', date: tomorrowFromSystemPrompt(systemText(b)) },
    },
  };
}

const model = (secret: string) => ({
  replicas: 1,
  model: { provider: 'anthropic', name: 'claude-sonnet-4-5', baseURL: api.url, secretRef: { name: secret } },
});

beforeAll(async () => {
  api = await startAnthropicServer({ apiKeys: Object.values(KEYS), reply });
  h = await startAgentHarness(
    [
      { businessType: 'dental', timezone: TZ, displayName: NAMES.a, agent: model('anthropic-a') },
      { businessType: 'dental', timezone: TZ, displayName: NAMES.b, agent: model('anthropic-b') },
      { businessType: 'dental', timezone: TZ, displayName: 'Revoked Dental', agent: model('anthropic-c') },
      { businessType: 'dental', timezone: TZ, displayName: 'Unset Dental', agent: model('no-such-secret') },
    ],
    {
      secretsJson: JSON.stringify({
        'anthropic-a': { apiKey: KEYS.a },
        'anthropic-b': { apiKey: KEYS.b },
        'anthropic-c': { apiKey: 'sk-ant-api03-revoked' },
      }),
    },
  );
  await seedCatalogs(h.tenants);
}, 300_000);

afterAll(async () => {
  await h?.close();
  await api?.close();
}, 120_000);

describe('anthropic provider (Messages API)', () => {
  it('two tenants at once: streamed tool call on their own availability, the result sent back, a streamed answer', async () => {
    const [a, b] = await Promise.all([converse(h, h.tenants[0]!), converse(h, h.tenants[1]!)]);
    for (const [turn, key, name, other, first] of [
      [a, KEYS.a, NAMES.a, NAMES.b, FIRST_SLOTS[0]],
      [b, KEYS.b, NAMES.b, NAMES.a, FIRST_SLOTS[1]],
    ] as const) {
      const requests = api.requests.filter((r) => r.apiKey === key);
      expect(requests.map((r) => r.status)).toEqual([200, 200]);
      const tomorrow = tomorrowFromSystemPrompt(systemText(requests[0]!.body));
      expectAnsweredTurn(turn, tomorrow, first);

      // What the provider sent: headers, system prompt, tools, streaming.
      for (const r of requests) {
        expect(r.headers['anthropic-version']).toBe('2023-06-01');
        expect(r.body).toMatchObject({ model: 'claude-sonnet-4-5', stream: true });
        expectOwnSystemPrompt(systemText(r.body), name, other);
        expect(r.body.tools?.find((x) => x.name === 'check_availability')?.input_schema).toMatchObject({
          type: 'object',
          required: ['date'],
        });
      }
      expect(requests[0]!.body.messages).toEqual([{ role: 'user', content: QUESTION }]);
      // The second request: the assistant's tool_use, then the tool_result with the tenant's slots.
      const [, assistant, user] = requests[1]!.body.messages as Array<{
        role: string;
        content: AnthropicBlock[];
      }>;
      expect(assistant!.role).toBe('assistant');
      const use = assistant!.content.find((x) => x.type === 'tool_use') as Extract<
        AnthropicBlock,
        { type: 'tool_use' }
      >;
      expect(user!.role).toBe('user');
      const result = user!.content.find((x) => x.type === 'tool_result') as Extract<
        AnthropicBlock,
        { type: 'tool_result' }
      >;
      expect(result.tool_use_id).toBe(use.id);
      expectToolRoundTrip(use, JSON.parse(resultText(result)) as AvailabilityResult, tomorrow, first);
    }
  }, 180_000);

  it('a refused API key: the polite reply and an agent.error event, no tool ran', async () => {
    const t = h.tenants[2]!;
    const turn = await converse(h, t);
    await expectRefusedRun(h, turn);
    // it did reach the API, with its own (refused) key, and was not retried into a loop
    const refused = api.requests.filter((r) => r.apiKey === 'sk-ant-api03-revoked');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((r) => r.status === 401)).toBe(true);
    expect(systemText(refused[0]!.body)).toContain('"Revoked Dental"');
  }, 120_000);

  it('a missing Secret: the polite reply and an agent.error event naming the config error', async () => {
    const t = h.tenants[3]!;
    const before = api.requests.length;
    const turn = await converse(h, t);
    expect(turn.answer).toBe(POLITE_ERROR);
    const err = await errorEvent(h, turn.inboundId);
    expect(err.data).toMatchObject({ code: 'AGENT_RUN_FAILED', error: 'ModelConfigError' });
    expect(api.requests.slice(before).filter((r) => systemText(r.body).includes('Unset Dental'))).toEqual([]);
  }, 120_000);
});
