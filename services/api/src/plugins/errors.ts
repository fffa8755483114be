/**
 * One error handler for the whole API (CONVENTIONS 10, DESIGN §7): everything a route throws
 * leaves as `{error: {code, message, details?}}`.
 *   - `SimptuError` (domain and library errors) → its status, code, message, details;
 *   - fastify schema validation → 400 `SIMPTU_ERR_VALIDATION`, `details.issues` listing EVERY
 *     problem as `{path, message}` (`body.name`, `query.limit`, `params.id`);
 *   - other errors that carry a 4xx (bad JSON, wrong content type, body too large) → that status;
 *   - anything else → 500 with a generic message and the request id, logged at error.
 * 4xx are logged at info (the client's problem, not ours). Unknown routes → 404 in the same shape.
 *
 * Errors fastify raises BEFORE routing (a URL parameter over `maxParamLength` → 414, a URL that
 * is not valid percent-encoding → 400) bypass the error handler; `frameworkErrors` (a server
 * option, set in app.ts to `frameworkErrorHandler`) answers them in the same format. Fastify's
 * default body for them quotes the whole path, which would echo whatever a caller (or a log
 * scraper) put in it; ours names only the problem.
 * @see https://fastify.dev/docs/latest/Reference/Server/#frameworkerrors
 * @see https://fastify.dev/docs/latest/Reference/Server/#seterrorhandler
 * @see https://fastify.dev/docs/latest/Reference/Validation-and-Serialization/#error-handling
 */
import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  defineErrors,
  NotFoundError,
  toErrorBody,
  ValidationError,
  type ValidationIssue,
} from '@simptu/common';

export const FrameworkErrors = defineErrors({
  URI_TOO_LONG: { status: 414, message: 'A URL path parameter is too long' },
  BAD_URL: { status: 400, message: 'The URL is not valid (bad percent-encoding)' },
});

/**
 * The `frameworkErrors` server option: fastify's pre-routing errors in our format. The request
 * never reached the onRequest hooks, so the request id header is set here.
 */
export function frameworkErrorHandler(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const mapped =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new FrameworkErrors.URI_TOO_LONG()
      : error.code === 'FST_ERR_BAD_URL'
        ? new FrameworkErrors.BAD_URL()
        : error;
  const { statusCode, body } = toErrorBody(mapped, request.id);
  // Log the code, not the URL (it is what was wrong, and may be huge or hostile).
  if (statusCode >= 500) request.log.error({ code: error.code }, 'framework error');
  else request.log.info({ code: body.error.code, statusCode, fastifyCode: error.code }, body.error.message);
  void reply
    .code(statusCode)
    .header('x-request-id', request.id)
    .type('application/json; charset=utf-8')
    .send(body);
}

interface AjvIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `/a/0/b` → `a.0.b`, prefixed by where it was (`body`, `query`, `params`, `headers`). */
export function validationIssues(
  context: string | undefined,
  issues: readonly AjvIssue[],
): ValidationIssue[] {
  return issues.map((i) => {
    const segments = (i.instancePath ?? '')
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const extra =
      i.keyword === 'required' && typeof i.params?.missingProperty === 'string'
        ? [i.params.missingProperty]
        : i.keyword === 'additionalProperties' && typeof i.params?.additionalProperty === 'string'
          ? [i.params.additionalProperty]
          : [];
    const path = [context ?? 'request', ...segments, ...extra].join('.');
    let message = i.message ?? 'is invalid';
    if (i.keyword === 'additionalProperties') message = 'is not allowed';
    if (i.keyword === 'required') message = 'is required';
    return { path, message };
  });
}

export default fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((err: FastifyError, request, reply) => {
      let error: unknown = err;
      if (Array.isArray(err.validation)) {
        error = new ValidationError(validationIssues(err.validationContext, err.validation as AjvIssue[]));
      }
      const { statusCode, body } = toErrorBody(error, request.id);
      if (statusCode >= 500) request.log.error({ err }, 'request failed');
      else request.log.info({ code: body.error.code, statusCode }, body.error.message);
      // Headers set before the error (Retry-After by the rate limiter) stay.
      return reply.code(statusCode).type('application/json; charset=utf-8').send(body);
    });

    app.setNotFoundHandler((request, reply) => {
      const { statusCode, body } = toErrorBody(
        new NotFoundError('Route not found', {
          details: { method: request.method, url: request.url.split('?')[0] },
        }),
      );
      return reply.code(statusCode).send(body);
    });
  },
  { name: 'simptu-errors', fastify: '5.x' },
);
