/**
 * Free slots of a service (DESIGN §7 "availability"), computed by the domain layer from the
 * tenant's opening hours (local wall-clock times in its IANA zone, DST-correct), the capable
 * resources and the live bookings. Slot times are returned as ISO 8601 with the tenant's UTC
 * offset AT THAT INSTANT (`2027-03-28T09:00:00+03:00`), so a client shows wall-clock times
 * without a time-zone library and a range crossing a DST change carries both offsets.
 *
 * For a class (service kind `class`) a slot is also offered while the class occurrence already
 * booked at that start has places left, and carries `spotsLeft` (summed over `resourceIds`).
 *
 *   GET /v1/availability?serviceId&from&to[&resourceId][&stepMinutes]   any role of the tenant
 *
 * Cached briefly in Redis (cache.ts, area `availability`); booking and catalog writes of this
 * service invalidate it after they commit, the short TTL bounds everything else (the clock,
 * bookings written by other services until their events invalidate it).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import {
  DEFAULT_SLOT_STEP_MINUTES,
  findAvailableSlots,
  MAX_AVAILABILITY_DAYS,
  type Role,
} from '@simptu/common';
import { errorResponses, Uuid } from '../schemas.ts';
import { configuredTtls, readThrough } from '../cache.ts';

const ALL_ROLES: Role[] = ['owner', 'admin', 'staff', 'customer'];

const AvailabilityQuery = Type.Object(
  {
    serviceId: Uuid,
    from: Type.String({ format: 'date-time', description: 'slots starting at or after (with offset)' }),
    to: Type.String({
      format: 'date-time',
      description: `slots starting before (with offset); at most ${MAX_AVAILABILITY_DAYS} days after from`,
    }),
    resourceId: Type.Optional(Uuid),
    stepMinutes: Type.Optional(
      Type.Integer({ minimum: 5, maximum: 1440, default: DEFAULT_SLOT_STEP_MINUTES }),
    ),
  },
  { additionalProperties: false },
);

const Slot = Type.Object(
  {
    start: Type.String({ format: 'date-time', description: "in the tenant's zone, with offset" }),
    end: Type.String({ format: 'date-time' }),
    resourceIds: Type.Array(Uuid, {
      description: 'the capable resources free for the whole slot (a class: with places left at this start)',
    }),
    spotsLeft: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'classes only: places left in the occurrence at this start, over resourceIds',
      }),
    ),
  },
  { additionalProperties: false },
);

export const Availability = Type.Object(
  {
    serviceId: Uuid,
    timeZone: Type.String(),
    slots: Type.Array(Slot),
  },
  { title: 'Availability', additionalProperties: false },
);

type SlotDto = Static<typeof Slot>;

export default async function availabilityRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const ttls = configuredTtls(app.config.cache);

  app.get(
    '/availability',
    {
      onRequest: [app.authenticate, app.requireRole(...ALL_ROLES)],
      schema: {
        tags: ['availability'],
        summary: 'Free slots of a service in a time range',
        querystring: AvailabilityQuery,
        response: { 200: Availability, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const q = request.query;
      const serviceId = q.serviceId.toLowerCase();
      const resourceId = q.resourceId?.toLowerCase();
      const from = new Date(q.from);
      const to = new Date(q.to);
      const step = q.stepMinutes ?? DEFAULT_SLOT_STEP_MINUTES;
      // Normalized, so `+02:00` and `Z` spellings of one instant share an entry.
      const key = [
        request.tenant.timezone,
        serviceId,
        from.toISOString(),
        to.toISOString(),
        resourceId ?? '*',
        step,
      ].join('|');
      const slots = await readThrough<SlotDto[]>(
        { redis: app.redis, cipherFor: (t) => app.cipherFor(t), log: request.log, ttlSeconds: ttls },
        request.tenant.name,
        'availability',
        key,
        async () =>
          (
            await request.withTenant((ctx) =>
              findAvailableSlots(ctx, {
                serviceId,
                from,
                to,
                stepMinutes: step,
                ...(resourceId !== undefined ? { resourceId } : {}),
              }),
            )
          ).map((s) => ({
            start: s.localStart,
            end: s.localEnd,
            resourceIds: s.resourceIds,
            ...(s.spotsLeft !== undefined ? { spotsLeft: s.spotsLeft } : {}),
          })),
      );
      return { serviceId, timeZone: request.tenant.timezone, slots };
    },
  );
}
