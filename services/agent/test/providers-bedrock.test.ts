/**
 * The `bedrock` model provider (ChatBedrockConverse on a BedrockRuntimeClient) end to end: the
 * real runtime and graph over Kafka/Postgres, the model a local Bedrock Runtime
 * (support/bedrock-server.ts) that verifies the SigV4 signature by recomputing it, validates the
 * Converse request and streams ConverseStream events in the binary event-stream framing. Two
 * tenants talk at once with their own credentials (one with temporary credentials and a session
 * token) and data; a tenant with a wrong secret key gets the polite error reply and an
 * `agent.error` event, never silence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockRuntimeClient, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import {
  startBedrockServer,
  type BedrockServer,
  type ConverseRequest,
  type ConverseTurn,
} from './support/bedrock-server.ts';
import {
  answerFrom,
  converse,
  expectAnsweredTurn,
  expectOwnSystemPrompt,
  expectRefusedRun,
  expectToolRoundTrip,
  FIRST_SLOTS,
  PREAMBLE,
  QUESTION,
  seedCatalogs,
  tomorrowFromSystemPrompt,
  type AvailabilityResult,
} from './support/provider-conversation.ts';
import { startAgentHarness, type AgentHarness } from './support.ts';

const TZ = 'Europe/Bucharest';
const REGION = 'eu-central-1';
const MODEL = 'anthropic.claude-3-5-sonnet-20240620-v1:0';
const KEY_A = { accessKeyId: 'AKIAEXAMPLETENANTA01', secretAccessKey: 'tenant-a-secret/K7MDENG+bPxRfiCY' };
const KEY_B = {
  accessKeyId: 'ASIAEXAMPLETENANTB01',
  secretAccessKey: 'tenant-b-temporary-secret',
  sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE-session-token-b',
};
const NAMES = { a: 'Bedrock Dental A', b: 'Bedrock Dental B' };

let h: AgentHarness;
let aws: BedrockServer;

const systemText = (b: ConverseRequest) => (b.system ?? []).map((x) => x.text ?? '').join('\n');

function toolResultOf(b: ConverseRequest) {
  return b.messages[b.messages.length - 1]!.content.find((c) => c.toolResult)?.toolResult;
}

/** The scripted model: look the slots up, then answer with them. */
function reply(b: ConverseRequest): ConverseTurn {
  const result = toolResultOf(b);
  if (result) {
    const text = result.content.map((c) => c.text ?? JSON.stringify(c.json)).join('');
    return { text: answerFrom(JSON.parse(text) as AvailabilityResult) };
  }
  if (!b.system) return { text: ['Hello', '!'] }; // the bare contract checks below
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
  model: { provider: 'bedrock', name: MODEL, baseURL: aws.url, secretRef: { name: secret } },
});

beforeAll(async () => {
  aws = await startBedrockServer({ keys: [KEY_A, KEY_B], region: REGION, models: [MODEL], reply });
  h = await startAgentHarness(
    [
      { businessType: 'dental', timezone: TZ, displayName: NAMES.a, agent: model('bedrock-a') },
      { businessType: 'dental', timezone: TZ, displayName: NAMES.b, agent: model('bedrock-b') },
      { businessType: 'dental', timezone: TZ, displayName: 'Wrong Key Dental', agent: model('bedrock-c') },
    ],
    {
      secretsJson: JSON.stringify({
        'bedrock-a': { region: REGION, ...KEY_A },
        'bedrock-b': { region: REGION, ...KEY_B },
        'bedrock-c': { region: REGION, accessKeyId: KEY_A.accessKeyId, secretAccessKey: 'not-the-secret' },
      }),
    },
  );
  await seedCatalogs(h.tenants);
}, 300_000);

afterAll(async () => {
  await h?.close();
  await aws?.close();
}, 120_000);

describe('bedrock provider (ConverseStream)', () => {
  it('two tenants at once: signed requests, streamed tool call on their own availability, the result sent back, a streamed answer', async () => {
    const [a, b] = await Promise.all([converse(h, h.tenants[0]!), converse(h, h.tenants[1]!)]);
    for (const [turn, key, name, other, first] of [
      [a, KEY_A, NAMES.a, NAMES.b, FIRST_SLOTS[0]],
      [b, KEY_B, NAMES.b, NAMES.a, FIRST_SLOTS[1]],
    ] as const) {
      const requests = aws.requests.filter((r) => r.accessKeyId === key.accessKeyId);
      // both signatures verified (a wrong one is a 403)
      expect(requests.map((r) => r.status)).toEqual([200, 200]);
      const tomorrow = tomorrowFromSystemPrompt(systemText(requests[0]!.body));
      expectAnsweredTurn(turn, tomorrow, first);

      for (const r of requests) {
        expect(r.path).toBe(`/model/${encodeURIComponent(MODEL)}/converse-stream`);
        expect(r.headers.authorization).toMatch(
          new RegExp(`^AWS4-HMAC-SHA256 Credential=${key.accessKeyId}/\\d{8}/${REGION}/bedrock/aws4_request`),
        );
        if ('sessionToken' in key) expect(r.headers['x-amz-security-token']).toBe(key.sessionToken);
        else expect(r.headers['x-amz-security-token']).toBeUndefined();
        expectOwnSystemPrompt(systemText(r.body), name, other);
        const spec = r.body.toolConfig?.tools.find(
          (x) => x.toolSpec?.name === 'check_availability',
        )?.toolSpec;
        expect(spec?.inputSchema.json).toMatchObject({ type: 'object', required: ['date'] });
      }
      expect(requests[0]!.body.messages).toEqual([{ role: 'user', content: [{ text: QUESTION }] }]);
      // The second request: the assistant's toolUse, then the toolResult with the tenant's slots.
      const [, assistant, user] = requests[1]!.body.messages;
      expect(assistant!.role).toBe('assistant');
      const use = assistant!.content.find((c) => c.toolUse)!.toolUse!;
      expect(user!.role).toBe('user');
      const result = user!.content.find((c) => c.toolResult)!.toolResult!;
      expect(result.toolUseId).toBe(use.toolUseId);
      const sent = JSON.parse(result.content.map((c) => c.text ?? '').join('')) as AvailabilityResult;
      expectToolRoundTrip(use, sent, tomorrow, first);
    }
  }, 180_000);

  it('a wrong secret key: 403 InvalidSignatureException, the polite reply and an agent.error event', async () => {
    const t = h.tenants[2]!;
    const before = aws.requests.length;
    const turn = await converse(h, t);
    await expectRefusedRun(h, turn);
    const refused = aws.requests
      .slice(before)
      .filter((r) => systemText(r.body).includes('"Wrong Key Dental"'));
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.map((r) => [r.status, r.errorType])).toEqual(
      refused.map(() => [403, 'InvalidSignatureException']),
    );
  }, 120_000);

  it('the local Bedrock refuses what AWS refuses: a body changed after signing, an unknown key', async () => {
    const send = (client: BedrockRuntimeClient) =>
      client.send(
        new ConverseStreamCommand({
          modelId: MODEL,
          messages: [{ role: 'user', content: [{ text: 'hi' }] }],
        }),
      );
    const tampered = new BedrockRuntimeClient({ region: REGION, endpoint: aws.url, credentials: KEY_A });
    // after signing, before sending: same length, different text
    tampered.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { body: string | Uint8Array };
        const text = typeof req.body === 'string' ? req.body : new TextDecoder().decode(req.body);
        req.body = text.replace('"hi"', '"ho"');
        return next(args);
      },
      { step: 'deserialize', name: 'tamper' },
    );
    await expect(send(tampered)).rejects.toMatchObject({ name: 'InvalidSignatureException' });
    const stranger = new BedrockRuntimeClient({
      region: REGION,
      endpoint: aws.url,
      credentials: { accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'x' },
    });
    await expect(send(stranger)).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
    const fine = new BedrockRuntimeClient({ region: REGION, endpoint: aws.url, credentials: KEY_A });
    const out = await send(fine);
    const events: string[] = [];
    for await (const e of out.stream!) events.push(Object.keys(e).find((k) => k !== '$unknown')!);
    expect(events[0]).toBe('messageStart');
    expect(events.slice(-2)).toEqual(['messageStop', 'metadata']);
  }, 60_000);
});
