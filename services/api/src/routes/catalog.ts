/**
 * The tenant's catalog: services (treatments, classes, room types), resources (chairs,
 * trainers, rooms, studios), which resources deliver which service, weekly opening hours and
 * dated exceptions. Reads are open to every role of the tenant (customers see active entries
 * only) and served from the Redis cache (cache.ts); writes are admin/owner only and invalidate
 * the tenant's catalog and availability cache after they commit.
 *
 *   GET    /v1/catalog/services[?kind&active]         any role
 *   GET    /v1/catalog/services/:id                   any role
 *   POST   /v1/catalog/services                       admin, owner
 *   PATCH  /v1/catalog/services/:id                   admin, owner
 *   DELETE /v1/catalog/services/:id                   admin, owner (409 while bookings reference it)
 *   GET    /v1/catalog/services/:id/resources         any role
 *   PUT    /v1/catalog/services/:id/resources         admin, owner (replaces the set)
 *   GET|POST /v1/catalog/resources, GET|PATCH|DELETE /v1/catalog/resources/:id   (same roles)
 *   GET    /v1/catalog/opening-hours                  any role
 *   PUT    /v1/catalog/opening-hours                  admin, owner (replaces the week)
 *   GET    /v1/catalog/opening-exceptions[?from&to]   any role
 *   POST   /v1/catalog/opening-exceptions             admin, owner
 *   DELETE /v1/catalog/opening-exceptions/:id         admin, owner
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  addOpeningException,
  createResource,
  createService,
  deleteOpeningException,
  deleteResource,
  deleteService,
  getOpeningHours,
  getResource,
  getService,
  listOpeningExceptions,
  listResources,
  listServiceResources,
  listServices,
  MAX_DURATION_MINUTES,
  RESOURCE_KINDS,
  SERVICE_KINDS,
  setOpeningHours,
  setServiceResources,
  updateResource,
  updateService,
  type DomainContext,
  type OpeningException as DomainException,
  type Resource as DomainResource,
  type Role,
  type Service as DomainService,
} from '@simptu/common';
import { errorResponses, IdParams, Uuid } from '../schemas.ts';
import { configuredTtls, invalidate, readThrough, type CacheDeps } from '../cache.ts';
import { isStaff } from '../plugins/auth.ts';

const ALL_ROLES: Role[] = ['owner', 'admin', 'staff', 'customer'];
const MANAGERS: Role[] = ['admin', 'owner'];

function Nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

const DateTime = Type.String({ format: 'date-time' });
const TimeOfDay = Type.String({
  pattern: '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$',
  description: 'local wall-clock time HH:MM (24:00 = midnight at the end of the day)',
});
const LocalDate = Type.String({ format: 'date', description: 'local date YYYY-MM-DD' });
const Name = Type.String({ minLength: 1, maxLength: 200 });

// ---------------------------------------------------------------------------------------------
// Schemas

export const Service = Type.Object(
  {
    id: Uuid,
    kind: Type.Union(SERVICE_KINDS.map((k) => Type.Literal(k))),
    name: Type.String(),
    description: Nullable(Type.String()),
    durationMinutes: Type.Integer(),
    priceCents: Type.Integer(),
    currency: Type.String(),
    capacity: Type.Integer(),
    active: Type.Boolean(),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { title: 'Service', additionalProperties: false },
);

const ServiceFields = {
  name: Name,
  description: Type.Optional(Nullable(Type.String({ maxLength: 4000 }))),
  durationMinutes: Type.Integer({ minimum: 5, maximum: MAX_DURATION_MINUTES }),
  priceCents: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217' }),
  capacity: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'classes only' })),
  active: Type.Optional(Type.Boolean()),
};

const ServiceInput = Type.Object(
  { kind: Type.Union(SERVICE_KINDS.map((k) => Type.Literal(k))), ...ServiceFields },
  { additionalProperties: false },
);
const ServicePatch = Type.Partial(Type.Object(ServiceFields), {
  additionalProperties: false,
  minProperties: 1,
});

export const Resource = Type.Object(
  {
    id: Uuid,
    kind: Type.Union(RESOURCE_KINDS.map((k) => Type.Literal(k))),
    name: Type.String(),
    active: Type.Boolean(),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { title: 'Resource', additionalProperties: false },
);

const ResourceInput = Type.Object(
  {
    kind: Type.Union(RESOURCE_KINDS.map((k) => Type.Literal(k))),
    name: Name,
    active: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const ResourcePatch = Type.Object(
  { name: Type.Optional(Name), active: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);

const ActiveFilter = Type.Optional(Type.Boolean({ description: 'true: active entries only' }));
const ServiceFilter = Type.Object(
  { kind: Type.Optional(Type.Union(SERVICE_KINDS.map((k) => Type.Literal(k)))), active: ActiveFilter },
  { additionalProperties: false },
);
const ResourceFilter = Type.Object(
  { kind: Type.Optional(Type.Union(RESOURCE_KINDS.map((k) => Type.Literal(k)))), active: ActiveFilter },
  { additionalProperties: false },
);

const ServiceResourcesBody = Type.Object(
  { resourceIds: Type.Array(Uuid, { maxItems: 500, uniqueItems: true }) },
  { additionalProperties: false },
);

const OpeningHoursItem = Type.Object(
  {
    weekday: Type.Integer({ minimum: 1, maximum: 7, description: 'ISO weekday, 1 = Monday' }),
    opens: TimeOfDay,
    closes: TimeOfDay,
  },
  { additionalProperties: false },
);

export const OpeningHours = Type.Object(
  {
    timeZone: Type.String({ description: "the tenant's IANA time zone the times are in" }),
    hours: Type.Array(OpeningHoursItem),
  },
  { title: 'OpeningHours', additionalProperties: false },
);

const OpeningHoursBody = Type.Object(
  { hours: Type.Array(OpeningHoursItem, { maxItems: 100 }) },
  { additionalProperties: false },
);

export const OpeningException = Type.Object(
  {
    id: Uuid,
    date: LocalDate,
    closed: Type.Boolean(),
    opens: Nullable(TimeOfDay),
    closes: Nullable(TimeOfDay),
    reason: Nullable(Type.String()),
  },
  { title: 'OpeningException', additionalProperties: false },
);

const OpeningExceptionInput = Type.Object(
  {
    date: LocalDate,
    closed: Type.Boolean(),
    opens: Type.Optional(Nullable(TimeOfDay)),
    closes: Type.Optional(Nullable(TimeOfDay)),
    reason: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  },
  { additionalProperties: false },
);

const ExceptionRange = Type.Object(
  { from: Type.Optional(LocalDate), to: Type.Optional(LocalDate) },
  { additionalProperties: false },
);

const ItemsOf = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item) }, { additionalProperties: false });

// ---------------------------------------------------------------------------------------------
// DTOs (JSON-safe: the cache stores exactly what is sent)

type ServiceDto = Static<typeof Service>;
type ResourceDto = Static<typeof Resource>;
type ExceptionDto = Static<typeof OpeningException>;

export function toServiceDto(s: DomainService): ServiceDto {
  return { ...s, createdAt: s.createdAt.toISOString(), updatedAt: s.updatedAt.toISOString() };
}

export function toResourceDto(r: DomainResource): ResourceDto {
  return { ...r, createdAt: r.createdAt.toISOString(), updatedAt: r.updatedAt.toISOString() };
}

function toExceptionDto(e: DomainException): ExceptionDto {
  return { ...e };
}

export default async function catalogRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const anyRole = [app.authenticate, app.requireRole(...ALL_ROLES)];
  const managers = [app.authenticate, app.requireRole(...MANAGERS)];

  const ttls = configuredTtls(app.config.cache);
  const deps = (request: FastifyRequest): CacheDeps => ({
    redis: app.redis,
    cipherFor: (t) => app.cipherFor(t),
    log: request.log,
    ttlSeconds: ttls,
  });
  const cached = <T>(request: FastifyRequest, key: string, load: () => Promise<T>) =>
    readThrough(deps(request), request.tenant.name, 'catalog', key, load);
  /** Runs a write in the tenant transaction, then (after COMMIT) drops the tenant's cached catalog. */
  const write = async <T>(request: FastifyRequest, fn: (ctx: DomainContext) => Promise<T>) => {
    const out = await request.withTenant(fn);
    await invalidate(deps(request), request.tenant.name, 'catalog', 'availability');
    return out;
  };

  // ------------------------------------------------------------------------------- services

  app.get(
    '/catalog/services',
    {
      onRequest: anyRole,
      schema: {
        tags: ['catalog'],
        summary: 'List services (customers see active ones only)',
        querystring: ServiceFilter,
        response: { 200: ItemsOf(Service), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const activeOnly = request.query.active === true || !isStaff(request);
      const kind = request.query.kind;
      const items = await cached(request, `services:list:${kind ?? '*'}:${activeOnly}`, async () =>
        (
          await request.withTenant((ctx) =>
            listServices(ctx, { ...(kind !== undefined ? { kind } : {}), activeOnly }),
          )
        ).map(toServiceDto),
      );
      return { items };
    },
  );

  app.get(
    '/catalog/services/:id',
    {
      onRequest: anyRole,
      schema: {
        tags: ['catalog'],
        summary: 'Get a service',
        params: IdParams,
        response: { 200: Service, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      return cached(request, `services:${id}`, async () =>
        toServiceDto(await request.withTenant((ctx) => getService(ctx, id))),
      );
    },
  );

  app.post(
    '/catalog/services',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Create a service',
        body: ServiceInput,
        response: { 201: Service, ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request, reply) => {
      const s = await write(request, (ctx) => createService(ctx, request.body));
      return reply.code(201).header('location', `/v1/catalog/services/${s.id}`).send(toServiceDto(s));
    },
  );

  app.patch(
    '/catalog/services/:id',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Update a service',
        params: IdParams,
        body: ServicePatch,
        response: { 200: Service, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) =>
      toServiceDto(await write(request, (ctx) => updateService(ctx, request.params.id, request.body))),
  );

  app.delete(
    '/catalog/services/:id',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Delete a service no booking references (else 409: deactivate it instead)',
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request, reply) => {
      await write(request, (ctx) => deleteService(ctx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/catalog/services/:id/resources',
    {
      onRequest: anyRole,
      schema: {
        tags: ['catalog'],
        summary: 'The resources that can deliver a service',
        params: IdParams,
        response: { 200: ItemsOf(Resource), ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      const items = await cached(request, `services:${id}:resources`, () =>
        request.withTenant(async (ctx) => {
          await getService(ctx, id); // 404 for an unknown service rather than an empty list
          return (await listServiceResources(ctx, id)).map(toResourceDto);
        }),
      );
      return { items: isStaff(request) ? items : items.filter((r) => r.active) };
    },
  );

  app.put(
    '/catalog/services/:id/resources',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Replace the set of resources that can deliver a service',
        params: IdParams,
        body: ServiceResourcesBody,
        response: { 200: ItemsOf(Resource), ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const items = await write(request, async (ctx) => {
        await setServiceResources(ctx, request.params.id, request.body.resourceIds);
        return listServiceResources(ctx, request.params.id);
      });
      return { items: items.map(toResourceDto) };
    },
  );

  // ------------------------------------------------------------------------------ resources

  app.get(
    '/catalog/resources',
    {
      onRequest: anyRole,
      schema: {
        tags: ['catalog'],
        summary: 'List resources (customers see active ones only)',
        querystring: ResourceFilter,
        response: { 200: ItemsOf(Resource), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const activeOnly = request.query.active === true || !isStaff(request);
      const kind = request.query.kind;
      const items = await cached(request, `resources:list:${kind ?? '*'}:${activeOnly}`, async () =>
        (
          await request.withTenant((ctx) =>
            listResources(ctx, { ...(kind !== undefined ? { kind } : {}), activeOnly }),
          )
        ).map(toResourceDto),
      );
      return { items };
    },
  );

  app.get(
    '/catalog/resources/:id',
    {
      onRequest: anyRole,
      schema: {
        tags: ['catalog'],
        summary: 'Get a resource',
        params: IdParams,
        response: { 200: Resource, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      return cached(request, `resources:${id}`, async () =>
        toResourceDto(await request.withTenant((ctx) => getResource(ctx, id))),
      );
    },
  );

  app.post(
    '/catalog/resources',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Create a resource',
        body: ResourceInput,
        response: { 201: Resource, ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request, reply) => {
      const r = await write(request, (ctx) => createResource(ctx, request.body));
      return reply.code(201).header('location', `/v1/catalog/resources/${r.id}`).send(toResourceDto(r));
    },
  );

  app.patch(
    '/catalog/resources/:id',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Update a resource',
        params: IdParams,
        body: ResourcePatch,
        response: { 200: Resource, ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request) =>
      toResourceDto(await write(request, (ctx) => updateResource(ctx, request.params.id, request.body))),
  );

  app.delete(
    '/catalog/resources/:id',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Delete a resource no booking references (else 409: deactivate it instead)',
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 404, 409, 429, 500) },
      },
    },
    async (request, reply) => {
      await write(request, (ctx) => deleteResource(ctx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  // -------------------------------------------------------------------------- opening hours

  app.get(
    '/catalog/opening-hours',
    {
      onRequest: anyRole,
      schema: {
        tags: ['catalog'],
        summary: "The weekly opening hours, in the tenant's time zone",
        response: { 200: OpeningHours, ...errorResponses(401, 403, 429, 500) },
      },
    },
    async (request) => {
      const hours = await cached(request, 'opening-hours', () =>
        request.withTenant((ctx) => getOpeningHours(ctx)),
      );
      return { timeZone: request.tenant.timezone, hours };
    },
  );

  app.put(
    '/catalog/opening-hours',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Replace the weekly opening hours (an empty list closes every day)',
        body: OpeningHoursBody,
        response: { 200: OpeningHours, ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const hours = await write(request, (ctx) => setOpeningHours(ctx, request.body.hours));
      return { timeZone: request.tenant.timezone, hours };
    },
  );

  app.get(
    '/catalog/opening-exceptions',
    {
      onRequest: anyRole,
      schema: {
        tags: ['catalog'],
        summary: 'Closed days and special hours of local dates in [from, to]',
        querystring: ExceptionRange,
        response: { 200: ItemsOf(OpeningException), ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request) => {
      const { from, to } = request.query;
      const items = await cached(request, `exceptions:${from ?? ''}:${to ?? ''}`, async () =>
        (
          await request.withTenant((ctx) =>
            listOpeningExceptions(ctx, {
              ...(from !== undefined ? { from } : {}),
              ...(to !== undefined ? { to } : {}),
            }),
          )
        ).map(toExceptionDto),
      );
      return { items };
    },
  );

  app.post(
    '/catalog/opening-exceptions',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Add a closed day or special hours for a date',
        body: OpeningExceptionInput,
        response: { 201: OpeningException, ...errorResponses(400, 401, 403, 429, 500) },
      },
    },
    async (request, reply) => {
      const e = await write(request, (ctx) => addOpeningException(ctx, request.body));
      return reply
        .code(201)
        .header('location', `/v1/catalog/opening-exceptions/${e.id}`)
        .send(toExceptionDto(e));
    },
  );

  app.delete(
    '/catalog/opening-exceptions/:id',
    {
      onRequest: managers,
      schema: {
        tags: ['catalog'],
        summary: 'Remove an opening exception',
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 404, 429, 500) },
      },
    },
    async (request, reply) => {
      await write(request, (ctx) => deleteOpeningException(ctx, request.params.id));
      return reply.code(204).send(null);
    },
  );
}
