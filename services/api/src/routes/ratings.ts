/**
 * Ratings (DESIGN §7): customers rate their own chat sessions and bookings, and staff members.
 *
 *   POST /v1/ratings                  customer (not staff)   201 first rating of the subject, 200 an edit
 *   GET  /v1/ratings                  customer: their own; staff, admin, owner: all, with filters
 *   GET  /v1/ratings/:id              customer: their own (else 404); staff, admin, owner: any
 *   GET  /v1/ratings/aggregates       staff, admin, owner: any subject type;
 *                                     customer: only `subjectType=staff` (403 otherwise)
 *
 * Who rates: the customer is the token's `sub` (their `customers.id`); a session or booking
 * that isn't theirs is 404, never a confirmation that the id exists. Staff, admins and owners
 * can't rate (403) — even if their token also carries `customer` — so the tenant's own people
 * can't inflate or sink scores. Aggregates of staff members are public reputation within the
 * tenant (a patient choosing a dentist may see them); aggregates of sessions and bookings
 * describe individual customers' experiences and stay with staff.
 *
 * POST is an upsert keyed by (customer, subject), so a retry can't duplicate a rating: the
 * `Idempotency-Key` header is unnecessary and not read.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  ForbiddenError,
  getRating,
  getRatingAggregate,
  listRatings,
  RATING_COMMENT_MAX,
  RATING_SUBJECT_TYPES,
  submitRating,
  type Rating as DomainRating,
} from '@simptu/common';
import { customerScope, isStaff } from '../plugins/auth.ts';
import { errorResponses, IdParams, Paginated, PageQueryWith, Uuid } from '../schemas.ts';

function Nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

const DateTime = Type.String({ format: 'date-time' });
const SubjectType = Type.Union(RATING_SUBJECT_TYPES.map((s) => Type.Literal(s)));
const SubjectId = Type.String({
  minLength: 1,
  maxLength: 200,
  description: 'session or booking UUID, or the staff member’s subject',
});
const Score = Type.Integer({ minimum: 1, maximum: 5 });

export const Rating = Type.Object(
  {
    id: Uuid,
    customerId: Uuid,
    subjectType: SubjectType,
    subjectId: Type.String(),
    score: Score,
    comment: Nullable(Type.String()),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { title: 'Rating', additionalProperties: false },
);

export const RatingAggregate = Type.Object(
  {
    subjectType: SubjectType,
    subjectId: Nullable(Type.String({ description: 'null: over every subject of the type' })),
    count: Type.Integer({ minimum: 0 }),
    average: Nullable(Type.Number({ minimum: 1, maximum: 5, description: 'null when count is 0' })),
    distribution: Type.Object(
      {
        '1': Type.Integer({ minimum: 0 }),
        '2': Type.Integer({ minimum: 0 }),
        '3': Type.Integer({ minimum: 0 }),
        '4': Type.Integer({ minimum: 0 }),
        '5': Type.Integer({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
  },
  { title: 'RatingAggregate', additionalProperties: false },
);

const SubmitBody = Type.Object(
  {
    subjectType: SubjectType,
    subjectId: SubjectId,
    score: Score,
    comment: Type.Optional(Nullable(Type.String({ maxLength: RATING_COMMENT_MAX }))),
  },
  { additionalProperties: false },
);

const ListQuery = PageQueryWith({
  subjectType: Type.Optional(SubjectType),
  subjectId: Type.Optional(SubjectId),
  customerId: Type.Optional(Uuid),
  minScore: Type.Optional(Score),
  maxScore: Type.Optional(Score),
});

const AggregateQuery = Type.Object(
  { subjectType: SubjectType, subjectId: Type.Optional(SubjectId) },
  { additionalProperties: false },
);

export function toRatingDto(r: DomainRating): Static<typeof Rating> {
  return {
    id: r.id,
    customerId: r.customerId,
    subjectType: r.subjectType,
    subjectId: r.subjectId,
    score: r.score,
    comment: r.comment,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}

export default async function ratingRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const anyRole = [app.authenticate, app.requireRole('customer', 'staff', 'admin', 'owner')];

  app.post(
    '/ratings',
    {
      onRequest: [app.authenticate, app.requireRole('customer')],
      schema: {
        tags: ['ratings'],
        summary: 'Rate your session, booking, or a staff member (again: edits your rating)',
        body: SubmitBody,
        response: {
          200: Rating,
          201: Rating,
          ...errorResponses(400, 401, 403, 404, 429, 500),
        },
      },
    },
    async (request, reply) => {
      if (isStaff(request))
        throw new ForbiddenError('Staff, admins and owners cannot submit ratings', {
          details: { requiredRoles: ['customer'] },
        });
      const { customerId } = customerScope(request);
      const b = request.body;
      const { rating, created } = await request.withTenant((ctx) =>
        submitRating(ctx, {
          customerId: customerId!,
          subjectType: b.subjectType,
          subjectId: b.subjectId,
          score: b.score,
          ...(b.comment !== undefined ? { comment: b.comment } : {}),
        }),
      );
      if (created) reply.header('location', `/v1/ratings/${rating.id}`);
      return reply.code(created ? 201 : 200).send(toRatingDto(rating));
    },
  );

  app.get(
    '/ratings',
    {
      onRequest: anyRole,
      schema: {
        tags: ['ratings'],
        summary: 'List ratings, newest first (customers: their own)',
        querystring: ListQuery,
        response: { 200: Paginated(Rating), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const q = request.query;
      const scope = customerScope(request);
      const page = await request.withTenant((ctx) =>
        listRatings(
          ctx,
          {
            limit: q.limit,
            ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
            ...(q.subjectType !== undefined ? { subjectType: q.subjectType } : {}),
            ...(q.subjectId !== undefined ? { subjectId: q.subjectId } : {}),
            ...(q.customerId !== undefined ? { customerId: q.customerId } : {}),
            ...(q.minScore !== undefined ? { minScore: q.minScore } : {}),
            ...(q.maxScore !== undefined ? { maxScore: q.maxScore } : {}),
          },
          scope,
        ),
      );
      return { items: page.items.map(toRatingDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/ratings/aggregates',
    {
      onRequest: anyRole,
      schema: {
        tags: ['ratings'],
        summary: 'Average, count and distribution for one subject or a whole subject type',
        description: 'Customers may read aggregates of staff members only.',
        querystring: AggregateQuery,
        response: { 200: RatingAggregate, ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const { subjectType, subjectId } = request.query;
      if (!isStaff(request) && subjectType !== 'staff')
        throw new ForbiddenError('Customers may read aggregates of staff members only', {
          details: { subjectType },
        });
      return request.withTenant((ctx) => getRatingAggregate(ctx, subjectType, subjectId));
    },
  );

  app.get(
    '/ratings/:id',
    {
      onRequest: anyRole,
      schema: {
        tags: ['ratings'],
        summary: 'Get a rating (customers: their own)',
        params: IdParams,
        response: { 200: Rating, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const scope = customerScope(request);
      return toRatingDto(await request.withTenant((ctx) => getRating(ctx, request.params.id, scope)));
    },
  );
}
