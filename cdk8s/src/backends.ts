/**
 * Where the platform's backing services are and which Secrets hold their credentials. One
 * convention for every construct, the chart and docs/install.md:
 *
 *   Secret `simptu-database`  admin-url     superuser/migrator URL of the platform database (operator)
 *                             app-url       URL of the services' NOINHERIT login role `simptu_app`
 *                             app-password  that role's password (the operator sets it on the role)
 *   Secret `simptu-redis`     url           redis://… (with the password, if any)
 *   Secret `simptu-kek`       kek           the 256-bit key-encryption key, raw bytes (the operator
 *                                           reads `data.kek`, see operator/src/kek.ts)
 *                             kek-base64    the same key as base64 text (the services' env vars
 *                                           SIMPTU_API_KEK / SIMPTU_REALTIME_KEK_BASE64 take text;
 *                                           an env var cannot carry raw bytes)
 */
import { checkBrokers, checkSecretKeyRef, type SecretKeyRef } from './util.ts';

export const DATABASE_SECRET = 'simptu-database';
export const REDIS_SECRET = 'simptu-redis';
export const KEK_SECRET = 'simptu-kek';

export const DEFAULT_REFS = {
  adminUrl: { name: DATABASE_SECRET, key: 'admin-url' },
  appUrl: { name: DATABASE_SECRET, key: 'app-url' },
  appPassword: { name: DATABASE_SECRET, key: 'app-password' },
  redisUrl: { name: REDIS_SECRET, key: 'url' },
  kek: { name: KEK_SECRET, key: 'kek' },
  kekBase64: { name: KEK_SECRET, key: 'kek-base64' },
} as const satisfies Record<string, SecretKeyRef>;

export interface BackendProps {
  /** Kafka bootstrap servers, `host:port` each. */
  readonly kafkaBrokers: readonly string[];
  /** The services' database URL (login role `simptu_app`). @default simptu-database / app-url */
  readonly databaseUrl?: SecretKeyRef;
  /** @default simptu-redis / url */
  readonly redisUrl?: SecretKeyRef;
  /** The KEK as base64 text. @default simptu-kek / kek-base64 */
  readonly kekBase64?: SecretKeyRef;
}

export function checkBackends(who: string, props: BackendProps): void {
  checkBrokers(who, props.kafkaBrokers);
  checkSecretKeyRef(who, 'databaseUrl', props.databaseUrl);
  checkSecretKeyRef(who, 'redisUrl', props.redisUrl);
  checkSecretKeyRef(who, 'kekBase64', props.kekBase64);
}
