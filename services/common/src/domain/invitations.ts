/**
 * Invitations (DESIGN §7): an owner or admin invites someone, by e-mail address or phone
 * number, to join the tenant with a role. Accepting (creating the user) is the SSO service's
 * job; it calls `findInvitationByToken` and `acceptInvitation` here.
 *
 * - The contact is personal data: encrypted with the tenant's DEK and bound to its row and
 *   column, with a blind index beside it (DESIGN §6) so a second pending invitation for the
 *   same person can be refused without decrypting the table.
 * - The token is 32 random bytes (base64url, 43 characters), returned ONCE by
 *   `createInvitation`. Only its SHA-256 is stored: a 256-bit random secret needs no slow or
 *   keyed hash (nothing to brute-force), and a database dump yields no usable token.
 * - Who may invite whom: an owner invites admin, staff, customer; an admin invites staff,
 *   customer; nobody invites an owner (ownership is transferred in the SSO, not by invitation).
 * - Status is computed, never stored: `accepted` / `revoked` when stamped, else `expired` once
 *   `expires_at` has passed, else `pending`.
 * - Single use: the accept is one conditional UPDATE, so of two concurrent accepts exactly one
 *   wins. Accepting a second time or a revoked invitation is INVITATION_NOT_PENDING (409);
 *   an expired one is INVITATION_EXPIRED (410 Gone: the invitation existed and will never be
 *   valid again, which the SSO's page explains differently from "already used").
 * - Events `io.simptu.invitation.created|revoked|accepted` go to the tenant's outbox in the
 *   same transaction; they carry ids, role and channel, never the contact or the token.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FieldLocation } from '../crypto/envelope.ts';
import { normalizeEmail, normalizePhone } from '../crypto/envelope.ts';
import { defineErrors, ForbiddenError } from '../errors.ts';
import { enqueue } from '../events/outbox.ts';
import type { Role } from '../context.ts';
import { clampLimit, DEFAULT_EVENT_SOURCE, newId, nowOf, type DomainContext } from './context.ts';
import { Issues, invalid, NotFoundError } from './errors.ts';
import { filterByStatus, newFilter, resolveExpiry, secretRows } from './secret-tokens.ts';

export const InvitationErrors = defineErrors({
  /** accept or revoke of an invitation that is already accepted (or revoked, for accept) */
  INVITATION_NOT_PENDING: { status: 409, message: 'The invitation is no longer pending' },
  /** accept of an invitation past its expiry */
  INVITATION_EXPIRED: { status: 410, message: 'The invitation has expired' },
  /** a pending invitation for the same e-mail address or phone number exists */
  INVITATION_EXISTS: {
    status: 409,
    message: 'A pending invitation for this e-mail address or phone number exists; revoke it first',
  },
});

/** Roles an invitation may carry (never `owner`). */
export const INVITABLE_ROLES = ['admin', 'staff', 'customer'] as const;
export type InvitableRole = (typeof INVITABLE_ROLES)[number];
export const INVITATION_STATUSES = ['pending', 'accepted', 'revoked', 'expired'] as const;
export type InvitationStatus = (typeof INVITATION_STATUSES)[number];

export const INVITATION_EVENT_TYPES = {
  created: 'io.simptu.invitation.created',
  revoked: 'io.simptu.invitation.revoked',
  accepted: 'io.simptu.invitation.accepted',
} as const;

const DAY_MS = 24 * 60 * 60 * 1000;
export const INVITATION_DEFAULT_TTL_MS = 7 * DAY_MS;
export const INVITATION_MAX_TTL_MS = 30 * DAY_MS;
/** Shortest expiry accepted: anything shorter can't reasonably reach a person. */
export const INVITATION_MIN_TTL_MS = 5 * 60 * 1000;
const TOKEN_BYTES = 32;
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export interface Invitation {
  id: string;
  email: string | null;
  phone: string | null;
  role: InvitableRole;
  status: InvitationStatus;
  expiresAt: Date;
  acceptedAt: Date | null;
  acceptedBy: string | null;
  revokedAt: Date | null;
  createdBy: string;
  createdAt: Date;
}

/** Who is acting: the verified token's `sub` and roles. */
export interface Actor {
  sub: string;
  roles: readonly Role[];
}

export interface CreateInvitationInput {
  /** one of email and phone is required; both may be given */
  email?: string | null;
  phone?: string | null;
  role: InvitableRole;
  /** @default now + 7 days; at most now + 30 days */
  expiresAt?: Date;
}

export interface CreatedInvitation {
  invitation: Invitation;
  /** the raw token, returned only here; the database keeps its SHA-256 */
  token: string;
}

const TABLE = 'invitations';
type EncryptedColumn = 'email' | 'phone';

export function invitationFieldLocation(id: string, column: EncryptedColumn): FieldLocation {
  return { table: TABLE, column, rowId: id };
}

/** SHA-256 of the token's text: what `token_hash` holds. Pure. */
export function hashInvitationToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A new random token: 32 bytes, base64url (43 characters). */
export function newInvitationToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/** The roles `inviter` may hand out (owner → admin, staff, customer; admin → staff, customer). Pure. */
export function invitableRolesFor(inviterRoles: readonly Role[]): InvitableRole[] {
  if (inviterRoles.includes('owner')) return ['admin', 'staff', 'customer'];
  if (inviterRoles.includes('admin')) return ['staff', 'customer'];
  return [];
}

/** The status of an invitation at `now`. Pure. */
export function invitationStatus(
  r: { acceptedAt: Date | null; revokedAt: Date | null; expiresAt: Date },
  now: Date,
): InvitationStatus {
  if (r.acceptedAt) return 'accepted';
  if (r.revokedAt) return 'revoked';
  return r.expiresAt.getTime() <= now.getTime() ? 'expired' : 'pending';
}

interface InvitationRow {
  id: string;
  email: Buffer | null;
  phone: Buffer | null;
  role: InvitableRole;
  expires_at: Date;
  accepted_at: Date | null;
  accepted_by: string | null;
  revoked_at: Date | null;
  created_by: string;
  created_at: Date;
}

const COLUMNS =
  'id, email, phone, role, expires_at, accepted_at, accepted_by, revoked_at, created_by, created_at';

function toInvitation(ctx: DomainContext, r: InvitationRow): Invitation {
  const dec = (col: EncryptedColumn) => {
    const v = r[col];
    return v === null ? null : ctx.cipher.decryptString(v, invitationFieldLocation(r.id, col));
  };
  const base = { acceptedAt: r.accepted_at, revokedAt: r.revoked_at, expiresAt: r.expires_at };
  return {
    id: r.id,
    email: dec('email'),
    phone: dec('phone'),
    role: r.role,
    status: invitationStatus(base, nowOf(ctx)),
    expiresAt: r.expires_at,
    acceptedAt: r.accepted_at,
    acceptedBy: r.accepted_by,
    revokedAt: r.revoked_at,
    createdBy: r.created_by,
    createdAt: r.created_at,
  };
}

const ROWS = secretRows<InvitationRow, Invitation>({
  table: TABLE,
  columns: COLUMNS,
  entity: 'invitation',
  idPath: 'invitationId',
  toItem: toInvitation,
});

async function emit(ctx: DomainContext, type: string, inv: Invitation, extra: Record<string, unknown> = {}) {
  await enqueue(ctx.client, ctx.cipher, {
    type,
    source: ctx.source ?? DEFAULT_EVENT_SOURCE,
    aggregateType: 'invitation',
    aggregateId: inv.id,
    subject: `invitations/${inv.id}`,
    data: {
      invitationId: inv.id,
      role: inv.role,
      // which channel to deliver the invitation on; the address itself stays in the table
      channels: [...(inv.email ? ['email'] : []), ...(inv.phone ? ['phone'] : [])],
      expiresAt: inv.expiresAt.toISOString(),
      createdBy: inv.createdBy,
      ...extra,
    },
  });
}

/**
 * Creates an invitation and returns it with its raw token (the only time the token exists
 * outside the caller's hands). VALIDATION for bad contact/role/expiry, FORBIDDEN when `actor`
 * may not hand out `role`, INVITATION_EXISTS when a pending one for the same contact exists.
 */
export async function createInvitation(
  ctx: DomainContext,
  input: CreateInvitationInput,
  actor: Actor,
): Promise<CreatedInvitation> {
  const issues = new Issues();
  let email: string | null = null;
  let phone: string | null = null;
  if (input.email != null)
    try {
      // normalizeEmail's shape check lets control characters through; an invitation is sent
      // to this address, so refuse them here.
      if (typeof input.email !== 'string' || input.email.length > 254 || /\p{Cc}/u.test(input.email))
        throw new TypeError('bad');
      email = normalizeEmail(input.email);
    } catch {
      issues.add('email', 'must be an e-mail address');
    }
  if (input.phone != null)
    try {
      phone = normalizePhone(String(input.phone));
    } catch {
      issues.add('phone', 'must be a phone number in international format, e.g. +40712345678');
    }
  if (input.email == null && input.phone == null)
    issues.add('email', 'an e-mail address or a phone number is required');
  if (!(INVITABLE_ROLES as readonly string[]).includes(input.role))
    issues.add('role', `must be one of ${INVITABLE_ROLES.join(', ')}`);
  const now = nowOf(ctx);
  const expiresAt = resolveExpiry(issues, input.expiresAt, now, {
    defaultMs: INVITATION_DEFAULT_TTL_MS,
    minMs: INVITATION_MIN_TTL_MS,
    maxMs: INVITATION_MAX_TTL_MS,
  });
  issues.throwIfAny();
  if (!invitableRolesFor(actor.roles).includes(input.role))
    throw new ForbiddenError(`Your role may not invite a${input.role === 'admin' ? 'n' : ''} ${input.role}`, {
      details: { role: input.role },
    });

  const emailIdx = email === null ? null : ctx.cipher.blindIndex(TABLE, 'email', 'email', email);
  const phoneIdx = phone === null ? null : ctx.cipher.blindIndex(TABLE, 'phone', 'phone', phone);
  // Serialize creates for the same contact (no unique index can express "pending"), then refuse
  // a second pending invitation: one live link per person keeps revocation meaningful.
  for (const idx of [emailIdx, phoneIdx]) {
    if (idx)
      await ctx.client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        `simptu.invitation.${idx.toString('hex')}`,
      ]);
  }
  for (const [field, value] of [
    ['email', email],
    ['phone', phone],
  ] as const) {
    if (value === null) continue;
    const { rows } = await ctx.client.query<{ id: string }>(
      `SELECT id FROM invitations WHERE ${field}_bidx = ANY($1::bytea[])
          AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 LIMIT 1`,
      [ctx.cipher.blindIndexes(TABLE, field, field, value), now],
    );
    if (rows[0])
      throw new InvitationErrors.INVITATION_EXISTS({ details: { field, invitationId: rows[0].id } });
  }

  const id = newId();
  const token = newInvitationToken();
  const enc = (col: EncryptedColumn, v: string | null) =>
    v === null ? null : ctx.cipher.encrypt(v, invitationFieldLocation(id, col));
  const { rows } = await ctx.client.query<InvitationRow>(
    `INSERT INTO invitations (id, email, email_bidx, phone, phone_bidx, role, token_hash, expires_at, created_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLUMNS}`,
    [
      id,
      enc('email', email),
      emailIdx,
      enc('phone', phone),
      phoneIdx,
      input.role,
      hashInvitationToken(token),
      expiresAt,
      actor.sub,
      now,
    ],
  );
  const invitation = toInvitation(ctx, rows[0]!);
  await emit(ctx, INVITATION_EVENT_TYPES.created, invitation);
  return { invitation, token };
}

export async function getInvitation(ctx: DomainContext, id: string): Promise<Invitation> {
  return ROWS.get(ctx, id);
}

export interface ListInvitationsQuery {
  status?: InvitationStatus;
  role?: InvitableRole;
  /** @default 50, at most 200 */
  limit?: number;
  cursor?: string;
}

export interface InvitationPage {
  items: Invitation[];
  nextCursor: string | null;
}

/** Newest first, keyset-paginated; never returns tokens (only their hashes exist). */
export async function listInvitations(
  ctx: DomainContext,
  q: ListInvitationsQuery = {},
): Promise<InvitationPage> {
  const limit = clampLimit(q.limit);
  const f = newFilter();
  filterByStatus(f, q.status, INVITATION_STATUSES, {
    accepted: () => 'accepted_at IS NOT NULL',
    revoked: () => 'revoked_at IS NOT NULL',
    expired: (p) => `accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= ${p(nowOf(ctx))}`,
    pending: (p) => `accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ${p(nowOf(ctx))}`,
  });
  if (q.role !== undefined) {
    if (!(INVITABLE_ROLES as readonly string[]).includes(q.role))
      throw invalid('role', `must be one of ${INVITABLE_ROLES.join(', ')}`);
    f.where.push(`role = ${f.p(q.role)}`);
  }
  return ROWS.list(ctx, f, limit, q.cursor);
}

/**
 * Revokes an invitation so its token can no longer be accepted. Idempotent: revoking a revoked
 * invitation returns it unchanged (no second event). Revoking an accepted one is
 * INVITATION_NOT_PENDING (409): the user exists; remove them in the SSO instead. An expired
 * invitation may be revoked (it says why it is dead in the list).
 */
export async function revokeInvitation(ctx: DomainContext, id: string): Promise<Invitation> {
  const { item, revoked } = await ROWS.revoke(ctx, id, (row) => {
    if (row.accepted_at)
      throw new InvitationErrors.INVITATION_NOT_PENDING({
        message: 'The invitation was accepted and cannot be revoked',
        details: { invitationId: row.id, status: 'accepted' },
      });
  });
  if (revoked) await emit(ctx, INVITATION_EVENT_TYPES.revoked, item);
  return item;
}

/** The invitation a token belongs to (any status), or null for an unknown or malformed token. */
export async function findInvitationByToken(ctx: DomainContext, token: string): Promise<Invitation | null> {
  if (typeof token !== 'string' || !TOKEN_RE.test(token)) return null;
  const { rows } = await ctx.client.query<InvitationRow>(
    `SELECT ${COLUMNS} FROM invitations WHERE token_hash = $1`,
    [hashInvitationToken(token)],
  );
  return rows[0] ? toInvitation(ctx, rows[0]) : null;
}

export interface AcceptInvitationOptions {
  /** the subject of the user the SSO created for it (recorded as `accepted_by`) */
  acceptedBy?: string;
}

/**
 * Accepts a pending invitation, once. NOT_FOUND for an unknown token, INVITATION_NOT_PENDING
 * (409) when already accepted or revoked, INVITATION_EXPIRED (410) when past its expiry.
 * The caller (the SSO) creates the user in the same unit of work or compensates on failure.
 */
export async function acceptInvitation(
  ctx: DomainContext,
  token: string,
  opts: AcceptInvitationOptions = {},
): Promise<Invitation> {
  if (
    opts.acceptedBy !== undefined &&
    (typeof opts.acceptedBy !== 'string' || opts.acceptedBy.length < 1 || opts.acceptedBy.length > 255)
  )
    throw invalid('acceptedBy', 'must be 1..255 characters');
  const now = nowOf(ctx);
  if (typeof token === 'string' && TOKEN_RE.test(token)) {
    // One conditional UPDATE: of concurrent accepts exactly one sees the row still pending.
    const { rows } = await ctx.client.query<InvitationRow>(
      `UPDATE invitations SET accepted_at = $2, accepted_by = $3
        WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2
        RETURNING ${COLUMNS}`,
      [hashInvitationToken(token), now, opts.acceptedBy ?? null],
    );
    if (rows[0]) {
      const inv = toInvitation(ctx, rows[0]);
      await emit(ctx, INVITATION_EVENT_TYPES.accepted, inv, { acceptedBy: inv.acceptedBy });
      return inv;
    }
  }
  const existing = await findInvitationByToken(ctx, token);
  // The token is the secret: it never goes into an error body.
  if (!existing) throw new NotFoundError('invitation not found');
  if (existing.status === 'expired')
    throw new InvitationErrors.INVITATION_EXPIRED({ details: { invitationId: existing.id } });
  throw new InvitationErrors.INVITATION_NOT_PENDING({
    details: { invitationId: existing.id, status: existing.status },
  });
}
