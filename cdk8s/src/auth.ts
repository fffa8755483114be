/**
 * `Auth`: the SSO issuer (DESIGN §7, oidc-provider). `services/auth` does not exist yet; its
 * variables follow the other services' convention (`SIMPTU_AUTH_*` mapped by path onto its
 * config schema) — re-check them against `services/auth/src/config.ts` when it lands.
 */
import { Construct } from 'constructs';
import { DEFAULT_REFS, checkBackends, type BackendProps } from './backends.ts';
import { PlatformService, validateCommon, type PlatformServiceCommonProps } from './platform-service.ts';
import { checkUrl, secretEnv } from './util.ts';

export const AUTH_NAME = 'simptu-auth';
export const AUTH_PORT = 3001;

export interface AuthProps extends PlatformServiceCommonProps, BackendProps {
  /** The issuer URL (`iss`), e.g. `https://auth.simptu.io`. */
  readonly issuer: string;
}

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
        secretEnv('SIMPTU_AUTH_DATABASE_URL', props.databaseUrl ?? DEFAULT_REFS.appUrl),
        secretEnv('SIMPTU_AUTH_REDIS_URL', props.redisUrl ?? DEFAULT_REFS.redisUrl),
        { name: 'SIMPTU_AUTH_KAFKA_BROKERS', value: props.kafkaBrokers.join(',') },
        secretEnv('SIMPTU_AUTH_KEK', props.kekBase64 ?? DEFAULT_REFS.kekBase64),
      ],
    });
  }
}
