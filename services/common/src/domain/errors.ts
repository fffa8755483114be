/**
 * The domain's error catalogue (CONVENTIONS 10), on top of the common library's
 * `defineErrors`. Not-found and bad input reuse the library's `NotFoundError`
 * (`SIMPTU_ERR_NOT_FOUND`, 404) and `ValidationError` (`SIMPTU_ERR_VALIDATION`, 400, with
 * `details.issues`), so the API maps every domain failure with its one error handler.
 */
import { defineErrors, NotFoundError, ValidationError, type ValidationIssue } from '../errors.ts';

export { NotFoundError, ValidationError, type ValidationIssue };

export const DomainErrors = defineErrors({
  /** the resource is taken for (part of) the requested time, or no capable resource is free */
  BOOKING_CONFLICT: { status: 409, message: 'The requested time is no longer available' },
  /**
   * a class occurrence (service, studio, start) has `capacity` live bookings already — in the
   * named studio, or in every capable studio not taken by something else at that time
   */
  CLASS_FULL: { status: 409, message: 'The class is full' },
  /** the customer already has a place in this class occurrence */
  CLASS_ALREADY_BOOKED: { status: 409, message: 'The customer already has a place in this class' },
  /** reschedule/cancel of a booking that is not live */
  BOOKING_NOT_ACTIVE: { status: 409, message: 'The booking is cancelled' },
  /** an idempotency key reused for a different request */
  IDEMPOTENCY_KEY_REUSED: { status: 409, message: 'The idempotency key was used for a different request' },
  /** another customer already has this phone number or e-mail address */
  CUSTOMER_EXISTS: { status: 409, message: 'A customer with this phone number or e-mail address exists' },
  /** session state change that the state machine forbids */
  INVALID_STATE_TRANSITION: { status: 409, message: 'The session cannot change to that state' },
  /** a message for a closed session */
  SESSION_CLOSED: { status: 409, message: 'The session is closed' },
  /** delete of a catalog entry that bookings still reference */
  IN_USE: { status: 409, message: 'The item is still referenced; deactivate it instead' },
});

/** Shorthand for a single-field validation failure. */
export function invalid(path: string, message: string): ValidationError {
  return new ValidationError([{ path, message }]);
}

/** Collects issues; throws one `ValidationError` with all of them. */
export class Issues {
  readonly list: ValidationIssue[] = [];

  add(path: string, message: string): void {
    this.list.push({ path, message });
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw new ValidationError(this.list);
  }
}

export function notFound(what: string, id: string): NotFoundError {
  return new NotFoundError(`${what} not found`, { details: { [`${what}Id`]: id } });
}

/** SQLSTATE of a pg error, if it is one. */
export function pgCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' && /^[0-9A-Z]{5}$/.test(c) ? c : undefined;
}

/** The constraint a pg error names, if any. */
export function pgConstraint(err: unknown): string | undefined {
  const c = (err as { constraint?: unknown } | null)?.constraint;
  return typeof c === 'string' ? c : undefined;
}
