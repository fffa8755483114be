/**
 * One error catalogue per package (CONVENTIONS 10): business code throws domain errors with a
 * stable code (`SIMPTU_ERR_<NAME>`), an HTTP status and an optional `cause`; one handler maps
 * any thrown value to the single wire format `{error: {code, message, details}}` (DESIGN §7),
 * and never leaks the message of a 5xx.
 * @see https://github.com/fastify/fastify/blob/main/lib/errors.js (createError pattern)
 * @see https://github.com/backstage/backstage/blob/master/packages/errors/src/errors/common.ts
 */

export type ErrorDetails = Record<string, unknown>;

export interface SimptuErrorOptions {
  /** machine-readable context returned to the client (4xx only; never secrets) */
  details?: ErrorDetails;
  cause?: unknown;
  /** overrides the catalogue message */
  message?: string;
}

export class SimptuError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly details: ErrorDetails | undefined;

  constructor(code: string, statusCode: number, message: string, options: SimptuErrorOptions = {}) {
    super(options.message ?? message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.statusCode = statusCode;
    this.details = options.details;
  }

  /** true for 4xx: the message and details were written for the client */
  get expose(): boolean {
    return this.statusCode < 500;
  }
}

export const ERROR_CODE_PREFIX = 'SIMPTU_ERR_';

export class NotFoundError extends SimptuError {
  constructor(message = 'Not found', options: SimptuErrorOptions = {}) {
    super(`${ERROR_CODE_PREFIX}NOT_FOUND`, 404, message, options);
  }
}

export class ConflictError extends SimptuError {
  constructor(message = 'Conflict', options: SimptuErrorOptions = {}) {
    super(`${ERROR_CODE_PREFIX}CONFLICT`, 409, message, options);
  }
}

export class ForbiddenError extends SimptuError {
  constructor(message = 'Forbidden', options: SimptuErrorOptions = {}) {
    super(`${ERROR_CODE_PREFIX}FORBIDDEN`, 403, message, options);
  }
}

/**
 * Why a request is not authenticated. Returned in `details.reason` — safe to expose (it tells
 * the client whether to refresh or log in again, nothing about keys).
 */
export type UnauthorizedReason =
  | 'missing_token'
  | 'malformed'
  | 'algorithm_not_allowed'
  | 'unknown_key'
  | 'invalid_signature'
  | 'invalid_type'
  | 'invalid_issuer'
  | 'invalid_audience'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'missing_claim'
  | 'missing_tenant'
  | 'invalid_tenant'
  | 'invalid_subject'
  | 'invalid_roles'
  | 'invalid_scope'
  | 'invalid_token';

export class UnauthorizedError extends SimptuError {
  readonly reason: UnauthorizedReason;
  constructor(reason: UnauthorizedReason, message = 'Unauthorized', options: SimptuErrorOptions = {}) {
    super(`${ERROR_CODE_PREFIX}UNAUTHORIZED`, 401, message, {
      ...options,
      details: { reason, ...options.details },
    });
    this.reason = reason;
  }
}

export interface ValidationIssue {
  /** JSON pointer or dotted path of the offending field */
  path: string;
  message: string;
}

export class ValidationError extends SimptuError {
  readonly issues: ValidationIssue[];
  constructor(issues: ValidationIssue[], message = 'Invalid input', options: SimptuErrorOptions = {}) {
    super(`${ERROR_CODE_PREFIX}VALIDATION`, 400, message, {
      ...options,
      details: { issues, ...options.details },
    });
    this.issues = issues;
  }
}

export class RateLimitedError extends SimptuError {
  readonly retryAfterSeconds: number | undefined;
  constructor(retryAfterSeconds?: number, message = 'Too many requests', options: SimptuErrorOptions = {}) {
    super(`${ERROR_CODE_PREFIX}RATE_LIMITED`, 429, message, {
      ...options,
      details: retryAfterSeconds === undefined ? options.details : { retryAfterSeconds, ...options.details },
    });
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface ErrorDefinition {
  status: number;
  message: string;
}

/** A catalogue entry: `new Errors.BOOKING_CONFLICT({details})`, with `Errors.BOOKING_CONFLICT.code`. */
export interface CatalogueError<Code extends string> {
  new (options?: SimptuErrorOptions): SimptuError & { readonly code: Code };
  readonly code: Code;
  readonly statusCode: number;
}

export type ErrorCatalogue<D extends Record<string, ErrorDefinition>> = {
  readonly [K in keyof D & string]: CatalogueError<`${typeof ERROR_CODE_PREFIX}${K}`>;
};

const CODE_NAME_RE = /^[A-Z][A-Z0-9_]*$/;

/**
 * Defines a package's error catalogue:
 *
 *     export const Errors = defineErrors({
 *       BOOKING_CONFLICT: { status: 409, message: 'The slot is already booked' },
 *     });
 *     throw new Errors.BOOKING_CONFLICT({ details: { resourceId }, cause: pgErr });
 *
 * Codes get the `SIMPTU_ERR_` prefix. Handlers map by `statusCode`, so a catalogue entry
 * needs no domain base class.
 */
export function defineErrors<const D extends Record<string, ErrorDefinition>>(defs: D): ErrorCatalogue<D> {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(defs)) {
    if (!CODE_NAME_RE.test(name))
      throw new TypeError(`error code ${JSON.stringify(name)} must be UPPER_SNAKE_CASE`);
    if (!Number.isInteger(def.status) || def.status < 400 || def.status > 599)
      throw new TypeError(`error ${name}: status ${def.status} is not a 4xx/5xx`);
    const code = `${ERROR_CODE_PREFIX}${name}`;
    const cls = class extends SimptuError {
      static readonly code = code;
      static readonly statusCode = def.status;
      constructor(options: SimptuErrorOptions = {}) {
        super(code, def.status, def.message, options);
        this.name = name;
      }
    };
    Object.defineProperty(cls, 'name', { value: name });
    out[name] = cls;
  }
  return out as ErrorCatalogue<D>;
}

/** The common library's own catalogue. */
export const CommonErrors = defineErrors({
  INTERNAL: { status: 500, message: 'Internal server error' },
  TENANT_CONTEXT_MISSING: { status: 500, message: 'No tenant in the current context' },
  TOPIC_TENANT_MISMATCH: { status: 500, message: 'Event tenant does not match the topic or producer' },
  AUTH_UNAVAILABLE: { status: 503, message: 'Token verification is temporarily unavailable' },
  SERVICE_UNAVAILABLE: { status: 503, message: 'Service unavailable' },
});

export interface ErrorBody {
  error: { code: string; message: string; details?: ErrorDetails };
}

/** Default codes for errors that carry a status but are not ours (e.g. fastify's). */
const STATUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
};

/** The HTTP status to answer with for any thrown value (500 when it names none). */
export function errorStatus(err: unknown): number {
  if (err instanceof SimptuError) return err.statusCode;
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' && Number.isInteger(s) && s >= 400 && s <= 599 ? s : 500;
}

/**
 * Maps any thrown value to the wire format. 4xx keep their message and details; 5xx become a
 * generic message with only the request id (so the client can quote it and we can find the
 * log line), whatever the error said.
 */
export function toErrorBody(err: unknown, requestId?: string): { statusCode: number; body: ErrorBody } {
  const statusCode = errorStatus(err);
  if (statusCode >= 500) {
    const code =
      err instanceof SimptuError
        ? err.code
        : statusCode === 503
          ? CommonErrors.SERVICE_UNAVAILABLE.code
          : CommonErrors.INTERNAL.code;
    const message = statusCode === 503 ? 'Service unavailable' : 'Internal server error';
    return {
      statusCode,
      body: { error: { code, message, ...(requestId ? { details: { requestId } } : {}) } },
    };
  }
  if (err instanceof SimptuError) {
    return {
      statusCode,
      body: {
        error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
      },
    };
  }
  const e = err as { message?: unknown; code?: unknown };
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : 'Bad request';
  return {
    statusCode,
    body: { error: { code: `${ERROR_CODE_PREFIX}${STATUS_CODES[statusCode] ?? 'BAD_REQUEST'}`, message } },
  };
}
