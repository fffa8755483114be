/**
 * Customers (patients, members, guests): personal data, encrypted at rest by the domain layer
 * (DESIGN §6). Staff and up see and manage every customer of their tenant; a customer sees and
 * edits only their own record (their token's `sub` is their customer id). Anyone else gets 404
 * for a record that isn't theirs, so ids can't be probed.
 *
 *   POST  /v1/customers                      staff, admin, owner   (Idempotency-Key honoured)
 *   GET   /v1/customers?phone=… | ?email=…   staff, admin, owner   exact lookup via blind index
 *   GET   /v1/customers/:id                  staff, admin, owner, or the customer themself
 *   PATCH /v1/customers/:id                  staff, admin, owner, or the customer themself
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  createCustomer,
  findCustomerByEmail,
  findCustomerByPhone,
  getCustomer,
  NotFoundError,
  updateCustomer,
  ValidationError,
  type Customer as DomainCustomer,
  type Role,
} from '@simptu/common';
import { errorResponses, IdParams, Uuid } from '../schemas.ts';
import { isStaff } from '../plugins/auth.ts';
import { IdempotencyHeaders, idempotencyOf, sendIdempotent, withIdempotency } from '../idempotency.ts';

const STAFF_ROLES: Role[] = ['staff', 'admin', 'owner'];

function Nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

const DateTime = Type.String({ format: 'date-time' });

export const Customer = Type.Object(
  {
    id: Uuid,
    displayName: Nullable(Type.String()),
    phone: Nullable(Type.String({ description: 'E.164' })),
    email: Nullable(Type.String()),
    birthDate: Nullable(Type.String({ format: 'date' })),
    locale: Nullable(Type.String()),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { title: 'Customer', additionalProperties: false },
);

const CustomerFields = {
  displayName: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200 }))),
  phone: Type.Optional(
    Nullable(
      Type.String({ minLength: 3, maxLength: 40, description: 'international format, e.g. +40712345678' }),
    ),
  ),
  email: Type.Optional(Nullable(Type.String({ minLength: 3, maxLength: 254 }))),
  birthDate: Type.Optional(Nullable(Type.String({ format: 'date' }))),
  locale: Type.Optional(Nullable(Type.String({ minLength: 2, maxLength: 35, description: 'BCP 47' }))),
};

const CustomerInput = Type.Object(CustomerFields, { additionalProperties: false });
const CustomerPatch = Type.Object(CustomerFields, { additionalProperties: false, minProperties: 1 });

const LookupQuery = Type.Object(
  {
    phone: Type.Optional(Type.String({ minLength: 3, maxLength: 40 })),
    email: Type.Optional(Type.String({ minLength: 3, maxLength: 254 })),
  },
  { additionalProperties: false },
);

export function toCustomerDto(c: DomainCustomer): Static<typeof Customer> {
  return {
    id: c.id,
    displayName: c.displayName,
    phone: c.phone,
    email: c.email,
    birthDate: c.birthDate,
    locale: c.locale,
    createdAt: c.createdAt.toISOString(),
    updatedAt: c.updatedAt.toISOString(),
  };
}

/** A customer may only reach their own record; anything else is "not found", not "forbidden". */
function canReach(request: FastifyRequest, id: string): boolean {
  if (isStaff(request)) return true;
  return request.auth.roles.includes('customer') && request.auth.sub.toLowerCase() === id.toLowerCase();
}

function customerNotFound(id: string): NotFoundError {
  return new NotFoundError('customer not found', { details: { customerId: id } });
}

export default async function customerRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const staffOnly = [app.authenticate, app.requireRole(...STAFF_ROLES)];
  const staffOrCustomer = [app.authenticate, app.requireRole(...STAFF_ROLES, 'customer')];

  app.post(
    '/customers',
    {
      onRequest: staffOnly,
      schema: {
        tags: ['customers'],
        summary: 'Create a customer',
        headers: IdempotencyHeaders,
        body: CustomerInput,
        response: {
          201: Customer,
          ...errorResponses(400, 401, 403, 409, 429, 500),
        },
      },
    },
    async (request, reply) => {
      const idem = idempotencyOf(request);
      const result = await request.withTenant((ctx) =>
        withIdempotency(ctx, idem, async () => {
          const c = await createCustomer(ctx, request.body);
          return {
            statusCode: 201,
            body: toCustomerDto(c),
            headers: { location: `/v1/customers/${c.id}` },
          };
        }),
      );
      return sendIdempotent(reply, result);
    },
  );

  app.get(
    '/customers',
    {
      onRequest: staffOnly,
      schema: {
        tags: ['customers'],
        summary: 'Find a customer by phone number or e-mail address (exact match)',
        querystring: LookupQuery,
        response: { 200: Customer, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const { phone, email } = request.query;
      if ((phone === undefined) === (email === undefined))
        throw new ValidationError([{ path: 'phone', message: 'give exactly one of phone or email' }]);
      const found = await request.withTenant((ctx) =>
        phone !== undefined ? findCustomerByPhone(ctx, phone) : findCustomerByEmail(ctx, email!),
      );
      if (!found)
        throw new NotFoundError(
          `No customer has this ${phone !== undefined ? 'phone number' : 'e-mail address'}`,
        );
      return toCustomerDto(found);
    },
  );

  app.get(
    '/customers/:id',
    {
      onRequest: staffOrCustomer,
      schema: {
        tags: ['customers'],
        summary: 'Get a customer',
        params: IdParams,
        response: { 200: Customer, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!canReach(request, id)) throw customerNotFound(id);
      return toCustomerDto(await request.withTenant((ctx) => getCustomer(ctx, id)));
    },
  );

  app.patch(
    '/customers/:id',
    {
      onRequest: staffOrCustomer,
      schema: {
        tags: ['customers'],
        summary: 'Update a customer (null clears a field)',
        params: IdParams,
        body: CustomerPatch,
        response: { 200: Customer, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!canReach(request, id)) throw customerNotFound(id);
      return toCustomerDto(await request.withTenant((ctx) => updateCustomer(ctx, id, request.body)));
    },
  );
}
