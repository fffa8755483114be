/**
 * What every domain repository function receives: a connection already inside the tenant's
 * `withTenant` transaction, the tenant's field cipher, and the tenant's time zone. The domain
 * never opens transactions itself, so the API and the agent decide the unit of work (e.g. a
 * booking and the chat message announcing it commit together).
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { FieldCipher } from '../crypto/envelope.ts';
import { invalid } from './errors.ts';

export interface DomainContext {
  /** a client inside `withTenant(pool, tenant, (client) => …)` */
  client: pg.ClientBase;
  /** the tenant's cipher; its `tenant` must be the tenant of the transaction */
  cipher: FieldCipher;
  /** the tenant's IANA time zone (registry `timezone`, spec.timezone), e.g. `Europe/Bucharest` */
  timeZone: string;
  /** @default () => new Date() */
  now?: () => Date;
  /** CloudEvents `source` of the events written; @default '/simptu/domain' */
  source?: string;
}

/** Catalog functions only need the connection. */
export type DbContext = Pick<DomainContext, 'client'>;

export const DEFAULT_EVENT_SOURCE = '/simptu/domain';

export function nowOf(ctx: Pick<DomainContext, 'now'>): Date {
  return ctx.now ? ctx.now() : new Date();
}

/** Channels a customer reaches the tenant by (bookings.source, sessions.channel). */
export const CHANNELS = [
  'web',
  'sms',
  'whatsapp',
  'messenger',
  'instagram',
  'email',
  'phone',
  'staff',
  'api',
] as const;
export type Channel = (typeof CHANNELS)[number];

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID_RE.test(v);
}

/** Throws a 400 for a malformed id (a 404 would hide a client bug; a 500 from pg would be wrong). */
export function assertUuid(v: unknown, path: string): string {
  if (!isUuid(v)) throw invalid(path, 'must be a UUID');
  return v.toLowerCase();
}

export function newId(): string {
  return randomUUID();
}

/** Opaque keyset cursors: base64url JSON. */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

export function decodeCursor<T>(cursor: string, check: (v: unknown) => v is T): T {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (check(v)) return v;
  } catch {
    // fall through
  }
  throw invalid('cursor', 'is not a cursor this endpoint issued');
}

export function clampLimit(limit: number | undefined, def = 50, max = 200): number {
  if (limit === undefined) return def;
  if (!Number.isInteger(limit) || limit < 1 || limit > max)
    throw invalid('limit', `must be an integer 1..${max}`);
  return limit;
}

export type Attempt<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * Runs `fn` under a savepoint: a failed statement rolls back to it and leaves the surrounding
 * transaction usable, so the caller can react (try another resource, read the row that won a
 * race) instead of losing the whole unit of work.
 * @see https://www.postgresql.org/docs/15/sql-savepoint.html
 */
export async function attempt<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<Attempt<T>> {
  await client.query('SAVEPOINT simptu_domain_attempt');
  try {
    const value = await fn();
    await client.query('RELEASE SAVEPOINT simptu_domain_attempt');
    return { ok: true, value };
  } catch (error) {
    await client.query('ROLLBACK TO SAVEPOINT simptu_domain_attempt');
    return { ok: false, error };
  }
}

/** A `(created_at, id)` keyset position, newest first (invitations, ratings, access codes, …). */
type NewestFirstKey = [string, string];
const isNewestFirstKey = (v: unknown): v is NewestFirstKey =>
  Array.isArray(v) &&
  v.length === 2 &&
  typeof v[0] === 'string' &&
  !Number.isNaN(Date.parse(v[0])) &&
  typeof v[1] === 'string' &&
  /^[0-9a-f-]{36}$/.test(v[1]);

/**
 * Keyset pagination newest first: the condition for rows after `cursor` (with `p` adding a
 * parameter), to be combined with `ORDER BY created_at DESC, id DESC LIMIT limit + 1`.
 */
export function newestFirstAfter(cursor: string, p: (value: unknown) => string): string {
  const [at, id] = decodeCursor(cursor, isNewestFirstKey);
  return `(created_at, id) < (${p(new Date(at))}, ${p(id)})`;
}

/** The page from `limit + 1` rows fetched newest first, with the cursor of its last item. */
export function newestFirstPage<R, T extends { createdAt: Date; id: string }>(
  rows: readonly R[],
  limit: number,
  toItem: (row: R) => T,
): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit).map(toItem);
  const last = items[items.length - 1];
  return {
    items,
    nextCursor: rows.length > limit && last ? encodeCursor([last.createdAt.toISOString(), last.id]) : null,
  };
}
