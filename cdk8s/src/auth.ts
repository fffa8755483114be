/**
 * `Auth`: the SSO issuer (DESIGN §7, oidc-provider); variables are exactly what
 * `services/auth/src/config.ts` reads (test/platform/env-contract.test.ts checks it).
 */
import { Construct } from 'constructs';
import { DEFAULT_REFS, checkBackends, type BackendProps } from './backends.ts';
import { PlatformService, validateCommon, type PlatformServiceCommonProps } from './platform-service.ts';
import { checkUrl, secretEnv, type SecretKeyRef } from './util.ts';

export const AUTH_NAME = 'simptu-auth';
export const AUTH_PORT = 3001;

export interface AuthProps extends PlatformServiceCommonProps, BackendProps {
  /** The issuer URL (`iss`), e.g. `https://auth.simptu.io`. */
  readonly issuer: string;
  /**
   * Keys signing the SSO's cookies (comma-separated, each ≥ 32 characters; the first signs).
   * @default simptu-auth / cookie-keys
   */
  readonly cookieKeys?: SecretKeyRef;
  /**
   * The SSO's database URL. It owns and migrates the `auth` schema, so it needs CREATE on the
   * platform database besides the services' rights (docs/install.md).
   * @default simptu-database / admin-url
   */
  readonly databaseUrl?: SecretKeyRef;
}

export const AUTH_COOKIE_KEYS_REF: SecretKeyRef = { name: 'simptu-auth', key: 'cookie-keys' };

export class Auth extends Construct {
  readonly service: PlatformService;

  constructor(scope: Construct, id: string, props: AuthProps) {
    super(scope, id);
    validateCommon('Auth', props);
    checkBackends('Auth', props);
    checkUrl('Auth', 'issuer', props.issuer);

    this.service = new PlatformService(this, 'service', {
      ...props,
      name: AUTH_NAME,
      component: 'auth',
      image: props.image ?? 'simptu/auth:latest',
      port: AUTH_PORT,
      // argon2id hashing is memory-hungry by design.
      defaultResources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '768Mi' } },
      env: [
        { name: 'SIMPTU_AUTH_HOST', value: '0.0.0.0' },
        { name: 'SIMPTU_AUTH_PORT', value: String(AUTH_PORT) },
        { name: 'SIMPTU_AUTH_LOG_LEVEL', value: props.logLevel ?? 'info' },
        { name: 'SIMPTU_AUTH_ISSUER', value: props.issuer },
        secretEnv('SIMPTU_AUTH_DATABASE_URL', props.databaseUrl ?? DEFAULT_REFS.adminUrl),
        secretEnv('SIMPTU_AUTH_REDIS_URL', props.redisUrl ?? DEFAULT_REFS.redisUrl),
        secretEnv('SIMPTU_AUTH_KEK', props.kekBase64 ?? DEFAULT_REFS.kekBase64),
        secretEnv('SIMPTU_AUTH_COOKIE_KEYS', props.cookieKeys ?? AUTH_COOKIE_KEYS_REF),
      ],
    });
  }
}
