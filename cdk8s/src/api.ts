/**
 * `Api`: the REST API (DESIGN §7) in the platform namespace. Environment variables follow
 * `services/api/src/config.ts` (`SIMPTU_API_*`, unknown ones are refused there, which the tests
 * check by loading this construct's environment with `loadApiConfig`).
 */
import { Construct } from 'constructs';
import { DEFAULT_REFS, checkBackends, type BackendProps } from './backends.ts';
import { PlatformService, validateCommon, type PlatformServiceCommonProps } from './platform-service.ts';
import { checkUrl, secretEnv } from './util.ts';

export const API_NAME = 'simptu-api';
export const API_PORT = 3003;

export interface ServiceAuthProps {
  /** The SSO issuer URL tokens carry in `iss`, e.g. `https://auth.simptu.io`. */
  readonly issuer: string;
  /** Where the JWKS is fetched. @default the in-cluster auth Service: `http://simptu-auth.<namespace>.svc:3001/jwks` */
  readonly jwksUri?: string;
  /** @default 'simptu-api' */
  readonly audience?: string;
}

export interface ApiProps extends PlatformServiceCommonProps, BackendProps {
  readonly auth: ServiceAuthProps;
  /** Public base URL written into the OpenAPI document. @default `https://<ingress.host>` when an Ingress is set */
  readonly publicUrl?: string;
  /** Readiness fails this long before the server stops on SIGTERM. @default 5000 */
  readonly shutdownDelayMs?: number;
}

export class Api extends Construct {
  readonly service: PlatformService;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    validateCommon('Api', props);
    checkBackends('Api', props);
    checkUrl('Api', 'auth.issuer', props.auth.issuer);
    checkUrl('Api', 'auth.jwksUri', props.auth.jwksUri);
    checkUrl('Api', 'publicUrl', props.publicUrl);
    const namespace = props.namespace ?? 'simptu-system';
    const publicUrl = props.publicUrl ?? (props.ingress ? `https://${props.ingress.host}` : undefined);
    const shutdownDelayMs = props.shutdownDelayMs ?? 5000;

    this.service = new PlatformService(this, 'service', {
      ...props,
      name: API_NAME,
      component: 'api',
      image: props.image ?? 'simptu/api:latest',
      port: API_PORT,
      defaultResources: { requests: { cpu: '100m', memory: '192Mi' }, limits: { cpu: '1', memory: '512Mi' } },
      // The drain delay plus fastify's close must fit in the grace period.
      terminationGracePeriodSeconds: Math.ceil(shutdownDelayMs / 1000) + 30,
      env: [
        { name: 'SIMPTU_API_HOST', value: '0.0.0.0' },
        { name: 'SIMPTU_API_PORT', value: String(API_PORT) },
        { name: 'SIMPTU_API_LOG_LEVEL', value: props.logLevel ?? 'info' },
        secretEnv('SIMPTU_API_DATABASE_URL', props.databaseUrl ?? DEFAULT_REFS.appUrl),
        secretEnv('SIMPTU_API_REDIS_URL', props.redisUrl ?? DEFAULT_REFS.redisUrl),
        { name: 'SIMPTU_API_KAFKA_BROKERS', value: props.kafkaBrokers.join(',') },
        secretEnv('SIMPTU_API_KEK', props.kekBase64 ?? DEFAULT_REFS.kekBase64),
        { name: 'SIMPTU_API_AUTH_ISSUER', value: props.auth.issuer },
        { name: 'SIMPTU_API_AUTH_JWKS_URI', value: props.auth.jwksUri ?? defaultJwksUri(namespace) },
        { name: 'SIMPTU_API_AUTH_AUDIENCE', value: props.auth.audience ?? 'simptu-api' },
        { name: 'SIMPTU_API_SHUTDOWN_DELAY_MS', value: String(shutdownDelayMs) },
        ...(publicUrl ? [{ name: 'SIMPTU_API_PUBLIC_URL', value: publicUrl }] : []),
      ],
    });
  }
}

/** The auth Service's JWKS inside the cluster (oidc-provider serves it at `/jwks`). */
export function defaultJwksUri(namespace: string): string {
  return `http://simptu-auth.${namespace}.svc:3001/jwks`;
}
