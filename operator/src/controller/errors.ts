/**
 * Classifying Kubernetes API errors. client-node v1+ throws `ApiException` (`code`, `body`) from
 * its generated and object APIs; its `Watch` reports plain errors with `statusCode`. The
 * `reason` in the `Status` body separates 409 AlreadyExists from 409 Conflict.
 * @see https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
 */
import { ApiException } from '@kubernetes/client-node/dist/gen/apis/exception.js';

/** The HTTP status of a Kubernetes API error, if it is one. */
export function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; statusCode?: unknown };
    if (typeof e.statusCode === 'number') return e.statusCode;
    if (typeof e.code === 'number') return e.code;
  }
  return undefined;
}

/** The `reason` of the `metav1.Status` body (NotFound, Conflict, AlreadyExists, Expired, …). */
export function statusReason(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  let body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const reason = (body as { reason?: unknown } | null | undefined)?.reason;
  return typeof reason === 'string' ? reason : undefined;
}

export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404;
}

/** 409 caused by a stale resourceVersion (optimistic concurrency), not by AlreadyExists. */
export function isConflict(err: unknown): boolean {
  return statusCode(err) === 409 && statusReason(err) !== 'AlreadyExists';
}

export function isAlreadyExists(err: unknown): boolean {
  return statusCode(err) === 409 && statusReason(err) === 'AlreadyExists';
}

/** 410 Gone: the resourceVersion is too old (compacted); the informer must relist. */
export function isGone(err: unknown): boolean {
  return statusCode(err) === 410;
}

/** A short message for logs and conditions, without client-node's dump of headers. */
export function errorMessage(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    let body = (err as { body?: unknown }).body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        /* keep the string */
      }
    }
    const msg = (body as { message?: unknown } | null | undefined)?.message;
    const code = statusCode(err);
    if (typeof msg === 'string') return code ? `${code}: ${msg}` : msg;
  }
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.message;
  return String(err);
}
