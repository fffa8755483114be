/**
 * Memberships (DESIGN §7, gym): the plans a business sells and its customers' memberships. One
 * implementation for the API (`/v1/membership-plans`, `/v1/memberships`) and the agent's gym
 * tools.
 *
 * Plans run per calendar month or year of the membership, or for a fixed number of days (a
 * pass). A membership copies its plan's terms at sale (price, period, class allowance), so
 * changing a plan never changes what a customer already bought. Without an end a month/year
 * membership renews every period until cancelled (billing is outside Simptu); with one it is a
 * fixed term; a days pass always ends `durationDays` local calendar days after its start.
 *
 * States: `pending` (asked for by the customer through the agent; staff confirm once paid) →
 * `active` ⇄ `frozen` → `cancelled`. Unfreezing moves a fixed end later by the time spent
 * frozen. At most one live (non-cancelled) membership per customer at any instant: the
 * database's exclusion constraint `memberships_no_overlap` decides, MEMBERSHIP_OVERLAP (409)
 * reports it.
 *
 * Class bookings (`assertClassEntitlement`, called by `createBooking`/`rescheduleBooking`):
 * once a tenant offers at least one ACTIVE plan, booking a service of kind `class` needs an
 * active membership covering the class's start (else MEMBERSHIP_REQUIRED, 409, with
 * `details.reason` none | pending | frozen), and when its plan has a class allowance, fewer
 * live class bookings than the allowance in the allowance period containing the start (else
 * CLASS_ALLOWANCE_EXHAUSTED, 409). A tenant without active plans books classes freely (drop-in
 * gyms, and every dental or hotel tenant). Personal-training sessions and other kinds are sold
 * per session at the service's price and need no membership. The membership row is locked
 * while a booking is judged, so concurrent bookings of one customer can't overrun the allowance.
 *
 * Every membership change writes `io.simptu.membership.created|activated|frozen|cancelled` to
 * the tenant's outbox in the same transaction (ids, status and times; never the note). The
 * staff note is encrypted and bound to its row.
 */
import type { FieldLocation } from '../crypto/envelope.ts';
import { defineErrors } from '../errors.ts';
import { enqueue } from '../events/outbox.ts';
import type { Service } from './catalog.ts';
import { checkActive, checkCurrency, checkDescription, checkName, checkPriceCents } from './checks.ts';
import {
  assertUuid,
  attempt,
  CHANNELS,
  clampLimit,
  DEFAULT_EVENT_SOURCE,
  newestFirstAfter,
  newestFirstPage,
  newId,
  nowOf,
  type Channel,
  type DbContext,
  type DomainContext,
} from './context.ts';
import { getCustomer } from './customers.ts';
import { DomainErrors, Issues, invalid, notFound, pgCode, pgConstraint } from './errors.ts';
import { isValidTimeZone, utcToZoned, zonedTimeToUtc } from './time.ts';

export const MEMBERSHIP_PERIODS = ['month', 'year', 'days'] as const;
export type MembershipPeriod = (typeof MEMBERSHIP_PERIODS)[number];
export const MEMBERSHIP_STATUSES = ['pending', 'active', 'frozen', 'cancelled'] as const;
export type MembershipStatus = (typeof MEMBERSHIP_STATUSES)[number];
export const MEMBERSHIP_NOTE_MAX = 2000;
export const MEMBERSHIP_MAX_DURATION_DAYS = 3660;
export const MEMBERSHIP_MAX_CLASS_ALLOWANCE = 10_000;

export const MembershipErrors = defineErrors({
  /** another plan already has this name (case-insensitive) */
  MEMBERSHIP_PLAN_EXISTS: { status: 409, message: 'A membership plan with this name exists' },
  /** the customer has another live membership for (part of) the time */
  MEMBERSHIP_OVERLAP: {
    status: 409,
    message: 'The customer already has a membership for (part of) this time',
  },
  /** freeze of a pending membership, activation of a cancelled one, … */
  MEMBERSHIP_STATE_CONFLICT: { status: 409, message: 'The membership cannot change to that state' },
  /** a class booking without an active membership covering its start */
  MEMBERSHIP_REQUIRED: { status: 409, message: 'Booking a class needs an active membership' },
  /** a class booking beyond the membership's class allowance of the period */
  CLASS_ALLOWANCE_EXHAUSTED: {
    status: 409,
    message: "The membership's classes for this period are used up",
  },
});

export const MEMBERSHIP_EVENT_TYPES = {
  created: 'io.simptu.membership.created',
  activated: 'io.simptu.membership.activated',
  frozen: 'io.simptu.membership.frozen',
  cancelled: 'io.simptu.membership.cancelled',
} as const;

// ---------------------------------------------------------------------------------------------
// Plans

export interface MembershipPlan {
  id: string;
  name: string;
  description: string | null;
  priceCents: number;
  currency: string;
  period: MembershipPeriod;
  /** only for `period: 'days'` */
  durationDays: number | null;
  /** classes per period (month, year, or the whole pass); null = unlimited */
  classAllowance: number | null;
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface MembershipPlanInput {
  name: string;
  description?: string | null;
  priceCents: number;
  currency: string;
  period: MembershipPeriod;
  /** required for, and only for, `period: 'days'` */
  durationDays?: number | null;
  /** @default null (unlimited) */
  classAllowance?: number | null;
  /** @default true */
  active?: boolean;
}

export type MembershipPlanPatch = Partial<MembershipPlanInput>;

interface PlanRow {
  id: string;
  name: string;
  description: string | null;
  price_cents: string;
  currency: string;
  period: MembershipPeriod;
  duration_days: number | null;
  class_allowance: number | null;
  active: boolean;
  created_at: Date;
  updated_at: Date;
}

const PLAN_COLUMNS =
  'id, name, description, price_cents, currency, period, duration_days, class_allowance, active, created_at, updated_at';

function toPlan(r: PlanRow): MembershipPlan {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    priceCents: Number(r.price_cents),
    currency: r.currency,
    period: r.period,
    durationDays: r.duration_days,
    classAllowance: r.class_allowance,
    active: r.active,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const isPeriod = (v: unknown): v is MembershipPeriod =>
  typeof v === 'string' && (MEMBERSHIP_PERIODS as readonly string[]).includes(v);

/** Validates a whole plan (a create, or a patch merged over the stored plan). */
function checkPlan(issues: Issues, v: Partial<MembershipPlanInput>): void {
  checkName(issues, v.name);
  checkDescription(issues, v.description);
  checkPriceCents(issues, v.priceCents);
  checkCurrency(issues, v.currency);
  if (!isPeriod(v.period)) issues.add('period', `must be one of ${MEMBERSHIP_PERIODS.join(', ')}`);
  else if (v.period === 'days') {
    if (
      !Number.isInteger(v.durationDays) ||
      v.durationDays! < 1 ||
      v.durationDays! > MEMBERSHIP_MAX_DURATION_DAYS
    )
      issues.add('durationDays', `must be an integer 1..${MEMBERSHIP_MAX_DURATION_DAYS} for a days plan`);
  } else if (v.durationDays != null) issues.add('durationDays', 'only plans of period days have one');
  if (v.classAllowance != null)
    if (
      !Number.isInteger(v.classAllowance) ||
      v.classAllowance < 0 ||
      v.classAllowance > MEMBERSHIP_MAX_CLASS_ALLOWANCE
    )
      issues.add(
        'classAllowance',
        `must be null (unlimited) or an integer 0..${MEMBERSHIP_MAX_CLASS_ALLOWANCE}`,
      );
  checkActive(issues, v.active);
}

function planExists(name: string, cause: unknown): Error {
  return new MembershipErrors.MEMBERSHIP_PLAN_EXISTS({ details: { name }, cause });
}

/** Runs a plan write; the unique name index becomes MEMBERSHIP_PLAN_EXISTS. */
async function writePlan(ctx: DbContext, name: string, sql: string, params: unknown[]): Promise<PlanRow> {
  const r = await attempt(ctx.client, () => ctx.client.query<PlanRow>(sql, params));
  if (!r.ok) {
    if (pgCode(r.error) === '23505' && pgConstraint(r.error) === 'membership_plans_name_key')
      throw planExists(name, r.error);
    throw r.error;
  }
  return r.value.rows[0]!;
}

export async function createMembershipPlan(
  ctx: DbContext,
  input: MembershipPlanInput,
): Promise<MembershipPlan> {
  const issues = new Issues();
  checkPlan(issues, input);
  issues.throwIfAny();
  const name = input.name.trim();
  const row = await writePlan(
    ctx,
    name,
    `INSERT INTO membership_plans (name, description, price_cents, currency, period, duration_days, class_allowance, active)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${PLAN_COLUMNS}`,
    [
      name,
      input.description ?? null,
      input.priceCents,
      input.currency,
      input.period,
      input.period === 'days' ? input.durationDays : null,
      input.classAllowance ?? null,
      input.active ?? true,
    ],
  );
  return toPlan(row);
}

export async function getMembershipPlan(ctx: DbContext, id: string): Promise<MembershipPlan> {
  const { rows } = await ctx.client.query<PlanRow>(
    `SELECT ${PLAN_COLUMNS} FROM membership_plans WHERE id = $1`,
    [assertUuid(id, 'planId')],
  );
  if (!rows[0]) throw notFound('plan', id);
  return toPlan(rows[0]);
}

/** Plans by price then name (cheapest first, as a price list reads). */
export async function listMembershipPlans(
  ctx: DbContext,
  filter: { activeOnly?: boolean } = {},
): Promise<MembershipPlan[]> {
  const { rows } = await ctx.client.query<PlanRow>(
    `SELECT ${PLAN_COLUMNS} FROM membership_plans WHERE (NOT $1 OR active) ORDER BY price_cents, name, id`,
    [filter.activeOnly ?? false],
  );
  return rows.map(toPlan);
}

/** Changes a plan; memberships already sold keep the terms they were sold with. */
export async function updateMembershipPlan(
  ctx: DbContext,
  id: string,
  patch: MembershipPlanPatch,
): Promise<MembershipPlan> {
  const current = await getMembershipPlan(ctx, id);
  const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
  const next = { ...current, ...defined } as MembershipPlan;
  // Switching away from a days plan drops its duration unless the patch names one.
  if (next.period !== 'days' && patch.durationDays === undefined) next.durationDays = null;
  const issues = new Issues();
  checkPlan(issues, next);
  issues.throwIfAny();
  const name = next.name.trim();
  const row = await writePlan(
    ctx,
    name,
    `UPDATE membership_plans SET name = $2, description = $3, price_cents = $4, currency = $5, period = $6,
            duration_days = $7, class_allowance = $8, active = $9, updated_at = now()
      WHERE id = $1 RETURNING ${PLAN_COLUMNS}`,
    [
      current.id,
      name,
      next.description,
      next.priceCents,
      next.currency,
      next.period,
      next.durationDays,
      next.classAllowance,
      next.active,
    ],
  );
  return toPlan(row);
}

/** Deletes a plan no membership references (else IN_USE: deactivate it instead). */
export async function deleteMembershipPlan(ctx: DbContext, id: string): Promise<void> {
  const planId = assertUuid(id, 'planId');
  const r = await attempt(ctx.client, () =>
    ctx.client.query('DELETE FROM membership_plans WHERE id = $1', [planId]),
  );
  if (!r.ok) {
    if (pgCode(r.error) === '23503') throw new DomainErrors.IN_USE({ details: { planId }, cause: r.error });
    throw r.error;
  }
  if (r.value.rowCount === 0) throw notFound('plan', id);
}

// ---------------------------------------------------------------------------------------------
// Memberships

export interface Membership {
  id: string;
  customerId: string;
  planId: string;
  planName: string;
  status: MembershipStatus;
  startsAt: Date;
  /** null: renews every period until cancelled */
  endsAt: Date | null;
  priceCents: number;
  currency: string;
  period: MembershipPeriod;
  classAllowance: number | null;
  note: string | null;
  source: Channel;
  idempotencyKey: string | null;
  createdBy: string;
  updatedBy: string;
  activatedAt: Date | null;
  frozenAt: Date | null;
  cancelledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Who acts: the staff member's token `sub`, or `agent`. Recorded in created_by / updated_by. */
export interface MembershipActor {
  sub: string;
}

/** Who is asking: a customer sees only their own memberships (others → 404). */
export interface MembershipScope {
  customerId?: string;
}

export interface CreateMembershipInput {
  customerId: string;
  planId: string;
  /** @default now */
  startsAt?: Date;
  /**
   * @default days plans: `durationDays` local calendar days after the start; month/year plans:
   * null (renews until cancelled). A days plan can't be open-ended.
   */
  endsAt?: Date | null;
  /** `pending` for a customer's request staff still have to confirm; @default 'active' */
  status?: 'active' | 'pending';
  note?: string | null;
  /** @default 'staff' */
  source?: Channel;
  /** the same key returns the same membership (and writes nothing) */
  idempotencyKey?: string;
}

export interface CreateMembershipResult {
  membership: Membership;
  /** false when an earlier request with the same idempotency key made it */
  created: boolean;
}

export interface MembershipEventData {
  membershipId: string;
  customerId: string;
  planId: string;
  status: MembershipStatus;
  previousStatus?: MembershipStatus;
  startsAt: string;
  endsAt: string | null;
  source: Channel;
  actor: string;
}

export function membershipNoteLocation(id: string): FieldLocation {
  return { table: 'memberships', column: 'note', rowId: id };
}

interface MembershipRow {
  id: string;
  customer_id: string;
  plan_id: string;
  plan_name: string;
  status: MembershipStatus;
  starts_at: Date;
  ends_at: Date | null;
  price_cents: string;
  currency: string;
  period: MembershipPeriod;
  class_allowance: number | null;
  note: Buffer | null;
  source: Channel;
  idempotency_key: string | null;
  created_by: string;
  updated_by: string;
  activated_at: Date | null;
  frozen_at: Date | null;
  cancelled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const M_COLUMNS = `m.id, m.customer_id, m.plan_id, p.name AS plan_name, m.status, m.starts_at, m.ends_at,
  m.price_cents, m.currency, m.period, m.class_allowance, m.note, m.source, m.idempotency_key, m.created_by,
  m.updated_by, m.activated_at, m.frozen_at, m.cancelled_at, m.created_at, m.updated_at`;
const FROM = 'memberships m JOIN membership_plans p ON p.id = m.plan_id';

function toMembership(ctx: DomainContext, r: MembershipRow): Membership {
  return {
    id: r.id,
    customerId: r.customer_id,
    planId: r.plan_id,
    planName: r.plan_name,
    status: r.status,
    startsAt: r.starts_at,
    endsAt: r.ends_at,
    priceCents: Number(r.price_cents),
    currency: r.currency,
    period: r.period,
    classAllowance: r.class_allowance,
    note: r.note === null ? null : ctx.cipher.decryptString(r.note, membershipNoteLocation(r.id)),
    source: r.source,
    idempotencyKey: r.idempotency_key,
    createdBy: r.created_by,
    updatedBy: r.updated_by,
    activatedAt: r.activated_at,
    frozenAt: r.frozen_at,
    cancelledAt: r.cancelled_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function isDate(d: unknown): d is Date {
  return d instanceof Date && !Number.isNaN(d.getTime());
}

function checkActor(actor: MembershipActor): string {
  if (typeof actor?.sub !== 'string' || actor.sub.length < 1 || actor.sub.length > 255)
    throw invalid('actor', 'must name who acts (1..255 characters)');
  return actor.sub;
}

function checkNote(issues: Issues, note: unknown): string | null {
  if (note == null) return null;
  if (typeof note !== 'string' || note.length > MEMBERSHIP_NOTE_MAX) {
    issues.add('note', `must be at most ${MEMBERSHIP_NOTE_MAX} characters`);
    return null;
  }
  return note.normalize('NFC').trim() || null;
}

function eventData(m: Membership, actor: string, previous?: MembershipStatus): MembershipEventData {
  return {
    membershipId: m.id,
    customerId: m.customerId,
    planId: m.planId,
    status: m.status,
    ...(previous ? { previousStatus: previous } : {}),
    startsAt: m.startsAt.toISOString(),
    endsAt: m.endsAt?.toISOString() ?? null,
    source: m.source,
    actor,
  };
}

async function emit(
  ctx: DomainContext,
  type: string,
  m: Membership,
  actor: string,
  previous?: MembershipStatus,
): Promise<void> {
  await enqueue(ctx.client, ctx.cipher, {
    type,
    source: ctx.source ?? DEFAULT_EVENT_SOURCE,
    aggregateType: 'membership',
    aggregateId: m.id,
    subject: `memberships/${m.id}`,
    data: eventData(m, actor, previous),
  });
}

async function selectMembership(ctx: DomainContext, where: string, params: unknown[], lock = false) {
  const { rows } = await ctx.client.query<MembershipRow>(
    `SELECT ${M_COLUMNS} FROM ${FROM} WHERE ${where}${lock ? ' FOR UPDATE OF m' : ''}`,
    params,
  );
  return rows[0] ? toMembership(ctx, rows[0]) : null;
}

/** The customer's live membership overlapping [start, end), if any (for the 409's details). */
async function overlapping(
  ctx: DomainContext,
  customerId: string,
  start: Date,
  end: Date | null,
  exceptId: string | null,
): Promise<Membership | null> {
  return selectMembership(
    ctx,
    `m.customer_id = $1 AND m.status <> 'cancelled' AND m.id IS DISTINCT FROM $4::uuid
     AND tstzrange(m.starts_at, m.ends_at, '[)') && tstzrange($2, $3, '[)')
     ORDER BY m.starts_at LIMIT 1`,
    [customerId, start, end, exceptId],
  );
}

function overlapError(existing: Membership | null, cause: unknown): Error {
  return new MembershipErrors.MEMBERSHIP_OVERLAP({
    details: existing
      ? {
          membershipId: existing.id,
          status: existing.status,
          startsAt: existing.startsAt.toISOString(),
          endsAt: existing.endsAt?.toISOString() ?? null,
        }
      : {},
    cause,
  });
}

const isOverlapViolation = (err: unknown) =>
  pgCode(err) === '23P01' && pgConstraint(err) === 'memberships_no_overlap';

// --- local calendar arithmetic (the allowance periods follow the tenant's wall clock) ---------

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** `base` + `months` calendar months on the wall clock of `timeZone` (Jan 31 + 1 → Feb 28/29). */
export function addLocalMonths(base: Date, months: number, timeZone: string): Date {
  const l = utcToZoned(base, timeZone);
  const total = l.year * 12 + (l.month - 1) + months;
  const year = Math.floor(total / 12);
  const month = (total % 12) + 1;
  const day = Math.min(l.day, daysInMonth(year, month));
  return zonedTimeToUtc({ ...l, year, month, day }, timeZone)!;
}

/** `base` + `days` calendar days on the wall clock of `timeZone` (DST days are 23 or 25 h). */
export function addLocalDays(base: Date, days: number, timeZone: string): Date {
  const l = utcToZoned(base, timeZone);
  const d = new Date(Date.UTC(l.year, l.month - 1, l.day + days));
  return zonedTimeToUtc(
    { ...l, year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() },
    timeZone,
  )!;
}

export interface AllowanceWindow {
  start: Date;
  /** null: open-ended (never for month/year periods) */
  end: Date | null;
}

/**
 * The allowance period of a membership that contains `at`: the k-th calendar month (or year)
 * counted from the membership's start on the tenant's wall clock, cut at the membership's end;
 * a days pass has one period, its whole term. Pure.
 */
export function allowanceWindow(
  m: Pick<Membership, 'startsAt' | 'endsAt' | 'period'>,
  at: Date,
  timeZone: string,
): AllowanceWindow {
  if (m.period === 'days') return { start: m.startsAt, end: m.endsAt };
  const step = m.period === 'year' ? 12 : 1;
  const s = utcToZoned(m.startsAt, timeZone);
  const a = utcToZoned(at, timeZone);
  let k = Math.max(0, Math.floor(((a.year - s.year) * 12 + (a.month - s.month)) / step));
  while (k > 0 && addLocalMonths(m.startsAt, k * step, timeZone) > at) k--;
  while (addLocalMonths(m.startsAt, (k + 1) * step, timeZone) <= at) k++;
  const start = addLocalMonths(m.startsAt, k * step, timeZone);
  const next = addLocalMonths(m.startsAt, (k + 1) * step, timeZone);
  return { start, end: m.endsAt && m.endsAt < next ? m.endsAt : next };
}

/**
 * Sells (or, `status: 'pending'`, records a customer's request for) a membership of `planId`.
 * VALIDATION for an inactive plan, bad dates or note; NOT_FOUND for an unknown customer or
 * plan; MEMBERSHIP_OVERLAP when the customer has another live membership for part of the time;
 * IDEMPOTENCY_KEY_REUSED for a key reused with other parameters.
 */
export async function createMembership(
  ctx: DomainContext,
  input: CreateMembershipInput,
  actor: MembershipActor,
): Promise<CreateMembershipResult> {
  const by = checkActor(actor);
  const issues = new Issues();
  if (input.startsAt !== undefined && !isDate(input.startsAt)) issues.add('startsAt', 'must be a date-time');
  if (input.endsAt != null && !isDate(input.endsAt)) issues.add('endsAt', 'must be a date-time');
  const status = input.status ?? 'active';
  if (status !== 'active' && status !== 'pending') issues.add('status', 'must be active or pending');
  const source = input.source ?? 'staff';
  if (!CHANNELS.includes(source)) issues.add('source', `must be one of ${CHANNELS.join(', ')}`);
  const key = input.idempotencyKey;
  if (key !== undefined && (typeof key !== 'string' || key.length < 1 || key.length > 200))
    issues.add('idempotencyKey', 'must be 1..200 characters');
  const note = checkNote(issues, input.note);
  issues.throwIfAny();
  const customerId = assertUuid(input.customerId, 'customerId');
  const planId = assertUuid(input.planId, 'planId');

  const replay = (existing: Membership): CreateMembershipResult => {
    if (existing.customerId !== customerId || existing.planId !== planId)
      throw new DomainErrors.IDEMPOTENCY_KEY_REUSED({ details: { idempotencyKey: key } });
    return { membership: existing, created: false };
  };
  if (key !== undefined) {
    const existing = await selectMembership(ctx, 'm.idempotency_key = $1', [key]);
    if (existing) return replay(existing);
  }
  const plan = await getMembershipPlan(ctx, planId);
  await getCustomer(ctx, customerId);
  if (!plan.active) throw invalid('planId', 'the plan is not offered any more');
  if (!isValidTimeZone(ctx.timeZone)) throw invalid('timeZone', 'is not an IANA time zone');
  const startsAt = input.startsAt ?? nowOf(ctx);
  let endsAt: Date | null;
  if (input.endsAt !== undefined && input.endsAt !== null) endsAt = input.endsAt;
  else if (plan.period === 'days') {
    if (input.endsAt === null) throw invalid('endsAt', 'a days plan always ends');
    endsAt = addLocalDays(startsAt, plan.durationDays!, ctx.timeZone);
  } else endsAt = null;
  if (endsAt !== null && endsAt.getTime() <= startsAt.getTime())
    throw invalid('endsAt', 'must be after startsAt');

  const id = newId();
  const r = await attempt(ctx.client, () =>
    ctx.client.query(
      `INSERT INTO memberships (id, customer_id, plan_id, status, starts_at, ends_at, price_cents, currency, period,
                                class_allowance, note, source, idempotency_key, created_by, updated_by, activated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)`,
      [
        id,
        customerId,
        planId,
        status,
        startsAt,
        endsAt,
        plan.priceCents,
        plan.currency,
        plan.period,
        plan.classAllowance,
        note === null ? null : ctx.cipher.encrypt(note, membershipNoteLocation(id)),
        source,
        key ?? null,
        by,
        status === 'active' ? nowOf(ctx) : null,
      ],
    ),
  );
  if (!r.ok) {
    // A concurrent request with the same key committed first: replay it.
    if (key !== undefined && (pgCode(r.error) === '23505' || isOverlapViolation(r.error))) {
      const existing = await selectMembership(ctx, 'm.idempotency_key = $1', [key]);
      if (existing) return replay(existing);
    }
    if (isOverlapViolation(r.error))
      throw overlapError(await overlapping(ctx, customerId, startsAt, endsAt, null), r.error);
    throw r.error;
  }
  const membership = (await selectMembership(ctx, 'm.id = $1', [id]))!;
  await emit(ctx, MEMBERSHIP_EVENT_TYPES.created, membership, by);
  return { membership, created: true };
}

async function lockMembership(ctx: DomainContext, id: string, scope: MembershipScope): Promise<Membership> {
  const m = await selectMembership(ctx, 'm.id = $1', [assertUuid(id, 'membershipId')], true);
  if (!m || (scope.customerId !== undefined && m.customerId !== scope.customerId.toLowerCase()))
    throw notFound('membership', id);
  return m;
}

function stateConflict(m: Membership, to: MembershipStatus): Error {
  return new MembershipErrors.MEMBERSHIP_STATE_CONFLICT({
    details: { membershipId: m.id, from: m.status, to },
  });
}

export interface MembershipChange {
  /** replaces the note (null clears it); absent keeps it */
  note?: string | null;
}

/**
 * Applies a state change to a locked membership: `set` builds the SET items (adding parameters
 * through `p`); the note, `updated_by` and `updated_at` follow. Writes the event.
 */
async function transition(
  ctx: DomainContext,
  current: Membership,
  by: string,
  change: MembershipChange,
  set: (p: (value: unknown) => string) => string,
  event: string,
): Promise<Membership> {
  const issues = new Issues();
  const note = checkNote(issues, change.note);
  issues.throwIfAny();
  const params: unknown[] = [];
  const p = (v: unknown) => `$${params.push(v)}`;
  const items = [set(p), `updated_by = ${p(by)}`, 'updated_at = now()'];
  if (change.note !== undefined)
    items.push(
      `note = ${p(note === null ? null : ctx.cipher.encrypt(note, membershipNoteLocation(current.id)))}`,
    );
  const r = await attempt(ctx.client, () =>
    ctx.client.query(`UPDATE memberships SET ${items.join(', ')} WHERE id = ${p(current.id)}`, params),
  );
  if (!r.ok) {
    if (isOverlapViolation(r.error)) {
      const frozenFor = current.frozenAt ? nowOf(ctx).getTime() - current.frozenAt.getTime() : 0;
      const wantedEnd = current.endsAt ? new Date(current.endsAt.getTime() + frozenFor) : null;
      throw overlapError(
        await overlapping(ctx, current.customerId, current.startsAt, wantedEnd, current.id),
        r.error,
      );
    }
    throw r.error;
  }
  const m = (await selectMembership(ctx, 'm.id = $1', [current.id]))!;
  await emit(ctx, event, m, by, current.status);
  return m;
}

/**
 * Confirms a pending membership, or unfreezes a frozen one (a fixed end moves later by the time
 * spent frozen; MEMBERSHIP_OVERLAP if that runs into the customer's next membership). Active →
 * returned unchanged; cancelled → MEMBERSHIP_STATE_CONFLICT.
 */
export async function activateMembership(
  ctx: DomainContext,
  id: string,
  actor: MembershipActor,
  change: MembershipChange = {},
): Promise<Membership> {
  const by = checkActor(actor);
  const current = await lockMembership(ctx, id, {});
  if (current.status === 'active') return current;
  if (current.status === 'cancelled') throw stateConflict(current, 'active');
  const now = nowOf(ctx);
  if (current.status === 'pending')
    return transition(
      ctx,
      current,
      by,
      change,
      (p) => `status = 'active', activated_at = ${p(now)}`,
      MEMBERSHIP_EVENT_TYPES.activated,
    );
  const frozenMs = Math.max(0, now.getTime() - current.frozenAt!.getTime());
  return transition(
    ctx,
    current,
    by,
    change,
    (p) =>
      `status = 'active', frozen_at = NULL, ends_at = ends_at + make_interval(secs => ${p(frozenMs / 1000)}::double precision)`,
    MEMBERSHIP_EVENT_TYPES.activated,
  );
}

/** Freezes an active membership (no class bookings meanwhile). Frozen → unchanged; pending or cancelled → 409. */
export async function freezeMembership(
  ctx: DomainContext,
  id: string,
  actor: MembershipActor,
  change: MembershipChange = {},
): Promise<Membership> {
  const by = checkActor(actor);
  const current = await lockMembership(ctx, id, {});
  if (current.status === 'frozen') return current;
  if (current.status !== 'active') throw stateConflict(current, 'frozen');
  return transition(
    ctx,
    current,
    by,
    change,
    (p) => `status = 'frozen', frozen_at = ${p(nowOf(ctx))}`,
    MEMBERSHIP_EVENT_TYPES.frozen,
  );
}

/**
 * Cancels a membership in any live state (booked classes stay booked; staff cancel them if they
 * should go too). Cancelling a cancelled membership returns it unchanged.
 */
export async function cancelMembership(
  ctx: DomainContext,
  id: string,
  actor: MembershipActor,
  change: MembershipChange = {},
  scope: MembershipScope = {},
): Promise<Membership> {
  const by = checkActor(actor);
  const current = await lockMembership(ctx, id, scope);
  if (current.status === 'cancelled') return current;
  return transition(
    ctx,
    current,
    by,
    change,
    (p) => `status = 'cancelled', cancelled_at = ${p(nowOf(ctx))}, frozen_at = NULL`,
    MEMBERSHIP_EVENT_TYPES.cancelled,
  );
}

export async function getMembership(
  ctx: DomainContext,
  id: string,
  scope: MembershipScope = {},
): Promise<Membership> {
  const m = await selectMembership(ctx, 'm.id = $1', [assertUuid(id, 'membershipId')]);
  if (!m || (scope.customerId !== undefined && m.customerId !== scope.customerId.toLowerCase()))
    throw notFound('membership', id);
  return m;
}

export interface ListMembershipsQuery {
  customerId?: string;
  planId?: string;
  status?: MembershipStatus;
  /** only memberships not ended at this instant (end null or later) */
  notEndedAt?: Date;
  /** @default 50, at most 200 */
  limit?: number;
  cursor?: string;
}

export interface MembershipPage {
  items: Membership[];
  nextCursor: string | null;
}

/** Newest first, keyset-paginated. A scoped (customer) caller sees only their own. */
export async function listMemberships(
  ctx: DomainContext,
  q: ListMembershipsQuery = {},
  scope: MembershipScope = {},
): Promise<MembershipPage> {
  const limit = clampLimit(q.limit);
  const issues = new Issues();
  if (q.status !== undefined && !(MEMBERSHIP_STATUSES as readonly string[]).includes(q.status))
    issues.add('status', `must be one of ${MEMBERSHIP_STATUSES.join(', ')}`);
  if (q.notEndedAt !== undefined && !isDate(q.notEndedAt)) issues.add('notEndedAt', 'must be a date-time');
  issues.throwIfAny();
  const where: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown) => `$${params.push(v)}`;
  if (q.customerId !== undefined) where.push(`customer_id = ${p(assertUuid(q.customerId, 'customerId'))}`);
  if (scope.customerId !== undefined) where.push(`customer_id = ${p(scope.customerId.toLowerCase())}`);
  if (q.planId !== undefined) where.push(`plan_id = ${p(assertUuid(q.planId, 'planId'))}`);
  if (q.status !== undefined) where.push(`status = ${p(q.status)}`);
  if (q.notEndedAt !== undefined) where.push(`(ends_at IS NULL OR ends_at > ${p(q.notEndedAt)})`);
  if (q.cursor !== undefined) where.push(newestFirstAfter(q.cursor, p));
  const { rows } = await ctx.client.query<MembershipRow>(
    `SELECT ${M_COLUMNS}
       FROM (SELECT * FROM memberships ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
              ORDER BY created_at DESC, id DESC LIMIT ${p(limit + 1)}) m
       JOIN membership_plans p ON p.id = m.plan_id
      ORDER BY m.created_at DESC, m.id DESC`,
    params,
  );
  return newestFirstPage(rows, limit, (r) => toMembership(ctx, r));
}

// ---------------------------------------------------------------------------------------------
// Class allowance

export interface MembershipUsage {
  window: AllowanceWindow;
  /** live class bookings starting in the window */
  used: number;
  /** null: unlimited */
  allowance: number | null;
  /** null: unlimited */
  remaining: number | null;
}

async function countClasses(
  ctx: DomainContext,
  customerId: string,
  window: AllowanceWindow,
  excludeBookingId: string | undefined,
): Promise<number> {
  const { rows } = await ctx.client.query<{ n: string }>(
    `SELECT count(*) AS n FROM bookings b JOIN services s ON s.id = b.service_id
      WHERE b.customer_id = $1 AND b.status = 'booked' AND s.kind = 'class'
        AND lower(b.during) >= $2 AND ($3::timestamptz IS NULL OR lower(b.during) < $3)
        AND b.id IS DISTINCT FROM $4::uuid`,
    [customerId, window.start, window.end, excludeBookingId ?? null],
  );
  return Number(rows[0]!.n);
}

/** The membership's class use in the allowance period containing `at` (default now). */
export async function membershipUsage(
  ctx: DomainContext,
  m: Membership,
  at: Date = nowOf(ctx),
): Promise<MembershipUsage> {
  const window = allowanceWindow(m, at, ctx.timeZone);
  const used = await countClasses(ctx, m.customerId, window, undefined);
  return {
    window,
    used,
    allowance: m.classAllowance,
    remaining: m.classAllowance === null ? null : Math.max(0, m.classAllowance - used),
  };
}

/** Whether the tenant sells memberships at all (at least one active plan): then classes need one. */
export async function membershipsRequiredForClasses(ctx: DbContext): Promise<boolean> {
  const { rows } = await ctx.client.query<{ required: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM membership_plans WHERE active) AS required',
  );
  return rows[0]!.required;
}

/**
 * The booking rule (see the file comment): throws MEMBERSHIP_REQUIRED or
 * CLASS_ALLOWANCE_EXHAUSTED when the customer may not book `service` at `start`. Locks the
 * covering membership row until the transaction ends, so concurrent bookings of one customer
 * are judged one after another. `excludeBookingId`: the booking being rescheduled.
 */
export async function assertClassEntitlement(
  ctx: DomainContext,
  input: {
    customerId: string;
    service: Pick<Service, 'id' | 'kind'>;
    start: Date;
    excludeBookingId?: string;
  },
): Promise<void> {
  if (input.service.kind !== 'class') return;
  if (!(await membershipsRequiredForClasses(ctx))) return;
  const m = await selectMembership(
    ctx,
    `m.customer_id = $1 AND m.status <> 'cancelled' AND tstzrange(m.starts_at, m.ends_at, '[)') @> $2::timestamptz`,
    [input.customerId, input.start],
    true,
  );
  if (!m || m.status !== 'active')
    throw new MembershipErrors.MEMBERSHIP_REQUIRED({
      details: {
        reason: m ? m.status : 'none',
        start: input.start.toISOString(),
        ...(m ? { membershipId: m.id } : {}),
      },
    });
  if (m.classAllowance === null) return;
  const window = allowanceWindow(m, input.start, ctx.timeZone);
  const used = await countClasses(ctx, m.customerId, window, input.excludeBookingId);
  if (used >= m.classAllowance)
    throw new MembershipErrors.CLASS_ALLOWANCE_EXHAUSTED({
      details: {
        membershipId: m.id,
        allowance: m.classAllowance,
        used,
        periodStart: window.start.toISOString(),
        periodEnd: window.end?.toISOString() ?? null,
      },
    });
}
