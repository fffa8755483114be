/**
 * `PooledAgent`: the agent that serves every tenant with `isolation.agent: shared` (DESIGN §5.5,
 * §7), reading the tenants from the registry. Environment variables follow
 * `services/agent/src/config.ts` (`SIMPTU_AGENT_*`; unknown ones are refused there): mode `pool`,
 * health, readiness and metrics on `metricsPort`. No Ingress: it talks only to Kafka, Postgres,
 * Redis and the tenants' model providers. Tenants' model and channel credentials come from
 * Secrets mounted at `/etc/simptu/secrets/<name>/<key>` (the agent's `secrets.dir`). The SMTP
 * server e-mail replies and staff messages leave through (`SIMPTU_AGENT_CHANNELS_SMTP_URL`) comes
 * from the platform Secret `simptu-smtp`, key `url` — an optional reference: without the Secret
 * (or the key) the variable is unset and e-mail replies are recorded `failed` (docs/channels.md).
 */
import { Construct } from 'constructs';
import { DEFAULT_REFS, checkBackends, type BackendProps } from './backends.ts';
import { PlatformService, validateCommon, type PlatformServiceCommonProps } from './platform-service.ts';
import { checkSecretKeyRef, checkSecretName, secretEnv, type SecretKeyRef } from './util.ts';

export const POOLED_AGENT_NAME = 'simptu-agent-pool';
export const POOLED_AGENT_PORT = 8080;
export const AGENT_SECRETS_DIR = '/etc/simptu/secrets';
/** The platform Secret with the SMTP URL of outgoing e-mail (optional). */
export const SMTP_SECRET_REF = { name: 'simptu-smtp', key: 'url' } as const;

export interface PooledAgentProps extends Omit<PlatformServiceCommonProps, 'ingress'>, BackendProps {
  /**
   * Secrets (in the namespace) with the tenants' model/channel credentials, mounted read-only at
   * `/etc/simptu/secrets/<name>/`. @default none
   */
  readonly credentialSecrets?: readonly string[];
  /** Kafka consumer group of the pool. @default 'simptu-agent' */
  readonly groupId?: string;
  /**
   * Where the SMTP URL (`smtp://user:pass@host:587`, `smtps://…:465`) of e-mail replies is; the
   * reference is optional: without that Secret or key, no e-mail is sent. @default simptu-smtp/url
   */
  readonly smtpUrl?: SecretKeyRef;
}

export class PooledAgent extends Construct {
  readonly service: PlatformService;

  constructor(scope: Construct, id: string, props: PooledAgentProps) {
    super(scope, id);
    validateCommon('PooledAgent', props);
    checkBackends('PooledAgent', props);
    const secrets = props.credentialSecrets ?? [];
    for (const s of secrets) checkSecretName('PooledAgent', 'credentialSecrets[]', s);
    if (new Set(secrets).size !== secrets.length)
      throw new TypeError('PooledAgent: credentialSecrets has duplicates');
    checkSecretKeyRef('PooledAgent', 'smtpUrl', props.smtpUrl);
    if (props.groupId !== undefined && !/^[A-Za-z0-9._-]{1,200}$/.test(props.groupId))
      throw new TypeError(
        `PooledAgent: groupId ${JSON.stringify(props.groupId)} is not a valid consumer group id`,
      );

    this.service = new PlatformService(this, 'service', {
      ...props,
      name: POOLED_AGENT_NAME,
      component: 'agent',
      image: props.image ?? 'simptu/agent:latest',
      port: POOLED_AGENT_PORT,
      defaultResources: { requests: { cpu: '200m', memory: '384Mi' }, limits: { cpu: '2', memory: '1Gi' } },
      // A run in progress finishes and commits on SIGTERM.
      terminationGracePeriodSeconds: 60,
      env: [
        { name: 'SIMPTU_AGENT_MODE', value: 'pool' },
        { name: 'SIMPTU_AGENT_METRICS_PORT', value: String(POOLED_AGENT_PORT) },
        { name: 'SIMPTU_AGENT_LOG_LEVEL', value: props.logLevel ?? 'info' },
        secretEnv('SIMPTU_AGENT_DATABASE_URL', props.databaseUrl ?? DEFAULT_REFS.appUrl),
        secretEnv('SIMPTU_AGENT_REDIS_URL', props.redisUrl ?? DEFAULT_REFS.redisUrl),
        { name: 'SIMPTU_AGENT_KAFKA_BROKERS', value: props.kafkaBrokers.join(',') },
        secretEnv('SIMPTU_AGENT_KEK', props.kekBase64 ?? DEFAULT_REFS.kekBase64),
        ...(props.groupId ? [{ name: 'SIMPTU_AGENT_GROUP_ID', value: props.groupId }] : []),
        optionalSecretEnv('SIMPTU_AGENT_CHANNELS_SMTP_URL', props.smtpUrl ?? SMTP_SECRET_REF),
        ...(secrets.length > 0 ? [{ name: 'SIMPTU_AGENT_SECRETS_DIR', value: AGENT_SECRETS_DIR }] : []),
      ],
      volumes: secrets.map((name, i) => ({ name: `credentials-${i}`, secret: { secretName: name } })),
      volumeMounts: secrets.map((name, i) => ({
        name: `credentials-${i}`,
        mountPath: `${AGENT_SECRETS_DIR}/${name}`,
        readOnly: true,
      })),
    });
  }
}

/** An environment variable from a Secret key that may be missing (then the variable is unset). */
function optionalSecretEnv(name: string, ref: SecretKeyRef) {
  const env = secretEnv(name, ref);
  return { ...env, valueFrom: { secretKeyRef: { ...env.valueFrom!.secretKeyRef!, optional: true } } };
}
