/**
 * Customers (patients, members, guests). Every personal field is encrypted with the tenant's
 * DEK and bound to its row and column (DESIGN §6); phone and e-mail also get blind indexes so
 * they can be looked up without decrypting the table. Lookups compute the index under every
 * key version the tenant holds, so rows written before a key rotation are still found.
 */
import type { FieldLocation } from '../crypto/envelope.ts';
import { normalizeEmail, normalizePhone } from '../crypto/envelope.ts';
import { assertUuid, attempt, newId, type DomainContext } from './context.ts';
import { DomainErrors, Issues, notFound, pgCode } from './errors.ts';
import { parseLocalDate } from './time.ts';

export interface Customer {
  id: string;
  displayName: string | null;
  /** E.164, as normalized on write */
  phone: string | null;
  /** lower-cased, as normalized on write */
  email: string | null;
  /** `YYYY-MM-DD` */
  birthDate: string | null;
  /** BCP 47 */
  locale: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface CustomerInput {
  displayName?: string | null;
  phone?: string | null;
  email?: string | null;
  birthDate?: string | null;
  locale?: string | null;
}

const TABLE = 'customers';
/** The encrypted columns; each ciphertext's AAD names its column and row. */
export const CUSTOMER_ENCRYPTED_COLUMNS = ['display_name', 'phone', 'email', 'birth_date'] as const;
type EncryptedColumn = (typeof CUSTOMER_ENCRYPTED_COLUMNS)[number];

export function customerFieldLocation(id: string, column: EncryptedColumn): FieldLocation {
  return { table: TABLE, column, rowId: id };
}

interface CustomerRow {
  id: string;
  display_name: Buffer | null;
  phone: Buffer | null;
  email: Buffer | null;
  birth_date: Buffer | null;
  locale: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, display_name, phone, email, birth_date, locale, created_at, updated_at';

/** Decrypts a row; a ciphertext that doesn't belong to it throws `DecryptionError`, never returns garbage. */
function toCustomer(ctx: DomainContext, r: CustomerRow): Customer {
  const dec = (col: EncryptedColumn) => {
    const v = r[col];
    return v === null ? null : ctx.cipher.decryptString(v, customerFieldLocation(r.id, col));
  };
  return {
    id: r.id,
    displayName: dec('display_name'),
    phone: dec('phone'),
    email: dec('email'),
    birthDate: dec('birth_date'),
    locale: r.locale,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

interface Normalized {
  displayName: string | null;
  phone: string | null;
  email: string | null;
  birthDate: string | null;
  locale: string | null;
}

/** Validates and normalizes the fields present in `input` (absent → undefined). */
function normalize(input: CustomerInput): Partial<Normalized> {
  const issues = new Issues();
  const out: Partial<Normalized> = {};
  if (input.displayName !== undefined) {
    if (input.displayName === null) out.displayName = null;
    else if (
      typeof input.displayName !== 'string' ||
      input.displayName.trim() === '' ||
      input.displayName.length > 200
    )
      issues.add('displayName', 'must be 1..200 characters');
    else out.displayName = input.displayName.normalize('NFC').trim();
  }
  if (input.phone !== undefined) {
    if (input.phone === null) out.phone = null;
    else
      try {
        out.phone = normalizePhone(String(input.phone));
      } catch {
        issues.add('phone', 'must be a phone number in international format, e.g. +40712345678');
      }
  }
  if (input.email !== undefined) {
    if (input.email === null) out.email = null;
    else
      try {
        if (String(input.email).length > 254) throw new TypeError('too long');
        out.email = normalizeEmail(String(input.email));
      } catch {
        issues.add('email', 'must be an e-mail address');
      }
  }
  if (input.birthDate !== undefined) {
    if (input.birthDate === null) out.birthDate = null;
    else if (
      typeof input.birthDate !== 'string' ||
      !parseLocalDate(input.birthDate) ||
      input.birthDate < '1900-01-01'
    )
      issues.add('birthDate', 'must be a date YYYY-MM-DD');
    else out.birthDate = input.birthDate;
  }
  if (input.locale !== undefined) {
    if (input.locale === null) out.locale = null;
    else
      try {
        const [canonical] = Intl.getCanonicalLocales(String(input.locale));
        if (!canonical) throw new RangeError('empty');
        out.locale = canonical;
      } catch {
        issues.add('locale', 'must be a BCP 47 language tag, e.g. ro-RO');
      }
  }
  issues.throwIfAny();
  return out;
}

/** Another customer holding `phone`/`email` under any key version → CUSTOMER_EXISTS. */
async function assertUnique(ctx: DomainContext, id: string, v: Partial<Normalized>): Promise<void> {
  for (const field of ['phone', 'email'] as const) {
    const value = v[field];
    if (value === undefined || value === null) continue;
    const idx = ctx.cipher.blindIndexes(TABLE, field, field, value);
    const { rows } = await ctx.client.query<{ id: string }>(
      `SELECT id FROM customers WHERE ${field}_bidx = ANY($1::bytea[]) AND id <> $2 LIMIT 1`,
      [idx, id],
    );
    if (rows[0]) throw new DomainErrors.CUSTOMER_EXISTS({ details: { field } });
  }
}

function encryptedValues(ctx: DomainContext, id: string, v: Normalized): unknown[] {
  const enc = (col: EncryptedColumn, value: string | null) =>
    value === null ? null : ctx.cipher.encrypt(value, customerFieldLocation(id, col));
  return [
    enc('display_name', v.displayName),
    enc('phone', v.phone),
    enc('email', v.email),
    enc('birth_date', v.birthDate),
    v.phone === null ? null : ctx.cipher.blindIndex(TABLE, 'phone', 'phone', v.phone),
    v.email === null ? null : ctx.cipher.blindIndex(TABLE, 'email', 'email', v.email),
    v.locale,
  ];
}

/** The unique indexes race: two concurrent creates with the same phone both pass `assertUnique`. */
function mapUniqueViolation(err: unknown): never {
  if (pgCode(err) === '23505') {
    const c = (err as { constraint?: string }).constraint ?? '';
    throw new DomainErrors.CUSTOMER_EXISTS({
      details: { field: c.includes('email') ? 'email' : 'phone' },
      cause: err,
    });
  }
  throw err;
}

export async function createCustomer(ctx: DomainContext, input: CustomerInput): Promise<Customer> {
  const id = newId();
  const v: Normalized = {
    displayName: null,
    phone: null,
    email: null,
    birthDate: null,
    locale: null,
    ...normalize(input),
  };
  await assertUnique(ctx, id, v);
  const r = await attempt(ctx.client, () =>
    ctx.client.query<CustomerRow>(
      `INSERT INTO customers (id, display_name, phone, email, birth_date, phone_bidx, email_bidx, locale)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
      [id, ...encryptedValues(ctx, id, v)],
    ),
  );
  if (!r.ok) mapUniqueViolation(r.error);
  return toCustomer(ctx, r.value.rows[0]!);
}

export async function getCustomer(ctx: DomainContext, id: string): Promise<Customer> {
  const { rows } = await ctx.client.query<CustomerRow>(`SELECT ${COLUMNS} FROM customers WHERE id = $1`, [
    assertUuid(id, 'customerId'),
  ]);
  if (!rows[0]) throw notFound('customer', id);
  return toCustomer(ctx, rows[0]);
}

/**
 * Updates the fields present in `patch` (null clears one). Every encrypted field is rewritten
 * under the active key version, so an update also completes re-encryption of the row.
 */
export async function updateCustomer(
  ctx: DomainContext,
  id: string,
  patch: CustomerInput,
): Promise<Customer> {
  const changes = normalize(patch);
  const { rows: locked } = await ctx.client.query<CustomerRow>(
    `SELECT ${COLUMNS} FROM customers WHERE id = $1 FOR UPDATE`,
    [assertUuid(id, 'customerId')],
  );
  if (!locked[0]) throw notFound('customer', id);
  const current = toCustomer(ctx, locked[0]);
  const v: Normalized = {
    displayName: current.displayName,
    phone: current.phone,
    email: current.email,
    birthDate: current.birthDate,
    locale: current.locale,
    ...changes,
  };
  await assertUnique(ctx, id, changes);
  const r = await attempt(ctx.client, () =>
    ctx.client.query<CustomerRow>(
      `UPDATE customers SET display_name = $2, phone = $3, email = $4, birth_date = $5, phone_bidx = $6,
              email_bidx = $7, locale = $8, updated_at = now()
        WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, ...encryptedValues(ctx, id, v)],
    ),
  );
  if (!r.ok) mapUniqueViolation(r.error);
  return toCustomer(ctx, r.value.rows[0]!);
}

async function findBy(ctx: DomainContext, field: 'phone' | 'email', value: string): Promise<Customer | null> {
  const v = normalize({ [field]: value })[field];
  if (v === undefined || v === null) return null;
  const { rows } = await ctx.client.query<CustomerRow>(
    `SELECT ${COLUMNS} FROM customers WHERE ${field}_bidx = ANY($1::bytea[]) ORDER BY created_at, id LIMIT 1`,
    [ctx.cipher.blindIndexes(TABLE, field, field, v)],
  );
  if (!rows[0]) return null;
  const c = toCustomer(ctx, rows[0]);
  // An HMAC match on a 256-bit index is a match; the compare guards against a stale index.
  return c[field] === v ? c : null;
}

/** The customer with this phone number (any common format of it), or null. 400 for a non-number. */
export function findCustomerByPhone(ctx: DomainContext, phone: string): Promise<Customer | null> {
  return findBy(ctx, 'phone', phone);
}

/** The customer with this e-mail address (case-insensitive), or null. 400 for a non-address. */
export function findCustomerByEmail(ctx: DomainContext, email: string): Promise<Customer | null> {
  return findBy(ctx, 'email', email);
}
