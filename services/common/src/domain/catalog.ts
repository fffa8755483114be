/**
 * The tenant's catalog (DESIGN §7): services (treatments, classes, room types), resources
 * (chairs, trainers, rooms, studios), which resources deliver which service, weekly opening
 * hours and dated exceptions. Nothing here is personal data, so nothing is encrypted.
 * Every input is validated here (the database CHECKs are the backstop, not the message).
 */
import type pg from 'pg';
import { checkActive, checkCurrency, checkDescription, checkName, checkPriceCents } from './checks.ts';
import { assertUuid, attempt, type DbContext } from './context.ts';
import { DomainErrors, Issues, invalid, notFound, pgCode } from './errors.ts';
import { parseLocalDate, parseTimeOfDay } from './time.ts';

/** `personal_training`: a one-to-one trainer session (gym; tenant migration 0006). */
export const SERVICE_KINDS = ['treatment', 'class', 'room_type', 'personal_training'] as const;
export type ServiceKind = (typeof SERVICE_KINDS)[number];
export const RESOURCE_KINDS = ['chair', 'trainer', 'room', 'studio'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export interface Service {
  id: string;
  kind: ServiceKind;
  name: string;
  description: string | null;
  durationMinutes: number;
  priceCents: number;
  currency: string;
  capacity: number;
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface ServiceInput {
  kind: ServiceKind;
  name: string;
  description?: string | null;
  durationMinutes: number;
  priceCents: number;
  currency: string;
  /** classes only; @default 1 */
  capacity?: number;
  /** @default true */
  active?: boolean;
}

export type ServicePatch = Partial<Omit<ServiceInput, 'kind'>>;

export interface Resource {
  id: string;
  kind: ResourceKind;
  name: string;
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface ResourceInput {
  kind: ResourceKind;
  name: string;
  /** @default true */
  active?: boolean;
}

export type ResourcePatch = Partial<Omit<ResourceInput, 'kind'>>;

export interface OpeningHours {
  /** ISO weekday, 1 = Monday … 7 = Sunday */
  weekday: number;
  opens: string;
  closes: string;
}

export interface OpeningException {
  id: string;
  date: string;
  closed: boolean;
  opens: string | null;
  closes: string | null;
  reason: string | null;
}

export interface OpeningExceptionInput {
  date: string;
  closed: boolean;
  opens?: string | null;
  closes?: string | null;
  reason?: string | null;
}

/** Longest bookable unit: 30 days (a hotel stay), in minutes. */
export const MAX_DURATION_MINUTES = 43_200;

// ---------------------------------------------------------------------------------------------
// Validation

function checkService(
  issues: Issues,
  v: Partial<ServiceInput>,
  kind: ServiceKind | undefined,
  full: boolean,
): void {
  if (full || v.kind !== undefined)
    if (!SERVICE_KINDS.includes(v.kind as ServiceKind))
      issues.add('kind', `must be one of ${SERVICE_KINDS.join(', ')}`);
  if (full || v.name !== undefined) checkName(issues, v.name);
  checkDescription(issues, v.description);
  if (full || v.durationMinutes !== undefined)
    if (
      !Number.isInteger(v.durationMinutes) ||
      v.durationMinutes! < 5 ||
      v.durationMinutes! > MAX_DURATION_MINUTES
    )
      issues.add('durationMinutes', `must be an integer 5..${MAX_DURATION_MINUTES}`);
  if (full || v.priceCents !== undefined) checkPriceCents(issues, v.priceCents);
  if (full || v.currency !== undefined) checkCurrency(issues, v.currency);
  if (v.capacity !== undefined) {
    if (!Number.isInteger(v.capacity) || v.capacity < 1 || v.capacity > 1000)
      issues.add('capacity', 'must be an integer 1..1000');
    else if (kind !== undefined && kind !== 'class' && v.capacity !== 1)
      issues.add('capacity', 'only classes take more than one');
  }
  checkActive(issues, v.active);
}

function checkTime(issues: Issues, v: unknown, path: string): number | null {
  const m = typeof v === 'string' ? parseTimeOfDay(v) : null;
  if (m === null) issues.add(path, 'must be a time HH:MM between 00:00 and 24:00');
  return m;
}

// ---------------------------------------------------------------------------------------------
// Services

interface ServiceRow {
  id: string;
  kind: ServiceKind;
  name: string;
  description: string | null;
  duration_minutes: number;
  price_cents: string;
  currency: string;
  capacity: number;
  active: boolean;
  created_at: Date;
  updated_at: Date;
}

const SERVICE_COLUMNS =
  'id, kind, name, description, duration_minutes, price_cents, currency, capacity, active, created_at, updated_at';

function toService(r: ServiceRow): Service {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    description: r.description,
    durationMinutes: r.duration_minutes,
    priceCents: Number(r.price_cents),
    currency: r.currency,
    capacity: r.capacity,
    active: r.active,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const services = catalogTable('services', 'service', SERVICE_COLUMNS, SERVICE_KINDS, toService);
export const getService = services.get;
/** By name; `kind` narrows to one kind, `activeOnly` drops deactivated services. */
export const listServices = services.list;

export async function createService(ctx: DbContext, input: ServiceInput): Promise<Service> {
  const issues = new Issues();
  checkService(issues, input, input.kind, true);
  issues.throwIfAny();
  const { rows } = await ctx.client.query<ServiceRow>(
    `INSERT INTO services (kind, name, description, duration_minutes, price_cents, currency, capacity, active)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${SERVICE_COLUMNS}`,
    [
      input.kind,
      input.name.trim(),
      input.description ?? null,
      input.durationMinutes,
      input.priceCents,
      input.currency,
      input.capacity ?? 1,
      input.active ?? true,
    ],
  );
  return toService(rows[0]!);
}

export async function updateService(ctx: DbContext, id: string, patch: ServicePatch): Promise<Service> {
  const current = await getService(ctx, id);
  const issues = new Issues();
  checkService(issues, patch, current.kind, false);
  issues.throwIfAny();
  const next = { ...current, ...stripUndefined(patch) };
  const { rows } = await ctx.client.query<ServiceRow>(
    `UPDATE services SET name = $2, description = $3, duration_minutes = $4, price_cents = $5, currency = $6,
            capacity = $7, active = $8, updated_at = now()
      WHERE id = $1 RETURNING ${SERVICE_COLUMNS}`,
    [
      id,
      next.name.trim(),
      next.description,
      next.durationMinutes,
      next.priceCents,
      next.currency,
      next.capacity,
      next.active,
    ],
  );
  return toService(rows[0]!);
}

/** Deletes a service no booking references (else IN_USE: deactivate it instead). */
export const deleteService = services.delete;

// ---------------------------------------------------------------------------------------------
// Resources

interface ResourceRow {
  id: string;
  kind: ResourceKind;
  name: string;
  active: boolean;
  created_at: Date;
  updated_at: Date;
}

const RESOURCE_COLUMNS = 'id, kind, name, active, created_at, updated_at';

function toResource(r: ResourceRow): Resource {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    active: r.active,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const resources = catalogTable('resources', 'resource', RESOURCE_COLUMNS, RESOURCE_KINDS, toResource);
export const getResource = resources.get;
/** By name; `kind` narrows to one kind, `activeOnly` drops deactivated resources. */
export const listResources = resources.list;

export async function createResource(ctx: DbContext, input: ResourceInput): Promise<Resource> {
  const issues = new Issues();
  if (!RESOURCE_KINDS.includes(input.kind)) issues.add('kind', `must be one of ${RESOURCE_KINDS.join(', ')}`);
  checkName(issues, input.name);
  checkActive(issues, input.active);
  issues.throwIfAny();
  const { rows } = await ctx.client.query<ResourceRow>(
    `INSERT INTO resources (kind, name, active) VALUES ($1, $2, $3) RETURNING ${RESOURCE_COLUMNS}`,
    [input.kind, input.name.trim(), input.active ?? true],
  );
  return toResource(rows[0]!);
}

export async function updateResource(ctx: DbContext, id: string, patch: ResourcePatch): Promise<Resource> {
  const current = await getResource(ctx, id);
  const issues = new Issues();
  if (patch.name !== undefined) checkName(issues, patch.name);
  checkActive(issues, patch.active);
  issues.throwIfAny();
  const next = { ...current, ...stripUndefined(patch) };
  const { rows } = await ctx.client.query<ResourceRow>(
    `UPDATE resources SET name = $2, active = $3, updated_at = now() WHERE id = $1 RETURNING ${RESOURCE_COLUMNS}`,
    [id, next.name.trim(), next.active],
  );
  return toResource(rows[0]!);
}

/** Deletes a resource nothing references (else IN_USE: deactivate it instead). */
export const deleteResource = resources.delete;

// ---------------------------------------------------------------------------------------------
// Which resources deliver which service

/** Replaces the set of resources that can deliver `serviceId`. */
export async function setServiceResources(
  ctx: DbContext,
  serviceId: string,
  resourceIds: readonly string[],
): Promise<void> {
  await getService(ctx, serviceId);
  const ids = [...new Set(resourceIds.map((r, i) => assertUuid(r, `resourceIds/${i}`)))];
  const { rows } = await ctx.client.query<{ id: string }>(
    'SELECT id FROM resources WHERE id = ANY($1::uuid[])',
    [ids],
  );
  const known = new Set(rows.map((r) => r.id));
  const issues = new Issues();
  ids.forEach((id, i) => {
    if (!known.has(id)) issues.add(`resourceIds/${i}`, 'no such resource');
  });
  issues.throwIfAny();
  await ctx.client.query(
    'DELETE FROM service_resources WHERE service_id = $1 AND NOT (resource_id = ANY($2::uuid[]))',
    [serviceId, ids],
  );
  await ctx.client.query(
    `INSERT INTO service_resources (service_id, resource_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING`,
    [serviceId, ids],
  );
}

/** The resources (active or not) that can deliver `serviceId`, by name. */
export async function listServiceResources(ctx: DbContext, serviceId: string): Promise<Resource[]> {
  const { rows } = await ctx.client.query<ResourceRow>(
    `SELECT r.id, r.kind, r.name, r.active, r.created_at, r.updated_at
       FROM service_resources sr JOIN resources r ON r.id = sr.resource_id
      WHERE sr.service_id = $1 ORDER BY r.name, r.id`,
    [assertUuid(serviceId, 'serviceId')],
  );
  return rows.map(toResource);
}

// ---------------------------------------------------------------------------------------------
// Opening hours

/** The weekly schedule, by weekday then opening time. */
export async function getOpeningHours(ctx: DbContext): Promise<OpeningHours[]> {
  const { rows } = await ctx.client.query<{ weekday: number; opens: string; closes: string }>(
    'SELECT weekday, opens::text AS opens, closes::text AS closes FROM opening_hours ORDER BY weekday, opens',
  );
  return rows.map((r) => ({ weekday: r.weekday, opens: r.opens.slice(0, 5), closes: r.closes.slice(0, 5) }));
}

/** Validates a weekly schedule: times, opens < closes, no overlapping ranges on one weekday. */
export function validateOpeningHours(hours: readonly OpeningHours[]): void {
  const issues = new Issues();
  const parsed: Array<{ weekday: number; o: number; c: number; i: number }> = [];
  hours.forEach((h, i) => {
    if (!Number.isInteger(h.weekday) || h.weekday < 1 || h.weekday > 7)
      issues.add(`${i}/weekday`, 'must be an ISO weekday 1 (Monday)..7 (Sunday)');
    const o = checkTime(issues, h.opens, `${i}/opens`);
    const c = checkTime(issues, h.closes, `${i}/closes`);
    if (o !== null && c !== null) {
      if (c <= o) issues.add(`${i}/closes`, 'must be after opens');
      else parsed.push({ weekday: h.weekday, o, c, i });
    }
  });
  parsed.sort((a, b) => a.weekday - b.weekday || a.o - b.o);
  for (let k = 1; k < parsed.length; k++) {
    const a = parsed[k - 1]!;
    const b = parsed[k]!;
    if (a.weekday === b.weekday && b.o < a.c)
      issues.add(`${b.i}/opens`, 'overlaps another range of the same weekday');
  }
  issues.throwIfAny();
}

/** Replaces the whole weekly schedule (an empty list: closed every day unless an exception opens it). */
export async function setOpeningHours(
  ctx: DbContext,
  hours: readonly OpeningHours[],
): Promise<OpeningHours[]> {
  validateOpeningHours(hours);
  await ctx.client.query('DELETE FROM opening_hours');
  if (hours.length > 0)
    await ctx.client.query(
      `INSERT INTO opening_hours (weekday, opens, closes)
       SELECT * FROM unnest($1::smallint[], $2::time[], $3::time[])`,
      [hours.map((h) => h.weekday), hours.map((h) => h.opens), hours.map((h) => h.closes)],
    );
  return getOpeningHours(ctx);
}

interface ExceptionRow {
  id: string;
  date: string;
  closed: boolean;
  opens: string | null;
  closes: string | null;
  reason: string | null;
}

const EXCEPTION_COLUMNS =
  'id, date::text AS date, closed, opens::text AS opens, closes::text AS closes, reason';

function toException(r: ExceptionRow): OpeningException {
  return {
    id: r.id,
    date: r.date,
    closed: r.closed,
    opens: r.opens?.slice(0, 5) ?? null,
    closes: r.closes?.slice(0, 5) ?? null,
    reason: r.reason,
  };
}

/** Exceptions of local dates in [from, to] (both `YYYY-MM-DD`, both optional), by date. */
export async function listOpeningExceptions(
  ctx: DbContext,
  range: { from?: string; to?: string } = {},
): Promise<OpeningException[]> {
  const issues = new Issues();
  if (range.from !== undefined && !parseLocalDate(range.from))
    issues.add('from', 'must be a date YYYY-MM-DD');
  if (range.to !== undefined && !parseLocalDate(range.to)) issues.add('to', 'must be a date YYYY-MM-DD');
  issues.throwIfAny();
  const { rows } = await ctx.client.query<ExceptionRow>(
    `SELECT ${EXCEPTION_COLUMNS} FROM opening_exceptions
      WHERE ($1::date IS NULL OR date >= $1) AND ($2::date IS NULL OR date <= $2) ORDER BY date, opens NULLS FIRST`,
    [range.from ?? null, range.to ?? null],
  );
  return rows.map(toException);
}

/**
 * Adds an exception. A date's exception rows replace its weekly hours: one `closed` row closes
 * it, special-hours rows (possibly several) are its only opening ranges.
 */
export async function addOpeningException(
  ctx: DbContext,
  input: OpeningExceptionInput,
): Promise<OpeningException> {
  const issues = new Issues();
  if (typeof input.date !== 'string' || !parseLocalDate(input.date))
    issues.add('date', 'must be a date YYYY-MM-DD');
  if (typeof input.closed !== 'boolean') issues.add('closed', 'must be a boolean');
  if (input.closed === true) {
    if ((input.opens ?? null) !== null || (input.closes ?? null) !== null)
      issues.add('opens', 'a closed day has no hours');
  } else if (input.closed === false) {
    const o = checkTime(issues, input.opens, 'opens');
    const c = checkTime(issues, input.closes, 'closes');
    if (o !== null && c !== null && c <= o) issues.add('closes', 'must be after opens');
  }
  if (input.reason != null && (typeof input.reason !== 'string' || input.reason.length > 500))
    issues.add('reason', 'must be at most 500 characters');
  issues.throwIfAny();
  const { rows } = await ctx.client.query<ExceptionRow>(
    `INSERT INTO opening_exceptions (date, closed, opens, closes, reason) VALUES ($1, $2, $3, $4, $5)
     RETURNING ${EXCEPTION_COLUMNS}`,
    [
      input.date,
      input.closed,
      input.closed ? null : input.opens,
      input.closed ? null : input.closes,
      input.reason ?? null,
    ],
  );
  return toException(rows[0]!);
}

export async function deleteOpeningException(ctx: DbContext, id: string): Promise<void> {
  const r = await ctx.client.query('DELETE FROM opening_exceptions WHERE id = $1', [
    assertUuid(id, 'exceptionId'),
  ]);
  if (r.rowCount === 0) throw notFound('exception', id);
}

// ---------------------------------------------------------------------------------------------

/** Get, list and delete of a catalog table of kinded, (de)activatable rows: services or resources. */
function catalogTable<R extends pg.QueryResultRow, T, K extends string>(
  table: 'services' | 'resources',
  entity: 'service' | 'resource',
  columns: string,
  kinds: readonly K[],
  toItem: (row: R) => T,
) {
  const idPath = `${entity}Id`;
  return {
    async get(ctx: DbContext, id: string): Promise<T> {
      const { rows } = await ctx.client.query<R>(`SELECT ${columns} FROM ${table} WHERE id = $1`, [
        assertUuid(id, idPath),
      ]);
      if (!rows[0]) throw notFound(entity, id);
      return toItem(rows[0]);
    },
    async list(ctx: DbContext, filter: { kind?: K; activeOnly?: boolean } = {}): Promise<T[]> {
      if (filter.kind !== undefined && !kinds.includes(filter.kind))
        throw invalid('kind', `unknown ${entity} kind`);
      const { rows } = await ctx.client.query<R>(
        `SELECT ${columns} FROM ${table}
          WHERE ($1::text IS NULL OR kind = $1) AND (NOT $2 OR active) ORDER BY name, id`,
        [filter.kind ?? null, filter.activeOnly ?? false],
      );
      return rows.map(toItem);
    },
    /** Deletes a row nothing references (a foreign key violation is IN_USE). */
    async delete(ctx: DbContext, id: string): Promise<void> {
      const { client } = ctx;
      assertUuid(id, idPath);
      const r = await attempt(client, () => client.query(`DELETE FROM ${table} WHERE id = $1`, [id]));
      if (!r.ok) {
        if (pgCode(r.error) === '23503')
          throw new DomainErrors.IN_USE({ details: { [idPath]: id }, cause: r.error });
        throw r.error;
      }
      if (r.value.rowCount === 0) throw notFound(entity, id);
    },
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
