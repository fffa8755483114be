/**
 * Invitations (DESIGN §7): owners and admins invite people by e-mail address or phone number
 * with a role; accepting is the SSO's job (`acceptInvitation` in `@simptu/common`).
 *
 *   POST /v1/invitations              admin, owner   → 201 with the raw `token` (only time it is shown)
 *   GET  /v1/invitations              admin, owner   list, newest first; never tokens
 *   GET  /v1/invitations/:id          admin, owner
 *   POST /v1/invitations/:id/revoke   admin, owner   idempotent; 409 once accepted
 *
 * Roles an invitation may carry: an owner invites admin, staff or customer; an admin invites
 * staff or customer (an admin inviting an admin → 403); nobody invites an owner (`owner` is not
 * in the body schema → 400).
 *
 * `Idempotency-Key` is deliberately NOT honoured here: replaying the response would mean
 * keeping the raw token (encrypted, but recoverable) in the idempotency table, while the point
 * of the design is that only its hash exists. A blind retry is harmless anyway: the second
 * create for the same contact is refused with SIMPTU_ERR_INVITATION_EXISTS (409) while the
 * first is pending; the client revokes and re-invites if it lost the token.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  createInvitation,
  getInvitation,
  INVITABLE_ROLES,
  INVITATION_STATUSES,
  listInvitations,
  revokeInvitation,
  type Invitation as DomainInvitation,
} from '@simptu/common';
import { errorResponses, IdParams, Paginated, PageQueryWith, Uuid } from '../schemas.ts';

function Nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

const DateTime = Type.String({ format: 'date-time' });
const InvitableRole = Type.Union(
  INVITABLE_ROLES.map((r) => Type.Literal(r)),
  { description: 'owner invites admin|staff|customer; admin invites staff|customer' },
);
const InvitationStatus = Type.Union(INVITATION_STATUSES.map((s) => Type.Literal(s)));

const InvitationProps = {
  id: Uuid,
  email: Nullable(Type.String()),
  phone: Nullable(Type.String({ description: 'E.164' })),
  role: InvitableRole,
  status: InvitationStatus,
  expiresAt: DateTime,
  acceptedAt: Nullable(DateTime),
  acceptedBy: Nullable(Type.String({ description: 'subject of the user the SSO created' })),
  revokedAt: Nullable(DateTime),
  createdBy: Type.String({ description: 'subject of the inviter' }),
  createdAt: DateTime,
};

export const Invitation = Type.Object(InvitationProps, { title: 'Invitation', additionalProperties: false });

export const CreatedInvitation = Type.Object(
  {
    ...InvitationProps,
    token: Type.String({
      description:
        'the invitation token (43 characters, base64url); shown only in this response, stored hashed',
    }),
  },
  { title: 'CreatedInvitation', additionalProperties: false },
);

const CreateBody = Type.Object(
  {
    email: Type.Optional(Type.String({ minLength: 3, maxLength: 254 })),
    phone: Type.Optional(
      Type.String({ minLength: 3, maxLength: 40, description: 'international format, e.g. +40712345678' }),
    ),
    role: InvitableRole,
    expiresAt: Type.Optional(
      Type.String({ format: 'date-time', description: 'default now + 7 days; at most now + 30 days' }),
    ),
  },
  { additionalProperties: false, anyOf: [{ required: ['email'] }, { required: ['phone'] }] },
);

const ListQuery = PageQueryWith({
  status: Type.Optional(InvitationStatus),
  role: Type.Optional(InvitableRole),
});

export function toInvitationDto(i: DomainInvitation): Static<typeof Invitation> {
  return {
    id: i.id,
    email: i.email,
    phone: i.phone,
    role: i.role,
    status: i.status,
    expiresAt: i.expiresAt.toISOString(),
    acceptedAt: i.acceptedAt?.toISOString() ?? null,
    acceptedBy: i.acceptedBy,
    revokedAt: i.revokedAt?.toISOString() ?? null,
    createdBy: i.createdBy,
    createdAt: i.createdAt.toISOString(),
  };
}

export default async function invitationRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const managers = [app.authenticate, app.requireRole('admin', 'owner')];

  app.post(
    '/invitations',
    {
      onRequest: managers,
      schema: {
        tags: ['invitations'],
        summary: 'Invite someone by e-mail address or phone number',
        description:
          'Returns the invitation token once; only its SHA-256 is stored. Idempotency-Key is not honoured (see docs).',
        body: CreateBody,
        response: { 201: CreatedInvitation, ...errorResponses(400, 401, 403, 409, 429, 500) },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const { invitation, token } = await request.withTenant((ctx) =>
        createInvitation(
          ctx,
          {
            role: b.role,
            ...(b.email !== undefined ? { email: b.email } : {}),
            ...(b.phone !== undefined ? { phone: b.phone } : {}),
            ...(b.expiresAt !== undefined ? { expiresAt: new Date(b.expiresAt) } : {}),
          },
          { sub: request.auth.sub, roles: request.auth.roles },
        ),
      );
      // The token is a credential: keep it out of shared caches and browser history.
      reply.header('cache-control', 'no-store');
      reply.header('location', `/v1/invitations/${invitation.id}`);
      return reply.code(201).send({ ...toInvitationDto(invitation), token });
    },
  );

  app.get(
    '/invitations',
    {
      onRequest: managers,
      schema: {
        tags: ['invitations'],
        summary: 'List invitations, newest first (never tokens)',
        querystring: ListQuery,
        response: { 200: Paginated(Invitation), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await request.withTenant((ctx) =>
        listInvitations(ctx, {
          limit: q.limit,
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
          ...(q.status !== undefined ? { status: q.status } : {}),
          ...(q.role !== undefined ? { role: q.role } : {}),
        }),
      );
      return { items: page.items.map(toInvitationDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/invitations/:id',
    {
      onRequest: managers,
      schema: {
        tags: ['invitations'],
        summary: 'Get an invitation',
        params: IdParams,
        response: { 200: Invitation, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) =>
      toInvitationDto(await request.withTenant((ctx) => getInvitation(ctx, request.params.id))),
  );

  app.post(
    '/invitations/:id/revoke',
    {
      onRequest: managers,
      schema: {
        tags: ['invitations'],
        summary: 'Revoke an invitation (idempotent; an accepted one → 409)',
        params: IdParams,
        response: { 200: Invitation, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request) =>
      toInvitationDto(await request.withTenant((ctx) => revokeInvitation(ctx, request.params.id))),
  );
}
