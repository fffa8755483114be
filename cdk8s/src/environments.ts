/**
 * The environments `main.ts` synthesizes into `dist/<name>/`. Typed, so a missing address is a
 * compile error, not a broken deployment.
 */
import type { PlatformConfig } from './platform.ts';

/**
 * A kind cluster on a developer's machine (kind-config.yaml, `make kind-up deploy`): in-cluster
 * Postgres, Redis and Kafka; images loaded into the nodes with `kind load` (never pulled);
 * `*.simptu.localhost` resolves to 127.0.0.1 in browsers, where kind maps ports 80/443.
 */
export const devKind: PlatformConfig = {
  name: 'dev-kind',
  namespace: 'simptu-system',
  createNamespace: true,
  domain: 'simptu.localhost',
  publicScheme: 'http',
  ingress: { enabled: true, className: 'nginx', namespace: 'ingress-nginx' },
  images: { registry: 'simptu', tag: 'dev', pullPolicy: 'Never' },
  devInfrastructure: true,
  logLevel: 'debug',
  operator: { replicas: 1 },
  api: { replicas: 1, maxReplicas: false },
  realtime: { replicas: 1, maxReplicas: false },
  auth: { replicas: 1, maxReplicas: false },
  agent: { replicas: 1, maxReplicas: false },
};

/**
 * Production shape: managed Postgres/Redis/Kafka outside the cluster, Secrets created by the
 * admin (docs/install.md), TLS via a wildcard certificate Secret, HPAs on.
 */
export const production: PlatformConfig = {
  name: 'production',
  namespace: 'simptu-system',
  createNamespace: true,
  domain: 'simptu.io',
  publicScheme: 'https',
  ingress: {
    enabled: true,
    className: 'nginx',
    namespace: 'ingress-nginx',
    tlsSecretName: 'simptu-tls',
  },
  images: { registry: 'ghcr.io/simptu', tag: '0.1.0', pullPolicy: 'IfNotPresent' },
  kafkaBrokers: [
    'kafka-0.kafka.example.internal:9092',
    'kafka-1.kafka.example.internal:9092',
    'kafka-2.kafka.example.internal:9092',
  ],
  kafkaReplicationFactor: 3,
  secrets: { database: 'simptu-database', redis: 'simptu-redis', kek: 'simptu-kek' },
  devInfrastructure: false,
  logLevel: 'info',
  operator: { replicas: 2 },
  api: { replicas: 3, maxReplicas: 20 },
  realtime: { replicas: 3, maxReplicas: 20 },
  auth: { replicas: 2, maxReplicas: 6 },
  agent: { replicas: 2, maxReplicas: 20 },
};

export const ENVIRONMENTS: Readonly<Record<string, PlatformConfig>> = { 'dev-kind': devKind, production };
