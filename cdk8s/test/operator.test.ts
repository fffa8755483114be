import { describe, expect, it } from 'vitest';
import { OPERATOR_CLUSTER_RULES, OPERATOR_LEADER_ELECTION_RULES, Operator } from '../src/index.ts';
import { container, envOf, find, synth } from './support.ts';

const base = { kafkaBrokers: ['kafka:9092'] };

describe('Operator construct', () => {
  it('defaults: namespace, 2 replicas, image, ports, probes, SA, restricted security', () => {
    const objs = synth((s) => new Operator(s, 'op', base));
    const d = find(objs, 'Deployment');
    expect(d.metadata.namespace).toBe('simptu-system');
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template.spec;
    expect(pod.serviceAccountName).toBe('simptu-operator');
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const c = container(objs);
    expect(c.image).toBe('simptu/operator:latest');
    expect(c.ports).toEqual([
      { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
      { name: 'probes', containerPort: 8081, protocol: 'TCP' },
    ]);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'probes' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'probes' });
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.resources).toEqual({
      requests: { cpu: '100m', memory: '192Mi' },
      limits: { cpu: '1', memory: '512Mi' },
    });
    expect(find(objs, 'ServiceAccount').metadata).toMatchObject({
      name: 'simptu-operator',
      namespace: 'simptu-system',
    });
    expect(find(objs, 'PodDisruptionBudget').spec.minAvailable).toBe(1);
    expect(find(objs, 'Service').spec.ports[0]).toMatchObject({ name: 'metrics', port: 8080 });
  });

  it('environment matches operator/src/config.ts fromEnv, with secrets by reference', () => {
    const objs = synth(
      (s) =>
        new Operator(s, 'op', {
          kafkaBrokers: ['a:9092', 'b:9092'],
          kafkaReplicationFactor: 3,
          namespace: 'plat',
          appRole: 'svc_login',
          adminDatabaseUrl: { name: 'db', key: 'admin' },
          appRolePassword: { name: 'db', key: 'pw' },
          kekSecretName: 'my-kek',
          agentImage: 'reg.example/agent:1.2',
          workers: 8,
          leaseName: 'lead',
          logLevel: 'debug',
          endpoints: { api: 'https://api.x/v1', websocket: 'wss://rt.x/ws', issuer: 'https://auth.x' },
        }),
    );
    expect(envOf(container(objs))).toMatchObject({
      SIMPTU_DATABASE_URL: 'secret:db/admin',
      SIMPTU_KAFKA_BROKERS: 'a:9092,b:9092',
      SIMPTU_KAFKA_REPLICATION_FACTOR: '3',
      SIMPTU_PLATFORM_NAMESPACE: 'plat',
      SIMPTU_APP_ROLE: 'svc_login',
      SIMPTU_APP_ROLE_PASSWORD: 'secret:db/pw',
      SIMPTU_KEK_SECRET: 'my-kek',
      SIMPTU_WORKERS: '8',
      SIMPTU_LEADER_ELECTION: 'true',
      SIMPTU_LEASE_NAME: 'lead',
      SIMPTU_METRICS_PORT: '8080',
      SIMPTU_PROBE_PORT: '8081',
      SIMPTU_DEDICATED_AGENT_IMAGE: 'reg.example/agent:1.2',
      SIMPTU_ENDPOINT_API: 'https://api.x/v1',
      SIMPTU_ENDPOINT_WEBSOCKET: 'wss://rt.x/ws',
      SIMPTU_ENDPOINT_ISSUER: 'https://auth.x',
      SIMPTU_LOG_LEVEL: 'debug',
    });
  });

  it('dedicated agents: runtime Secret sources and egress reach the operator config', async () => {
    // cdk8s/tsconfig.json does not reference the operator: loaded by path, typed here.
    const configPath = '../../operator/src/config.ts';
    const { fromEnv, parseConfig } = (await import(configPath)) as {
      fromEnv: (env: Record<string, string>) => unknown;
      parseConfig: (input: unknown) => { agent: { runtime: unknown; egress: unknown } };
    };
    const plain = (objs: ReturnType<typeof synth>) =>
      Object.fromEntries(
        (container(objs).env as Array<{ name: string; value?: string }>).map((e) => [
          e.name,
          e.value ?? 'from-secret',
        ]),
      );
    const defaults = parseConfig(fromEnv(plain(synth((s) => new Operator(s, 'op', base)))));
    expect(defaults.agent.runtime).toEqual({
      databaseUrl: { name: 'simptu-database', key: 'app-url' },
      redisUrl: { name: 'simptu-redis', key: 'url' },
    });
    expect(defaults.agent.egress).toEqual({
      cidrs: [],
      ports: [5432, 6379, 9092],
      smtpPorts: [587, 465],
    });
    const custom = parseConfig(
      fromEnv(
        plain(
          synth(
            (s) =>
              new Operator(s, 'op', {
                ...base,
                agentDatabaseUrl: { name: 'agent-db', key: 'url' },
                agentRedisUrl: { name: 'agent-redis', key: 'url' },
                agentKafkaBrokers: ['kafka.ext:9094'],
                agentEgress: { cidrs: ['10.20.0.0/16'], ports: [5432, 9094] },
              }),
          ),
        ),
      ),
    );
    expect(custom.agent).toMatchObject({
      runtime: {
        databaseUrl: { name: 'agent-db', key: 'url' },
        redisUrl: { name: 'agent-redis', key: 'url' },
        kafkaBrokers: ['kafka.ext:9094'],
      },
      egress: { cidrs: ['10.20.0.0/16'], ports: [5432, 9094] },
    });
    expect(() => synth((s) => new Operator(s, 'op', { ...base, agentEgress: { cidrs: ['nope'] } }))).toThrow(
      /agentEgress/,
    );
  });

  it('RBAC: a ClusterRole with exactly the rules the operator uses, leases only in a namespaced Role', () => {
    const objs = synth((s) => new Operator(s, 'op', { ...base, namespace: 'plat' }));
    const cr = find(objs, 'ClusterRole');
    expect(cr.rules).toEqual(OPERATOR_CLUSTER_RULES.map((r) => ({ ...r })));
    const all = (cr.rules as Array<{ resources: string[]; verbs: string[] }>).flatMap((r) =>
      r.resources.map((res) => [res, r.verbs] as const),
    );
    // Nothing that would let the operator escalate or touch what it does not own.
    for (const [res, verbs] of all) {
      expect([
        'pods',
        'roles',
        'rolebindings',
        'clusterroles',
        'clusterrolebindings',
        'customresourcedefinitions',
        'leases',
      ]).not.toContain(res);
      expect(verbs).not.toContain('*');
      expect(verbs).not.toContain('escalate');
      expect(verbs).not.toContain('bind');
    }
    expect(cr.rules).toContainEqual({
      apiGroups: ['simptu.io'],
      resources: ['tenants/status'],
      verbs: ['update'],
    });
    expect(cr.rules).toContainEqual({
      apiGroups: ['events.k8s.io'],
      resources: ['events'],
      verbs: ['create', 'patch'],
    });
    const role = find(objs, 'Role');
    expect(role.metadata.namespace).toBe('plat');
    expect(role.rules).toEqual(OPERATOR_LEADER_ELECTION_RULES.map((r) => ({ ...r })));
    expect(find(objs, 'ClusterRoleBinding').subjects).toEqual([
      { kind: 'ServiceAccount', name: 'simptu-operator', namespace: 'plat' },
    ]);
    expect(find(objs, 'RoleBinding')).toMatchObject({
      metadata: { namespace: 'plat' },
      roleRef: { kind: 'Role', name: 'simptu-operator-leader-election' },
    });
  });

  it('options: replicas, image, pull policy and secret, resources, metrics namespace', () => {
    const objs = synth(
      (s) =>
        new Operator(s, 'op', {
          ...base,
          replicas: 3,
          image: 'ghcr.io/x/operator:9',
          imagePullPolicy: 'Always',
          imagePullSecret: 'regcred',
          resources: { limits: { memory: '1Gi' } },
          metricsNamespace: 'monitoring',
        }),
    );
    const d = find(objs, 'Deployment');
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    const c = container(objs);
    expect(c.image).toBe('ghcr.io/x/operator:9');
    expect(c.imagePullPolicy).toBe('Always');
    expect(c.resources.limits).toEqual({ cpu: '1', memory: '1Gi' });
    expect(find(objs, 'NetworkPolicy').spec.ingress[0]).toEqual({
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      ports: [{ protocol: 'TCP', port: 8080 }],
    });
  });

  it('validates its props', () => {
    const bad = (p: object) => () => synth((s) => new Operator(s, 'op', { ...base, ...p }));
    expect(bad({ replicas: 0 })).toThrow(/replicas/);
    expect(bad({ namespace: 'Bad_NS' })).toThrow(/namespace/);
    expect(bad({ kafkaBrokers: [] })).toThrow(/kafkaBrokers/);
    expect(bad({ kafkaBrokers: ['no-port'] })).toThrow(/host:port/);
    expect(bad({ appRole: 'Robert); DROP' })).toThrow(/appRole/);
    expect(bad({ image: 'has space:1' })).toThrow(/image/);
    expect(bad({ resources: { requests: { cpu: 'lots' } } })).toThrow(/quantity/);
    expect(bad({ endpoints: { api: 'not a url' } })).toThrow(/endpoints.api/);
    expect(bad({ adminDatabaseUrl: { name: 'db', key: 'bad key' } })).toThrow(/adminDatabaseUrl.key/);
  });
});
