/**
 * `Platform`: the whole platform in one namespace from one typed configuration — the operator,
 * the services and, for kind, the backing services. `main.ts` synthesizes it per environment
 * (environments.ts); `chart.ts` synthesizes it with Helm placeholders into charts/simptu.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { Api } from './api.ts';
import { Auth } from './auth.ts';
import { DATABASE_SECRET, KEK_SECRET, REDIS_SECRET } from './backends.ts';
import { DevKafka } from './dev-kafka.ts';
import { DevPostgres } from './dev-postgres.ts';
import { DevRedis } from './dev-redis.ts';
import { Operator } from './operator.ts';
import { PooledAgent } from './pooled-agent.ts';
import { Realtime } from './realtime.ts';
import { checkDnsLabel, checkHost, fail, type ResourceSpec } from './util.ts';
import { isPlaceholder } from './placeholders.ts';

export interface ComponentConfig {
  /** @default true */
  readonly enabled?: boolean;
  /** @default 2 */
  readonly replicas?: number;
  /** HPA maximum; `false` for no HPA. @default 10 */
  readonly maxReplicas?: number | false;
  /** @default per construct */
  readonly resources?: ResourceSpec;
}

export interface PlatformConfig {
  /** Environment name, e.g. `dev-kind` (the output folder `dist/<name>`). */
  readonly name: string;
  /** @default 'simptu-system' */
  readonly namespace?: string;
  /** Emit the Namespace object (kubectl apply); Helm installs use `--create-namespace`. @default false */
  readonly createNamespace?: boolean;
  /** Public domain: api.<domain>, rt.<domain>, auth.<domain>. */
  readonly domain: string;
  /** @default 'https' */
  readonly publicScheme?: string;
  /** @default 'wss' when publicScheme is https, else 'ws' */
  readonly websocketScheme?: string;
  readonly ingress?: {
    /** @default true */
    readonly enabled?: boolean;
    /** @default 'nginx' */
    readonly className?: string;
    /** TLS certificate Secret (one for the three hosts, e.g. a wildcard). @default no TLS */
    readonly tlsSecretName?: string;
    /** Namespace of the ingress controller. @default 'ingress-nginx' */
    readonly namespace?: string;
    /** @default none */
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly images?: {
    /** Prefix of every image: `<registry>/<service>:<tag>`. @default 'simptu' */
    readonly registry?: string;
    /** @default 'latest' */
    readonly tag?: string;
    /** @default 'IfNotPresent' */
    readonly pullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
    /** @default none */
    readonly pullSecret?: string;
  };
  /** Kafka bootstrap servers. @default the DevKafka Service when devInfrastructure is on */
  readonly kafkaBrokers?: readonly string[];
  /** @default 1 */
  readonly kafkaReplicationFactor?: number;
  /** Secret names (keys: see backends.ts). @default simptu-database, simptu-redis, simptu-kek */
  readonly secrets?: { readonly database?: string; readonly redis?: string; readonly kek?: string };
  /** In-cluster Postgres, Redis and Kafka (kind only). @default false */
  readonly devInfrastructure?:
    | boolean
    | {
        readonly storageClassName?: string;
        readonly postgresPassword?: string;
        readonly appPassword?: string;
      };
  /** Dedicated tenant agents (`isolation.agent: dedicated`), which the operator creates. */
  readonly dedicatedAgents?: {
    /** Kafka bootstrap servers as agent pods reach them. @default kafkaBrokers */
    readonly kafkaBrokers?: readonly string[];
    /**
     * Egress to backends outside the cluster (managed PostgreSQL/Redis/Kafka): their CIDRs and
     * ports. @default none (the backends run in the platform namespace)
     */
    readonly egress?: { readonly cidrs: readonly string[]; readonly ports?: readonly number[] };
  };
  /** @default 'info' */
  readonly logLevel?: string;
  readonly operator?: Omit<ComponentConfig, 'enabled' | 'maxReplicas'>;
  readonly api?: ComponentConfig;
  readonly realtime?: ComponentConfig;
  readonly auth?: ComponentConfig;
  readonly agent?: ComponentConfig;
}

export class Platform extends Construct {
  readonly operator: Operator;
  readonly api?: Api;
  readonly realtime?: Realtime;
  readonly auth?: Auth;
  readonly agent?: PooledAgent;
  readonly postgres?: DevPostgres;
  readonly redis?: DevRedis;
  readonly kafka?: DevKafka;

  constructor(scope: Construct, id: string, config: PlatformConfig) {
    super(scope, id);
    if (!isPlaceholder(config.name) && !/^[a-z0-9][a-z0-9-]*$/.test(config.name))
      fail('Platform', `name ${JSON.stringify(config.name)} must be lower-case letters, digits and dashes`);
    checkDnsLabel('Platform', 'namespace', config.namespace);
    checkHost('Platform', 'domain', config.domain);
    const namespace = config.namespace ?? 'simptu-system';
    const scheme = config.publicScheme ?? 'https';
    if (!isPlaceholder(scheme) && scheme !== 'http' && scheme !== 'https')
      fail('Platform', `publicScheme must be http or https`);
    const wsScheme = config.websocketScheme ?? (scheme === 'https' ? 'wss' : 'ws');
    const img = config.images ?? {};
    const image = (svc: string) => `${img.registry ?? 'simptu'}/${svc}:${img.tag ?? 'latest'}`;
    const secrets = {
      database: config.secrets?.database ?? DATABASE_SECRET,
      redis: config.secrets?.redis ?? REDIS_SECRET,
      kek: config.secrets?.kek ?? KEK_SECRET,
    };
    const dev = config.devInfrastructure === true ? {} : config.devInfrastructure || undefined;

    if (config.createNamespace) {
      new k8s.KubeNamespace(this, 'namespace', {
        metadata: {
          name: namespace,
          labels: {
            'app.kubernetes.io/part-of': 'simptu',
            // https://kubernetes.io/docs/concepts/security/pod-security-admission/
            'pod-security.kubernetes.io/enforce': 'restricted',
            'pod-security.kubernetes.io/enforce-version': 'latest',
          },
        },
      });
    }

    if (dev) {
      const storage = dev.storageClassName ? { storageClassName: dev.storageClassName } : {};
      this.postgres = new DevPostgres(this, 'postgres', {
        namespace,
        secretName: secrets.database,
        ...storage,
        ...(dev.postgresPassword ? { password: dev.postgresPassword } : {}),
        ...(dev.appPassword ? { appPassword: dev.appPassword } : {}),
      });
      this.redis = new DevRedis(this, 'redis', { namespace, secretName: secrets.redis, ...storage });
      this.kafka = new DevKafka(this, 'kafka', { namespace, ...storage });
    }
    const kafkaBrokers = config.kafkaBrokers ?? (this.kafka ? [this.kafka.bootstrap] : undefined);
    if (!kafkaBrokers) fail('Platform', 'kafkaBrokers is required without devInfrastructure');

    const ing = config.ingress ?? {};
    const ingressEnabled = ing.enabled ?? true;
    const ingressFor = (prefix: string) =>
      ingressEnabled
        ? {
            host: `${prefix}.${config.domain}`,
            ...(ing.className ? { className: ing.className } : {}),
            ...(ing.tlsSecretName ? { tlsSecretName: ing.tlsSecretName } : {}),
            ...(ing.annotations ? { annotations: ing.annotations } : {}),
          }
        : undefined;
    const issuer = `${scheme}://auth.${config.domain}`;
    const backends = {
      kafkaBrokers,
      databaseUrl: { name: secrets.database, key: 'app-url' },
      redisUrl: { name: secrets.redis, key: 'url' },
      kekBase64: { name: secrets.kek, key: 'kek-base64' },
    };
    const common = (c: ComponentConfig | undefined, svc: string, host?: string) => {
      const ingress = host ? ingressFor(host) : undefined;
      return {
        namespace,
        image: image(svc),
        imagePullPolicy: img.pullPolicy ?? 'IfNotPresent',
        ...(img.pullSecret ? { imagePullSecret: img.pullSecret } : {}),
        ...(c?.replicas !== undefined ? { replicas: c.replicas } : {}),
        ...(c?.resources ? { resources: c.resources } : {}),
        autoscaling: c?.maxReplicas === false ? (false as const) : { maxReplicas: c?.maxReplicas ?? 10 },
        logLevel: config.logLevel ?? 'info',
        ...(ingress ? { ingress } : {}),
        ...(ing.namespace ? { ingressNamespace: ing.namespace } : {}),
        ...backends,
      };
    };

    this.operator = new Operator(this, 'operator', {
      namespace,
      image: image('operator'),
      imagePullPolicy: img.pullPolicy ?? 'IfNotPresent',
      ...(img.pullSecret ? { imagePullSecret: img.pullSecret } : {}),
      ...(config.operator?.replicas !== undefined ? { replicas: config.operator.replicas } : {}),
      ...(config.operator?.resources ? { resources: config.operator.resources } : {}),
      logLevel: config.logLevel ?? 'info',
      kafkaBrokers,
      kafkaReplicationFactor: config.kafkaReplicationFactor ?? 1,
      adminDatabaseUrl: { name: secrets.database, key: 'admin-url' },
      appRolePassword: { name: secrets.database, key: 'app-password' },
      kekSecretName: secrets.kek,
      agentImage: image('agent'),
      // Dedicated agents get the same backends as the pooled agent (their runtime Secret).
      agentDatabaseUrl: backends.databaseUrl,
      agentRedisUrl: backends.redisUrl,
      ...(config.dedicatedAgents?.kafkaBrokers
        ? { agentKafkaBrokers: config.dedicatedAgents.kafkaBrokers }
        : {}),
      ...(config.dedicatedAgents?.egress ? { agentEgress: config.dedicatedAgents.egress } : {}),
      endpoints: {
        api: `${scheme}://api.${config.domain}/v1`,
        websocket: `${wsScheme}://rt.${config.domain}/socket/websocket`,
        issuer,
      },
    });
    if (config.api?.enabled ?? true)
      this.api = new Api(this, 'api', {
        ...common(config.api, 'api', 'api'),
        auth: { issuer },
        ...(ingressEnabled ? { publicUrl: `${scheme}://api.${config.domain}` } : {}),
      });
    if (config.realtime?.enabled ?? true)
      this.realtime = new Realtime(this, 'realtime', {
        ...common(config.realtime, 'realtime', 'rt'),
        auth: { issuer },
      });
    if (config.auth?.enabled ?? true)
      this.auth = new Auth(this, 'auth', { ...common(config.auth, 'auth', 'auth'), issuer });
    if (config.agent?.enabled ?? true) {
      const { ingress: _none, ...agentProps } = common(config.agent, 'agent');
      this.agent = new PooledAgent(this, 'agent', agentProps);
    }
  }
}
