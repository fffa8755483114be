/**
 * The gym graph through Kafka with the builtin model, English and Romanian: membership
 * questions answered from the tenant's real plans (tool call → answer), a membership request
 * recorded as pending (row + domain event), the class rule (no class without an active
 * membership, then booked once staff activate it), a trainer session booked on the named
 * trainer (booking row on that trainer resource → domain event) and cancelled; a full class
 * refused with the other times that have places, the schedule showing places left, a Romanian
 * conversation staying Romanian for a bare "09:00"; the per-tenant allow-list still removes
 * tools; nothing reaches the other gym tenant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activateMembership,
  addDays,
  createCustomer,
  createMembership,
  createMembershipPlan,
  createResource,
  createService,
  formatZoned,
  listMembershipPlans,
  listServiceResources,
  listServices,
  localDateMinutesToUtc,
  localDateOf,
  setOpeningHours,
  setServiceResources,
  type CloudEvent,
} from '@simptu/common';
import { startAgentHarness, waitFor, type AgentHarness, type TestTenant } from './support.ts';

const TZ = 'Europe/Bucharest';
let h: AgentHarness;
let gym: TestTenant;
let other: TestTenant;
let locked: TestTenant;
const trainers: Record<string, string> = {};

function tomorrow(): string {
  return addDays(localDateOf(new Date(), TZ), 1);
}

/** A gym: Yoga (studio), personal training with Andrei and Maria, two membership plans. */
async function seedGym(t: TestTenant): Promise<Record<string, string>> {
  return t.run(async (ctx) => {
    const studio = await createResource(ctx, { kind: 'studio', name: 'Studio A' });
    const andrei = await createResource(ctx, { kind: 'trainer', name: 'Andrei Popescu' });
    const maria = await createResource(ctx, { kind: 'trainer', name: 'Maria Ionescu' });
    const yoga = await createService(ctx, {
      kind: 'class',
      name: 'Yoga',
      durationMinutes: 60,
      priceCents: 5000,
      currency: 'RON',
      capacity: 12,
    });
    await setServiceResources(ctx, yoga.id, [studio.id]);
    const pt = await createService(ctx, {
      kind: 'personal_training',
      name: 'Personal training',
      durationMinutes: 60,
      priceCents: 15000,
      currency: 'RON',
    });
    await setServiceResources(ctx, pt.id, [andrei.id, maria.id]);
    await setOpeningHours(
      ctx,
      [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, opens: '08:00', closes: '20:00' })),
    );
    await createMembershipPlan(ctx, {
      name: 'Monthly Unlimited',
      priceCents: 20000,
      currency: 'RON',
      period: 'month',
    });
    await createMembershipPlan(ctx, {
      name: '10-class pass',
      priceCents: 30000,
      currency: 'RON',
      period: 'days',
      durationDays: 30,
      classAllowance: 10,
    });
    return { andrei: andrei.id, maria: maria.id, yoga: yoga.id, pt: pt.id };
  });
}

beforeAll(async () => {
  h = await startAgentHarness([
    { businessType: 'gym', timezone: TZ, displayName: 'Iron Gym', locale: 'en-GB' },
    { businessType: 'gym', timezone: TZ, displayName: 'Other Gym' },
    {
      businessType: 'gym',
      timezone: TZ,
      displayName: 'Locked Gym',
      agent: {
        replicas: 1,
        model: { provider: 'builtin' },
        tools: { deny: ['book_trainer_session', 'request_membership'] },
      },
    },
  ]);
  [gym, other, locked] = h.tenants as [TestTenant, TestTenant, TestTenant];
  Object.assign(trainers, await seedGym(gym));
  await seedGym(other);
  await seedGym(locked);
}, 240_000);

afterAll(async () => {
  await h?.close();
}, 120_000);

async function bookingsOf(t: TestTenant, customerId: string) {
  const { rows } = await t.adminQuery<{
    id: string;
    status: string;
    start: Date;
    resource_id: string;
    service_id: string;
    idempotency_key: string;
  }>(
    `SELECT id, status, lower(during) AS start, resource_id, service_id, idempotency_key
       FROM ${t.table('bookings')} WHERE customer_id = $1 ORDER BY created_at`,
    [customerId],
  );
  return rows;
}

async function membershipsOf(t: TestTenant, customerId: string) {
  const { rows } = await t.adminQuery<{
    id: string;
    status: string;
    created_by: string;
    source: string;
    idempotency_key: string;
  }>(
    `SELECT id, status, created_by, source, idempotency_key FROM ${t.table('memberships')}
      WHERE customer_id = $1 ORDER BY created_at`,
    [customerId],
  );
  return rows;
}

function toolCalls(runId: string): string[] {
  return h.watcher
    .ofType('io.simptu.agent.tool_call', (e) => (e.data as { run_id: string }).run_id === runId)
    .map((e) => (e.data as { name: string }).name);
}

function domainEvent(t: TestTenant, type: string, pred: (d: Record<string, unknown>) => boolean) {
  return waitFor(
    `${type} on ${t.name}`,
    () =>
      h.watcher.ofType(
        type,
        (e: CloudEvent) => e.tenant === t.name && pred(e.data as Record<string, unknown>),
      )[0],
  );
}

describe('gym, English', () => {
  it('answers membership questions from the real plans and records a pending request', async () => {
    const { sessionId, customerId } = await h.newConversation(gym);
    const q = await h.say(gym, sessionId, 'What memberships do you have?');
    const plans = await h.reply(gym, q);
    expect(toolCalls(q)).toEqual(['list_membership_plans']);
    expect(plans).toMatch(/Monthly Unlimited: 200\.00 RON \/ month, unlimited classes/);
    expect(plans).toMatch(/10-class pass: 300\.00 RON \/ 30 days, 10 classes/);

    const none = await h.say(gym, sessionId, 'Do I have a membership?');
    expect(await h.reply(gym, none)).toMatch(/no membership at the moment/);
    expect(toolCalls(none)).toEqual(['my_membership']);

    // No membership yet: the tenant sells them, so a class needs one.
    const early = await h.say(gym, sessionId, 'Book yoga tomorrow at 18:00');
    expect(await h.reply(gym, early)).toMatch(/Booking a class needs an active membership/);
    expect(await bookingsOf(gym, customerId)).toHaveLength(0);

    const join = await h.say(gym, sessionId, 'I want the monthly membership');
    const joined = await h.reply(gym, join);
    expect(toolCalls(join)).toEqual(['request_membership']);
    expect(joined).toMatch(/request for the Monthly Unlimited membership \(200\.00 RON\).*pending/);
    const rows = await membershipsOf(gym, customerId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'pending', created_by: 'agent', source: 'web' });
    expect(rows[0]!.idempotency_key).toMatch(/^agent:/);
    await domainEvent(
      gym,
      'io.simptu.membership.created',
      (d) => d.membershipId === rows[0]!.id && d.status === 'pending',
    );

    const mine = await h.say(gym, sessionId, 'Show my membership please');
    expect(await h.reply(gym, mine)).toMatch(/Monthly Unlimited membership: pending/);

    // Still pending: no class yet; staff confirm at the desk, then the class books.
    const pending = await h.say(gym, sessionId, 'Book yoga tomorrow at 18:00');
    expect(await h.reply(gym, pending)).toMatch(/Yours is still pending/);
    await gym.run((ctx) => activateMembership(ctx, rows[0]!.id, { sub: 'desk-1' }));
    const yoga = await h.say(gym, sessionId, 'Book yoga tomorrow at 18:00');
    expect(await h.reply(gym, yoga)).toMatch(new RegExp(`booked for Yoga on ${tomorrow()} at 18:00`));
    const active = await h.say(gym, sessionId, 'Show my membership');
    expect(await h.reply(gym, active)).toMatch(/active.*Unlimited classes; 1 used this period/);
  }, 180_000);

  it('books a personal training session with the named trainer, then cancels it', async () => {
    const { sessionId, customerId } = await h.newConversation(gym);
    const prices = await h.say(gym, sessionId, 'How much is personal training?');
    expect(await h.reply(gym, prices)).toMatch(
      /Personal training: 150\.00 RON \(60 min\), with Andrei Popescu, Maria Ionescu/,
    );

    const ask = await h.say(gym, sessionId, 'I want a personal training session with Andrei tomorrow at 10');
    const answer = await h.reply(gym, ask);
    expect(toolCalls(ask)).toEqual(['book_trainer_session']);
    expect(answer).toMatch(
      new RegExp(`Personal training with Andrei Popescu is booked for ${tomorrow()} at 10:00`),
    );
    const rows = await bookingsOf(gym, customerId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      status: 'booked',
      resource_id: trainers.andrei,
      service_id: trainers.pt,
    });
    expect(formatZoned(rows[0]!.start, TZ).slice(0, 16)).toBe(`${tomorrow()}T10:00`);
    await domainEvent(
      gym,
      'io.simptu.booking.created',
      (d) => d.bookingId === rows[0]!.id && d.resourceId === trainers.andrei,
    );

    // Andrei is taken at 10 now: the same ask from someone else gets alternatives for him.
    const second = await h.newConversation(gym);
    const clash = await h.say(gym, second.sessionId, 'Book a session with Andrei tomorrow at 10:00');
    expect(await h.reply(gym, clash)).toMatch(
      /no longer available with Andrei Popescu\. Free times that day: .*11:00/,
    );
    // An unknown trainer: the options, then the answer fills the slot.
    const who = await h.say(gym, second.sessionId, 'A training session with Bogdan tomorrow at 12:00');
    expect(await h.reply(gym, who)).toMatch(/Our trainers: Andrei Popescu, Maria Ionescu/);
    const maria = await h.say(gym, second.sessionId, 'Maria');
    expect(await h.reply(gym, maria)).toMatch(/with Maria Ionescu is booked for .* at 12:00/);
    expect((await bookingsOf(gym, second.customerId))[0]!.resource_id).toBe(trainers.maria);

    const cancel = await h.say(gym, sessionId, 'Please cancel my training session');
    expect(await h.reply(gym, cancel)).toMatch(
      new RegExp(`session with Andrei Popescu on ${tomorrow()} at 10:00 is cancelled`),
    );
    expect(toolCalls(cancel)).toEqual(['cancel_trainer_session']);
    expect((await bookingsOf(gym, customerId))[0]!.status).toBe('cancelled');
    await domainEvent(gym, 'io.simptu.booking.cancelled', (d) => d.bookingId === rows[0]!.id);
    // nothing reached the other gym
    const { rows: leaked } = await other.adminQuery(`SELECT id FROM ${other.table('bookings')}`);
    expect(leaked).toEqual([]);
  }, 180_000);
});

describe('gym, Romanian', () => {
  it('prețul abonamentului, o sesiune cu antrenorul, anulare', async () => {
    const { sessionId, customerId } = await h.newConversation(gym);
    const q = await h.say(gym, sessionId, 'Cât costă abonamentul?');
    const plans = await h.reply(gym, q);
    expect(toolCalls(q)).toEqual(['list_membership_plans']);
    expect(plans).toMatch(/^Abonamentele noastre:/);
    expect(plans).toMatch(/Monthly Unlimited: 200\.00 RON \/ lună, clase nelimitate/);
    expect(plans).toMatch(/10-class pass: 300\.00 RON \/ 30 zile, 10 clase/);

    const ask = await h.say(gym, sessionId, 'Vreau o sesiune cu antrenorul mâine la 10');
    const answer = await h.reply(gym, ask);
    expect(toolCalls(ask)).toEqual(['book_trainer_session']);
    const rows = await bookingsOf(gym, customerId);
    expect(rows).toHaveLength(1);
    // no trainer named: the first free one (Andrei's 10:00 was freed by the English test)
    expect([trainers.andrei, trainers.maria]).toContain(rows[0]!.resource_id);
    const name = rows[0]!.resource_id === trainers.andrei ? 'Andrei Popescu' : 'Maria Ionescu';
    expect(answer).toBe(
      `Gata! V-am programat la Personal training cu ${name} pe ${tomorrow()} la 10:00. Referință: ${rows[0]!.id.slice(0, 8)}.`,
    );
    await domainEvent(
      gym,
      'io.simptu.booking.created',
      (d) => d.bookingId === rows[0]!.id && d.resourceId === rows[0]!.resource_id,
    );

    const join = await h.say(gym, sessionId, 'Vreau un abonament');
    expect(await h.reply(gym, join)).toMatch(/^Ce abonament doriți\? .*Monthly Unlimited/);
    const pass = await h.say(gym, sessionId, 'Aș vrea 10-class pass');
    expect(await h.reply(gym, pass)).toMatch(/Am înregistrat cererea pentru abonamentul 10-class pass/);
    expect(await membershipsOf(gym, customerId)).toEqual([expect.objectContaining({ status: 'pending' })]);
    const mine = await h.say(gym, sessionId, 'Ce abonament am?');
    expect(await h.reply(gym, mine)).toMatch(/Abonament 10-class pass: în așteptare/);

    const cancel = await h.say(gym, sessionId, 'Anulează sesiunea cu antrenorul, te rog');
    expect(await h.reply(gym, cancel)).toMatch(new RegExp(`Am anulat sesiunea cu ${name} din ${tomorrow()}`));
    expect((await bookingsOf(gym, customerId))[0]!.status).toBe('cancelled');
    await domainEvent(gym, 'io.simptu.booking.cancelled', (d) => d.bookingId === rows[0]!.id);
  }, 180_000);
});

describe('a full class (capacity per occurrence)', () => {
  it('is refused as full with the times that still have places; the schedule shows places left', async () => {
    const day = tomorrow();
    const nine = localDateMinutesToUtc(day, 9 * 60, TZ);
    const { sessionId, customerId } = await h.newConversation(gym);
    const spin = await gym.run(async (ctx) => {
      const studio = await createResource(ctx, { kind: 'studio', name: 'Studio B' });
      const spin = await createService(ctx, {
        kind: 'class',
        name: 'Spin',
        durationMinutes: 45,
        priceCents: 4000,
        currency: 'RON',
        capacity: 2,
      });
      await setServiceResources(ctx, spin.id, [studio.id]);
      const plan = (await listMembershipPlans(ctx)).find((p) => p.name === 'Monthly Unlimited')!;
      await createMembership(ctx, { customerId, planId: plan.id }, { sub: 'desk-1' });
      return { id: spin.id, studio: studio.id };
    });
    // two members fill tomorrow's 09:00 Spin (written at the desk, bypassing memberships)
    for (const name of ['Member A', 'Member B']) {
      const other = await gym.run((ctx) => createCustomer(ctx, { displayName: name }));
      await gym.adminQuery(
        `INSERT INTO ${gym.table('bookings')} (customer_id, service_id, resource_id, during, source)
         VALUES ($1, $2, $3, tstzrange($4, $5), 'staff')`,
        [other.id, spin.id, spin.studio, nine, new Date(nine.getTime() + 45 * 60_000)],
      );
    }

    const ask = await h.say(gym, sessionId, 'Book spin tomorrow at 9:00');
    expect(await h.reply(gym, ask)).toBe(
      'That class is full (all 2 places are taken). There are places that day at: 08:00 (2 places left), 10:15 (2 places left), 11:00 (2 places left), 11:45 (2 places left), 12:30 (2 places left), 13:15 (2 places left). Would you like one of those?',
    );
    expect(toolCalls(ask)).toEqual(['book_class']);
    expect(await bookingsOf(gym, customerId)).toEqual([]);

    const eight = await h.say(gym, sessionId, 'Book spin tomorrow at 08:00');
    expect(await h.reply(gym, eight)).toMatch(new RegExp(`booked for Spin on ${day} at 08:00`));
    const schedule = await h.say(gym, sessionId, 'Any free slots for spin tomorrow?');
    const free = await h.reply(gym, schedule);
    expect(toolCalls(schedule)).toEqual(['class_schedule']);
    expect(free).toMatch(/^Free times for Spin on .*: 08:00 \(1 place left\), 10:15 \(2 places left\)/);
    expect(free).not.toMatch(/09:00/);

    // Romanian from here on: a bare "09:00" keeps the conversation Romanian
    const ro = await h.say(gym, sessionId, 'Vreau să mă programez la spin mâine');
    expect(await h.reply(gym, ro)).toBe('La ce oră? (de exemplu 10:00)');
    const time = await h.say(gym, sessionId, '09:00');
    expect(await h.reply(gym, time)).toMatch(
      /^Clasa este plină \(toate cele 2 locuri sunt ocupate\)\. Mai sunt locuri în aceeași zi la: 08:00 \(un loc liber\), 10:15 \(2 locuri libere\)/,
    );
    const again = await h.say(gym, sessionId, '08:00');
    expect(await h.reply(gym, again)).toMatch(
      /^Aveți deja un loc la această clasă \(referință: [0-9a-f]{8}\)\.$/,
    );
    expect((await bookingsOf(gym, customerId)).map((b) => b.status)).toEqual(['booked']);
  }, 180_000);
});

describe('a trainer session is booked on a trainer', () => {
  it('never on another resource that can deliver the service too (a studio sorting first)', async () => {
    const studio = await other.run(async (ctx) => {
      const s = await createResource(ctx, { kind: 'studio', name: 'A studio' });
      const [pt] = await listServices(ctx, { kind: 'personal_training' });
      const current = await listServiceResources(ctx, pt!.id);
      await setServiceResources(ctx, pt!.id, [...current.map((r) => r.id), s.id]);
      return s.id;
    });
    const { sessionId, customerId } = await h.newConversation(other);
    const ask = await h.say(other, sessionId, 'I want a personal training session tomorrow at 10');
    expect(await h.reply(other, ask)).toMatch(/Personal training with Andrei Popescu is booked/);
    const rows = await bookingsOf(other, customerId);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.resource_id).not.toBe(studio);
  }, 120_000);
});

describe('tool allow-lists still apply', () => {
  it('a tenant denying book_trainer_session and request_membership gets neither', async () => {
    const { sessionId, customerId } = await h.newConversation(locked);
    const ask = await h.say(
      locked,
      sessionId,
      'I want a personal training session with Andrei tomorrow at 10',
    );
    await h.reply(locked, ask);
    expect(toolCalls(ask)).not.toContain('book_trainer_session');
    const join = await h.say(locked, sessionId, 'I want the monthly membership');
    await h.reply(locked, join);
    expect(toolCalls(join)).not.toContain('request_membership');
    expect(await bookingsOf(locked, customerId)).toEqual([]);
    expect(await membershipsOf(locked, customerId)).toEqual([]);
    // what is allowed still works
    const plans = await h.say(locked, sessionId, 'What memberships do you have?');
    expect(await h.reply(locked, plans)).toMatch(/Monthly Unlimited/);
  }, 120_000);
});
