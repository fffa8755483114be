import { describe, expect, it } from 'vitest';
import { Api, Auth, PlatformService, PooledAgent, Realtime } from '../src/index.ts';
import { container, envOf, find, synth, type Obj } from './support.ts';

const backends = { kafkaBrokers: ['k1:9092', 'k2:9092'] };
const auth = { issuer: 'https://auth.example.com' };

function securityOk(objs: Obj[]): void {
  const pod = find(objs, 'Deployment').spec.template.spec;
  expect(pod.securityContext).toEqual({
    runAsNonRoot: true,
    runAsUser: 10001,
    runAsGroup: 10001,
    fsGroup: 10001,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  expect(pod.automountServiceAccountToken).toBe(false);
  expect(pod.containers[0].securityContext).toEqual({
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  expect(pod.containers[0].resources.requests).toBeDefined();
  expect(pod.containers[0].resources.limits).toBeDefined();
}

describe('PlatformService (shared by Api, Realtime, Auth, PooledAgent)', () => {
  const props = {
    name: 'simptu-x',
    component: 'x',
    image: 'simptu/x:1',
    port: 1234,
    env: [{ name: 'A', value: '1' }],
    defaultResources: { requests: { cpu: '1m', memory: '1Mi' }, limits: { cpu: '2m', memory: '2Mi' } },
  };

  it('Deployment, Service, PDB, HPA, NetworkPolicy with defaults', () => {
    const objs = synth((s) => new PlatformService(s, 'x', props));
    expect(objs.map((o) => o.kind).sort()).toEqual([
      'Deployment',
      'HorizontalPodAutoscaler',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
    ]);
    securityOk(objs);
    expect(find(objs, 'Deployment').spec.replicas).toBe(2);
    expect(find(objs, 'HorizontalPodAutoscaler').spec).toMatchObject({
      minReplicas: 2,
      maxReplicas: 10,
      scaleTargetRef: { kind: 'Deployment', name: 'simptu-x' },
      metrics: [{ resource: { name: 'cpu', target: { averageUtilization: 70 } } }],
    });
    expect(find(objs, 'PodDisruptionBudget').spec.maxUnavailable).toBe(1);
    expect(find(objs, 'Service').spec.ports).toEqual([
      { name: 'http', port: 1234, targetPort: 'http', protocol: 'TCP' },
    ]);
    const np = find(objs, 'NetworkPolicy').spec;
    expect(np.policyTypes).toEqual(['Ingress']);
    expect(
      np.ingress[0].from.map((f: Obj) => f.namespaceSelector.matchLabels['kubernetes.io/metadata.name']),
    ).toEqual(['simptu-system', 'ingress-nginx']);
    expect(np.ingress[0].ports).toEqual([{ protocol: 'TCP', port: 1234 }]);
    const c = container(objs);
    expect(c.resources).toEqual({
      requests: { cpu: '1m', memory: '1Mi' },
      limits: { cpu: '2m', memory: '2Mi' },
    });
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(envOf(c)).toEqual({ A: '1', TMPDIR: '/tmp' });
  });

  it('options: replicas, autoscaling, ingress with TLS, ingress namespace, tenants, extra env, no HPA', () => {
    const objs = synth(
      (s) =>
        new PlatformService(s, 'x', {
          ...props,
          namespace: 'plat',
          replicas: 3,
          autoscaling: { minReplicas: 2, maxReplicas: 7, targetCpuUtilization: 50 },
          ingress: {
            host: 'x.example.com',
            className: 'traefik',
            tlsSecretName: 'tls',
            annotations: { a: 'b' },
          },
          ingressNamespace: 'traefik',
          allowFromTenants: true,
          extraEnv: { EXTRA: 'y' },
          resources: { requests: { cpu: '5m' } },
        }),
    );
    expect(find(objs, 'Deployment').spec.replicas).toBe(3);
    expect(find(objs, 'HorizontalPodAutoscaler').spec).toMatchObject({ minReplicas: 2, maxReplicas: 7 });
    expect(find(objs, 'HorizontalPodAutoscaler').spec.metrics[0].resource.target.averageUtilization).toBe(50);
    const ing = find(objs, 'Ingress');
    expect(ing.metadata.annotations).toEqual({ a: 'b' });
    expect(ing.spec).toEqual({
      ingressClassName: 'traefik',
      tls: [{ hosts: ['x.example.com'], secretName: 'tls' }],
      rules: [
        {
          host: 'x.example.com',
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: { service: { name: 'simptu-x', port: { name: 'http' } } },
              },
            ],
          },
        },
      ],
    });
    const from = find(objs, 'NetworkPolicy').spec.ingress[0].from as Obj[];
    expect(from[1]!.namespaceSelector.matchLabels['kubernetes.io/metadata.name']).toBe('traefik');
    expect(from[2]!).toEqual({
      namespaceSelector: { matchExpressions: [{ key: 'simptu.io/tenant', operator: 'Exists' }] },
    });
    expect(envOf(container(objs)).EXTRA).toBe('y');
    expect(container(objs).resources.requests.cpu).toBe('5m');
    const noHpa = synth((s) => new PlatformService(s, 'x', { ...props, autoscaling: false }));
    expect(noHpa.some((o) => o.kind === 'HorizontalPodAutoscaler')).toBe(false);
    expect(noHpa.some((o) => o.kind === 'Ingress')).toBe(false);
  });

  it('validates', () => {
    const bad = (p: object) => () => synth((s) => new PlatformService(s, 'x', { ...props, ...p }));
    expect(bad({ port: 0 })).toThrow(/port/);
    expect(bad({ autoscaling: { minReplicas: 5, maxReplicas: 2 } })).toThrow(/exceeds/);
    expect(bad({ ingress: { host: 'Not A Host' } })).toThrow(/host/);
    expect(bad({ logLevel: 'loud' })).toThrow(/logLevel/);
    expect(bad({ extraEnv: { 'A B': 'x' } })).toThrow(/env name/);
  });
});

describe('Api', () => {
  it('SIMPTU_API_* environment, secrets by reference, port 3003, public URL from the ingress host', () => {
    const objs = synth(
      (s) => new Api(s, 'api', { ...backends, auth, ingress: { host: 'api.example.com' }, logLevel: 'warn' }),
    );
    securityOk(objs);
    const c = container(objs);
    expect(c.image).toBe('simptu/api:latest');
    expect(c.ports[0].containerPort).toBe(3003);
    expect(envOf(c)).toEqual({
      SIMPTU_API_HOST: '0.0.0.0',
      SIMPTU_API_PORT: '3003',
      SIMPTU_API_LOG_LEVEL: 'warn',
      SIMPTU_API_DATABASE_URL: 'secret:simptu-database/app-url',
      SIMPTU_API_REDIS_URL: 'secret:simptu-redis/url',
      SIMPTU_API_KAFKA_BROKERS: 'k1:9092,k2:9092',
      SIMPTU_API_KEK: 'secret:simptu-kek/kek-base64',
      SIMPTU_API_AUTH_ISSUER: 'https://auth.example.com',
      SIMPTU_API_AUTH_JWKS_URI: 'http://simptu-auth.simptu-system.svc:3001/jwks',
      SIMPTU_API_AUTH_AUDIENCE: 'simptu-api',
      SIMPTU_API_SHUTDOWN_DELAY_MS: '5000',
      SIMPTU_API_PUBLIC_URL: 'https://api.example.com',
      TMPDIR: '/tmp',
    });
    expect(find(objs, 'Deployment').spec.template.spec.terminationGracePeriodSeconds).toBe(35);
    expect(find(objs, 'Ingress').spec.rules[0].host).toBe('api.example.com');
  });

  it('custom secrets, JWKS URI, audience and validation', () => {
    const objs = synth(
      (s) =>
        new Api(s, 'api', {
          ...backends,
          databaseUrl: { name: 'pg', key: 'url' },
          redisUrl: { name: 'r', key: 'u' },
          kekBase64: { name: 'k', key: 'b' },
          auth: { ...auth, jwksUri: 'https://auth.example.com/jwks', audience: 'aud' },
          publicUrl: 'https://public.example.com',
        }),
    );
    expect(envOf(container(objs))).toMatchObject({
      SIMPTU_API_DATABASE_URL: 'secret:pg/url',
      SIMPTU_API_REDIS_URL: 'secret:r/u',
      SIMPTU_API_KEK: 'secret:k/b',
      SIMPTU_API_AUTH_JWKS_URI: 'https://auth.example.com/jwks',
      SIMPTU_API_AUTH_AUDIENCE: 'aud',
      SIMPTU_API_PUBLIC_URL: 'https://public.example.com',
    });
    expect(() => synth((s) => new Api(s, 'a', { ...backends, auth: { issuer: 'nope' } }))).toThrow(
      /auth.issuer/,
    );
    expect(() => synth((s) => new Api(s, 'a', { kafkaBrokers: [], auth }))).toThrow(/kafkaBrokers/);
  });
});

describe('Realtime', () => {
  it('SIMPTU_REALTIME_* environment, pod name as instance id, drain time in the grace period', () => {
    const objs = synth(
      (s) => new Realtime(s, 'rt', { ...backends, auth, drainTimeoutMs: 20_000, namespace: 'plat' }),
    );
    securityOk(objs);
    const c = container(objs);
    expect(c.ports[0].containerPort).toBe(4000);
    expect(envOf(c)).toEqual({
      SIMPTU_REALTIME_HOST: '0.0.0.0',
      SIMPTU_REALTIME_PORT: '4000',
      SIMPTU_REALTIME_INSTANCE_ID: 'field:metadata.name',
      SIMPTU_REALTIME_LOG_LEVEL: 'info',
      SIMPTU_REALTIME_DATABASE_URL: 'secret:simptu-database/app-url',
      SIMPTU_REALTIME_REDIS_URL: 'secret:simptu-redis/url',
      SIMPTU_REALTIME_KAFKA_BROKERS: 'k1:9092,k2:9092',
      SIMPTU_REALTIME_KEK_BASE64: 'secret:simptu-kek/kek-base64',
      SIMPTU_REALTIME_AUTH_ISSUER: 'https://auth.example.com',
      SIMPTU_REALTIME_AUTH_JWKS_URI: 'http://simptu-auth.plat.svc:3001/jwks',
      SIMPTU_REALTIME_AUTH_AUDIENCE: 'simptu-api',
      SIMPTU_REALTIME_DRAIN_TIMEOUT_MS: '20000',
      TMPDIR: '/tmp',
    });
    expect(find(objs, 'Deployment').spec.template.spec.terminationGracePeriodSeconds).toBe(40);
    expect(() => synth((s) => new Realtime(s, 'rt', { ...backends, auth, drainTimeoutMs: 0 }))).toThrow(
      /drainTimeoutMs/,
    );
  });
});

describe('Auth', () => {
  it('issuer, port 3001, backends', () => {
    const objs = synth(
      (s) =>
        new Auth(s, 'auth', {
          ...backends,
          issuer: 'https://auth.example.com',
          ingress: { host: 'auth.example.com' },
        }),
    );
    securityOk(objs);
    const c = container(objs);
    expect(c.image).toBe('simptu/auth:latest');
    expect(c.ports[0].containerPort).toBe(3001);
    expect(envOf(c)).toMatchObject({
      SIMPTU_AUTH_PORT: '3001',
      SIMPTU_AUTH_ISSUER: 'https://auth.example.com',
      SIMPTU_AUTH_DATABASE_URL: 'secret:simptu-database/admin-url',
      SIMPTU_AUTH_KEK: 'secret:simptu-kek/kek-base64',
      SIMPTU_AUTH_COOKIE_KEYS: 'secret:simptu-auth/cookie-keys',
    });
    expect(Object.keys(envOf(c)).filter((n) => n.includes('KAFKA'))).toEqual([]);
    expect(c.resources.limits.memory).toBe('768Mi');
    expect(() => synth((s) => new Auth(s, 'auth', { ...backends, issuer: '::' }))).toThrow(/issuer/);
  });
});

describe('PooledAgent', () => {
  it('pool mode, health and metrics on 8080, backends, no Ingress', () => {
    const objs = synth((s) => new PooledAgent(s, 'agent', backends));
    securityOk(objs);
    expect(objs.some((o) => o.kind === 'Ingress')).toBe(false);
    const c = container(objs);
    expect(c.image).toBe('simptu/agent:latest');
    expect(c.ports[0].containerPort).toBe(8080);
    expect(envOf(c)).toEqual({
      SIMPTU_AGENT_MODE: 'pool',
      SIMPTU_AGENT_METRICS_PORT: '8080',
      SIMPTU_AGENT_LOG_LEVEL: 'info',
      SIMPTU_AGENT_DATABASE_URL: 'secret:simptu-database/app-url',
      SIMPTU_AGENT_REDIS_URL: 'secret:simptu-redis/url',
      SIMPTU_AGENT_KAFKA_BROKERS: 'k1:9092,k2:9092',
      SIMPTU_AGENT_KEK: 'secret:simptu-kek/kek-base64',
      SIMPTU_AGENT_CHANNELS_SMTP_URL: 'secret:simptu-smtp/url',
      TMPDIR: '/tmp',
    });
    expect(find(objs, 'Deployment').spec.template.spec.terminationGracePeriodSeconds).toBe(60);
  });

  it('SMTP URL from an optional Secret key (no Secret: no e-mail, the pod still starts)', () => {
    const ref = (objs: ReturnType<typeof synth>) =>
      (container(objs).env as Array<{ name: string; valueFrom?: unknown }>).find(
        (e) => e.name === 'SIMPTU_AGENT_CHANNELS_SMTP_URL',
      )?.valueFrom;
    expect(ref(synth((s) => new PooledAgent(s, 'agent', backends)))).toEqual({
      secretKeyRef: { name: 'simptu-smtp', key: 'url', optional: true },
    });
    expect(
      ref(
        synth(
          (s) =>
            new PooledAgent(s, 'agent', { ...backends, smtpUrl: { name: 'mail-relay', key: 'smtp-url' } }),
        ),
      ),
    ).toEqual({ secretKeyRef: { name: 'mail-relay', key: 'smtp-url', optional: true } });
    expect(() =>
      synth((s) => new PooledAgent(s, 'a', { ...backends, smtpUrl: { name: 'Bad_Name', key: 'url' } })),
    ).toThrow(/smtpUrl/);
  });

  it('credential Secrets mounted read-only under the secrets dir; consumer group', () => {
    const objs = synth(
      (s) =>
        new PooledAgent(s, 'agent', {
          ...backends,
          credentialSecrets: ['openai', 'twilio'],
          groupId: 'pool-a',
        }),
    );
    const c = container(objs);
    expect(envOf(c)).toMatchObject({
      SIMPTU_AGENT_SECRETS_DIR: '/etc/simptu/secrets',
      SIMPTU_AGENT_GROUP_ID: 'pool-a',
    });
    expect(c.volumeMounts).toContainEqual({
      name: 'credentials-1',
      mountPath: '/etc/simptu/secrets/twilio',
      readOnly: true,
    });
    expect(find(objs, 'Deployment').spec.template.spec.volumes).toContainEqual({
      name: 'credentials-0',
      secret: { secretName: 'openai' },
    });
    expect(() =>
      synth((s) => new PooledAgent(s, 'a', { ...backends, credentialSecrets: ['x', 'x'] })),
    ).toThrow(/duplicates/);
    expect(() => synth((s) => new PooledAgent(s, 'a', { ...backends, groupId: 'bad group' }))).toThrow(
      /groupId/,
    );
  });
});
