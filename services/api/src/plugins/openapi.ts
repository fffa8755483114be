/**
 * The OpenAPI 3 document, generated from the routes' TypeBox schemas by @fastify/swagger (so it
 * can't drift from what the API validates), served at `/v1/openapi.json`; Swagger UI at `/docs`.
 * Must be registered before the routes: it collects them with an onRoute hook.
 * @see https://github.com/fastify/fastify-swagger#openapi
 */
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

export interface OpenApiPluginOptions {
  publicUrl?: string;
}

export default fp(
  async (app: FastifyInstance, opts: OpenApiPluginOptions) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Simptu API',
          version: '1.0.0',
          description:
            'Tenant-scoped REST API. The tenant comes from the bearer access token only. ' +
            'Errors: `{error: {code, message, details}}`. See docs/api.md.',
        },
        ...(opts.publicUrl ? { servers: [{ url: opts.publicUrl }] } : {}),
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          },
        },
        security: [{ bearerAuth: [] }],
      },
    });
    // The public documentation is unauthenticated: in a child context whose onRequest hook
    // counts every request against the caller IP's anonymous rate limit (plugins/rate-limit.ts).
    // @fastify/swagger itself stays at the root: its onRoute hook must see every route.
    await app.register(async (docs) => {
      docs.addHook('onRequest', docs.enforceAnonymousRateLimit);
      await docs.register(swaggerUi, {
        routePrefix: '/docs',
        uiConfig: { url: '/v1/openapi.json', deepLinking: true },
      });
      docs.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    });
  },
  { name: 'simptu-openapi', fastify: '5.x', dependencies: ['simptu-rate-limit'] },
);
