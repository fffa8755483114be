/**
 * Users of a tenant (DESIGN §7: tenants are organizations). Passwords are hashed with argon2id
 * at OWASP's recommended minimum (m = 19 MiB, t = 2, p = 1); a login for an unknown address
 * still runs one verification against a dummy hash, so response time doesn't tell which
 * addresses exist.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id
 */
import argon2 from 'argon2';
import type pg from 'pg';
import { isRole, type Role } from '@simptu/common';

export const ARGON2_OPTIONS = {
  type: argon2.argon2id,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;
export const PASSWORD_MIN = 10;
export const PASSWORD_MAX = 256;

export interface User {
  id: string;
  tenant: string;
  email: string;
  roles: Role[];
  status: 'active' | 'disabled';
  createdAt: Date;
}

interface UserRow {
  id: string;
  tenant: string;
  email: string;
  roles: string[];
  status: 'active' | 'disabled';
  created_at: Date;
  password_hash: string;
}

const COLUMNS = 'id, tenant, email, roles, status, created_at, password_hash';

function toUser(r: UserRow): User {
  return {
    id: r.id,
    tenant: r.tenant,
    email: r.email,
    roles: r.roles.filter(isRole),
    status: r.status,
    createdAt: r.created_at,
  };
}

export function normalizeLoginEmail(email: string): string | null {
  if (typeof email !== 'string') return null;
  const e = email.trim().toLowerCase();
  if (e.length < 3 || e.length > 254 || /\p{Cc}|\s/u.test(e) || !/^[^@]+@[^@]+\.[^@]+$/.test(e)) return null;
  return e;
}

/** A reason the password is not acceptable, or null. Length only (NIST SP 800-63B §5.1.1.2). */
export function passwordProblem(password: string): string | null {
  if (typeof password !== 'string' || password.length < PASSWORD_MIN)
    return `The password must have at least ${PASSWORD_MIN} characters.`;
  if (password.length > PASSWORD_MAX) return `The password must have at most ${PASSWORD_MAX} characters.`;
  return null;
}

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, ARGON2_OPTIONS);
}

let dummyHash: Promise<string> | undefined;

export class UserExistsError extends Error {
  constructor() {
    super('a user with this e-mail address exists in the tenant');
    this.name = 'UserExistsError';
  }
}

export interface CreateUserInput {
  tenant: string;
  email: string;
  password: string;
  roles: Role[];
  invitationId?: string;
}

type Db = Pick<pg.ClientBase, 'query'>;

export async function createUser(db: Db, input: CreateUserInput): Promise<User> {
  const email = normalizeLoginEmail(input.email);
  if (!email) throw new TypeError('invalid e-mail address');
  const problem = passwordProblem(input.password);
  if (problem) throw new TypeError(problem);
  const hash = await hashPassword(input.password);
  try {
    const { rows } = await db.query<UserRow>(
      `INSERT INTO auth.users (tenant, email, password_hash, roles, invitation_id) VALUES ($1, $2, $3, $4, $5)
       RETURNING ${COLUMNS}`,
      [input.tenant, email, hash, input.roles, input.invitationId ?? null],
    );
    return toUser(rows[0]!);
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new UserExistsError();
    throw err;
  }
}

export async function findUserById(db: Db, id: string): Promise<User | undefined> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM auth.users WHERE id = $1`, [id]);
  return rows[0] ? toUser(rows[0]) : undefined;
}

export async function findUserByEmail(db: Db, tenant: string, email: string): Promise<User | undefined> {
  const e = normalizeLoginEmail(email);
  if (!e) return undefined;
  const { rows } = await db.query<UserRow>(
    `SELECT ${COLUMNS} FROM auth.users WHERE tenant = $1 AND email = $2`,
    [tenant, e],
  );
  return rows[0] ? toUser(rows[0]) : undefined;
}

export type LoginCheck = { ok: true; user: User } | { ok: false; reason: 'invalid_credentials' | 'disabled' };

/** Checks an e-mail and password within one tenant. Constant work whether or not the user exists. */
export async function checkPassword(
  db: Db,
  tenant: string,
  email: string,
  password: string,
): Promise<LoginCheck> {
  const e = normalizeLoginEmail(email);
  const { rows } = e
    ? await db.query<UserRow>(`SELECT ${COLUMNS} FROM auth.users WHERE tenant = $1 AND email = $2`, [
        tenant,
        e,
      ])
    : { rows: [] as UserRow[] };
  const row = rows[0];
  const pw = typeof password === 'string' ? password.slice(0, PASSWORD_MAX) : '';
  if (!row) {
    dummyHash ??= hashPassword('simptu-dummy-password');
    await argon2.verify(await dummyHash, pw).catch(() => false);
    return { ok: false, reason: 'invalid_credentials' };
  }
  const ok = await argon2.verify(row.password_hash, pw).catch(() => false);
  if (!ok) return { ok: false, reason: 'invalid_credentials' };
  if (row.status !== 'active') return { ok: false, reason: 'disabled' };
  return { ok: true, user: toUser(row) };
}

export async function setPassword(db: Db, userId: string, password: string): Promise<void> {
  const problem = passwordProblem(password);
  if (problem) throw new TypeError(problem);
  await db.query(
    `UPDATE auth.users SET password_hash = $2, password_changed_at = now(), updated_at = now() WHERE id = $1`,
    [userId, await hashPassword(password)],
  );
}
