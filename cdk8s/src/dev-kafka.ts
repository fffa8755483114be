/**
 * `DevKafka`: a single Kafka node in KRaft combined mode (broker + controller) for a kind
 * cluster. The official `apache/kafka` image's launcher rewrites files under /opt/kafka, which a
 * read-only root filesystem forbids, so the pod formats its storage and starts the server from a
 * ConfigMap directly. Production: a managed Kafka (MSK, Confluent Cloud) or Strimzi.
 * @see https://kafka.apache.org/documentation/#kraft_config
 */
import { createHash } from 'node:crypto';
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { checkDevCommon, devStateful, type DevStatefulCommonProps } from './dev-stateful.ts';
import { fail, platformLabels } from './util.ts';

export const DEV_KAFKA_NAME = 'simptu-kafka';
export const DEV_KAFKA_PORT = 9092;

export interface DevKafkaProps extends DevStatefulCommonProps {
  /** KRaft cluster id (22 characters of base64url, 16 bytes). @default a fixed development id */
  readonly clusterId?: string;
  /** Default partitions of auto-created topics (auto-creation is off). @default 3 */
  readonly numPartitions?: number;
}

export class DevKafka extends Construct {
  readonly statefulSet: k8s.KubeStatefulSet;
  readonly service: k8s.KubeService;
  readonly networkPolicy: k8s.KubeNetworkPolicy;
  readonly configMap: k8s.KubeConfigMap;
  /** `host:port` of the bootstrap server. */
  readonly bootstrap: string;

  constructor(scope: Construct, id: string, props: DevKafkaProps = {}) {
    super(scope, id);
    checkDevCommon('DevKafka', props);
    const clusterId = props.clusterId ?? Buffer.from('simptu-dev-kafka').toString('base64url');
    if (!/^[A-Za-z0-9_-]{22}$/.test(clusterId))
      fail('DevKafka', `clusterId ${JSON.stringify(clusterId)} is not 22 base64url characters`);
    const partitions = props.numPartitions ?? 3;
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > 100)
      fail('DevKafka', `numPartitions must be an integer from 1 to 100, got ${partitions}`);
    const namespace = props.namespace ?? 'simptu-system';
    this.bootstrap = `${DEV_KAFKA_NAME}.${namespace}.svc:${DEV_KAFKA_PORT}`;

    const serverProperties = [
      'process.roles=broker,controller',
      'node.id=1',
      'controller.quorum.voters=1@localhost:9093',
      'listeners=PLAINTEXT://:9092,CONTROLLER://:9093',
      `advertised.listeners=PLAINTEXT://${this.bootstrap}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      'log.dirs=/var/lib/kafka/data/logs',
      `num.partitions=${partitions}`,
      // The operator creates every topic explicitly (DESIGN §5.4).
      'auto.create.topics.enable=false',
      'offsets.topic.replication.factor=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      '',
    ].join('\n');
    this.configMap = new k8s.KubeConfigMap(this, 'config', {
      metadata: {
        name: `${DEV_KAFKA_NAME}-config`,
        namespace,
        labels: platformLabels(DEV_KAFKA_NAME, 'kafka'),
      },
      data: { 'server.properties': serverProperties },
    });

    const probe = { tcpSocket: { port: k8s.IntOrString.fromString('kafka') }, timeoutSeconds: 3 };
    const o = devStateful(this, props, {
      name: DEV_KAFKA_NAME,
      component: 'kafka',
      image: 'apache/kafka:4.1.0',
      uid: 1000, // `appuser` in the image
      port: DEV_KAFKA_PORT,
      portName: 'kafka',
      dataPath: '/var/lib/kafka/data',
      storage: '4Gi',
      defaultResources: {
        requests: { cpu: '250m', memory: '768Mi' },
        limits: { cpu: '2', memory: '1536Mi' },
      },
      extraVolumes: [{ name: 'config', configMap: { name: `${DEV_KAFKA_NAME}-config` } }],
      extraMounts: [{ name: 'config', mountPath: '/etc/simptu-kafka', readOnly: true }],
      // A changed configuration rolls the pod.
      podAnnotations: {
        'simptu.io/config-sha256': createHash('sha256').update(serverProperties).digest('hex'),
      },
      container: {
        command: ['/bin/sh', '-c'],
        args: [
          'set -e; /opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" --config /etc/simptu-kafka/server.properties; ' +
            'exec /opt/kafka/bin/kafka-server-start.sh /etc/simptu-kafka/server.properties',
        ],
        env: [
          { name: 'CLUSTER_ID', value: clusterId },
          // kafka-run-class.sh writes its log files to $LOG_DIR (default: under /opt/kafka).
          { name: 'LOG_DIR', value: '/tmp/kafka-logs' },
          { name: 'KAFKA_HEAP_OPTS', value: '-Xms512m -Xmx1g' },
        ],
        startupProbe: { ...probe, periodSeconds: 5, failureThreshold: 36 },
        readinessProbe: { ...probe, periodSeconds: 5 },
        livenessProbe: { ...probe, periodSeconds: 20, failureThreshold: 6 },
      },
    });
    this.statefulSet = o.statefulSet;
    this.service = o.service;
    this.networkPolicy = o.networkPolicy;
  }
}
