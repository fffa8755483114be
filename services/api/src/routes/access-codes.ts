/**
 * Patient access codes (DESIGN §7): staff give a customer a short code (`XXXX-XXXX`) that the
 * SSO exchanges, together with a second factor, for a narrow token (`verifyAccessCode` in
 * `@simptu/common`). The code is shown once; the database keeps only a keyed hash.
 *
 *   POST /v1/access-codes              staff, admin, owner   → 201 with the raw `code`
 *   GET  /v1/access-codes              staff, admin, owner   list (never codes), filters
 *   GET  /v1/access-codes/:id          staff, admin, owner
 *   POST /v1/access-codes/:id/revoke   staff, admin, owner   idempotent; 409 once used
 *
 * Staff may revoke as well as issue: the receptionist who handed a code to the wrong patient
 * must be able to kill it at once, and a revoke only ever removes access. Customers have no
 * access to these routes (403): a code is handed to them, not managed by them.
 *
 * `Idempotency-Key` is deliberately NOT honoured: replaying the response would keep the raw
 * code (encrypted, but recoverable) in the idempotency table. A retried issue makes a second
 * code; both are listed and the unwanted one can be revoked.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  ACCESS_CODE_DEFAULT_MAX_ATTEMPTS,
  ACCESS_CODE_MAX_ATTEMPTS_LIMIT,
  ACCESS_CODE_STATUSES,
  getAccessCode,
  issueAccessCode,
  listAccessCodes,
  revokeAccessCode,
  type AccessCode as DomainAccessCode,
} from '@simptu/common';
import { errorResponses, IdParams, Paginated, PageQueryWith, Uuid } from '../schemas.ts';

function Nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

const DateTime = Type.String({ format: 'date-time' });
const AccessCodeStatus = Type.Union(ACCESS_CODE_STATUSES.map((s) => Type.Literal(s)));

const AccessCodeProps = {
  id: Uuid,
  customerId: Uuid,
  status: AccessCodeStatus,
  expiresAt: DateTime,
  attempts: Type.Integer({ minimum: 0, description: 'wrong second factors so far' }),
  maxAttempts: Type.Integer({ minimum: 1 }),
  revokedAt: Nullable(DateTime),
  usedAt: Nullable(DateTime),
  createdBy: Nullable(Type.String({ description: 'subject of the staff member who issued it' })),
  createdAt: DateTime,
};

export const AccessCode = Type.Object(AccessCodeProps, { title: 'AccessCode', additionalProperties: false });

export const IssuedAccessCode = Type.Object(
  {
    ...AccessCodeProps,
    code: Type.String({
      pattern: '^[23456789ABCDEFGHJKMNPQRSTVWXYZ]{4}-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{4}$',
      description: 'the code to hand to the customer; shown only in this response, stored as a keyed hash',
    }),
  },
  { title: 'IssuedAccessCode', additionalProperties: false },
);

const IssueBody = Type.Object(
  {
    customerId: Uuid,
    expiresAt: Type.Optional(
      Type.String({ format: 'date-time', description: 'default now + 24 h; 5 minutes to 30 days from now' }),
    ),
    maxAttempts: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: ACCESS_CODE_MAX_ATTEMPTS_LIMIT,
        description: `wrong second factors before the code locks; default ${ACCESS_CODE_DEFAULT_MAX_ATTEMPTS}`,
      }),
    ),
  },
  { additionalProperties: false },
);

const ListQuery = PageQueryWith({
  customerId: Type.Optional(Uuid),
  status: Type.Optional(AccessCodeStatus),
});

export function toAccessCodeDto(c: DomainAccessCode): Static<typeof AccessCode> {
  return {
    id: c.id,
    customerId: c.customerId,
    status: c.status,
    expiresAt: c.expiresAt.toISOString(),
    attempts: c.attempts,
    maxAttempts: c.maxAttempts,
    revokedAt: c.revokedAt?.toISOString() ?? null,
    usedAt: c.usedAt?.toISOString() ?? null,
    createdBy: c.createdBy,
    createdAt: c.createdAt.toISOString(),
  };
}

export default async function accessCodeRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const staff = [app.authenticate, app.requireRole('staff', 'admin', 'owner')];

  app.post(
    '/access-codes',
    {
      onRequest: staff,
      schema: {
        tags: ['access-codes'],
        summary: 'Issue an access code for a customer',
        description: 'Returns the code once. Idempotency-Key is not honoured (see docs).',
        body: IssueBody,
        response: { 201: IssuedAccessCode, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const { accessCode, code } = await request.withTenant((ctx) =>
        issueAccessCode(
          ctx,
          {
            customerId: b.customerId,
            ...(b.expiresAt !== undefined ? { expiresAt: new Date(b.expiresAt) } : {}),
            ...(b.maxAttempts !== undefined ? { maxAttempts: b.maxAttempts } : {}),
          },
          { sub: request.auth.sub },
        ),
      );
      reply.header('cache-control', 'no-store');
      reply.header('location', `/v1/access-codes/${accessCode.id}`);
      return reply.code(201).send({ ...toAccessCodeDto(accessCode), code });
    },
  );

  app.get(
    '/access-codes',
    {
      onRequest: staff,
      schema: {
        tags: ['access-codes'],
        summary: 'List access codes, newest first (never the codes)',
        querystring: ListQuery,
        response: { 200: Paginated(AccessCode), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await request.withTenant((ctx) =>
        listAccessCodes(ctx, {
          limit: q.limit,
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
          ...(q.customerId !== undefined ? { customerId: q.customerId } : {}),
          ...(q.status !== undefined ? { status: q.status } : {}),
        }),
      );
      return { items: page.items.map(toAccessCodeDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/access-codes/:id',
    {
      onRequest: staff,
      schema: {
        tags: ['access-codes'],
        summary: 'Get an access code (without the code)',
        params: IdParams,
        response: { 200: AccessCode, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) =>
      toAccessCodeDto(await request.withTenant((ctx) => getAccessCode(ctx, request.params.id))),
  );

  app.post(
    '/access-codes/:id/revoke',
    {
      onRequest: staff,
      schema: {
        tags: ['access-codes'],
        summary: 'Revoke an access code (idempotent; a used one → 409)',
        params: IdParams,
        response: { 200: AccessCode, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request) =>
      toAccessCodeDto(await request.withTenant((ctx) => revokeAccessCode(ctx, request.params.id))),
  );
}
