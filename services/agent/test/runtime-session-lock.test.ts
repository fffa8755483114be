/**
 * A run serializes with other runs of the same session, not with the API: while the model is
 * still thinking (a local Anthropic Messages API that holds its answer until the test lets it
 * go), the customer's next message and a staff member's state change on the same session commit
 * at once — before, the run held the session's row lock and every such write waited for the whole
 * run, model latency included. lock_timeout turns such a wait into an error instead of a hang.
 */
import { appendMessage, getSession, setSessionState } from '@simptu/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicServer, type AnthropicServer } from './support/anthropic-server.ts';
import { seedCatalog, startAgentHarness, type AgentHarness } from './support.ts';

const KEY = 'sk-ant-api03-lock-test';
let h: AgentHarness;
let api: AnthropicServer;
let reached!: () => void;
const modelReached = new Promise<void>((r) => (reached = r));
let release!: () => void;
const released = new Promise<void>((r) => (release = r));

beforeAll(async () => {
  api = await startAnthropicServer({
    apiKeys: [KEY],
    async reply() {
      reached();
      await released;
      return { text: ['Happy to help. ', 'What day suits you?'] };
    },
  });
  h = await startAgentHarness(
    [
      {
        businessType: 'dental',
        timezone: 'Europe/Bucharest',
        agent: {
          replicas: 1,
          model: {
            provider: 'anthropic',
            name: 'claude-sonnet-4-5',
            baseURL: api.url,
            secretRef: { name: 'k' },
          },
        },
      },
    ],
    { secretsJson: JSON.stringify({ k: { apiKey: KEY } }) },
  );
  await seedCatalog(h.tenants[0]!, {
    kind: 'treatment',
    services: [{ name: 'Cleaning', durationMinutes: 30, priceCents: 20000 }],
    resource: { kind: 'chair', name: 'Chair 1' },
  });
}, 300_000);

afterAll(async () => {
  release?.();
  await h?.close();
  await api?.close();
}, 120_000);

describe('a running turn and the API', () => {
  it("the customer's next message and staff's state change commit while the model is still answering", async () => {
    const t = h.tenants[0]!;
    const { sessionId } = await h.newConversation(t);
    const inboundId = await h.say(t, sessionId, 'Hi, I would like a cleaning');
    await modelReached; // the run is inside its transaction, waiting for the model

    const next = await t.run(async (ctx) => {
      await ctx.client.query(`SET LOCAL lock_timeout = '5s'`);
      return appendMessage(ctx, sessionId, { role: 'user', body: 'Thursday if possible' });
    });
    expect(next.seq).toBe(2);
    const pending = await t.run(async (ctx) => {
      await ctx.client.query(`SET LOCAL lock_timeout = '5s'`);
      return setSessionState(ctx, sessionId, 'pending_human');
    });
    expect(pending.state).toBe('pending_human');
    expect(api.requests).toHaveLength(0); // the model has not answered yet (recorded on answering)

    release();
    // The run that had started finishes with its reply; nothing it did undid the writes.
    expect(await h.reply(t, inboundId)).toBe('Happy to help. What day suits you?');
    const session = await t.run((ctx) => getSession(ctx, sessionId));
    expect({ lastSeq: session.lastSeq, state: session.state }).toEqual({
      lastSeq: 2,
      state: 'pending_human',
    });
    expect(api.requests.map((r) => r.status)).toEqual([200]);
  });
});
