/**
 * Per-conversation concurrency through the real agent PROCESS (dedicated mode), two
 * conversations whose sessions hash to the SAME inbound partition:
 *  - conversation A's booking turn hangs after its booking tool (uncommitted, fault injection);
 *    conversation B, later on the same partition, is still answered meanwhile (that a
 *    conversation's own messages wait for each other is runtime-keyed-consumer.test.ts: here the
 *    hanging run holds A's session row lock, so A's next message could not even be stored);
 *  - the agent is SIGKILLed there — out-of-order completion: B's later records done, A's earlier
 *    one not — and restarted: A's turn runs again from the committed offset, and in the end there
 *    is exactly one booking and exactly one reply per message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Partitioners } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays, localDateOf } from '@simptu/common';
import { seedCatalog, startAgentHarness, waitFor, type AgentHarness } from './support.ts';

const TZ = 'Europe/Bucharest';
let h: AgentHarness;
const children: ChildProcess[] = [];

beforeAll(async () => {
  h = await startAgentHarness([
    { businessType: 'dental', timezone: TZ, displayName: 'Busy Dental', agentIsolation: 'dedicated' },
  ]);
  await seedCatalog(h.tenants[0]!, {
    kind: 'treatment',
    services: [{ name: 'Cleaning', durationMinutes: 30, priceCents: 20000 }],
    resource: { kind: 'chair', name: 'Chair 1' },
  });
}, 240_000);

afterAll(async () => {
  // a held run keeps its transaction (and the session's row lock) until its process dies
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await h?.close();
}, 120_000);

/** The inbound partition a session's records go to (the producers' murmur2 partitioner). */
function partitionOf(sessionId: string, partitions = 3): number {
  const partitioner = Partitioners.DefaultPartitioner();
  return partitioner({
    topic: 'any',
    partitionMetadata: Array.from({ length: partitions }, (_, i) => ({
      partitionId: i,
      leader: 0,
      replicas: [0],
      isr: [0],
      partitionErrorCode: 0,
    })),
    message: { key: sessionId, value: null },
  });
}

function startAgent(tenant: string, extraEnv: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['services/agent/src/main.ts'], {
    cwd: new URL('../../..', import.meta.url).pathname,
    env: {
      PATH: process.env.PATH ?? '',
      SIMPTU_AGENT_DATABASE_URL: h.platform.appUrl,
      SIMPTU_AGENT_REDIS_URL: process.env.REDIS_URL!,
      SIMPTU_AGENT_KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
      SIMPTU_AGENT_KEK: h.platform.kekBase64,
      SIMPTU_AGENT_TENANT: tenant,
      SIMPTU_AGENT_GROUP_ID: `agent-keyed-crash-${tenant}`,
      SIMPTU_AGENT_METRICS_PORT: '0',
      SIMPTU_AGENT_KAFKA_SESSION_TIMEOUT_MS: '8000',
      // commit the watermark as soon as it moves: a wrong commit would not wait for a batch
      SIMPTU_AGENT_KAFKA_OFFSET_COMMIT: 'record',
      SIMPTU_AGENT_LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  return child;
}

describe('two conversations on one partition, agent killed with one turn unfinished', () => {
  it('answers the other conversation meanwhile; after restart exactly one booking and one reply each', async () => {
    const t = h.tenants[0]!;
    const a = await h.newConversation(t);
    let b = await h.newConversation(t);
    while (partitionOf(b.sessionId) !== partitionOf(a.sessionId)) b = await h.newConversation(t);

    const replies = (inboundId: string) =>
      new Set(
        h.watcher
          .ofType(
            'io.simptu.agent.message',
            (e) => (e.data as { in_reply_to?: string }).in_reply_to === inboundId,
          )
          .map((e) => e.id),
      ).size;
    const bookings = async () =>
      (
        await t.adminQuery<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${t.table('bookings')} WHERE customer_id = $1`,
          [a.customerId],
        )
      ).rows[0]!.n;

    let stderr = '';
    const first = startAgent(t.name, { SIMPTU_FAULT_HOLD_AFTER_TOOL: 'book_appointment' });
    first.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const firstExit = new Promise<NodeJS.Signals | null>((r) => first.on('exit', (_c, signal) => r(signal)));
    let second: ChildProcess | undefined;
    try {
      const a1 = await h.say(t, a.sessionId, 'Please book a cleaning tomorrow at 09:00');
      // A1's run reaches its booking tool and hangs there, holding its transaction
      await waitFor(
        'A1 at its booking tool',
        () =>
          h.watcher.ofType(
            'io.simptu.agent.tool_result',
            (e) => (e.data as { run_id?: string; name?: string }).run_id === a1,
          )[0],
        90_000,
      );
      const b1 = await h.say(t, b.sessionId, 'What are your prices?');
      expect(await h.reply(t, b1, 90_000)).toMatch(/Cleaning/);
      const b2 = await h.say(t, b.sessionId, 'Hello!');
      await h.reply(t, b2, 60_000);
      // B went on while A1 (earlier on the same partition) is still open
      expect(replies(a1)).toBe(0);
      expect(await bookings()).toBe(0); // not committed

      first.kill('SIGKILL');
      expect(await firstExit).toBe('SIGKILL');

      second = startAgent(t.name, {});
      second.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const tomorrow = addDays(localDateOf(new Date(), TZ), 1);
      expect(await h.reply(t, a1, 90_000)).toMatch(new RegExp(`booked for Cleaning on ${tomorrow} at 09:00`));
      // every record of the partition handled by the second process: B's, done above the
      // committed offset, were redelivered and skipped by their processed markers
      const group = `agent-keyed-crash-${t.name}.${h.platform.db.name}`;
      const admin = h.kafka.admin();
      await admin.connect();
      try {
        const end = (await admin.fetchTopicOffsets(t.topics.inbound)).find(
          (p) => p.partition === partitionOf(a.sessionId),
        )!.high;
        await waitFor('committed offset at the end of the partition', async () => {
          const [r] = await admin.fetchOffsets({ groupId: group, topics: [t.topics.inbound] });
          return r?.partitions.find((p) => p.partition === partitionOf(a.sessionId))?.offset === end;
        });
      } finally {
        await admin.disconnect();
      }
      expect(await bookings()).toBe(1);
      for (const id of [a1, b1, b2]) expect(replies(id)).toBe(1);
    } finally {
      if (first.exitCode === null && first.signalCode === null) first.kill('SIGKILL');
      if (second) {
        second.kill('SIGTERM');
        await new Promise((r) => second!.on('exit', r));
      }
    }
    expect(stderr).not.toMatch(/"level":50.*agent run failed/);
  }, 240_000);
});
