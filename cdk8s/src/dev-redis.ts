/**
 * `DevRedis`: Redis for a kind cluster (append-only file on a volume) plus the `simptu-redis`
 * Secret the services read. Production: a managed Redis (ElastiCache, Memorystore) or an operator.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { REDIS_SECRET } from './backends.ts';
import { checkDevCommon, devStateful, type DevStatefulCommonProps } from './dev-stateful.ts';
import { checkSecretName, platformLabels } from './util.ts';

export const DEV_REDIS_NAME = 'simptu-redis';
export const DEV_REDIS_PORT = 6379;

export interface DevRedisProps extends DevStatefulCommonProps {
  /** Name of the Secret with `url`. @default 'simptu-redis' */
  readonly secretName?: string;
}

export class DevRedis extends Construct {
  readonly statefulSet: k8s.KubeStatefulSet;
  readonly service: k8s.KubeService;
  readonly networkPolicy: k8s.KubeNetworkPolicy;
  readonly secret: k8s.KubeSecret;
  readonly host: string;

  constructor(scope: Construct, id: string, props: DevRedisProps = {}) {
    super(scope, id);
    checkDevCommon('DevRedis', props);
    checkSecretName('DevRedis', 'secretName', props.secretName);
    const probe = { exec: { command: ['redis-cli', 'ping'] }, timeoutSeconds: 3 };
    const o = devStateful(this, props, {
      name: DEV_REDIS_NAME,
      component: 'redis',
      image: 'redis:7.4-alpine',
      uid: 999, // `redis` in the image
      port: DEV_REDIS_PORT,
      portName: 'redis',
      dataPath: '/data',
      storage: '1Gi',
      defaultResources: {
        requests: { cpu: '50m', memory: '64Mi' },
        limits: { cpu: '500m', memory: '256Mi' },
      },
      container: {
        command: ['redis-server'],
        // NetworkPolicy, not protected mode, keeps strangers out.
        args: ['--dir', '/data', '--appendonly', 'yes', '--protected-mode', 'no', '--maxmemory', '200mb'],
        readinessProbe: { ...probe, periodSeconds: 5 },
        livenessProbe: { ...probe, periodSeconds: 20, failureThreshold: 6 },
      },
    });
    this.statefulSet = o.statefulSet;
    this.service = o.service;
    this.networkPolicy = o.networkPolicy;
    this.host = `${DEV_REDIS_NAME}.${o.namespace}.svc`;
    this.secret = new k8s.KubeSecret(this, 'secret', {
      metadata: {
        name: props.secretName ?? REDIS_SECRET,
        namespace: o.namespace,
        labels: platformLabels(DEV_REDIS_NAME, 'redis'),
      },
      type: 'Opaque',
      stringData: { url: `redis://${this.host}:${DEV_REDIS_PORT}` },
    });
  }
}
