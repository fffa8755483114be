import { describe, expect, it } from 'vitest';
import {
  CommonErrors,
  ConflictError,
  defineErrors,
  ForbiddenError,
  NotFoundError,
  RateLimitedError,
  SimptuError,
  toErrorBody,
  UnauthorizedError,
  ValidationError,
} from './errors.ts';

describe('defineErrors', () => {
  const Errors = defineErrors({
    BOOKING_CONFLICT: { status: 409, message: 'The slot is already booked' },
    UPSTREAM_DOWN: { status: 502, message: 'Twilio said: account 123 suspended' },
  });

  it('gives typed constructors with prefixed codes, status, details and cause', () => {
    const cause = new Error('duplicate key');
    const err = new Errors.BOOKING_CONFLICT({ details: { resourceId: 'r1' }, cause });
    expect(err).toBeInstanceOf(SimptuError);
    expect(err).toBeInstanceOf(Errors.BOOKING_CONFLICT);
    expect(err.code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    expect(Errors.BOOKING_CONFLICT.code).toBe('SIMPTU_ERR_BOOKING_CONFLICT');
    expect(err.statusCode).toBe(409);
    expect(err.message).toBe('The slot is already booked');
    expect(err.details).toEqual({ resourceId: 'r1' });
    expect(err.cause).toBe(cause);
    expect(err.name).toBe('BOOKING_CONFLICT');
    expect(new Errors.BOOKING_CONFLICT({ message: 'Chair 2 is taken' }).message).toBe('Chair 2 is taken');
  });

  it('refuses bad names and statuses', () => {
    expect(() => defineErrors({ lower: { status: 400, message: 'x' } })).toThrow(/UPPER_SNAKE_CASE/);
    expect(() => defineErrors({ OK: { status: 200, message: 'x' } })).toThrow(/4xx\/5xx/);
  });

  it('toErrorBody keeps 4xx messages and hides 5xx ones behind the request id', () => {
    expect(toErrorBody(new Errors.BOOKING_CONFLICT({ details: { at: '10:00' } }))).toEqual({
      statusCode: 409,
      body: {
        error: {
          code: 'SIMPTU_ERR_BOOKING_CONFLICT',
          message: 'The slot is already booked',
          details: { at: '10:00' },
        },
      },
    });
    const hidden = toErrorBody(new Errors.UPSTREAM_DOWN({ details: { secret: 'x' } }), 'req-1');
    expect(hidden).toEqual({
      statusCode: 502,
      body: {
        error: {
          code: 'SIMPTU_ERR_UPSTREAM_DOWN',
          message: 'Internal server error',
          details: { requestId: 'req-1' },
        },
      },
    });
    expect(JSON.stringify(toErrorBody(new Error('password=hunter2 at db'), 'req-2'))).not.toContain(
      'hunter2',
    );
    expect(toErrorBody(new Error('boom')).body.error.code).toBe('SIMPTU_ERR_INTERNAL');
    expect(toErrorBody('a string').statusCode).toBe(500);
    expect(toErrorBody(null).statusCode).toBe(500);
    expect(toErrorBody(new CommonErrors.AUTH_UNAVAILABLE()).body.error).toEqual({
      code: 'SIMPTU_ERR_AUTH_UNAVAILABLE',
      message: 'Service unavailable',
    });
  });

  it('maps foreign errors that carry a 4xx status (e.g. fastify validation)', () => {
    const fst = Object.assign(new Error('body must have required property name'), {
      statusCode: 400,
      code: 'FST_ERR_VALIDATION',
    });
    expect(toErrorBody(fst)).toEqual({
      statusCode: 400,
      body: { error: { code: 'SIMPTU_ERR_BAD_REQUEST', message: 'body must have required property name' } },
    });
    expect(toErrorBody({ statusCode: 413 }).body.error.code).toBe('SIMPTU_ERR_PAYLOAD_TOO_LARGE');
    expect(toErrorBody({ statusCode: 200 }).statusCode).toBe(500); // not an error status: treat as a bug
  });
});

describe('domain errors', () => {
  it('carry their codes and statuses', () => {
    const cases: Array<[SimptuError, string, number]> = [
      [new NotFoundError('Booking not found'), 'SIMPTU_ERR_NOT_FOUND', 404],
      [new ConflictError(), 'SIMPTU_ERR_CONFLICT', 409],
      [new ForbiddenError(), 'SIMPTU_ERR_FORBIDDEN', 403],
      [new UnauthorizedError('token_expired'), 'SIMPTU_ERR_UNAUTHORIZED', 401],
      [new ValidationError([{ path: 'email', message: 'not an e-mail' }]), 'SIMPTU_ERR_VALIDATION', 400],
      [new RateLimitedError(30), 'SIMPTU_ERR_RATE_LIMITED', 429],
    ];
    for (const [err, code, status] of cases) {
      expect(err.code).toBe(code);
      expect(err.statusCode).toBe(status);
      expect(err.expose).toBe(true);
    }
    expect(new UnauthorizedError('token_expired').details).toEqual({ reason: 'token_expired' });
    expect(
      toErrorBody(new ValidationError([{ path: 'email', message: 'not an e-mail' }])).body.error.details,
    ).toEqual({
      issues: [{ path: 'email', message: 'not an e-mail' }],
    });
    expect(new RateLimitedError(30).details).toEqual({ retryAfterSeconds: 30 });
    expect(new NotFoundError().name).toBe('NotFoundError');
  });
});
