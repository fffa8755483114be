/**
 * Membership plans and customers' memberships (DESIGN §7, gym; domain: `memberships.ts` in
 * `@simptu/common`, the same code the agent's gym tools call).
 *
 *   GET    /v1/membership-plans[?active]       any role (customers: active plans only)
 *   GET    /v1/membership-plans/:id            any role (customers: active plans only, else 404)
 *   POST   /v1/membership-plans                admin, owner
 *   PATCH  /v1/membership-plans/:id            admin, owner (memberships sold keep their terms)
 *   DELETE /v1/membership-plans/:id            admin, owner (409 IN_USE once sold: deactivate)
 *   POST   /v1/memberships                     staff, admin, owner (Idempotency-Key honoured)
 *   GET    /v1/memberships                     any role (customers: their own), filters, cursor
 *   GET    /v1/memberships/:id                 any role (customers: their own, else 404)
 *   GET    /v1/memberships/:id/usage           any role (customers: their own): classes used
 *   POST   /v1/memberships/:id/activate        staff, admin, owner: confirm pending / unfreeze
 *   POST   /v1/memberships/:id/freeze          staff, admin, owner
 *   POST   /v1/memberships/:id/cancel          staff, admin, owner (again: no-op)
 *
 * Customers never see the staff `note` (null for them): it is staff's free text about them.
 * A customer asks for a membership through the assistant (it is recorded `pending`), never by
 * writing one here: a membership is a sale staff confirm.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  activateMembership,
  cancelMembership,
  CHANNELS,
  createMembership,
  createMembershipPlan,
  deleteMembershipPlan,
  formatZoned,
  freezeMembership,
  getMembership,
  getMembershipPlan,
  listMembershipPlans,
  listMemberships,
  MEMBERSHIP_MAX_CLASS_ALLOWANCE,
  MEMBERSHIP_MAX_DURATION_DAYS,
  MEMBERSHIP_NOTE_MAX,
  MEMBERSHIP_PERIODS,
  MEMBERSHIP_STATUSES,
  membershipUsage,
  NotFoundError,
  type Membership as DomainMembership,
  type MembershipPlan as DomainPlan,
  type Role,
  updateMembershipPlan,
} from '@simptu/common';
import { errorResponses, IdParams, Paginated, PageQueryWith, Uuid } from '../schemas.ts';
import {
  domainIdempotencyKey,
  IdempotencyHeaders,
  idempotencyOf,
  sendIdempotent,
  withIdempotency,
} from '../idempotency.ts';
import { customerScope, isStaff } from '../plugins/auth.ts';

const ALL_ROLES: Role[] = ['owner', 'admin', 'staff', 'customer'];
const STAFF: Role[] = ['owner', 'admin', 'staff'];
const MANAGERS: Role[] = ['admin', 'owner'];

function Nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

const DateTime = Type.String({ format: 'date-time' });
const Zoned = Type.String({ format: 'date-time', description: "in the tenant's zone, with offset" });
const Period = Type.Union(
  MEMBERSHIP_PERIODS.map((p) => Type.Literal(p)),
  {
    description: 'month / year: allowance per calendar month / year of the membership; days: a pass',
  },
);
const Status = Type.Union(MEMBERSHIP_STATUSES.map((s) => Type.Literal(s)));
const Allowance = Type.Integer({
  minimum: 0,
  maximum: MEMBERSHIP_MAX_CLASS_ALLOWANCE,
  description: 'classes per period; null = unlimited',
});
const DurationDays = Type.Integer({
  minimum: 1,
  maximum: MEMBERSHIP_MAX_DURATION_DAYS,
  description: 'only (and required) for period days',
});
const Note = Type.String({ maxLength: MEMBERSHIP_NOTE_MAX, description: 'staff note, stored encrypted' });

// ---------------------------------------------------------------------------------------------
// Schemas

export const MembershipPlan = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    description: Nullable(Type.String()),
    priceCents: Type.Integer(),
    currency: Type.String(),
    period: Period,
    durationDays: Nullable(Type.Integer()),
    classAllowance: Nullable(Type.Integer()),
    active: Type.Boolean(),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { title: 'MembershipPlan', additionalProperties: false },
);

const PlanFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  description: Type.Optional(Nullable(Type.String({ maxLength: 4000 }))),
  priceCents: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217' }),
  period: Period,
  durationDays: Type.Optional(Nullable(DurationDays)),
  classAllowance: Type.Optional(Nullable(Allowance)),
  active: Type.Optional(Type.Boolean()),
};
const PlanInput = Type.Object(PlanFields, { additionalProperties: false });
const PlanPatch = Type.Partial(Type.Object(PlanFields), { additionalProperties: false, minProperties: 1 });
const PlanFilter = Type.Object(
  { active: Type.Optional(Type.Boolean({ description: 'true: active plans only' })) },
  { additionalProperties: false },
);

export const Membership = Type.Object(
  {
    id: Uuid,
    customerId: Uuid,
    planId: Uuid,
    planName: Type.String(),
    status: Status,
    startsAt: Zoned,
    endsAt: Nullable(Type.String({ format: 'date-time', description: 'null: renews until cancelled' })),
    priceCents: Type.Integer({ description: 'the plan price when sold' }),
    currency: Type.String(),
    period: Period,
    classAllowance: Nullable(Type.Integer({ description: 'the plan allowance when sold' })),
    note: Nullable(Type.String({ description: 'staff only; null for customers' })),
    source: Type.Union(CHANNELS.map((c) => Type.Literal(c))),
    createdBy: Type.String(),
    updatedBy: Type.String(),
    activatedAt: Nullable(DateTime),
    frozenAt: Nullable(DateTime),
    cancelledAt: Nullable(DateTime),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { title: 'Membership', additionalProperties: false },
);

export const MembershipUsage = Type.Object(
  {
    membershipId: Uuid,
    periodStart: Zoned,
    periodEnd: Nullable(Zoned),
    used: Type.Integer({ minimum: 0, description: 'live class bookings starting in the period' }),
    allowance: Nullable(Type.Integer({ description: 'null = unlimited' })),
    remaining: Nullable(Type.Integer()),
  },
  { title: 'MembershipUsage', additionalProperties: false },
);

const CreateBody = Type.Object(
  {
    customerId: Uuid,
    planId: Uuid,
    startsAt: Type.Optional(Type.String({ format: 'date-time', description: 'default now' })),
    endsAt: Type.Optional(
      Nullable(
        Type.String({
          format: 'date-time',
          description: 'default: days plans end after durationDays; month/year plans renew (null)',
        }),
      ),
    ),
    status: Type.Optional(
      Type.Union([Type.Literal('active'), Type.Literal('pending')], {
        description: "default active; pending: a customer's request not yet paid",
      }),
    ),
    note: Type.Optional(Nullable(Note)),
  },
  { additionalProperties: false },
);

const ChangeBody = Type.Optional(
  Type.Object({ note: Type.Optional(Nullable(Note)) }, { additionalProperties: false }),
);

const ListQuery = PageQueryWith({
  customerId: Type.Optional(Uuid),
  planId: Type.Optional(Uuid),
  status: Type.Optional(Status),
  current: Type.Optional(
    Type.Boolean({ description: 'true: only memberships that have not ended (open-ended or ending later)' }),
  ),
});

export function toPlanDto(p: DomainPlan): Static<typeof MembershipPlan> {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    priceCents: p.priceCents,
    currency: p.currency,
    period: p.period,
    durationDays: p.durationDays,
    classAllowance: p.classAllowance,
    active: p.active,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
  };
}

export function toMembershipDto(
  m: DomainMembership,
  timeZone: string,
  staff: boolean,
): Static<typeof Membership> {
  return {
    id: m.id,
    customerId: m.customerId,
    planId: m.planId,
    planName: m.planName,
    status: m.status,
    startsAt: formatZoned(m.startsAt, timeZone),
    endsAt: m.endsAt ? formatZoned(m.endsAt, timeZone) : null,
    priceCents: m.priceCents,
    currency: m.currency,
    period: m.period,
    classAllowance: m.classAllowance,
    note: staff ? m.note : null,
    source: m.source,
    createdBy: m.createdBy,
    updatedBy: m.updatedBy,
    activatedAt: m.activatedAt?.toISOString() ?? null,
    frozenAt: m.frozenAt?.toISOString() ?? null,
    cancelledAt: m.cancelledAt?.toISOString() ?? null,
    createdAt: m.createdAt.toISOString(),
    updatedAt: m.updatedAt.toISOString(),
  };
}

export default async function membershipRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const anyRole = [app.authenticate, app.requireRole(...ALL_ROLES)];
  const staffOnly = [app.authenticate, app.requireRole(...STAFF)];
  const managers = [app.authenticate, app.requireRole(...MANAGERS)];
  const dto = (request: FastifyRequest, m: DomainMembership) =>
    toMembershipDto(m, request.tenant.timezone, isStaff(request));
  const actor = (request: FastifyRequest) => ({ sub: request.auth.sub });

  // --- plans --------------------------------------------------------------------------------

  app.get(
    '/membership-plans',
    {
      onRequest: anyRole,
      schema: {
        tags: ['memberships'],
        summary: 'List membership plans, cheapest first (customers: active plans only)',
        querystring: PlanFilter,
        response: {
          200: Type.Object({ items: Type.Array(MembershipPlan) }),
          ...errorResponses(400, 401, 403, 429, 500),
        },
      },
    },
    async (request) => {
      const activeOnly = !isStaff(request) || request.query.active === true;
      const plans = await request.withTenant((ctx) => listMembershipPlans(ctx, { activeOnly }));
      return { items: plans.map(toPlanDto) };
    },
  );

  app.get(
    '/membership-plans/:id',
    {
      onRequest: anyRole,
      schema: {
        tags: ['memberships'],
        summary: 'Get a membership plan',
        params: IdParams,
        response: { 200: MembershipPlan, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const plan = await request.withTenant((ctx) => getMembershipPlan(ctx, request.params.id));
      if (!plan.active && !isStaff(request))
        throw new NotFoundError('plan not found', { details: { planId: request.params.id } });
      return toPlanDto(plan);
    },
  );

  app.post(
    '/membership-plans',
    {
      onRequest: managers,
      schema: {
        tags: ['memberships'],
        summary: 'Create a membership plan',
        body: PlanInput,
        response: { 201: MembershipPlan, ...errorResponses(400, 401, 403, 409, 429, 500) },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const plan = await request.withTenant((ctx) =>
        createMembershipPlan(ctx, {
          name: b.name,
          priceCents: b.priceCents,
          currency: b.currency,
          period: b.period,
          ...(b.description !== undefined ? { description: b.description } : {}),
          ...(b.durationDays !== undefined ? { durationDays: b.durationDays } : {}),
          ...(b.classAllowance !== undefined ? { classAllowance: b.classAllowance } : {}),
          ...(b.active !== undefined ? { active: b.active } : {}),
        }),
      );
      reply.header('location', `/v1/membership-plans/${plan.id}`);
      return reply.code(201).send(toPlanDto(plan));
    },
  );

  app.patch(
    '/membership-plans/:id',
    {
      onRequest: managers,
      schema: {
        tags: ['memberships'],
        summary: 'Change a plan (memberships already sold keep their terms)',
        params: IdParams,
        body: PlanPatch,
        response: { 200: MembershipPlan, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request) =>
      toPlanDto(
        await request.withTenant((ctx) => updateMembershipPlan(ctx, request.params.id, request.body)),
      ),
  );

  app.delete(
    '/membership-plans/:id',
    {
      onRequest: managers,
      schema: {
        tags: ['memberships'],
        summary: 'Delete a plan never sold (else 409: deactivate it instead)',
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request, reply) => {
      await request.withTenant((ctx) => deleteMembershipPlan(ctx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  // --- memberships --------------------------------------------------------------------------

  app.post(
    '/memberships',
    {
      onRequest: staffOnly,
      schema: {
        tags: ['memberships'],
        summary: "Sell a membership to a customer (or record a customer's request as pending)",
        description:
          'One live (pending, active or frozen) membership per customer at any time: an overlap is ' +
          '409 SIMPTU_ERR_MEMBERSHIP_OVERLAP with the existing one in details.',
        headers: IdempotencyHeaders,
        body: CreateBody,
        response: {
          201: Membership,
          200: Membership,
          ...errorResponses(400, 401, 403, 404, 409, 429, 500),
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const idem = idempotencyOf(request);
      const result = await request.withTenant((ctx) =>
        withIdempotency(ctx, idem, async () => {
          const { membership, created } = await createMembership(
            ctx,
            {
              customerId: b.customerId,
              planId: b.planId,
              source: 'staff',
              ...(b.startsAt !== undefined ? { startsAt: new Date(b.startsAt) } : {}),
              ...(b.endsAt !== undefined ? { endsAt: b.endsAt === null ? null : new Date(b.endsAt) } : {}),
              ...(b.status !== undefined ? { status: b.status } : {}),
              ...(b.note !== undefined ? { note: b.note } : {}),
              ...(idem ? { idempotencyKey: domainIdempotencyKey(idem) } : {}),
            },
            actor(request),
          );
          return {
            statusCode: created ? 201 : 200,
            body: dto(request, membership),
            headers: { location: `/v1/memberships/${membership.id}` },
          };
        }),
      );
      return sendIdempotent(reply, result);
    },
  );

  app.get(
    '/memberships',
    {
      onRequest: anyRole,
      schema: {
        tags: ['memberships'],
        summary: 'List memberships, newest first (customers: their own)',
        querystring: ListQuery,
        response: { 200: Paginated(Membership), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const q = request.query;
      const scope = customerScope(request);
      const page = await request.withTenant((ctx) =>
        listMemberships(
          ctx,
          {
            limit: q.limit,
            ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
            ...(q.customerId !== undefined ? { customerId: q.customerId } : {}),
            ...(q.planId !== undefined ? { planId: q.planId } : {}),
            ...(q.status !== undefined ? { status: q.status } : {}),
            ...(q.current === true ? { notEndedAt: new Date() } : {}),
          },
          scope,
        ),
      );
      return { items: page.items.map((m) => dto(request, m)), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/memberships/:id',
    {
      onRequest: anyRole,
      schema: {
        tags: ['memberships'],
        summary: 'Get a membership (customers: their own)',
        params: IdParams,
        response: { 200: Membership, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const scope = customerScope(request);
      return dto(request, await request.withTenant((ctx) => getMembership(ctx, request.params.id, scope)));
    },
  );

  app.get(
    '/memberships/:id/usage',
    {
      onRequest: anyRole,
      schema: {
        tags: ['memberships'],
        summary: 'Classes used and left in the current allowance period (customers: their own)',
        params: IdParams,
        response: { 200: MembershipUsage, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const scope = customerScope(request);
      const tz = request.tenant.timezone;
      return request.withTenant(async (ctx) => {
        const m = await getMembership(ctx, request.params.id, scope);
        const u = await membershipUsage(ctx, m);
        return {
          membershipId: m.id,
          periodStart: formatZoned(u.window.start, tz),
          periodEnd: u.window.end ? formatZoned(u.window.end, tz) : null,
          used: u.used,
          allowance: u.allowance,
          remaining: u.remaining,
        };
      });
    },
  );

  const change = (
    path: string,
    summary: string,
    fn: typeof activateMembership | typeof freezeMembership | typeof cancelMembership,
  ) =>
    app.post(
      `/memberships/:id/${path}`,
      {
        onRequest: staffOnly,
        // The body is optional: a POST without one means no note change.
        preValidation: async (request) => {
          request.body ??= {};
        },
        schema: {
          tags: ['memberships'],
          summary,
          params: IdParams,
          body: ChangeBody,
          response: { 200: Membership, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
        },
      },
      async (request) => {
        const note = request.body?.note;
        const m = await request.withTenant((ctx) =>
          fn(ctx, request.params.id, actor(request), note !== undefined ? { note } : {}),
        );
        return dto(request, m);
      },
    );
  change(
    'activate',
    'Confirm a pending membership or unfreeze a frozen one (a fixed end moves by the time frozen)',
    activateMembership,
  );
  change('freeze', 'Freeze an active membership (no class bookings while frozen)', freezeMembership);
  change('cancel', 'Cancel a membership (cancelling again changes nothing)', cancelMembership);
}
