/**
 * Gym tools beyond the class tools of booking.ts: membership plans, the customer's membership,
 * a membership request, and personal-training sessions with a trainer. The same domain code as
 * the API (`@simptu/common` memberships.ts, availability.ts, bookings.ts): a trainer session is
 * a booking of a `personal_training` service on a trainer resource, found and booked exactly
 * like a class, just with the trainer chosen (by name, or the first free one).
 *
 * Memberships asked for here are `pending` until staff confirm them (payment happens at the
 * desk; `POST /v1/memberships/:id/activate`), so a chat can never hand out a paid membership.
 * Everything is scoped to the conversation's customer.
 */
import {
  addDays,
  cancelBooking,
  createBooking,
  createMembership,
  findAvailableSlots,
  getResource,
  getService,
  listMembershipPlans,
  listMemberships,
  listResources,
  loadBusy,
  listServiceResources,
  listServices,
  localDateMinutesToUtc,
  localDateOf,
  membershipUsage,
  parseLocalDate,
  rescheduleBooking,
  type DomainContext,
  type Membership,
  type MembershipPlan,
  type Resource,
  type Service,
} from '@simptu/common';
import {
  describe,
  domainFailure,
  localParts,
  matchService,
  money,
  needCustomer,
  nextBooking,
  startOf,
} from './booking.ts';
import { str, toolError, type AgentTool, type ToolContext } from './types.ts';

const PT = 'personal_training' as const;

function periodText(p: Pick<MembershipPlan, 'period' | 'durationDays'>): string {
  return p.period === 'days' ? `${p.durationDays} days` : p.period;
}

function localDate(d: Date | null, tz: string): string | null {
  return d ? localParts(d, tz).date : null;
}

// ---------------------------------------------------------------------------------------------
// Memberships

export const listMembershipPlansTool: AgentTool = {
  name: 'list_membership_plans',
  description:
    'List the membership plans on sale: price, period (month, year, or a pass of N days) and classes included per period.',
  schema: { type: 'object', properties: {}, additionalProperties: false },
  sideEffect: false,
  run: (_args, t) =>
    t.db(async (ctx) => ({
      plans: (await listMembershipPlans(ctx, { activeOnly: true })).map((p) => ({
        name: p.name,
        price: money(p.priceCents, p.currency),
        period: periodText(p),
        classes: p.classAllowance ?? 'unlimited',
        ...(p.description ? { description: p.description } : {}),
      })),
    })),
};

async function describeMembership(ctx: DomainContext, m: Membership, t: ToolContext) {
  const tz = t.tenant.timeZone;
  const base = {
    reference: m.id.slice(0, 8),
    plan: m.planName,
    status: m.status,
    starts: localDate(m.startsAt, tz),
    ends: localDate(m.endsAt, tz),
    price: money(m.priceCents, m.currency),
    period: m.period,
  };
  if (m.status !== 'active') return base;
  const u = await membershipUsage(ctx, m, t.now());
  return {
    ...base,
    classes_used: u.used,
    classes_allowance: u.allowance ?? 'unlimited',
    classes_left: u.remaining ?? 'unlimited',
    period_ends: localDate(u.window.end, tz),
  };
}

export const myMembershipTool: AgentTool = {
  name: 'my_membership',
  description:
    "The customer's memberships that have not ended (pending, active or frozen), with classes used and left this period.",
  schema: { type: 'object', properties: {}, additionalProperties: false },
  sideEffect: false,
  run: (_args, t) =>
    t.db(async (ctx) => {
      const missing = needCustomer(t);
      if (missing) return missing;
      const page = await listMemberships(
        ctx,
        { notEndedAt: t.now(), limit: 10 },
        { customerId: t.session.customerId! },
      );
      const live = page.items.filter((m) => m.status !== 'cancelled');
      const out = [];
      for (const m of live.sort((a, b) => a.startsAt.getTime() - b.startsAt.getTime()))
        out.push(await describeMembership(ctx, m, t));
      return { memberships: out };
    }),
};

export const requestMembershipTool: AgentTool = {
  name: 'request_membership',
  description:
    'Ask for a membership of a plan for the customer. It is recorded as PENDING: staff confirm it once paid at the desk.',
  schema: {
    type: 'object',
    properties: {
      plan: { type: 'string', description: 'name of the plan (or words naming it)' },
      start_date: { type: 'string', description: 'local date YYYY-MM-DD; default today' },
    },
  },
  sideEffect: true,
  run: (args, t) =>
    t.db(async (ctx) => {
      const missing = needCustomer(t);
      if (missing) return missing;
      const plans = await listMembershipPlans(ctx, { activeOnly: true });
      const plan = matchService(plans, str(args.plan));
      if (!plan)
        return toolError('PLAN_UNCLEAR', 'which plan?', {
          options: plans.map((p) => `${p.name} (${money(p.priceCents, p.currency)} / ${periodText(p)})`),
        });
      const day = str(args.start_date);
      if (day !== undefined && !parseLocalDate(day))
        return toolError('DATE_MISSING', 'start_date must be a date YYYY-MM-DD');
      const tz = t.tenant.timeZone;
      const startsAt =
        day === undefined || day <= localDateOf(t.now(), tz) ? t.now() : localDateMinutesToUtc(day, 0, tz);
      try {
        const { membership, created } = await createMembership(
          ctx,
          {
            customerId: t.session.customerId!,
            planId: plan.id,
            status: 'pending',
            startsAt,
            source: t.session.channel,
            idempotencyKey: t.idempotencyKey,
          },
          { sub: 'agent' },
        );
        return { requested: await describeMembership(ctx, membership, t), replayed: !created };
      } catch (err) {
        const f = domainFailure(err);
        if (f.error === 'SIMPTU_ERR_MEMBERSHIP_OVERLAP') {
          const d = (f.details ?? {}) as { status?: string; endsAt?: string | null };
          f.existing = { status: d.status ?? null, ends: d.endsAt ? d.endsAt.slice(0, 10) : null };
        }
        return f;
      }
    }),
};

// ---------------------------------------------------------------------------------------------
// Trainer sessions

interface Pick2 {
  service: Service;
  /** the service's active trainers, by name */
  trainers: Resource[];
  trainer: Resource | undefined;
  /** other kinds of resource (a studio) deliver the service too: pick among trainers ourselves */
  mixed: boolean;
}

/**
 * The personal-training service and, when named, the trainer: one of the service's active
 * resources of kind `trainer`. A named trainer who isn't one → TRAINER_UNKNOWN with the options.
 */
async function resolveSession(
  ctx: DomainContext,
  serviceHint: string | undefined,
  trainerHint: string | undefined,
): Promise<Pick2 | Record<string, unknown>> {
  const services = await listServices(ctx, { kind: PT, activeOnly: true });
  if (services.length === 0) return toolError('NO_TRAINER_SESSIONS', 'no personal training is offered');
  const service = matchService(services, serviceHint);
  if (!service) return toolError('SERVICE_UNCLEAR', 'which one?', { options: services.map((s) => s.name) });
  const capable = (await listServiceResources(ctx, service.id)).filter((r) => r.active);
  const trainers = capable.filter((r) => r.kind === 'trainer');
  if (trainers.length === 0) return toolError('NO_TRAINER_SESSIONS', `no trainer gives ${service.name}`);
  const mixed = trainers.length < capable.length;
  if (trainerHint === undefined) return { service, trainers, trainer: undefined, mixed };
  const trainer = matchService(trainers, trainerHint, false);
  if (!trainer)
    return toolError('TRAINER_UNKNOWN', `no trainer called ${trainerHint} gives ${service.name}`, {
      options: trainers.map((r) => r.name),
    });
  return { service, trainers, trainer, mixed };
}

function isPick(x: Pick2 | Record<string, unknown>): x is Pick2 {
  return Array.isArray(x.trainers);
}

/** Free start times on a local date: with the trainer, or with any of the service's trainers. */
async function freeTimes(
  ctx: DomainContext,
  t: ToolContext,
  pick: Pick2,
  date: string,
): Promise<{ times: string[]; more: boolean }> {
  const tz = t.tenant.timeZone;
  const query = (resourceId?: string) =>
    findAvailableSlots(ctx, {
      serviceId: pick.service.id,
      from: localDateMinutesToUtc(date, 0, tz),
      to: localDateMinutesToUtc(addDays(date, 1), 0, tz),
      stepMinutes: Math.min(60, Math.max(15, pick.service.durationMinutes)),
      ...(resourceId ? { resourceId } : {}),
    });
  let starts: Date[];
  if (pick.trainer) starts = (await query(pick.trainer.id)).map((s) => s.start);
  else if (!pick.mixed) starts = (await query()).map((s) => s.start);
  else {
    const all = new Map<number, Date>();
    for (const r of pick.trainers) for (const s of await query(r.id)) all.set(s.start.getTime(), s.start);
    starts = [...all.values()].sort((a, b) => a.getTime() - b.getTime());
  }
  return { times: starts.slice(0, 12).map((d) => localParts(d, tz).time), more: starts.length > 12 };
}

/**
 * The trainer to book when none was named: undefined lets `createBooking` take the first free
 * capable resource (all of them are trainers); when other resources deliver the service too,
 * the first trainer free at that time.
 */
async function anyTrainer(ctx: DomainContext, pick: Pick2, start: Date): Promise<string | undefined> {
  if (!pick.mixed) return undefined;
  const end = new Date(start.getTime() + pick.service.durationMinutes * 60_000);
  const busy = await loadBusy(
    ctx.client,
    pick.trainers.map((r) => r.id),
    start,
    end,
  );
  return (pick.trainers.find((r) => !busy.some((b) => b.resourceId === r.id)) ?? pick.trainers[0])!.id;
}

const sessionArgs = {
  trainer: { type: 'string', description: "the trainer's name; omit for any free trainer" },
  service: { type: 'string', description: 'which personal-training session, if there are several' },
};

export const listTrainersTool: AgentTool = {
  name: 'list_trainers',
  description: 'Personal-training sessions offered (price, duration) and the trainers who give them.',
  schema: { type: 'object', properties: {}, additionalProperties: false },
  sideEffect: false,
  run: (_args, t) =>
    t.db(async (ctx) => {
      const out = [];
      for (const s of await listServices(ctx, { kind: PT, activeOnly: true }))
        out.push({
          name: s.name,
          price: money(s.priceCents, s.currency),
          duration_minutes: s.durationMinutes,
          trainers: (await listServiceResources(ctx, s.id))
            .filter((r) => r.active && r.kind === 'trainer')
            .map((r) => r.name),
        });
      if (out.length === 0) {
        // Trainers exist but no session is sold: say so rather than nothing.
        const trainers = await listResources(ctx, { kind: 'trainer', activeOnly: true });
        return { sessions: [], trainers: trainers.map((r) => r.name) };
      }
      return { sessions: out };
    }),
};

export const trainerAvailabilityTool: AgentTool = {
  name: 'trainer_availability',
  description:
    'Free start times for a personal-training session on a local date, with a named trainer or any.',
  schema: {
    type: 'object',
    properties: { ...sessionArgs, date: { type: 'string', description: 'local date YYYY-MM-DD' } },
    required: ['date'],
  },
  sideEffect: false,
  run: (args, t) =>
    t.db(async (ctx) => {
      const pick = await resolveSession(ctx, str(args.service), str(args.trainer));
      if (!isPick(pick)) return pick;
      const date = str(args.date);
      if (!date || !parseLocalDate(date)) return toolError('DATE_MISSING', 'a date YYYY-MM-DD is needed');
      try {
        const free = await freeTimes(ctx, t, pick, date);
        return {
          service: pick.service.name,
          ...(pick.trainer ? { trainer: pick.trainer.name } : {}),
          date,
          slots: free.times,
          more: free.more,
        };
      } catch (err) {
        return domainFailure(err);
      }
    }),
};

async function trainerName(ctx: DomainContext, resourceId: string): Promise<string> {
  return (await getResource(ctx, resourceId)).name;
}

export const bookTrainerSessionTool: AgentTool = {
  name: 'book_trainer_session',
  description:
    'Book a one-to-one personal-training session for the customer with a trainer (by name, or the first free one) at a local date and time. Not for group classes (book_class).',
  schema: {
    type: 'object',
    properties: {
      ...sessionArgs,
      date: { type: 'string', description: 'local date YYYY-MM-DD' },
      time: { type: 'string', description: 'local time HH:MM' },
    },
    required: ['date', 'time'],
  },
  sideEffect: true,
  run: (args, t) =>
    t.db(async (ctx) => {
      const missing = needCustomer(t);
      if (missing) return missing;
      const pick = await resolveSession(ctx, str(args.service), str(args.trainer));
      if (!isPick(pick)) return pick;
      const tz = t.tenant.timeZone;
      if (str(args.time) === undefined) return toolError('TIME_MISSING', 'a time HH:MM is needed');
      const start = startOf(str(args.date), str(args.time), tz);
      if (!(start instanceof Date)) return start;
      const resourceId = pick.trainer?.id ?? (await anyTrainer(ctx, pick, start));
      try {
        const r = await createBooking(ctx, {
          customerId: t.session.customerId!,
          serviceId: pick.service.id,
          start,
          ...(resourceId ? { resourceId } : {}),
          idempotencyKey: t.idempotencyKey,
          source: t.session.channel,
        });
        return {
          booked: {
            ...describe(r.booking, pick.service, tz),
            trainer: await trainerName(ctx, r.booking.resourceId),
          },
          replayed: !r.created,
        };
      } catch (err) {
        const f = domainFailure(err);
        if (f.error === 'SIMPTU_ERR_BOOKING_CONFLICT' || f.error === 'SIMPTU_ERR_VALIDATION') {
          const free = await freeTimes(ctx, t, pick, localDateOf(start, tz)).catch(() => ({
            times: [] as string[],
          }));
          f.alternatives = free.times.slice(0, 6);
          if (pick.trainer) f.trainer = pick.trainer.name;
        }
        return f;
      }
    }),
};

export const rescheduleTrainerSessionTool: AgentTool = {
  name: 'reschedule_trainer_session',
  description:
    "Move the customer's personal-training session (their next one unless booking_id is given) to a new local date and time, with the same trainer if free.",
  schema: {
    type: 'object',
    properties: {
      booking_id: { type: 'string', description: 'booking id or its 8-character reference' },
      date: { type: 'string', description: 'new local date YYYY-MM-DD' },
      time: { type: 'string', description: 'new local time HH:MM' },
    },
    required: ['date', 'time'],
  },
  sideEffect: true,
  run: (args, t) =>
    t.db(async (ctx) => {
      const missing = needCustomer(t);
      if (missing) return missing;
      const found = await nextBooking(ctx, t.session.customerId!, PT, str(args.booking_id), t.now());
      if (!found) return toolError('NO_BOOKING', 'the customer has no upcoming trainer session');
      const tz = t.tenant.timeZone;
      const start = startOf(str(args.date), str(args.time), tz);
      if (!(start instanceof Date)) return start;
      try {
        const b = await rescheduleBooking(
          ctx,
          found.booking.id,
          { start },
          { customerId: t.session.customerId! },
        );
        return {
          rescheduled: { ...describe(b, found.service, tz), trainer: await trainerName(ctx, b.resourceId) },
          previous: describe(found.booking, found.service, tz),
        };
      } catch (err) {
        return domainFailure(err);
      }
    }),
};

export const cancelTrainerSessionTool: AgentTool = {
  name: 'cancel_trainer_session',
  description:
    "Cancel the customer's personal-training session (their next one unless booking_id is given). Only ONE, only the customer's own.",
  schema: {
    type: 'object',
    properties: { booking_id: { type: 'string', description: 'booking id or its 8-character reference' } },
  },
  sideEffect: true,
  run: (args, t) =>
    t.db(async (ctx) => {
      const missing = needCustomer(t);
      if (missing) return missing;
      const found = await nextBooking(ctx, t.session.customerId!, PT, str(args.booking_id), t.now());
      if (!found) return toolError('NO_BOOKING', 'the customer has no upcoming trainer session');
      try {
        const b = await cancelBooking(ctx, found.booking.id, { customerId: t.session.customerId! });
        const service = await getService(ctx, b.serviceId);
        return {
          cancelled: {
            ...describe(b, service, t.tenant.timeZone),
            trainer: await trainerName(ctx, b.resourceId),
          },
        };
      } catch (err) {
        return domainFailure(err);
      }
    }),
};

/** The gym's own tools, after the class tools (booking.ts) and before the shared ones. */
export const GYM_TOOLS: readonly AgentTool[] = [
  listMembershipPlansTool,
  myMembershipTool,
  requestMembershipTool,
  listTrainersTool,
  trainerAvailabilityTool,
  bookTrainerSessionTool,
  rescheduleTrainerSessionTool,
  cancelTrainerSessionTool,
];
