/**
 * Ratings (DESIGN §7): a customer rates a chat session, a booking or a staff member, 1..5 with
 * an optional comment. One rating per customer and subject (`UNIQUE (customer_id,
 * subject_type, subject_id)`); submitting again edits it (`updated_at` moves, `created_at`
 * stays). The comment is free text a customer wrote, so it is encrypted and bound to its row.
 *
 * Ownership: a customer may rate only their own session or booking (checked against
 * `sessions.customer_id` / `bookings.customer_id`; someone else's or an unknown one is
 * NOT_FOUND, so ids of other customers are not confirmed). A staff member is identified by
 * their token `sub`, which lives in the SSO, not in the tenant database, so it is only checked
 * for shape.
 *
 * Aggregates (average, count, distribution 1..5) are computed by the database over one subject
 * or over all subjects of a type.
 */
import type { FieldLocation } from '../crypto/envelope.ts';
import { enqueue } from '../events/outbox.ts';
import {
  assertUuid,
  attempt,
  clampLimit,
  DEFAULT_EVENT_SOURCE,
  newestFirstAfter,
  newestFirstPage,
  newId,
  nowOf,
  type DomainContext,
} from './context.ts';
import { getCustomer } from './customers.ts';
import { Issues, notFound, pgCode } from './errors.ts';

export const RATING_SUBJECT_TYPES = ['session', 'booking', 'staff'] as const;
export type RatingSubjectType = (typeof RATING_SUBJECT_TYPES)[number];
export const RATING_COMMENT_MAX = 2000;
export const RATING_EVENT_TYPES = { submitted: 'io.simptu.rating.submitted' } as const;

export interface Rating {
  id: string;
  customerId: string;
  subjectType: RatingSubjectType;
  subjectId: string;
  score: number;
  comment: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface SubmitRatingInput {
  customerId: string;
  subjectType: RatingSubjectType;
  subjectId: string;
  /** integer 1..5 */
  score: number;
  /** null or absent: no comment (an edit without a comment clears it) */
  comment?: string | null;
}

export interface SubmitRatingResult {
  rating: Rating;
  /** false when it replaced the customer's earlier rating of the subject */
  created: boolean;
}

export function ratingCommentLocation(id: string): FieldLocation {
  return { table: 'ratings', column: 'comment', rowId: id };
}

interface RatingRow {
  id: string;
  customer_id: string;
  subject_type: RatingSubjectType;
  subject_id: string;
  score: number;
  comment: Buffer | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, customer_id, subject_type, subject_id, score, comment, created_at, updated_at';

function toRating(ctx: DomainContext, r: RatingRow): Rating {
  return {
    id: r.id,
    customerId: r.customer_id,
    subjectType: r.subject_type,
    subjectId: r.subject_id,
    score: Number(r.score),
    comment: r.comment === null ? null : ctx.cipher.decryptString(r.comment, ratingCommentLocation(r.id)),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const isSubjectType = (v: unknown): v is RatingSubjectType =>
  typeof v === 'string' && (RATING_SUBJECT_TYPES as readonly string[]).includes(v);

/** Validates a subject; session and booking ids are UUIDs (lower-cased), staff ids token subjects. */
function checkSubject(issues: Issues, subjectType: unknown, subjectId: unknown): string | undefined {
  if (!isSubjectType(subjectType)) {
    issues.add('subjectType', `must be one of ${RATING_SUBJECT_TYPES.join(', ')}`);
    return undefined;
  }
  if (subjectType === 'staff') {
    if (
      typeof subjectId !== 'string' ||
      subjectId.length < 1 ||
      subjectId.length > 200 ||
      subjectId.trim() !== subjectId
    )
      issues.add('subjectId', 'must be the staff member’s subject, 1..200 characters');
    else return subjectId;
  } else if (
    typeof subjectId !== 'string' ||
    !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(subjectId)
  )
    issues.add('subjectId', `must be the ${subjectType}’s UUID`);
  else return subjectId.toLowerCase();
  return undefined;
}

/** NOT_FOUND unless the session/booking exists and belongs to the customer. */
async function assertOwnSubject(
  ctx: DomainContext,
  customerId: string,
  subjectType: RatingSubjectType,
  subjectId: string,
): Promise<void> {
  if (subjectType === 'staff') return;
  const table = subjectType === 'session' ? 'sessions' : 'bookings';
  const { rows } = await ctx.client.query(`SELECT 1 FROM ${table} WHERE id = $1 AND customer_id = $2`, [
    subjectId,
    customerId,
  ]);
  if (!rows[0]) throw notFound(subjectType, subjectId);
}

/**
 * Creates or edits the customer's rating of a subject. VALIDATION for a bad score, subject or
 * comment; NOT_FOUND for an unknown customer or a session/booking that isn't theirs.
 */
export async function submitRating(
  ctx: DomainContext,
  input: SubmitRatingInput,
): Promise<SubmitRatingResult> {
  const issues = new Issues();
  const subjectId = checkSubject(issues, input.subjectType, input.subjectId);
  if (!Number.isInteger(input.score) || input.score < 1 || input.score > 5)
    issues.add('score', 'must be an integer 1..5');
  let comment: string | null = null;
  if (input.comment != null) {
    if (typeof input.comment !== 'string' || input.comment.length > RATING_COMMENT_MAX)
      issues.add('comment', `must be at most ${RATING_COMMENT_MAX} characters`);
    else comment = input.comment.normalize('NFC').trim() || null;
  }
  issues.throwIfAny();
  const customerId = assertUuid(input.customerId, 'customerId');
  await getCustomer(ctx, customerId);
  await assertOwnSubject(ctx, customerId, input.subjectType, subjectId!);
  const now = nowOf(ctx);

  const update = async (id: string) => {
    const { rows } = await ctx.client.query<RatingRow>(
      `UPDATE ratings SET score = $2, comment = $3, updated_at = greatest($4, created_at) WHERE id = $1 RETURNING ${COLUMNS}`,
      [
        id,
        input.score,
        comment === null ? null : ctx.cipher.encrypt(comment, ratingCommentLocation(id)),
        now,
      ],
    );
    return rows[0]!;
  };
  const existingId = async () => {
    const { rows } = await ctx.client.query<{ id: string }>(
      `SELECT id FROM ratings WHERE customer_id = $1 AND subject_type = $2 AND subject_id = $3 FOR UPDATE`,
      [customerId, input.subjectType, subjectId],
    );
    return rows[0]?.id;
  };

  // Not `INSERT … ON CONFLICT DO UPDATE`: the comment's ciphertext is bound to the row id, and
  // on conflict the row keeps its old id, so the comment must be encrypted for that id.
  let row: RatingRow;
  let created = false;
  const known = await existingId();
  if (known) row = await update(known);
  else {
    const id = newId();
    const r = await attempt(ctx.client, () =>
      ctx.client.query<RatingRow>(
        `INSERT INTO ratings (id, customer_id, subject_type, subject_id, score, comment, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ${COLUMNS}`,
        [
          id,
          customerId,
          input.subjectType,
          subjectId,
          input.score,
          comment === null ? null : ctx.cipher.encrypt(comment, ratingCommentLocation(id)),
          now,
        ],
      ),
    );
    if (r.ok) {
      row = r.value.rows[0]!;
      created = true;
    } else if (pgCode(r.error) === '23505') {
      // A concurrent first submission won the race: edit that one instead.
      const winner = await existingId();
      if (!winner) throw r.error;
      row = await update(winner);
    } else throw r.error;
  }
  const rating = toRating(ctx, row);
  await enqueue(ctx.client, ctx.cipher, {
    type: RATING_EVENT_TYPES.submitted,
    source: ctx.source ?? DEFAULT_EVENT_SOURCE,
    aggregateType: 'rating',
    aggregateId: rating.id,
    subject: `ratings/${rating.id}`,
    // the comment stays out of events: it is the customer's free text
    data: {
      ratingId: rating.id,
      customerId: rating.customerId,
      subjectType: rating.subjectType,
      subjectId: rating.subjectId,
      score: rating.score,
      hasComment: rating.comment !== null,
      created,
    },
  });
  return { rating, created };
}

/** Who is asking: a customer sees only their own ratings (others → 404). */
export interface RatingScope {
  customerId?: string;
}

export async function getRating(ctx: DomainContext, id: string, scope: RatingScope = {}): Promise<Rating> {
  const { rows } = await ctx.client.query<RatingRow>(`SELECT ${COLUMNS} FROM ratings WHERE id = $1`, [
    assertUuid(id, 'ratingId'),
  ]);
  const r = rows[0];
  if (!r || (scope.customerId !== undefined && r.customer_id !== scope.customerId.toLowerCase()))
    throw notFound('rating', id);
  return toRating(ctx, r);
}

export interface ListRatingsQuery {
  subjectType?: RatingSubjectType;
  /** requires subjectType */
  subjectId?: string;
  customerId?: string;
  minScore?: number;
  maxScore?: number;
  /** @default 50, at most 200 */
  limit?: number;
  cursor?: string;
}

export interface RatingPage {
  items: Rating[];
  nextCursor: string | null;
}

/** Newest first (by first submission), keyset-paginated. */
export async function listRatings(
  ctx: DomainContext,
  q: ListRatingsQuery = {},
  scope: RatingScope = {},
): Promise<RatingPage> {
  const limit = clampLimit(q.limit);
  const issues = new Issues();
  const where: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown) => `$${params.push(v)}`;
  if (q.subjectId !== undefined) {
    if (q.subjectType === undefined) issues.add('subjectId', 'requires subjectType');
    else {
      const id = checkSubject(issues, q.subjectType, q.subjectId);
      if (id !== undefined) where.push(`subject_type = ${p(q.subjectType)} AND subject_id = ${p(id)}`);
    }
  } else if (q.subjectType !== undefined) {
    if (!isSubjectType(q.subjectType))
      issues.add('subjectType', `must be one of ${RATING_SUBJECT_TYPES.join(', ')}`);
    else where.push(`subject_type = ${p(q.subjectType)}`);
  }
  for (const k of ['minScore', 'maxScore'] as const) {
    const v = q[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 5)) issues.add(k, 'must be an integer 1..5');
  }
  issues.throwIfAny();
  if (q.minScore !== undefined) where.push(`score >= ${p(q.minScore)}`);
  if (q.maxScore !== undefined) where.push(`score <= ${p(q.maxScore)}`);
  if (q.customerId !== undefined) where.push(`customer_id = ${p(assertUuid(q.customerId, 'customerId'))}`);
  if (scope.customerId !== undefined) where.push(`customer_id = ${p(scope.customerId.toLowerCase())}`);
  if (q.cursor !== undefined) where.push(newestFirstAfter(q.cursor, p));
  const { rows } = await ctx.client.query<RatingRow>(
    `SELECT ${COLUMNS} FROM ratings ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, id DESC LIMIT ${p(limit + 1)}`,
    params,
  );
  return newestFirstPage(rows, limit, (r) => toRating(ctx, r));
}

export interface RatingAggregate {
  subjectType: RatingSubjectType;
  /** null: over every subject of the type */
  subjectId: string | null;
  count: number;
  /** arithmetic mean of the scores; null when there are none */
  average: number | null;
  /** how many ratings gave each score */
  distribution: { '1': number; '2': number; '3': number; '4': number; '5': number };
}

/** Average, count and distribution over one subject, or over all subjects of a type. */
export async function getRatingAggregate(
  ctx: DomainContext,
  subjectType: RatingSubjectType,
  subjectId?: string,
): Promise<RatingAggregate> {
  const issues = new Issues();
  let id: string | undefined;
  if (subjectId !== undefined) id = checkSubject(issues, subjectType, subjectId);
  else if (!isSubjectType(subjectType))
    issues.add('subjectType', `must be one of ${RATING_SUBJECT_TYPES.join(', ')}`);
  issues.throwIfAny();
  const { rows } = await ctx.client.query<{ score: number; n: string }>(
    `SELECT score, count(*) AS n FROM ratings
      WHERE subject_type = $1 AND ($2::text IS NULL OR subject_id = $2) GROUP BY score`,
    [subjectType, id ?? null],
  );
  const distribution = { '1': 0, '2': 0, '3': 0, '4': 0, '5': 0 };
  let count = 0;
  let sum = 0;
  for (const r of rows) {
    const n = Number(r.n);
    distribution[String(r.score) as keyof typeof distribution] = n;
    count += n;
    sum += n * Number(r.score);
  }
  return {
    subjectType,
    subjectId: id ?? null,
    count,
    average: count === 0 ? null : sum / count,
    distribution,
  };
}
