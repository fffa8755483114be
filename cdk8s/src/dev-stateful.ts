/**
 * The shape shared by the kind-only backing services (`DevPostgres`, `DevRedis`, `DevKafka`):
 * a one-replica StatefulSet with a PersistentVolumeClaim, a ClusterIP Service and a
 * NetworkPolicy that admits only the platform namespace and tenant namespaces (dedicated agents).
 * Production uses managed services or their operators instead (docs/install.md).
 */
import { k8s } from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { PLATFORM_NAMESPACE } from '@simptu/common';
import {
  checkDnsLabel,
  checkImage,
  checkResources,
  intOrStr,
  platformLabels,
  resources,
  restrictedContainerSecurity,
  restrictedPodSecurity,
  type ResourceSpec,
} from './util.ts';
import { isPlaceholder } from './placeholders.ts';

export interface DevStatefulCommonProps {
  /** @default 'simptu-system' */
  readonly namespace?: string;
  /** @default per construct */
  readonly image?: string;
  /** Size of the data volume. @default per construct */
  readonly storage?: string;
  /** StorageClass of the data volume. @default the cluster's default class */
  readonly storageClassName?: string;
  /** @default per construct */
  readonly resources?: ResourceSpec;
}

export interface DevStatefulSpec {
  readonly name: string;
  readonly component: string;
  readonly image: string;
  readonly uid: number;
  readonly port: number;
  readonly portName: string;
  readonly dataPath: string;
  readonly storage: string;
  readonly defaultResources: {
    requests: { cpu: string; memory: string };
    limits: { cpu: string; memory: string };
  };
  readonly container: Pick<
    k8s.Container,
    'command' | 'args' | 'env' | 'readinessProbe' | 'livenessProbe' | 'startupProbe'
  >;
  /** Extra writable emptyDir mounts (path → name) besides /tmp. */
  readonly scratch?: Readonly<Record<string, string>>;
  readonly extraVolumes?: readonly k8s.Volume[];
  readonly extraMounts?: readonly k8s.VolumeMount[];
  readonly podAnnotations?: Readonly<Record<string, string>>;
}

export interface DevStatefulObjects {
  readonly statefulSet: k8s.KubeStatefulSet;
  readonly service: k8s.KubeService;
  readonly networkPolicy: k8s.KubeNetworkPolicy;
  readonly namespace: string;
}

const QUANTITY_RE = /^(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[kMGTPE])?$/;

export function checkDevCommon(who: string, props: DevStatefulCommonProps): void {
  checkDnsLabel(who, 'namespace', props.namespace);
  checkImage(who, props.image);
  checkResources(who, props.resources);
  if (props.storage !== undefined && !isPlaceholder(props.storage) && !QUANTITY_RE.test(props.storage))
    throw new TypeError(`${who}: storage ${JSON.stringify(props.storage)} is not a Kubernetes quantity`);
  checkDnsLabel(who, 'storageClassName', props.storageClassName);
}

export function devStateful(
  scope: Construct,
  props: DevStatefulCommonProps,
  spec: DevStatefulSpec,
): DevStatefulObjects {
  const namespace = props.namespace ?? PLATFORM_NAMESPACE;
  const labels = platformLabels(spec.name, spec.component);
  const selector = { 'app.kubernetes.io/name': spec.name, 'app.kubernetes.io/part-of': 'simptu' };
  const meta = { name: spec.name, namespace, labels };
  const scratch = { '/tmp': 'tmp', ...spec.scratch };

  const service = new k8s.KubeService(scope, 'service', {
    metadata: meta,
    spec: {
      type: 'ClusterIP',
      selector,
      ports: [{ name: spec.portName, port: spec.port, targetPort: intOrStr(spec.portName), protocol: 'TCP' }],
    },
  });

  const statefulSet = new k8s.KubeStatefulSet(scope, 'statefulset', {
    metadata: meta,
    spec: {
      serviceName: spec.name,
      replicas: 1,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels, ...(spec.podAnnotations ? { annotations: { ...spec.podAnnotations } } : {}) },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: restrictedPodSecurity(spec.uid),
          containers: [
            {
              name: spec.component,
              image: props.image ?? spec.image,
              imagePullPolicy: 'IfNotPresent',
              ports: [{ name: spec.portName, containerPort: spec.port, protocol: 'TCP' }],
              ...spec.container,
              resources: resources(props.resources, spec.defaultResources),
              securityContext: restrictedContainerSecurity(),
              volumeMounts: [
                { name: 'data', mountPath: spec.dataPath },
                ...Object.entries(scratch).map(([mountPath, name]) => ({ name, mountPath })),
                ...(spec.extraMounts ?? []),
              ],
            },
          ],
          volumes: [
            ...Object.values(scratch).map((name) => ({
              name,
              emptyDir: { sizeLimit: k8s.Quantity.fromString('256Mi') },
            })),
            ...(spec.extraVolumes ?? []),
          ],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data', labels },
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(props.storageClassName ? { storageClassName: props.storageClassName } : {}),
            resources: { requests: { storage: k8s.Quantity.fromString(props.storage ?? spec.storage) } },
          },
        },
      ],
    },
  });

  const networkPolicy = new k8s.KubeNetworkPolicy(scope, 'network-policy', {
    metadata: meta,
    spec: {
      podSelector: { matchLabels: selector },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } },
            // Dedicated tenant agents (their namespaces carry the tenant label).
            { namespaceSelector: { matchExpressions: [{ key: 'simptu.io/tenant', operator: 'Exists' }] } },
          ],
          ports: [{ protocol: 'TCP', port: intOrStr(spec.port) }],
        },
      ],
    },
  });
  return { statefulSet, service, networkPolicy, namespace };
}
