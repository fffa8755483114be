/**
 * The request/tenant context (DESIGN §10: token → request context → transaction role → …).
 * Set once where a unit of work enters a service (an HTTP request after token verification, a
 * Kafka message after decoding) and read wherever it is needed — logs, `withTenant`, outbox —
 * without threading it through every call. Code that needs a tenant and finds none fails
 * closed with a typed error instead of guessing.
 * @see https://nodejs.org/docs/latest-v22.x/api/async_context.html#class-asynclocalstorage
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { CommonErrors } from './errors.ts';
import { isValidTenantName } from './names.ts';

export const ROLES = ['owner', 'admin', 'staff', 'customer'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** Who is acting: from a verified access token. */
export interface Principal {
  sub: string;
  roles: Role[];
  scope: string[];
}

export interface RequestContext {
  /** tenant name; absent for platform-level work (e.g. a webhook before it is routed) */
  tenant?: string;
  principal?: Principal;
  requestId: string;
}

const storage = new AsyncLocalStorage<Readonly<RequestContext>>();

/**
 * Runs `fn` with `ctx` as the current context (nested calls see the innermost). The tenant
 * name is validated here, so nothing downstream sees a malformed one. `requestId` defaults to
 * a random UUID.
 */
export function runWithContext<T>(
  ctx: Omit<RequestContext, 'requestId'> & { requestId?: string },
  fn: () => T,
): T {
  if (ctx.tenant !== undefined && !isValidTenantName(ctx.tenant))
    throw new TypeError(`invalid tenant name ${JSON.stringify(ctx.tenant)} in request context`);
  const frozen: RequestContext = Object.freeze({
    ...ctx,
    requestId: ctx.requestId ?? randomUUID(),
    ...(ctx.principal ? { principal: Object.freeze({ ...ctx.principal }) } : {}),
  });
  return storage.run(frozen, fn);
}

export function currentContext(): Readonly<RequestContext> | undefined {
  return storage.getStore();
}

/** The current tenant; throws `TENANT_CONTEXT_MISSING` (a 500: a programming error) when none. */
export function requireTenant(): string {
  const tenant = storage.getStore()?.tenant;
  if (tenant === undefined) throw new CommonErrors.TENANT_CONTEXT_MISSING();
  return tenant;
}

export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}
