/**
 * What invitations and access codes share: rows that stand for a secret handed out once (only a
 * hash of it is stored), with an expiry chosen within bounds, revocable by id, listed newest
 * first. Each module keeps its own secret format, hash, status rules and errors; this holds the
 * table plumbing around them.
 */
import { assertUuid, newestFirstAfter, newestFirstPage, nowOf, type DomainContext } from './context.ts';
import { invalid, notFound, type Issues } from './errors.ts';

/** What every secret-bearing row has. */
export interface SecretRow {
  id: string;
  revoked_at: Date | null;
}

/** The table of one kind of secret-bearing row and how a row becomes its domain object. */
export interface SecretTable<R extends SecretRow, T> {
  table: string;
  /** the column list every statement returns */
  columns: string;
  /** what NOT_FOUND names, e.g. `invitation` */
  entity: string;
  /** the path an id error names, e.g. `invitationId` */
  idPath: string;
  toItem: (ctx: DomainContext, row: R) => T;
}

export interface ExpiryBounds {
  defaultMs: number;
  minMs: number;
  maxMs: number;
}

function isDate(v: unknown): v is Date {
  return v instanceof Date && !Number.isNaN(v.getTime());
}

/** `5 minutes`, `30 days`: the bound as the validation message names it. */
function describeMs(ms: number): string {
  const units: [number, string][] = [
    [24 * 60 * 60 * 1000, 'day'],
    [60 * 60 * 1000, 'hour'],
    [60 * 1000, 'minute'],
  ];
  for (const [size, name] of units)
    if (ms % size === 0) return `${ms / size} ${name}${ms / size === 1 ? '' : 's'}`;
  return `${ms} ms`;
}

/**
 * The expiry of a new secret: `now + defaultMs` when none is asked for, else the asked-for date
 * when it lies between `now + minMs` and `now + maxMs`; otherwise an issue on `expiresAt` (and
 * the default, which the caller's `throwIfAny` discards).
 */
export function resolveExpiry(
  issues: Issues,
  value: Date | undefined,
  now: Date,
  bounds: ExpiryBounds,
): Date {
  if (value === undefined) return new Date(now.getTime() + bounds.defaultMs);
  if (!isDate(value)) issues.add('expiresAt', 'must be a date-time');
  else if (value.getTime() < now.getTime() + bounds.minMs)
    issues.add('expiresAt', `must be at least ${describeMs(bounds.minMs)} in the future`);
  else if (value.getTime() > now.getTime() + bounds.maxMs)
    issues.add('expiresAt', `must be at most ${describeMs(bounds.maxMs)} in the future`);
  else return value;
  return new Date(now.getTime() + bounds.defaultMs);
}

/** By-id and list access to one table of secret-bearing rows. */
export interface SecretRows<R extends SecretRow, T> {
  /** One row by id; NOT_FOUND when there is none, VALIDATION for a malformed id. */
  get(ctx: DomainContext, id: string): Promise<T>;
  /**
   * Revokes a row by id under a row lock. `refuse` throws for a row that may not be revoked (it
   * sees the row before anything is changed). Idempotent: an already revoked row comes back
   * unchanged with `revoked: false`, so the caller emits its event only on `revoked: true`.
   */
  revoke(ctx: DomainContext, id: string, refuse: (row: R) => void): Promise<{ item: T; revoked: boolean }>;
  /** One newest-first page of the rows the filter selects, after `cursor`. */
  list(
    ctx: DomainContext,
    f: Filter,
    limit: number,
    cursor: string | undefined,
  ): Promise<{ items: T[]; nextCursor: string | null }>;
}

export function secretRows<R extends SecretRow, T extends { createdAt: Date; id: string }>(
  t: SecretTable<R, T>,
): SecretRows<R, T> {
  return {
    async get(ctx, id) {
      const { rows } = await ctx.client.query<R>(`SELECT ${t.columns} FROM ${t.table} WHERE id = $1`, [
        assertUuid(id, t.idPath),
      ]);
      if (!rows[0]) throw notFound(t.entity, id);
      return t.toItem(ctx, rows[0]);
    },
    async revoke(ctx, id, refuse) {
      const { rows } = await ctx.client.query<R>(
        `SELECT ${t.columns} FROM ${t.table} WHERE id = $1 FOR UPDATE`,
        [assertUuid(id, t.idPath)],
      );
      const row = rows[0];
      if (!row) throw notFound(t.entity, id);
      refuse(row);
      if (row.revoked_at) return { item: t.toItem(ctx, row), revoked: false };
      const { rows: updated } = await ctx.client.query<R>(
        `UPDATE ${t.table} SET revoked_at = $2 WHERE id = $1 RETURNING ${t.columns}`,
        [row.id, nowOf(ctx)],
      );
      return { item: t.toItem(ctx, updated[0]!), revoked: true };
    },
    async list(ctx, f, limit, cursor) {
      if (cursor !== undefined) f.where.push(newestFirstAfter(cursor, f.p));
      const { rows } = await ctx.client.query<R>(
        `SELECT ${t.columns} FROM ${t.table} ${f.where.length ? `WHERE ${f.where.join(' AND ')}` : ''}
          ORDER BY created_at DESC, id DESC LIMIT ${f.p(limit + 1)}`,
        f.params,
      );
      return newestFirstPage(rows, limit, (r) => t.toItem(ctx, r));
    },
  };
}

/** A WHERE clause under construction: conditions and their parameters, `p` adding one. */
export interface Filter {
  where: string[];
  params: unknown[];
  p: (value: unknown) => string;
}

export function newFilter(): Filter {
  const where: string[] = [];
  const params: unknown[] = [];
  return { where, params, p: (v) => `$${params.push(v)}` };
}

/**
 * Adds the condition for `status` (validated against `statuses`; `byStatus` builds the SQL,
 * adding parameters with `p`) to the filter. Nothing for an absent status.
 */
export function filterByStatus<S extends string>(
  f: Filter,
  status: S | undefined,
  statuses: readonly S[],
  byStatus: Record<S, (p: Filter['p']) => string>,
): void {
  if (status === undefined) return;
  if (!statuses.includes(status)) throw invalid('status', `must be one of ${statuses.join(', ')}`);
  f.where.push(byStatus[status](f.p));
}
