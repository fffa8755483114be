/**
 * `Idempotency-Key` for creating POSTs, over the tenant's `idempotency_keys` table.
 *
 * The key row is claimed in the SAME tenant transaction as the work it guards:
 *
 *     INSERT INTO idempotency_keys (key, principal, request_hash) … ON CONFLICT DO NOTHING
 *     → inserted: do the work, store the response on the row; both commit together
 *     → existed:  the same request hash → replay the stored response (`Idempotent-Replayed: true`)
 *                 another hash → SIMPTU_ERR_IDEMPOTENCY_KEY_REUSED (409)
 *
 * A concurrent request with the same key blocks on the uncommitted row (the unique index
 * waits for the inserting transaction) and then sees the committed row and replays it; if the
 * first request failed, its row rolled back with it and the retry runs the work itself. So a
 * key yields exactly one effect (one booking, one outbox event) however often it is sent. A
 * failed request stores nothing: a retry after a 409/4xx runs again (errors are not replayed).
 *
 * The stored response is encrypted with the tenant's DEK (AAD bound to principal and key), so
 * the personal data in a replayable response (a created customer) is not kept in clear.
 *
 * Keys are scoped by principal (`sub`): two callers can't see each other's responses through a
 * shared key. Rows older than the retention (`idempotency.retentionHours`) are deleted by the
 * purge job (`purgeIdempotencyKeys`, run by plugins/idempotency-purge.ts): after that, a key
 * sent again runs its request again.
 * @see https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/
 */
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainErrors, type DomainContext } from '@simptu/common';

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const IDEMPOTENT_REPLAYED_HEADER = 'idempotent-replayed';

/** Header schema for routes that honour the key (merge into `schema.headers`). */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      // visible ASCII: a key is an opaque token (typically a UUID), not free text
      pattern: '^[\\x21-\\x7E]+$',
      description: 'client-chosen key; the same key and request replay the first response',
    }),
  ),
});

export interface IdempotencyRequest {
  key: string;
  principal: string;
  /** sha256 of method, URL and canonical JSON body */
  hash: string;
}

export interface StoredResponse<B = unknown> {
  statusCode: number;
  body: B;
  /** headers to replay with the body, e.g. `location` */
  headers: Record<string, string>;
}

export interface IdempotentResult<B> extends StoredResponse<B> {
  replayed: boolean;
}

/** JSON with object keys sorted, so `{a,b}` and `{b,a}` hash the same. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function requestHash(method: string, url: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method.toUpperCase()} ${url}\n${canonicalJson(body)}`, 'utf8')
    .digest('hex');
}

/** The idempotency request of an authenticated request, or undefined without the header. */
export function idempotencyOf(request: FastifyRequest): IdempotencyRequest | undefined {
  const raw = request.headers[IDEMPOTENCY_KEY_HEADER];
  if (typeof raw !== 'string') return undefined;
  return {
    key: raw,
    principal: request.auth.sub,
    hash: requestHash(request.method, request.url, request.body),
  };
}

/**
 * A key for the domain layer's own idempotency column (e.g. `bookings.idempotency_key`),
 * derived from principal and key so two principals' keys never meet there.
 */
export function domainIdempotencyKey(idem: IdempotencyRequest): string {
  return `api:${createHash('sha256').update(`${idem.principal}\u0000${idem.key}`, 'utf8').digest('base64url')}`;
}

function responseLocation(idem: IdempotencyRequest) {
  const rowId = createHash('sha256').update(`${idem.principal}\u0000${idem.key}`, 'utf8').digest('hex');
  return { table: 'idempotency_keys', column: 'response', rowId };
}

interface KeyRow {
  request_hash: string;
  status_code: number | null;
  response: { ciphertext?: unknown } | null;
}

/**
 * Runs `work` at most once per (principal, key) inside the caller's tenant transaction `ctx`
 * and returns its response, or the stored response of the first request with that key.
 * Without `idem` it simply runs `work`.
 */
export async function withIdempotency<B>(
  ctx: DomainContext,
  idem: IdempotencyRequest | undefined,
  work: () => Promise<StoredResponse<B>>,
): Promise<IdempotentResult<B>> {
  if (!idem) return { ...(await work()), replayed: false };
  const claimed = await ctx.client.query(
    `INSERT INTO idempotency_keys (key, principal, request_hash) VALUES ($1, $2, $3)
     ON CONFLICT (principal, key) DO NOTHING`,
    [idem.key, idem.principal, idem.hash],
  );
  if (claimed.rowCount === 1) {
    const res = await work();
    const ciphertext = ctx.cipher.encryptText(
      JSON.stringify({ body: res.body, headers: res.headers }),
      responseLocation(idem),
    );
    await ctx.client.query(
      `UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE principal = $1 AND key = $2`,
      [idem.principal, idem.key, res.statusCode, { ciphertext }],
    );
    return { ...res, replayed: false };
  }
  const { rows } = await ctx.client.query<KeyRow>(
    'SELECT request_hash, status_code, response FROM idempotency_keys WHERE principal = $1 AND key = $2',
    [idem.principal, idem.key],
  );
  const row = rows[0];
  if (!row || row.request_hash !== idem.hash)
    throw new DomainErrors.IDEMPOTENCY_KEY_REUSED({ details: { idempotencyKey: idem.key } });
  if (row.status_code === null || typeof row.response?.ciphertext !== 'string')
    // Unreachable with this module (claim and response commit together); a row written
    // otherwise is treated like a request still in flight.
    throw new DomainErrors.IDEMPOTENCY_KEY_REUSED({
      message: 'A request with this idempotency key is still in progress',
      details: { idempotencyKey: idem.key },
    });
  const stored = JSON.parse(ctx.cipher.decryptText(row.response.ciphertext, responseLocation(idem))) as {
    body: B;
    headers: Record<string, string>;
  };
  return { statusCode: row.status_code, body: stored.body, headers: stored.headers, replayed: true };
}

/** Sends a (possibly replayed) response: status, stored headers, `Idempotent-Replayed` on replays. */
export function sendIdempotent<B>(reply: FastifyReply, result: IdempotentResult<B>): FastifyReply {
  for (const [k, v] of Object.entries(result.headers)) reply.header(k, v);
  if (result.replayed) reply.header(IDEMPOTENT_REPLAYED_HEADER, 'true');
  return reply.code(result.statusCode).send(result.body);
}

/** Rows deleted per purge transaction (short transactions, bounded WAL per step). */
export const PURGE_BATCH = 5000;

/**
 * Deletes up to `batch` rows of the tenant's `idempotency_keys` older than `retentionHours`, in
 * the caller's tenant transaction, oldest first (the `created_at` index). Returns the number
 * deleted, or null when another process is purging this tenant right now (a transaction-scoped
 * advisory lock per tenant, so API instances don't duplicate the work).
 */
export async function purgeIdempotencyKeys(
  ctx: Pick<DomainContext, 'client'>,
  retentionHours: number,
  batch = PURGE_BATCH,
): Promise<number | null> {
  const { rows } = await ctx.client.query<{ locked: boolean }>(
    `SELECT pg_try_advisory_xact_lock(hashtextextended('simptu.idempotency-purge:' || current_setting('simptu.tenant'), 0)) AS locked`,
  );
  if (!rows[0]?.locked) return null;
  const r = await ctx.client.query(
    `DELETE FROM idempotency_keys WHERE (principal, key) IN (
       SELECT principal, key FROM idempotency_keys
        WHERE created_at < now() - make_interval(hours => $1)
        ORDER BY created_at LIMIT $2)`,
    [retentionHours, batch],
  );
  return r.rowCount ?? 0;
}
