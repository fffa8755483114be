/**
 * The agent benchmark's view of its agent replicas' consumer group (bench/agent/run.ts, part 3):
 * which replica (by its Kafka client id) holds which partitions of the tenant's inbound topic,
 * read from the group's description with the admin client.
 */
import kafkajs, { type Admin } from 'kafkajs';
import { sleep } from '../operator/lib.ts';

export interface GroupView {
  groupId: string;
  state: string;
  /** client id → the inbound topic's partitions assigned to that member (sorted) */
  members: Map<string, number[]>;
}

/**
 * The runtime's consumer group of the agents started with `SIMPTU_AGENT_GROUP_ID = groupId`
 * (`<groupId>.<database>`; the staff relay's `<groupId>.staff-relay.<database>` is not it), or
 * undefined while it does not exist yet.
 */
export async function describeAgentGroup(
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<GroupView | undefined> {
  const ids = (await admin.listGroups()).groups
    .map((g) => g.groupId)
    .filter((g) => g.startsWith(`${groupId}.`) && !g.startsWith(`${groupId}.staff-relay.`));
  if (ids.length === 0) return undefined;
  if (ids.length > 1) throw new Error(`more than one agent consumer group: ${ids.join(', ')}`);
  const g = (await admin.describeGroups(ids)).groups[0];
  if (!g) return undefined;
  const members = new Map<string, number[]>();
  for (const m of g.members) {
    const a = m.memberAssignment.length
      ? kafkajs.AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
      : null;
    const parts = [...(a?.assignment[topic] ?? [])].sort((x, y) => x - y);
    // Two members with one client id would be one replica's two consumers: merge (not expected).
    members.set(m.clientId, [...(members.get(m.clientId) ?? []), ...parts]);
  }
  return { groupId: g.groupId, state: g.state, members };
}

/**
 * Whether the staff relay's group (`<groupId>.staff-relay.<database>`, a separate group of the
 * same processes) is absent or Stable with `members` members: its rebalance is not the runtime's,
 * but measuring while it goes on would add its joins to the figures.
 */
async function staffRelaySettled(admin: Admin, groupId: string, members: number): Promise<boolean> {
  const ids = (await admin.listGroups()).groups
    .map((g) => g.groupId)
    .filter((g) => g.startsWith(`${groupId}.staff-relay.`));
  if (ids.length === 0) return true;
  return (await admin.describeGroups(ids)).groups.every(
    (g) => g.state === 'Stable' && g.members.length === members,
  );
}

/**
 * Waits until the group is Stable with exactly `clientIds` as its members and every partition of
 * `topic` assigned (a replica may hold none when there are fewer partitions than replicas), and
 * the staff relay's group, if there is one, is Stable with as many members.
 */
export async function waitForGroup(
  admin: Admin,
  groupId: string,
  topic: string,
  clientIds: readonly string[],
  partitions: number,
  timeoutMs: number,
  abort: () => string | undefined,
): Promise<GroupView> {
  const until = Date.now() + timeoutMs;
  let last: GroupView | undefined;
  for (;;) {
    const why = abort();
    if (why) throw new Error(why);
    last = await describeAgentGroup(admin, groupId, topic).catch(() => undefined);
    if (
      last &&
      last.state === 'Stable' &&
      last.members.size === clientIds.length &&
      clientIds.every((c) => last!.members.has(c)) &&
      [...last.members.values()].reduce((a, p) => a + p.length, 0) === partitions &&
      (await staffRelaySettled(admin, groupId, clientIds.length).catch(() => false))
    )
      return last;
    if (Date.now() > until)
      throw new Error(
        `the agents' consumer group did not settle within ${timeoutMs / 1000} s: ${JSON.stringify(
          last ? { state: last.state, members: Object.fromEntries(last.members) } : null,
        )}`,
      );
    await sleep(250);
  }
}

/** the same assignment (members and their partitions) */
export function sameAssignment(a: GroupView, b: GroupView | undefined): boolean {
  if (!b || a.members.size !== b.members.size) return false;
  for (const [c, p] of a.members) if (b.members.get(c)?.join(',') !== p.join(',')) return false;
  return true;
}
