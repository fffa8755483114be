/**
 * Structured JSON logs (DESIGN §10) with the tenant, request id and principal of the current
 * context on every line, and secrets and personal data redacted by path before anything is
 * written. Redaction is a safety net: code should not log message bodies in the first place.
 * @see https://getpino.io/#/docs/redaction
 * @see https://getpino.io/#/docs/api?id=mixin-function
 */
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { currentContext } from './context.ts';

export type { Logger } from 'pino';

export const REDACTED = '[redacted]';

/** Keys never logged in clear, wherever they appear in the first three levels of a log object. */
export const SENSITIVE_KEYS = [
  // credentials
  'authorization',
  'cookie',
  'set-cookie',
  'password',
  'passwordHash',
  'secret',
  'clientSecret',
  'token',
  'accessToken',
  'refreshToken',
  'idToken',
  'access_token',
  'refresh_token',
  'id_token',
  'apiKey',
  'dek',
  'kek',
  // personal data (DESIGN §6)
  'phone',
  'email',
  'name',
  'firstName',
  'lastName',
  'address',
  'dateOfBirth',
  // message bodies
  'body',
  'text',
  'content',
  'message.body',
] as const;

/** pino redact paths for `SENSITIVE_KEYS` at depths 1–3 (pino's wildcards match one level each). */
export function redactPaths(keys: readonly string[] = SENSITIVE_KEYS): string[] {
  const seg = (k: string) => k.split('.').map((p) => (/^[A-Za-z_$][\w$]*$/.test(p) ? p : `["${p}"]`));
  const join = (parts: string[]) =>
    parts.reduce((acc, p) => (p.startsWith('[') ? acc + p : acc ? `${acc}.${p}` : p), '');
  const out: string[] = [];
  for (const k of keys) {
    const parts = seg(k);
    out.push(join(parts), join(['*', ...parts]), join(['*', '*', ...parts]));
  }
  return out;
}

export interface LoggerConfig {
  /** the service name, logged as `service` */
  service: string;
  /** @default 'info' */
  level?: string;
  /** extra paths to redact, pino syntax (`req.headers["x-api-key"]`) */
  redact?: string[];
  /** where lines go; @default stdout */
  destination?: DestinationStream;
  /** more pino options (merged last; `redact`/`mixin` here replace ours, so don't) */
  pino?: LoggerOptions;
}

/**
 * A pino logger whose every line carries `tenant`, `requestId` and `principal` (the subject
 * only, not roles) from the current `runWithContext` scope.
 */
export function createLogger(config: LoggerConfig): Logger {
  return pino(
    {
      // No pino `name`: `name` is redacted as personal data; `service` says who logged.
      level: config.level ?? 'info',
      base: { service: config.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...redactPaths(), ...(config.redact ?? [])], censor: REDACTED },
      mixin() {
        const ctx = currentContext();
        if (!ctx) return {};
        return {
          requestId: ctx.requestId,
          ...(ctx.tenant ? { tenant: ctx.tenant } : {}),
          ...(ctx.principal ? { principal: ctx.principal.sub } : {}),
        };
      },
      // Error objects under `err` and `error` get pino's serializer (type, message, stack, cause).
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
      ...config.pino,
    },
    config.destination ?? pino.destination({ sync: false }),
  );
}
