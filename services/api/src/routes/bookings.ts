/**
 * Bookings (DESIGN §6, §7). The domain layer does the work in the caller's tenant transaction:
 * the database's exclusion constraints make double booking impossible (a lost race is 409
 * SIMPTU_ERR_BOOKING_CONFLICT); a class occurrence takes up to the service's capacity, one
 * place per customer (409 SIMPTU_ERR_CLASS_FULL / SIMPTU_ERR_CLASS_ALREADY_BOOKED, counted
 * under a lock per occurrence — domain/bookings.ts), and every change enqueues its domain event
 * (`io.simptu.booking.created|rescheduled|cancelled`) in the tenant's outbox in the same
 * transaction; the outbox relay publishes it on `simptu.t.<name>.domain`.
 *
 * A customer (token `sub` = their customer id) books for themself and sees, reschedules and
 * cancels only their own bookings (anyone else's id is 404); staff and up act for any customer.
 *
 *   POST /v1/bookings                    any role (Idempotency-Key honoured) → 201 + Location
 *   GET  /v1/bookings                    any role (customers: own only), filters, cursor pages
 *   GET  /v1/bookings/:id                any role (customers: own only)
 *   POST /v1/bookings/:id/reschedule     any role (customers: own only)
 *   POST /v1/bookings/:id/cancel         any role (customers: own only); cancelling twice is a no-op
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  cancelBooking,
  CHANNELS,
  createBooking,
  ForbiddenError,
  formatZoned,
  getBooking,
  listBookings,
  rescheduleBooking,
  ValidationError,
  type Booking as DomainBooking,
  type BookingScope,
  type Channel,
  type Role,
} from '@simptu/common';
import { errorResponses, IdParams, Paginated, PageQueryWith, Uuid } from '../schemas.ts';
import {
  domainIdempotencyKey,
  IdempotencyHeaders,
  idempotencyOf,
  sendIdempotent,
  withIdempotency,
} from '../idempotency.ts';
import { invalidate } from '../cache.ts';
import { customerScope, isStaff } from '../plugins/auth.ts';

const ALL_ROLES: Role[] = ['owner', 'admin', 'staff', 'customer'];

function Nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

const DateTime = Type.String({ format: 'date-time' });
const ChannelSchema = Type.Union(CHANNELS.map((c) => Type.Literal(c)));

export const Booking = Type.Object(
  {
    id: Uuid,
    customerId: Uuid,
    serviceId: Uuid,
    resourceId: Uuid,
    start: Type.String({ format: 'date-time', description: "in the tenant's zone, with offset" }),
    end: Type.String({ format: 'date-time', description: "in the tenant's zone, with offset" }),
    status: Type.Union([Type.Literal('booked'), Type.Literal('cancelled')]),
    source: ChannelSchema,
    cancelledAt: Nullable(DateTime),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { title: 'Booking', additionalProperties: false },
);
type BookingDto = Static<typeof Booking>;

const CreateBookingBody = Type.Object(
  {
    customerId: Type.Optional(Uuid),
    serviceId: Uuid,
    start: Type.String({ format: 'date-time', description: 'with offset; the end follows from the service' }),
    resourceId: Type.Optional(Uuid),
    source: Type.Optional(ChannelSchema),
  },
  { additionalProperties: false },
);

const RescheduleBody = Type.Object(
  { start: Type.String({ format: 'date-time' }), resourceId: Type.Optional(Uuid) },
  { additionalProperties: false },
);

const ListQuery = PageQueryWith({
  customerId: Type.Optional(Uuid),
  serviceId: Type.Optional(Uuid),
  resourceId: Type.Optional(Uuid),
  status: Type.Optional(Type.Union([Type.Literal('booked'), Type.Literal('cancelled')])),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'bookings ending after' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'bookings starting before' })),
});

export function toBookingDto(b: DomainBooking, timeZone: string): BookingDto {
  return {
    id: b.id,
    customerId: b.customerId,
    serviceId: b.serviceId,
    resourceId: b.resourceId,
    start: formatZoned(b.start, timeZone),
    end: formatZoned(b.end, timeZone),
    status: b.status,
    source: b.source,
    cancelledAt: b.cancelledAt?.toISOString() ?? null,
    createdAt: b.createdAt.toISOString(),
    updatedAt: b.updatedAt.toISOString(),
  };
}

/** Staff act on every booking of the tenant; a customer only on their own (core's `customerScope`). */
function scopeOf(request: FastifyRequest): BookingScope {
  return customerScope(request);
}

export default async function bookingRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const anyRole = [app.authenticate, app.requireRole(...ALL_ROLES)];
  const cacheDeps = (request: FastifyRequest) => ({ redis: app.redis, log: request.log });

  app.post(
    '/bookings',
    {
      onRequest: anyRole,
      schema: {
        tags: ['bookings'],
        summary: 'Book a service',
        description:
          'Customers book for themselves (customerId defaults to, and must equal, the token subject); ' +
          'staff give the customerId. Without resourceId the first free capable resource is taken; ' +
          'for a class, a studio where that class occurrence already runs with places left comes first. ' +
          '409: SIMPTU_ERR_BOOKING_CONFLICT (taken), SIMPTU_ERR_CLASS_FULL (no place left), ' +
          'SIMPTU_ERR_CLASS_ALREADY_BOOKED (the customer has a place in it already).',
        headers: IdempotencyHeaders,
        body: CreateBookingBody,
        response: {
          201: Booking,
          200: Booking,
          ...errorResponses(400, 401, 403, 404, 409, 429, 500),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      let customerId: string;
      let source: Channel;
      if (isStaff(request)) {
        if (body.customerId === undefined)
          throw new ValidationError([{ path: 'customerId', message: 'is required when staff book' }]);
        customerId = body.customerId;
        source = body.source ?? 'staff';
      } else {
        const self = customerScope(request).customerId!;
        if (body.customerId !== undefined && body.customerId.toLowerCase() !== self.toLowerCase())
          throw new ForbiddenError('Customers can only book for themselves');
        if (body.source === 'staff')
          throw new ValidationError([{ path: 'source', message: 'staff is not a customer channel' }]);
        customerId = self;
        source = body.source ?? 'api';
      }
      const idem = idempotencyOf(request);
      const timeZone = request.tenant.timezone;
      const result = await request.withTenant((ctx) =>
        withIdempotency(ctx, idem, async () => {
          const { booking, created } = await createBooking(ctx, {
            customerId,
            serviceId: body.serviceId,
            start: new Date(body.start),
            source,
            ...(body.resourceId !== undefined ? { resourceId: body.resourceId } : {}),
            ...(idem ? { idempotencyKey: domainIdempotencyKey(idem) } : {}),
          });
          return {
            // `created: false`: the domain's own key column found an earlier booking of this key
            statusCode: created ? 201 : 200,
            body: toBookingDto(booking, timeZone),
            headers: { location: `/v1/bookings/${booking.id}` },
          };
        }),
      );
      if (!result.replayed) await invalidate(cacheDeps(request), request.tenant.name, 'availability');
      return sendIdempotent(reply, result);
    },
  );

  app.get(
    '/bookings',
    {
      onRequest: anyRole,
      schema: {
        tags: ['bookings'],
        summary: 'List bookings by start time (customers: their own)',
        querystring: ListQuery,
        response: { 200: Paginated(Booking), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await request.withTenant((ctx) =>
        listBookings(
          ctx,
          {
            limit: q.limit,
            ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
            ...(q.customerId !== undefined ? { customerId: q.customerId } : {}),
            ...(q.serviceId !== undefined ? { serviceId: q.serviceId } : {}),
            ...(q.resourceId !== undefined ? { resourceId: q.resourceId } : {}),
            ...(q.status !== undefined ? { status: q.status } : {}),
            ...(q.from !== undefined ? { from: new Date(q.from) } : {}),
            ...(q.to !== undefined ? { to: new Date(q.to) } : {}),
          },
          scopeOf(request),
        ),
      );
      const tz = request.tenant.timezone;
      return { items: page.items.map((b) => toBookingDto(b, tz)), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/bookings/:id',
    {
      onRequest: anyRole,
      schema: {
        tags: ['bookings'],
        summary: 'Get a booking',
        params: IdParams,
        response: { 200: Booking, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) =>
      toBookingDto(
        await request.withTenant((ctx) => getBooking(ctx, request.params.id, scopeOf(request))),
        request.tenant.timezone,
      ),
  );

  app.post(
    '/bookings/:id/reschedule',
    {
      onRequest: anyRole,
      schema: {
        tags: ['bookings'],
        summary: 'Move a booking to another time (and optionally resource)',
        params: IdParams,
        body: RescheduleBody,
        response: { 200: Booking, ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request) => {
      const booking = await request.withTenant((ctx) =>
        rescheduleBooking(
          ctx,
          request.params.id,
          {
            start: new Date(request.body.start),
            ...(request.body.resourceId !== undefined ? { resourceId: request.body.resourceId } : {}),
          },
          scopeOf(request),
        ),
      );
      await invalidate(cacheDeps(request), request.tenant.name, 'availability');
      return toBookingDto(booking, request.tenant.timezone);
    },
  );

  app.post(
    '/bookings/:id/cancel',
    {
      onRequest: anyRole,
      schema: {
        tags: ['bookings'],
        summary: 'Cancel a booking (frees its time; cancelling again changes nothing)',
        params: IdParams,
        response: { 200: Booking, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const booking = await request.withTenant((ctx) =>
        cancelBooking(ctx, request.params.id, scopeOf(request)),
      );
      await invalidate(cacheDeps(request), request.tenant.name, 'availability');
      return toBookingDto(booking, request.tenant.timezone);
    },
  );
}
