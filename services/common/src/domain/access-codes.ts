/**
 * Patient access codes (DESIGN §7): staff hand a customer a short code (on paper, by SMS) that
 * the SSO exchanges for a narrow token. Issued, listed and revoked here; `verifyAccessCode` is
 * the check the SSO's exchange runs.
 *
 * - Format: 8 characters from a 30-symbol alphabet without look-alikes (no 0/O, 1/I/L, no U;
 *   Crockford-like), shown as `XXXX-XXXX`: 30^8 ≈ 6.6·10^11 (≈ 39 bits). Input is
 *   case-insensitive and ignores spaces and dashes.
 * - At rest only a keyed hash: HMAC-SHA256 under a key derived from the tenant's DEK by the
 *   blind-index derivation (HKDF, `access_codes|code_hash`). 39 bits fall to an offline search
 *   in hours, so a plain hash would make a database dump enough to recover live codes; with
 *   the key in the KMS-wrapped DEK it is not. Lookups compute the HMAC under every held key
 *   version, so codes issued before a key rotation still verify.
 * - A code alone is not enough: the exchange also needs a second factor the customer knows
 *   (birth date, phone or e-mail on file). A wrong second factor counts an attempt; at
 *   `max_attempts` the code locks. The code row is locked (`FOR UPDATE`) while an attempt is
 *   judged, so concurrent attempts are counted exactly, never lost. An unknown code counts
 *   nothing (there is no row to count on): guessing codes is throttled by the SSO's rate
 *   limits, and the 39-bit space makes blind guessing hopeless under them.
 * - Single use: a successful verification stamps `used_at`.
 * - `verifyAccessCode` returns a typed result instead of throwing, so the caller COMMITS the
 *   transaction after a failed attempt — a throw would roll back the attempt counter.
 */
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { normalizeEmail, normalizePhone } from '../crypto/envelope.ts';
import { defineErrors } from '../errors.ts';
import { enqueue } from '../events/outbox.ts';
import {
  assertUuid,
  attempt,
  clampLimit,
  DEFAULT_EVENT_SOURCE,
  newId,
  nowOf,
  type DomainContext,
} from './context.ts';
import { getCustomer, type Customer } from './customers.ts';
import { Issues, pgCode } from './errors.ts';
import { filterByStatus, newFilter, resolveExpiry, secretRows } from './secret-tokens.ts';

export const AccessCodeErrors = defineErrors({
  /** revoke of a code that was already exchanged */
  ACCESS_CODE_USED: { status: 409, message: 'The access code was already used and cannot be revoked' },
});

/** No 0/O, 1/I/L, U: nothing a patient can misread off paper. */
export const ACCESS_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTVWXYZ';
export const ACCESS_CODE_LENGTH = 8;
export const ACCESS_CODE_DEFAULT_TTL_MS = 24 * 60 * 60 * 1000;
export const ACCESS_CODE_MAX_TTL_MS = 30 * 24 * 60 * 60 * 1000;
export const ACCESS_CODE_MIN_TTL_MS = 5 * 60 * 1000;
export const ACCESS_CODE_DEFAULT_MAX_ATTEMPTS = 5;
/** Upper bound for `maxAttempts`: more would let a guessed second factor (birth dates) through. */
export const ACCESS_CODE_MAX_ATTEMPTS_LIMIT = 10;

export const ACCESS_CODE_STATUSES = ['active', 'used', 'revoked', 'locked', 'expired'] as const;
export type AccessCodeStatus = (typeof ACCESS_CODE_STATUSES)[number];

export const ACCESS_CODE_EVENT_TYPES = {
  issued: 'io.simptu.access-code.issued',
  revoked: 'io.simptu.access-code.revoked',
  used: 'io.simptu.access-code.used',
  locked: 'io.simptu.access-code.locked',
} as const;

export interface AccessCode {
  id: string;
  customerId: string;
  status: AccessCodeStatus;
  expiresAt: Date;
  attempts: number;
  maxAttempts: number;
  revokedAt: Date | null;
  usedAt: Date | null;
  createdBy: string | null;
  createdAt: Date;
}

export interface IssueAccessCodeInput {
  customerId: string;
  /** @default now + 24 h; 5 minutes .. 30 days from now */
  expiresAt?: Date;
  /** wrong second factors before the code locks; @default 5, 1..10 */
  maxAttempts?: number;
}

export interface IssuedAccessCode {
  accessCode: AccessCode;
  /** `XXXX-XXXX`, returned only here; the database keeps a keyed hash */
  code: string;
}

/** A random code, `XXXX-XXXX`, uniform over the alphabet (`randomInt` rejects modulo bias). */
export function generateAccessCode(): string {
  let s = '';
  for (let i = 0; i < ACCESS_CODE_LENGTH; i++)
    s += ACCESS_CODE_ALPHABET[randomInt(ACCESS_CODE_ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4)}`;
}

/**
 * The 8 significant characters of user input (upper-cased, spaces and dashes dropped), or null
 * when it can't be a code. Pure.
 */
export function normalizeAccessCode(input: string): string | null {
  if (typeof input !== 'string' || input.length > 32) return null;
  const v = input.normalize('NFKC').toUpperCase().replace(/[\s-]/g, '');
  if (v.length !== ACCESS_CODE_LENGTH) return null;
  for (const ch of v) if (!ACCESS_CODE_ALPHABET.includes(ch)) return null;
  return v;
}

const HASH_TABLE = 'access_codes';
const HASH_COLUMN = 'code_hash';

/** Keyed hashes of a normalized code under every key version the tenant holds, newest first. */
function codeHashes(ctx: DomainContext, normalized: string): Buffer[] {
  return ctx.cipher.blindIndexes(HASH_TABLE, HASH_COLUMN, 'text', normalized);
}

/** The status at `now`; precedence used > revoked > locked > expired > active. Pure. */
export function accessCodeStatus(
  r: { usedAt: Date | null; revokedAt: Date | null; attempts: number; maxAttempts: number; expiresAt: Date },
  now: Date,
): AccessCodeStatus {
  if (r.usedAt) return 'used';
  if (r.revokedAt) return 'revoked';
  if (r.attempts >= r.maxAttempts) return 'locked';
  return r.expiresAt.getTime() <= now.getTime() ? 'expired' : 'active';
}

interface AccessCodeRow {
  id: string;
  customer_id: string;
  expires_at: Date;
  attempts: number;
  max_attempts: number;
  revoked_at: Date | null;
  used_at: Date | null;
  created_by: string | null;
  created_at: Date;
}

const COLUMNS =
  'id, customer_id, expires_at, attempts, max_attempts, revoked_at, used_at, created_by, created_at';

function toAccessCode(ctx: DomainContext, r: AccessCodeRow): AccessCode {
  const base = {
    usedAt: r.used_at,
    revokedAt: r.revoked_at,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    expiresAt: r.expires_at,
  };
  return {
    id: r.id,
    customerId: r.customer_id,
    status: accessCodeStatus(base, nowOf(ctx)),
    expiresAt: r.expires_at,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    revokedAt: r.revoked_at,
    usedAt: r.used_at,
    createdBy: r.created_by,
    createdAt: r.created_at,
  };
}

async function emit(ctx: DomainContext, type: string, c: AccessCode): Promise<void> {
  await enqueue(ctx.client, ctx.cipher, {
    type,
    source: ctx.source ?? DEFAULT_EVENT_SOURCE,
    aggregateType: 'access-code',
    aggregateId: c.id,
    subject: `access-codes/${c.id}`,
    data: {
      accessCodeId: c.id,
      customerId: c.customerId,
      status: c.status,
      expiresAt: c.expiresAt.toISOString(),
      attempts: c.attempts,
      maxAttempts: c.maxAttempts,
    },
  });
}

const ROWS = secretRows<AccessCodeRow, AccessCode>({
  table: 'access_codes',
  columns: COLUMNS,
  entity: 'accessCode',
  idPath: 'accessCodeId',
  toItem: toAccessCode,
});

/**
 * Issues a code for a customer of the tenant. NOT_FOUND for an unknown customer, VALIDATION
 * for a bad expiry or attempt limit. `actor` is the issuing staff member's `sub`.
 */
export async function issueAccessCode(
  ctx: DomainContext,
  input: IssueAccessCodeInput,
  actor?: { sub: string },
): Promise<IssuedAccessCode> {
  const issues = new Issues();
  const now = nowOf(ctx);
  const expiresAt = resolveExpiry(issues, input.expiresAt, now, {
    defaultMs: ACCESS_CODE_DEFAULT_TTL_MS,
    minMs: ACCESS_CODE_MIN_TTL_MS,
    maxMs: ACCESS_CODE_MAX_TTL_MS,
  });
  const maxAttempts = input.maxAttempts ?? ACCESS_CODE_DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > ACCESS_CODE_MAX_ATTEMPTS_LIMIT)
    issues.add('maxAttempts', `must be an integer 1..${ACCESS_CODE_MAX_ATTEMPTS_LIMIT}`);
  issues.throwIfAny();
  const customerId = assertUuid(input.customerId, 'customerId');
  await getCustomer(ctx, customerId);

  // A hash collision with a live code of the tenant (1 in 6.6·10^11 per pair) gets a new code.
  for (let i = 0; ; i++) {
    const code = generateAccessCode();
    const hash = ctx.cipher.blindIndex(HASH_TABLE, HASH_COLUMN, 'text', normalizeAccessCode(code)!);
    const r = await attempt(ctx.client, () =>
      ctx.client.query<AccessCodeRow>(
        `INSERT INTO access_codes (id, customer_id, code_hash, expires_at, max_attempts, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
        [newId(), customerId, hash, expiresAt, maxAttempts, actor?.sub ?? null, now],
      ),
    );
    if (r.ok) {
      const accessCode = toAccessCode(ctx, r.value.rows[0]!);
      await emit(ctx, ACCESS_CODE_EVENT_TYPES.issued, accessCode);
      return { accessCode, code };
    }
    if (pgCode(r.error) !== '23505' || i >= 3) throw r.error;
  }
}

export async function getAccessCode(ctx: DomainContext, id: string): Promise<AccessCode> {
  return ROWS.get(ctx, id);
}

export interface ListAccessCodesQuery {
  customerId?: string;
  status?: AccessCodeStatus;
  /** @default 50, at most 200 */
  limit?: number;
  cursor?: string;
}

export interface AccessCodePage {
  items: AccessCode[];
  nextCursor: string | null;
}

/** Newest first, keyset-paginated. Codes are never returned (only their keyed hashes exist). */
export async function listAccessCodes(
  ctx: DomainContext,
  q: ListAccessCodesQuery = {},
): Promise<AccessCodePage> {
  const limit = clampLimit(q.limit);
  const f = newFilter();
  if (q.customerId !== undefined)
    f.where.push(`customer_id = ${f.p(assertUuid(q.customerId, 'customerId'))}`);
  const live = 'used_at IS NULL AND revoked_at IS NULL';
  filterByStatus(f, q.status, ACCESS_CODE_STATUSES, {
    used: () => 'used_at IS NOT NULL',
    revoked: () => 'used_at IS NULL AND revoked_at IS NOT NULL',
    locked: () => `${live} AND attempts >= max_attempts`,
    expired: (p) => `${live} AND attempts < max_attempts AND expires_at <= ${p(nowOf(ctx))}`,
    active: (p) => `${live} AND attempts < max_attempts AND expires_at > ${p(nowOf(ctx))}`,
  });
  return ROWS.list(ctx, f, limit, q.cursor);
}

/**
 * Revokes a code. Idempotent (a revoked code is returned unchanged, no second event); an
 * expired or locked code may be revoked; a used one is ACCESS_CODE_USED (409).
 */
export async function revokeAccessCode(ctx: DomainContext, id: string): Promise<AccessCode> {
  const { item, revoked } = await ROWS.revoke(ctx, id, (row) => {
    if (row.used_at) throw new AccessCodeErrors.ACCESS_CODE_USED({ details: { accessCodeId: row.id } });
  });
  if (revoked) await emit(ctx, ACCESS_CODE_EVENT_TYPES.revoked, item);
  return item;
}

/** What the customer proves besides the code: one fact on file. */
export type SecondFactor = { birthDate: string } | { phone: string } | { email: string };

export type AccessCodeFailure =
  /** malformed or unknown code: nothing counted */
  | 'invalid'
  | 'expired'
  | 'revoked'
  | 'used'
  /** attempts were exhausted before this attempt (the one that exhausts them is a mismatch with 0 remaining) */
  | 'locked'
  /** the code is right, the second factor is not; one attempt counted */
  | 'second_factor_mismatch';

export type AccessCodeVerification =
  | { ok: true; accessCodeId: string; customerId: string }
  | {
      ok: false;
      reason: AccessCodeFailure;
      /** absent for `invalid` (no code matched) */
      accessCodeId?: string;
      /** for `second_factor_mismatch` and `locked` */
      attemptsRemaining?: number;
    };

export interface VerifyAccessCodeOptions {
  secondFactor: SecondFactor;
}

/** SHA-256 then constant-time compare: no early exit that tells how much of a value matched. */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

function secondFactorMatches(customer: Customer, f: SecondFactor): boolean {
  try {
    if ('birthDate' in f)
      return customer.birthDate !== null && sameSecret(customer.birthDate, f.birthDate.trim());
    if ('phone' in f) return customer.phone !== null && sameSecret(customer.phone, normalizePhone(f.phone));
    if ('email' in f) return customer.email !== null && sameSecret(customer.email, normalizeEmail(f.email));
  } catch {
    // a second factor that doesn't even parse is a wrong one
  }
  return false;
}

/**
 * Checks a code and its second factor, counting a wrong second factor as an attempt and
 * stamping a right one as used — both in the caller's transaction, which must COMMIT whatever
 * the result (see the file comment). Never throws for bad input; a malformed code or second
 * factor is simply a failed verification.
 */
export async function verifyAccessCode(
  ctx: DomainContext,
  code: string,
  opts: VerifyAccessCodeOptions,
): Promise<AccessCodeVerification> {
  const normalized = normalizeAccessCode(code);
  if (normalized === null) return { ok: false, reason: 'invalid' };
  // The row lock serializes concurrent attempts on one code: each sees the previous count.
  const { rows } = await ctx.client.query<AccessCodeRow>(
    `SELECT ${COLUMNS} FROM access_codes WHERE code_hash = ANY($1::bytea[]) FOR UPDATE`,
    [codeHashes(ctx, normalized)],
  );
  const row = rows[0];
  if (!row) return { ok: false, reason: 'invalid' };
  const now = nowOf(ctx);
  const current = toAccessCode(ctx, row);
  if (current.status !== 'active')
    return {
      ok: false,
      reason: current.status,
      accessCodeId: row.id,
      ...(current.status === 'locked' ? { attemptsRemaining: 0 } : {}),
    };

  const customer = await getCustomer(ctx, row.customer_id);
  const f = opts?.secondFactor as SecondFactor | undefined;
  if (f && typeof f === 'object' && secondFactorMatches(customer, f)) {
    const { rows: used } = await ctx.client.query<AccessCodeRow>(
      `UPDATE access_codes SET used_at = $2 WHERE id = $1 RETURNING ${COLUMNS}`,
      [row.id, now],
    );
    await emit(ctx, ACCESS_CODE_EVENT_TYPES.used, toAccessCode(ctx, used[0]!));
    return { ok: true, accessCodeId: row.id, customerId: row.customer_id };
  }
  const { rows: counted } = await ctx.client.query<AccessCodeRow>(
    `UPDATE access_codes SET attempts = attempts + 1 WHERE id = $1 RETURNING ${COLUMNS}`,
    [row.id],
  );
  const after = toAccessCode(ctx, counted[0]!);
  const attemptsRemaining = Math.max(0, after.maxAttempts - after.attempts);
  if (after.status === 'locked') await emit(ctx, ACCESS_CODE_EVENT_TYPES.locked, after);
  return { ok: false, reason: 'second_factor_mismatch', accessCodeId: row.id, attemptsRemaining };
}
