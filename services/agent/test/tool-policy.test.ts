/**
 * Per-tenant tool policy (issue #7 guard rails), end to end: a Tenant's `spec.agent.tools` →
 * the operator's registry reconciler (its real code path, upserting `platform.tenants`) → the
 * agent runtime's registry refresh → the tools bound to the model and the guard → what the
 * customer gets, through Kafka with the builtin model.
 *
 * Also keeps the CRD's tool enum (`operator/src/api/tools.ts`) and the agent's catalogue
 * (`src/tools`) in sync: a tool added to one and not the other fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { addDays, localDateOf, tenantTopics } from '@simptu/common';
import {
  AGENT_TOOL_NAMES,
  AGENT_TOOLS_BY_BUSINESS_TYPE,
  API_VERSION,
  KIND,
  SIDE_EFFECT_TOOLS,
  createRegistryProducer,
  ensurePlatformTopic,
  registryReconciler,
  type AgentToolPolicy,
  type Tenant,
  type TenantStatus,
} from '@simptu/operator';
import { allowedTools, checkCall, toolSetFor, type BusinessType } from '../src/tools/index.ts';
import { toAgentTenant } from '../src/registry.ts';
import { seedCatalog, startAgentHarness, type AgentHarness, type TestTenant } from './support.ts';

const BUSINESS_TYPES: BusinessType[] = ['dental', 'gym', 'hotel'];

describe('tool catalogue: the CRD enum and the agent agree', () => {
  it.each(BUSINESS_TYPES)('%s: spec.agent.tools accepts exactly the tools the agent has', (type) => {
    expect(toolSetFor(type).map((t) => t.name)).toEqual([...AGENT_TOOLS_BY_BUSINESS_TYPE[type]]);
  });

  it('every tool once in the enum; untrustedAllow names exactly the side-effect tools', () => {
    const sideEffect = new Map<string, boolean>();
    for (const type of BUSINESS_TYPES) for (const t of toolSetFor(type)) sideEffect.set(t.name, t.sideEffect);
    expect([...sideEffect.keys()].sort()).toEqual([...AGENT_TOOL_NAMES]);
    expect(
      [...sideEffect]
        .filter(([, s]) => s)
        .map(([n]) => n)
        .sort(),
    ).toEqual([...SIDE_EFFECT_TOOLS]);
  });

  it('reads an empty allow-list as the defaults, a deny as a hole in them', () => {
    const row = (tools: AgentToolPolicy) =>
      toAgentTenant({
        name: 'x',
        display_name: 'X',
        business_type: 'dental',
        locale: 'en-US',
        timezone: 'UTC',
        database_name: 'd',
        schema_name: 't_x',
        agent: { tools },
        integrations: null,
      });
    const all = toolSetFor('dental').map((t) => t.name);
    expect(allowedTools('dental', row({ allow: [] }).tools).map((t) => t.name)).toEqual(all);
    const denied = row({ deny: ['book_appointment'] }).tools;
    const tools = allowedTools('dental', denied);
    expect(tools.map((t) => t.name)).toEqual(all.filter((n) => n !== 'book_appointment'));
    // whatever a model asks for, the guard refuses a tool that is not bound
    expect(checkCall('book_appointment', tools, denied, false)).toMatchObject({ ok: false });
    expect(checkCall('cancel_appointment', tools, denied, false)).toMatchObject({ ok: true });
  });
});

// ---------------------------------------------------------------------------------------------

const TZ = 'Europe/Bucharest';
const BOOK = 'I would like to book a cleaning tomorrow at 10:00';
const CANNOT = "Sorry, I can't do that here. Would you like me to put you through to a member of staff?";

let h: AgentHarness;
let producer: Producer;
/** the tenant with the defaults, the one whose spec denies booking, one that books from e-mail */
let open: TestTenant;
let guarded: TestTenant;
let mailable: TestTenant;

function tomorrow(): string {
  return addDays(localDateOf(new Date(), TZ), 1);
}

/** The Tenant as read from the API server (defaults applied), with this tool policy. */
function tenantResource(t: TestTenant, tools: AgentToolPolicy | undefined, generation: number): Tenant {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: t.name, generation },
    spec: {
      displayName: `Dental ${t.name}`,
      businessType: 'dental',
      locale: 'en-US',
      timezone: TZ,
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' }, ...(tools ? { tools } : {}) },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: false,
    },
  };
}

/** What the operator's registry reconciler does for this spec, then the agent's next refresh. */
async function applySpec(t: TestTenant, tools: AgentToolPolicy | undefined, generation: number) {
  const facts: Partial<TenantStatus> = {
    database: { name: h.platform.db.name, schema: t.ref.schema, schemaVersion: 5 },
    encryption: { activeKeyVersion: 1, rotatedAt: new Date().toISOString() },
    topics: Object.values(tenantTopics(t.name)),
  };
  const result = await registryReconciler.reconcile(tenantResource(t, tools, generation), {
    pg: h.platform.admin,
    producer,
    writes: { inc: () => undefined },
    facts,
  });
  expect(result).toMatchObject({ kind: 'ready', reason: 'Registered' });
  // The runtime re-reads the registry every SIMPTU_AGENT_REGISTRY_REFRESH_MS; refresh now.
  await h.runtime.refresh();
}

async function agentJson(t: TestTenant): Promise<Record<string, unknown>> {
  const { rows } = await h.platform.admin.query<{ agent: Record<string, unknown> }>(
    'SELECT agent FROM platform.tenants WHERE name = $1',
    [t.name],
  );
  return rows[0]!.agent;
}

async function bookings(t: TestTenant, customerId: string): Promise<number> {
  const { rows } = await t.adminQuery(`SELECT 1 FROM ${t.table('bookings')} WHERE customer_id = $1`, [
    customerId,
  ]);
  return rows.length;
}

function toolEvents(type: 'tool_call' | 'tool_result', runId: string) {
  return h.watcher
    .ofType(`io.simptu.agent.${type}`, (e) => (e.data as { run_id?: string }).run_id === runId)
    .map((e) => e.data as { name: string; ok?: boolean });
}

beforeAll(async () => {
  h = await startAgentHarness(
    ['Open', 'Guarded', 'Mailable'].map((n) => ({
      businessType: 'dental' as const,
      timezone: TZ,
      displayName: `${n} Dental`,
    })),
  );
  [open, guarded, mailable] = h.tenants as [TestTenant, TestTenant, TestTenant];
  await ensurePlatformTopic(h.platform.kafkaAdmin, { replicationFactor: 1 });
  producer = createRegistryProducer(h.kafka);
  await producer.connect();
  for (const t of h.tenants)
    await seedCatalog(t, {
      kind: 'treatment',
      services: [{ name: 'Cleaning', durationMinutes: 30, priceCents: 20000 }],
      resource: { kind: 'chair', name: 'Chair 1' },
    });
  await applySpec(open, undefined, 1);
  await applySpec(guarded, { deny: ['book_appointment'] }, 1);
  await applySpec(mailable, { untrustedAllow: ['book_appointment', 'identify_customer'] }, 1);
}, 240_000);

afterAll(async () => {
  await producer?.disconnect();
  await h?.close();
}, 120_000);

describe("spec.agent.tools through the operator's registry to the agent (Kafka, builtin model)", () => {
  it('the registry row carries the policy as the operator wrote it; none without one', async () => {
    expect(await agentJson(guarded)).toEqual({
      replicas: 1,
      model: { provider: 'builtin' },
      tools: { deny: ['book_appointment'] },
    });
    expect(await agentJson(open)).toEqual({ replicas: 1, model: { provider: 'builtin' } });
    expect(h.runtime.tenants.find((t) => t.name === guarded.name)?.tools).toEqual({
      deny: ['book_appointment'],
    });
  });

  it('by default a customer who asks to book gets a booking', async () => {
    const { sessionId, customerId } = await h.newConversation(open);
    const ask = await h.say(open, sessionId, BOOK);
    expect(await h.reply(open, ask)).toMatch(new RegExp(`booked for Cleaning on ${tomorrow()} at 10:00`));
    expect(toolEvents('tool_call', ask).map((c) => c.name)).toEqual(['book_appointment']);
    expect(await bookings(open, customerId)).toBe(1);
  });

  it('a tenant whose spec denies book_appointment books nothing: the assistant says so and offers staff', async () => {
    const { sessionId, customerId } = await h.newConversation(guarded);
    const ask = await h.say(guarded, sessionId, BOOK);
    expect(await h.reply(guarded, ask)).toBe(CANNOT);
    expect(toolEvents('tool_call', ask)).toEqual([]);
    expect(await bookings(guarded, customerId)).toBe(0);

    // only booking is denied: the rest of the tool set still works
    const prices = await h.say(guarded, sessionId, 'What are your prices?');
    expect(await h.reply(guarded, prices)).toMatch(/Cleaning: 200\.00 RON/);
    const human = await h.say(guarded, sessionId, 'Can I talk to a human?');
    expect(await h.reply(guarded, human)).toMatch(/member of staff to take over/);
    expect(toolEvents('tool_call', human).map((c) => c.name)).toEqual(['handoff_to_staff']);
  });

  it('an edit of the spec reaches the agent: booking allowed again, and taken away from the other', async () => {
    await applySpec(guarded, undefined, 2);
    expect(await agentJson(guarded)).not.toHaveProperty('tools');
    const g = await h.newConversation(guarded);
    const ask = await h.say(guarded, g.sessionId, BOOK);
    expect(await h.reply(guarded, ask)).toMatch(/booked for Cleaning/);
    expect(await bookings(guarded, g.customerId)).toBe(1);

    // an allow-list: only these tools, booking not among them
    await applySpec(open, { allow: ['search_faq', 'list_treatments', 'handoff_to_staff'] }, 2);
    const o = await h.newConversation(open);
    const again = await h.say(open, o.sessionId, BOOK);
    expect(await h.reply(open, again)).toBe(CANNOT);
    expect(await bookings(open, o.customerId)).toBe(0);
  });

  it('e-mail is untrusted: booking refused by default, allowed where the spec lists it in untrustedAllow', async () => {
    await applySpec(open, undefined, 3);
    const o = await h.newConversation(open, 'email');
    const refused = await h.say(open, o.sessionId, BOOK);
    expect(await h.reply(open, refused)).toMatch(/can't make that change over this channel/);
    expect(toolEvents('tool_result', refused)).toEqual([
      expect.objectContaining({ name: 'book_appointment', ok: false }),
    ]);
    expect(await bookings(open, o.customerId)).toBe(0);

    const m = await h.newConversation(mailable, 'email');
    const booked = await h.say(mailable, m.sessionId, BOOK);
    expect(await h.reply(mailable, booked)).toMatch(/booked for Cleaning/);
    expect(await bookings(mailable, m.customerId)).toBe(1);
  });
});
