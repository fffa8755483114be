/**
 * `Realtime`: the WebSocket hub (DESIGN §7). Environment variables follow
 * `services/realtime/src/config.ts` (`SIMPTU_REALTIME_*`; unknown ones are refused there).
 * Each pod's name is its `instanceId`, which names its Kafka consumer group and its presence.
 */
import { Construct } from 'constructs';
import { defaultJwksUri, type ServiceAuthProps } from './api.ts';
import { DEFAULT_REFS, checkBackends, type BackendProps } from './backends.ts';
import { PlatformService, validateCommon, type PlatformServiceCommonProps } from './platform-service.ts';
import { checkInt, checkUrl, secretEnv } from './util.ts';

export const REALTIME_NAME = 'simptu-realtime';
export const REALTIME_PORT = 4000;

export interface RealtimeProps extends PlatformServiceCommonProps, BackendProps {
  readonly auth: ServiceAuthProps;
  /** Time the hub gets to drain its sockets on SIGTERM. @default 10000 */
  readonly drainTimeoutMs?: number;
}

export class Realtime extends Construct {
  readonly service: PlatformService;

  constructor(scope: Construct, id: string, props: RealtimeProps) {
    super(scope, id);
    validateCommon('Realtime', props);
    checkBackends('Realtime', props);
    checkUrl('Realtime', 'auth.issuer', props.auth.issuer);
    checkUrl('Realtime', 'auth.jwksUri', props.auth.jwksUri);
    checkInt('Realtime', 'drainTimeoutMs', props.drainTimeoutMs, 1, 600_000);
    const namespace = props.namespace ?? 'simptu-system';
    const drainTimeoutMs = props.drainTimeoutMs ?? 10_000;

    this.service = new PlatformService(this, 'service', {
      ...props,
      name: REALTIME_NAME,
      component: 'realtime',
      image: props.image ?? 'simptu/realtime:latest',
      port: REALTIME_PORT,
      defaultResources: { requests: { cpu: '100m', memory: '192Mi' }, limits: { cpu: '1', memory: '512Mi' } },
      terminationGracePeriodSeconds: Math.ceil(drainTimeoutMs / 1000) + 20,
      env: [
        { name: 'SIMPTU_REALTIME_HOST', value: '0.0.0.0' },
        { name: 'SIMPTU_REALTIME_PORT', value: String(REALTIME_PORT) },
        { name: 'SIMPTU_REALTIME_INSTANCE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'SIMPTU_REALTIME_LOG_LEVEL', value: props.logLevel ?? 'info' },
        secretEnv('SIMPTU_REALTIME_DATABASE_URL', props.databaseUrl ?? DEFAULT_REFS.appUrl),
        secretEnv('SIMPTU_REALTIME_REDIS_URL', props.redisUrl ?? DEFAULT_REFS.redisUrl),
        { name: 'SIMPTU_REALTIME_KAFKA_BROKERS', value: props.kafkaBrokers.join(',') },
        secretEnv('SIMPTU_REALTIME_KEK_BASE64', props.kekBase64 ?? DEFAULT_REFS.kekBase64),
        { name: 'SIMPTU_REALTIME_AUTH_ISSUER', value: props.auth.issuer },
        { name: 'SIMPTU_REALTIME_AUTH_JWKS_URI', value: props.auth.jwksUri ?? defaultJwksUri(namespace) },
        { name: 'SIMPTU_REALTIME_AUTH_AUDIENCE', value: props.auth.audience ?? 'simptu-api' },
        { name: 'SIMPTU_REALTIME_DRAIN_TIMEOUT_MS', value: String(drainTimeoutMs) },
      ],
    });
  }
}
