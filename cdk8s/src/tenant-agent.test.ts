import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import { Testing } from 'cdk8s';
import { TENANT_LABEL } from '@simptu/common';
import {
  TenantAgent,
  synthTenantAgent,
  AGENT_OBJECT_NAME,
  AGENT_RUNTIME_KEYS,
  AGENT_RUNTIME_SECRET,
  AGENT_SECRETS_CHECKSUM_ANNOTATION,
  type TenantAgentProps,
} from './tenant-agent.ts';
import { AGENT_SECRETS_DIR } from './pooled-agent.ts';

// Synthesized manifests are untyped JSON; the assertions dig into them by path.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
type Obj = Record<string, any>;

function synth(props: TenantAgentProps): { all: Obj[]; byKind: (kind: string) => Obj } {
  const chart = Testing.chart();
  new TenantAgent(chart, 'agent', props);
  const all = Testing.synth(chart) as Obj[];
  return {
    all,
    byKind: (kind) => {
      const found = all.filter((o) => o.kind === kind);
      expect(found).toHaveLength(1);
      return found[0]!;
    },
  };
}

const container = (d: Obj): Obj => d.spec.template.spec.containers[0];
const envOf = (d: Obj): Record<string, string> =>
  Object.fromEntries(container(d).env.map((e: Obj) => [e.name, e.value]));

describe('TenantAgent', () => {
  it('produces Deployment, Service and NetworkPolicy in the tenant namespace with tenant labels', () => {
    const { all } = synth({ tenant: 'smile-dental' });
    expect(all.map((o) => o.kind).sort()).toEqual(['Deployment', 'NetworkPolicy', 'Service']);
    for (const o of all) {
      expect(o.metadata.namespace).toBe('tenant-smile-dental');
      expect(o.metadata.labels).toMatchObject({
        'app.kubernetes.io/name': 'simptu-agent',
        'app.kubernetes.io/component': 'agent',
        'app.kubernetes.io/part-of': 'simptu',
        [TENANT_LABEL]: 'smile-dental',
      });
    }
  });

  it('hardens the Deployment: non-root, read-only root FS, no privilege escalation, probes, env', () => {
    const { byKind } = synth({ tenant: 'smile-dental' });
    const d = byKind('Deployment');
    expect(d.metadata.name).toBe(AGENT_OBJECT_NAME);
    expect(d.spec.replicas).toBe(1);
    expect(d.spec.template.spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(d.spec.template.spec.automountServiceAccountToken).toBe(false);
    const c = container(d);
    expect(c.image).toBe('simptu/agent:latest');
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(envOf(d)).toMatchObject({
      SIMPTU_AGENT_MODE: 'dedicated',
      SIMPTU_AGENT_TENANT: 'smile-dental',
      SIMPTU_AGENT_METRICS_PORT: '8080',
      SIMPTU_AGENT_GROUP_ID: 'simptu-agent-smile-dental',
    });
    expect(c.envFrom).toBeUndefined();
    expect(c.resources).toEqual({
      requests: { cpu: '100m', memory: '256Mi' },
      limits: { cpu: '1', memory: '1Gi' },
    });
    // selector is a subset of the pod labels
    expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
  });

  it('honours image, namespace, replicas (0 allowed), resources and port', () => {
    const { byKind } = synth({
      tenant: 'gym-one',
      namespace: 'custom-ns',
      image: 'registry.example/agent:1.2.3',
      replicas: 0,
      port: 9090,
      resources: { requests: { cpu: '250m' }, limits: { memory: '2Gi' } },
    });
    const d = byKind('Deployment');
    expect(d.metadata.namespace).toBe('custom-ns');
    expect(d.spec.replicas).toBe(0);
    const c = container(d);
    expect(c.image).toBe('registry.example/agent:1.2.3');
    expect(c.ports).toEqual([{ name: 'http', containerPort: 9090, protocol: 'TCP' }]);
    expect(c.resources).toEqual({
      requests: { cpu: '250m', memory: '256Mi' },
      limits: { cpu: '1', memory: '2Gi' },
    });
    expect(byKind('Service').spec.ports).toEqual([
      { name: 'http', port: 9090, targetPort: 'http', protocol: 'TCP' },
    ]);
  });

  it('takes the backends from the runtime Secret and mounts credentials where the agent looks', () => {
    const { byKind } = synth({
      tenant: 'hotel-x',
      model: { provider: 'openai' },
      credentials: [
        { secretName: 'simptu-agent-model-credentials', mountName: 'openai-creds' },
        { secretName: 'simptu-agent-twilio-credentials', mountName: 'twilio' },
      ],
      secretsChecksum: 'ab'.repeat(32),
    });
    const d = byKind('Deployment');
    const c = container(d);
    const ref = (key: string) => ({ valueFrom: { secretKeyRef: { name: AGENT_RUNTIME_SECRET, key } } });
    expect(c.env).toEqual(
      expect.arrayContaining([
        { name: 'SIMPTU_AGENT_DATABASE_URL', ...ref(AGENT_RUNTIME_KEYS.databaseUrl) },
        { name: 'SIMPTU_AGENT_REDIS_URL', ...ref(AGENT_RUNTIME_KEYS.redisUrl) },
        { name: 'SIMPTU_AGENT_KAFKA_BROKERS', ...ref(AGENT_RUNTIME_KEYS.kafkaBrokers) },
        { name: 'SIMPTU_AGENT_KEK', ...ref(AGENT_RUNTIME_KEYS.kekBase64) },
        { name: 'SIMPTU_AGENT_SECRETS_DIR', value: AGENT_SECRETS_DIR },
      ]),
    );
    // The SMTP URL is optional: the platform may have no `simptu-smtp` Secret.
    expect(c.env).toContainEqual({
      name: 'SIMPTU_AGENT_CHANNELS_SMTP_URL',
      valueFrom: {
        secretKeyRef: { name: AGENT_RUNTIME_SECRET, key: AGENT_RUNTIME_KEYS.smtpUrl, optional: true },
      },
    });
    expect(c.envFrom).toBeUndefined();
    expect(c.volumeMounts).toEqual([
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'credentials-0', mountPath: `${AGENT_SECRETS_DIR}/openai-creds`, readOnly: true },
      { name: 'credentials-1', mountPath: `${AGENT_SECRETS_DIR}/twilio`, readOnly: true },
    ]);
    expect(d.spec.template.spec.volumes).toContainEqual({
      name: 'credentials-0',
      secret: { secretName: 'simptu-agent-model-credentials', defaultMode: 0o440 },
    });
    expect(d.spec.template.metadata.annotations).toEqual({
      [AGENT_SECRETS_CHECKSUM_ANNOTATION]: 'ab'.repeat(32),
    });
    // without credentials: no secrets dir, no extra volumes, no annotation
    const plain = synth({ tenant: 'hotel-x' }).byKind('Deployment');
    expect(envOf(plain).SIMPTU_AGENT_SECRETS_DIR).toBeUndefined();
    expect(plain.spec.template.spec.volumes).toHaveLength(1);
    expect(plain.spec.template.metadata.annotations).toBeUndefined();
  });

  it("the agent's own config loader accepts the container env (Secret refs resolved as the kubelet would)", async () => {
    const props: TenantAgentProps = {
      tenant: 'hotel-x',
      port: 8090,
      credentials: [{ secretName: 'simptu-agent-model-credentials', mountName: 'openai-creds' }],
    };
    const d = synth(props).byKind('Deployment');
    const runtime: Record<string, string> = {
      [AGENT_RUNTIME_KEYS.databaseUrl]: 'postgres://simptu_app:pw@db:5432/simptu',
      [AGENT_RUNTIME_KEYS.redisUrl]: 'redis://redis:6379',
      [AGENT_RUNTIME_KEYS.kafkaBrokers]: 'k1:9092,k2:9092',
      [AGENT_RUNTIME_KEYS.kekBase64]: Buffer.alloc(32, 7).toString('base64'),
      [AGENT_RUNTIME_KEYS.smtpUrl]: 'smtps://mailer:pw@smtp.example.com:465',
    };
    // As the kubelet resolves the refs: a missing optional key leaves the variable unset.
    const resolveEnv = (values: Record<string, string>): Record<string, string> => {
      const env: Record<string, string> = {};
      for (const e of container(d).env as Obj[]) {
        if (e.value !== undefined) env[e.name] = e.value;
        else {
          const { name, key, optional } = e.valueFrom.secretKeyRef;
          expect(name).toBe(AGENT_RUNTIME_SECRET);
          if (values[key] !== undefined) env[e.name] = values[key];
          else if (!optional) env[e.name] = `missing ${key}`;
        }
      }
      return env;
    };
    const env = resolveEnv(runtime);
    // cdk8s/tsconfig.json does not reference services/agent: loaded by path, typed here.
    const configPath = '../../services/agent/src/config.ts';
    const secretsPath = '../../services/agent/src/secrets.ts';
    const { loadAgentConfig } = (await import(configPath)) as {
      loadAgentConfig: (env: Record<string, string>) => {
        mode: string;
        tenant?: string;
        groupId: string;
        databaseUrl: string;
        redisUrl: string;
        kafkaBrokers: string[];
        kek: string;
        metricsPort: number;
        secrets: { dir?: string };
        channels: { smtpUrl?: string };
      };
    };
    const config = loadAgentConfig(env);
    expect(config).toMatchObject({
      mode: 'dedicated',
      tenant: 'hotel-x',
      groupId: 'simptu-agent-hotel-x',
      databaseUrl: runtime[AGENT_RUNTIME_KEYS.databaseUrl],
      redisUrl: 'redis://redis:6379',
      kafkaBrokers: ['k1:9092', 'k2:9092'],
      kek: runtime[AGENT_RUNTIME_KEYS.kekBase64],
      metricsPort: 8090,
      channels: { smtpUrl: runtime[AGENT_RUNTIME_KEYS.smtpUrl] },
    });
    // Without `smtp-url` the agent still starts, sending no e-mail.
    const { [AGENT_RUNTIME_KEYS.smtpUrl]: _smtp, ...noSmtp } = runtime;
    expect(loadAgentConfig(resolveEnv(noSmtp)).channels.smtpUrl).toBeUndefined();
    // The probes hit the port the agent serves health on.
    expect(container(d).ports[0].containerPort).toBe(config.metricsPort);

    // The mounted Secret, laid out as the kubelet does (<mountPath>/<key>), is what the agent's
    // secret lookup finds under the name the tenant spec uses.
    const { secretSource } = (await import(secretsPath)) as {
      secretSource: (o: { dir?: string }) => { get(name: string, key: string): string | undefined };
    };
    const root = mkdtempSync(join(tmpdir(), 'tenant-agent-'));
    try {
      for (const m of container(d).volumeMounts as Obj[]) {
        if (!m.name.startsWith('credentials-')) continue;
        mkdirSync(join(root, m.mountPath), { recursive: true });
        writeFileSync(join(root, m.mountPath, 'apiKey'), 'sk-test\n');
      }
      expect(secretSource({ dir: join(root, config.secrets.dir!) }).get('openai-creds', 'apiKey')).toBe(
        'sk-test',
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('sets no variable outside the agent configuration (no SIMPTU_MODEL_*, no instructions file)', () => {
    const names = Object.keys(
      envOf(synth({ tenant: 'smile-dental', model: { provider: 'openai' } }).byKind('Deployment')),
    );
    expect(names.filter((n) => !n.startsWith('SIMPTU_AGENT_'))).toEqual(['TMPDIR']);
  });

  it('NetworkPolicy: ingress only from the platform namespace, egress to it, DNS and SMTP', () => {
    const { byKind } = synth({ tenant: 'smile-dental', platformNamespace: 'plat' });
    const np = byKind('NetworkPolicy');
    const platform = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'plat' } } };
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.podSelector.matchLabels).toEqual(byKind('Deployment').spec.selector.matchLabels);
    expect(np.spec.ingress).toEqual([{ from: [platform], ports: [{ protocol: 'TCP', port: 8080 }] }]);
    expect(np.spec.egress).toEqual([
      { to: [platform] },
      {
        to: [{ namespaceSelector: {} }],
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      },
      {
        to: [
          {
            ipBlock: {
              cidr: '0.0.0.0/0',
              except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'],
            },
          },
        ],
        ports: [
          { protocol: 'TCP', port: 587 },
          { protocol: 'TCP', port: 465 },
        ],
      },
    ]);
  });

  it('SMTP egress ports are configurable, and [] opens none', () => {
    const custom = synth({ tenant: 'smile-dental', smtpEgressPorts: [2525] }).byKind('NetworkPolicy');
    expect(custom.spec.egress).toHaveLength(3);
    expect(custom.spec.egress[2].ports).toEqual([{ protocol: 'TCP', port: 2525 }]);
    expect(custom.spec.egress[2].to[0].ipBlock.except).toContain('192.168.0.0/16');
    const none = synth({ tenant: 'smile-dental', smtpEgressPorts: [] }).byKind('NetworkPolicy');
    expect(none.spec.egress).toHaveLength(2);
    expect(JSON.stringify(none.spec.egress)).not.toContain('0.0.0.0/0');
    // Independent of the model provider: a hosted one adds HTTPS beside it.
    const hosted = synth({ tenant: 'smile-dental', model: { provider: 'openai' } }).byKind('NetworkPolicy');
    expect(hosted.spec.egress.map((r: Obj) => r.ports?.map((p: Obj) => p.port))).toContainEqual([587, 465]);
    expect(hosted.spec.egress.map((r: Obj) => r.ports?.map((p: Obj) => p.port))).toContainEqual([443]);
  });

  it('opens egress to external backends by CIDR on the backend ports (PostgreSQL, Redis, Kafka by default)', () => {
    const np = synth({
      tenant: 'smile-dental',
      backendEgress: { cidrs: ['10.20.0.0/16', '192.168.7.10/32'] },
    }).byKind('NetworkPolicy');
    expect(np.spec.egress).toHaveLength(4); // + SMTP
    expect(np.spec.egress[2]).toEqual({
      to: [{ ipBlock: { cidr: '10.20.0.0/16' } }, { ipBlock: { cidr: '192.168.7.10/32' } }],
      ports: [
        { protocol: 'TCP', port: 5432 },
        { protocol: 'TCP', port: 6379 },
        { protocol: 'TCP', port: 9092 },
      ],
    });
    const custom = synth({
      tenant: 'smile-dental',
      backendEgress: { cidrs: ['fd00:10::/64'], ports: [6380, 9094] },
    }).byKind('NetworkPolicy');
    expect(custom.spec.egress[2].ports).toEqual([
      { protocol: 'TCP', port: 6380 },
      { protocol: 'TCP', port: 9094 },
    ]);
    // no CIDRs: no rule
    expect(
      synth({ tenant: 'smile-dental', backendEgress: { cidrs: [] } }).byKind('NetworkPolicy').spec.egress,
    ).toHaveLength(3);
  });

  it('opens HTTPS egress to public addresses for hosted model providers only', () => {
    const hosted = synth({ tenant: 'smile-dental', model: { provider: 'anthropic' } }).byKind(
      'NetworkPolicy',
    );
    expect(hosted.spec.egress).toHaveLength(4); // + SMTP
    expect(hosted.spec.egress[2].ports).toEqual([{ protocol: 'TCP', port: 443 }]);
    expect(hosted.spec.egress[2].to[0].ipBlock.except).toContain('10.0.0.0/8');
    const off = synth({
      tenant: 'smile-dental',
      model: { provider: 'anthropic' },
      allowModelEgress: false,
    }).byKind('NetworkPolicy');
    expect(off.spec.egress).toHaveLength(3);
    expect(off.spec.egress[2].ports.map((p: Obj) => p.port)).toEqual([587, 465]);
  });

  it.each([
    [{ tenant: 'X' }, /tenant/],
    [{ tenant: 'ab' }, /tenant/],
    [{ tenant: 'okay-name', replicas: -1 }, /replicas/],
    [{ tenant: 'okay-name', replicas: 1.5 }, /replicas/],
    [{ tenant: 'okay-name', replicas: 51 }, /replicas/],
    [{ tenant: 'okay-name', port: 0 }, /port/],
    [{ tenant: 'okay-name', image: ' ' }, /image/],
    [{ tenant: 'okay-name', namespace: 'Bad_NS' }, /namespace/],
    [{ tenant: 'okay-name', model: { provider: 'gpt' as never } }, /provider/],
    [{ tenant: 'okay-name', runtimeSecret: 'Bad Name' }, /runtimeSecret/],
    [{ tenant: 'okay-name', credentials: [{ secretName: 'ok', mountName: 'Bad Name' }] }, /mountName/],
    [
      {
        tenant: 'okay-name',
        credentials: [
          { secretName: 'a', mountName: 'same' },
          { secretName: 'b', mountName: 'same' },
        ],
      },
      /twice/,
    ],
    [{ tenant: 'okay-name', secretsChecksum: 'not hex' }, /secretsChecksum/],
    [{ tenant: 'okay-name', logLevel: 'loud' as never }, /logLevel/],
    [{ tenant: 'okay-name', backendEgress: { cidrs: ['db.example.com'] } }, /cidrs/],
    [{ tenant: 'okay-name', backendEgress: { cidrs: ['10.0.0.0/33'] } }, /cidrs/],
    [{ tenant: 'okay-name', backendEgress: { cidrs: ['300.0.0.0/8'] } }, /cidrs/],
    [{ tenant: 'okay-name', backendEgress: { cidrs: ['10.0.0.0/8'], ports: [] } }, /ports/],
    [{ tenant: 'okay-name', backendEgress: { cidrs: ['10.0.0.0/8'], ports: [70000] } }, /ports/],
    [{ tenant: 'okay-name', smtpEgressPorts: [0] }, /smtpEgressPorts/],
    [{ tenant: 'okay-name', smtpEgressPorts: [587.5] }, /smtpEgressPorts/],
    [{ tenant: 'okay-name', resources: { limits: { memory: 'lots' } } }, /resources\.limits\.memory/],
  ])('rejects invalid props %j', (props, message) => {
    expect(() => new TenantAgent(Testing.chart(), 'agent', props as TenantAgentProps)).toThrow(message);
  });

  it('synthTenantAgent returns the manifests in memory with stable names', () => {
    const objs = synthTenantAgent({ tenant: 'smile-dental', replicas: 2 });
    expect(objs.map((o) => `${o.kind}/${(o.metadata as Obj).name}`)).toEqual([
      'Deployment/simptu-agent',
      'Service/simptu-agent',
      'NetworkPolicy/simptu-agent',
    ]);
    expect(synthTenantAgent({ tenant: 'smile-dental', replicas: 2 })).toEqual(objs);
  });
});
