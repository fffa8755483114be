/**
 * `PlatformService`: one stateless HTTP service of the platform namespace — Deployment, Service,
 * HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy and (optionally) an Ingress. `Api`,
 * `Realtime`, `Auth` and `PooledAgent` are this construct with their own environment.
 *
 * Raw `k8s.Kube*` objects (as in `TenantAgent`): every field is one we chose, so the chart
 * generator can put Helm placeholders anywhere and a cdk8s-plus upgrade cannot change a manifest
 * behind our back.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PLATFORM_NAMESPACE } from '@simptu/common';
import { isPlaceholder } from './placeholders.ts';
import {
  checkDnsLabel,
  checkEnv,
  checkHost,
  checkImage,
  checkInt,
  checkResources,
  checkSecretName,
  httpProbe,
  intOrStr,
  platformLabels,
  resources,
  restrictedContainerSecurity,
  restrictedPodSecurity,
  type ResourceSpec,
} from './util.ts';

export const SERVICE_UID = 10001;

export interface AutoscalingProps {
  /** @default the construct's `replicas` */
  readonly minReplicas?: number;
  /** @default 10 */
  readonly maxReplicas?: number;
  /** Average CPU utilization (percent of requests) the HPA aims for. @default 70 */
  readonly targetCpuUtilization?: number;
}

export interface IngressProps {
  /** Host name, e.g. `api.simptu.example`. */
  readonly host: string;
  /** @default 'nginx' */
  readonly className?: string;
  /** Secret holding the TLS certificate for `host`. @default no TLS section (plain HTTP) */
  readonly tlsSecretName?: string;
  /** Extra annotations (e.g. cert-manager's `cert-manager.io/cluster-issuer`). @default none */
  readonly annotations?: Readonly<Record<string, string>>;
}

/** What every platform service accepts. */
export interface PlatformServiceCommonProps {
  /** @default 'simptu-system' */
  readonly namespace?: string;
  /** Container image. @default `simptu/<service>:latest` */
  readonly image?: string;
  /** @default 'IfNotPresent' */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Replicas (also the HPA's minimum unless set there). @default 2 */
  readonly replicas?: number;
  /** HorizontalPodAutoscaler on CPU; `false` for none. @default { maxReplicas: 10, targetCpuUtilization: 70 } */
  readonly autoscaling?: AutoscalingProps | false;
  /** @default per service */
  readonly resources?: ResourceSpec;
  /** pino level. @default 'info' */
  readonly logLevel?: string;
  /** Ingress for the public host; none when unset. @default no Ingress */
  readonly ingress?: IngressProps;
  /**
   * Namespace of the ingress controller, the only namespace besides the platform's allowed to
   * reach the pods. @default 'ingress-nginx'
   */
  readonly ingressNamespace?: string;
  /** Pull secret for a private registry. @default none */
  readonly imagePullSecret?: string;
  /** Extra plain environment variables, appended after the service's own. @default none */
  readonly extraEnv?: Readonly<Record<string, string>>;
}

export interface PlatformServiceProps extends PlatformServiceCommonProps {
  /** `app.kubernetes.io/name` and the name of every object, e.g. `simptu-api`. */
  readonly name: string;
  /** `app.kubernetes.io/component`, e.g. `api`. */
  readonly component: string;
  readonly image: string;
  /** Container port serving HTTP, `/healthz`, `/readyz` and `/metrics`. */
  readonly port: number;
  /** The service's own environment. */
  readonly env: readonly k8s.EnvVar[];
  /** Extra volumes and their mounts (besides /tmp). @default none */
  readonly volumes?: readonly k8s.Volume[];
  readonly volumeMounts?: readonly k8s.VolumeMount[];
  /** Secrets/ConfigMaps whose keys all become variables. @default none */
  readonly envFrom?: readonly k8s.EnvFromSource[];
  readonly defaultResources: {
    requests: { cpu: string; memory: string };
    limits: { cpu: string; memory: string };
  };
  /** Seconds the pod gets to drain after SIGTERM. @default 30 */
  readonly terminationGracePeriodSeconds?: number;
  /** Allow traffic from tenant namespaces (label `simptu.io/tenant`) too. @default false */
  readonly allowFromTenants?: boolean;
}

export class PlatformService extends Construct {
  readonly deployment: k8s.KubeDeployment;
  readonly service: k8s.KubeService;
  readonly podDisruptionBudget: k8s.KubePodDisruptionBudget;
  readonly networkPolicy: k8s.KubeNetworkPolicy;
  readonly autoscaler?: k8s.KubeHorizontalPodAutoscalerV2;
  readonly ingress?: k8s.KubeIngress;
  readonly namespace: string;
  readonly selectorLabels: Record<string, string>;

  constructor(scope: Construct, id: string, props: PlatformServiceProps) {
    super(scope, id);
    const who = props.name;
    validateCommon(who, props);
    checkInt(who, 'port', props.port, 1, 65535);

    const namespace = props.namespace ?? PLATFORM_NAMESPACE;
    const replicas = props.replicas ?? 2;
    const labels = platformLabels(props.name, props.component);
    this.namespace = namespace;
    this.selectorLabels = { 'app.kubernetes.io/name': props.name, 'app.kubernetes.io/part-of': 'simptu' };
    const meta = { name: props.name, namespace, labels };

    const env: k8s.EnvVar[] = [
      ...props.env,
      ...Object.entries(props.extraEnv ?? {}).map(([name, value]) => ({ name, value })),
      // The root filesystem is read-only; scratch space is the /tmp emptyDir.
      { name: 'TMPDIR', value: '/tmp' },
    ];

    this.deployment = new k8s.KubeDeployment(this, 'deployment', {
      metadata: meta,
      spec: {
        replicas,
        selector: { matchLabels: this.selectorLabels },
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: { maxUnavailable: intOrStr(0), maxSurge: intOrStr(1) },
        },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: props.terminationGracePeriodSeconds ?? 30,
            securityContext: restrictedPodSecurity(SERVICE_UID),
            ...(props.imagePullSecret ? { imagePullSecrets: [{ name: props.imagePullSecret }] } : {}),
            // Spread replicas over nodes where there are several.
            topologySpreadConstraints: [
              {
                maxSkew: 1,
                topologyKey: 'kubernetes.io/hostname',
                whenUnsatisfiable: 'ScheduleAnyway',
                labelSelector: { matchLabels: this.selectorLabels },
              },
            ],
            containers: [
              {
                name: props.component,
                image: props.image,
                imagePullPolicy: props.imagePullPolicy ?? 'IfNotPresent',
                ports: [{ name: 'http', containerPort: props.port, protocol: 'TCP' }],
                env,
                ...(props.envFrom?.length ? { envFrom: [...props.envFrom] } : {}),
                resources: resources(props.resources, props.defaultResources),
                startupProbe: httpProbe('/healthz', 'http', { periodSeconds: 2, failureThreshold: 30 }),
                livenessProbe: httpProbe('/healthz', 'http'),
                readinessProbe: httpProbe('/readyz', 'http', { periodSeconds: 5 }),
                securityContext: restrictedContainerSecurity(),
                volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...(props.volumeMounts ?? [])],
              },
            ],
            volumes: [
              { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') } },
              ...(props.volumes ?? []),
            ],
          },
        },
      },
    });

    this.service = new k8s.KubeService(this, 'service', {
      metadata: meta,
      spec: {
        type: 'ClusterIP',
        selector: this.selectorLabels,
        ports: [{ name: 'http', port: props.port, targetPort: intOrStr('http'), protocol: 'TCP' }],
      },
    });

    // At most one pod down at a time by voluntary disruptions (drains, upgrades).
    this.podDisruptionBudget = new k8s.KubePodDisruptionBudget(this, 'pdb', {
      metadata: meta,
      spec: { maxUnavailable: intOrStr(1), selector: { matchLabels: this.selectorLabels } },
    });

    if (props.autoscaling !== false) {
      const a = props.autoscaling ?? {};
      this.autoscaler = new k8s.KubeHorizontalPodAutoscalerV2(this, 'hpa', {
        metadata: meta,
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: props.name },
          minReplicas: a.minReplicas ?? replicas,
          maxReplicas: a.maxReplicas ?? 10,
          metrics: [
            {
              type: 'Resource',
              resource: {
                name: 'cpu',
                target: { type: 'Utilization', averageUtilization: a.targetCpuUtilization ?? 70 },
              },
            },
          ],
        },
      });
    }

    const ingressNamespace = props.ingressNamespace ?? 'ingress-nginx';
    const nsPeer = (name: string): k8s.NetworkPolicyPeer => ({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': name } },
    });
    const from: k8s.NetworkPolicyPeer[] = [nsPeer(namespace), nsPeer(ingressNamespace)];
    if (props.allowFromTenants) {
      from.push({
        namespaceSelector: { matchExpressions: [{ key: 'simptu.io/tenant', operator: 'Exists' }] },
      });
    }
    // Ingress only: egress goes to databases, brokers and identity providers whose addresses are
    // deployment-specific (managed services outside the cluster in production).
    this.networkPolicy = new k8s.KubeNetworkPolicy(this, 'network-policy', {
      metadata: meta,
      spec: {
        podSelector: { matchLabels: this.selectorLabels },
        policyTypes: ['Ingress'],
        ingress: [{ from, ports: [{ protocol: 'TCP', port: intOrStr(props.port) }] }],
      },
    });

    if (props.ingress) {
      const ing = props.ingress;
      this.ingress = new k8s.KubeIngress(this, 'ingress', {
        metadata: { ...meta, ...(ing.annotations ? { annotations: { ...ing.annotations } } : {}) },
        spec: {
          ingressClassName: ing.className ?? 'nginx',
          ...(ing.tlsSecretName ? { tls: [{ hosts: [ing.host], secretName: ing.tlsSecretName }] } : {}),
          rules: [
            {
              host: ing.host,
              http: {
                paths: [
                  {
                    path: '/',
                    pathType: 'Prefix',
                    backend: { service: { name: props.name, port: { name: 'http' } } },
                  },
                ],
              },
            },
          ],
        },
      });
    }
  }
}

/** Validation shared by the services' constructs. */
export function validateCommon(who: string, props: PlatformServiceCommonProps): void {
  checkDnsLabel(who, 'namespace', props.namespace);
  checkDnsLabel(who, 'ingressNamespace', props.ingressNamespace);
  checkImage(who, props.image);
  checkInt(who, 'replicas', props.replicas, 0, 100);
  checkResources(who, props.resources);
  checkEnv(who, props.extraEnv);
  checkSecretName(who, 'imagePullSecret', props.imagePullSecret);
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (props.logLevel !== undefined && !isPlaceholder(props.logLevel) && !levels.includes(props.logLevel)) {
    throw new TypeError(
      `${who}: logLevel must be one of ${levels.join(', ')}, got ${JSON.stringify(props.logLevel)}`,
    );
  }
  if (props.autoscaling) {
    const a = props.autoscaling;
    checkInt(who, 'autoscaling.minReplicas', a.minReplicas, 1, 100);
    checkInt(who, 'autoscaling.maxReplicas', a.maxReplicas, 1, 100);
    checkInt(who, 'autoscaling.targetCpuUtilization', a.targetCpuUtilization, 1, 100);
    const min = a.minReplicas ?? props.replicas ?? 2;
    const max = a.maxReplicas ?? 10;
    if (!isPlaceholder(min) && !isPlaceholder(max) && min > max) {
      throw new RangeError(`${who}: autoscaling.minReplicas (${min}) exceeds maxReplicas (${max})`);
    }
    if (!isPlaceholder(min) && min < 1) throw new RangeError(`${who}: autoscaling needs at least 1 replica`);
  }
  if (props.ingress) {
    checkHost(who, 'ingress.host', props.ingress.host);
    checkSecretName(who, 'ingress.tlsSecretName', props.ingress.tlsSecretName);
    checkDnsLabel(who, 'ingress.className', props.ingress.className);
  }
}
