import { describe, it, expect } from 'vitest';
import type { Tenant } from '../api/types.ts';
import {
  desiredAgentObjects,
  desiredAgentReplicas,
  mirroredSecret,
  rolloutComplete,
  dedicatedAgentRefs,
  credentialsSources,
  runtimeSecret,
  secretsChecksum,
  AGENT_CREDENTIALS_SECRET,
  AGENT_CREDENTIALS_SECRETS,
  AGENT_CONFIGMAP_NAME,
  AGENT_OBJECT_NAME,
  AGENT_RUNTIME_KEYS,
  AGENT_RUNTIME_SECRET,
} from './agent.ts';
import { SPEC_HASH_ANNOTATION, type KubeObject } from './namespace.ts';

function tenant(patch: Partial<Tenant['spec']> = {}): Tenant {
  return {
    apiVersion: 'simptu.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 'smile-dental', generation: 1 },
    spec: {
      displayName: 'Smile Dental',
      businessType: 'dental',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'dedicated' },
      agent: { replicas: 2, model: { provider: 'builtin' }, instructions: 'Be kind.' },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: false,
      ...patch,
    },
  };
}

interface Dep {
  spec: {
    replicas: number;
    template: { spec: { containers: Array<{ image: string; envFrom?: unknown; env: unknown[] }> } };
  };
}
const deployment = (objs: KubeObject[]) => objs.find((o) => o.kind === 'Deployment') as unknown as Dep;

describe('desiredAgentObjects', () => {
  it('builds the TenantAgent objects in the tenant namespace, each hashed', async () => {
    const objs = await desiredAgentObjects(tenant(), {
      agentImage: 'simptu/agent:dev',
      platformNamespace: 'plat',
    });
    expect(objs.map((o) => o.kind)).toEqual(['Deployment', 'Service', 'NetworkPolicy']);
    for (const o of objs) {
      expect(o.metadata.namespace).toBe('tenant-smile-dental');
      expect(o.metadata.annotations?.[SPEC_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
    }
    const d = deployment(objs);
    expect(d.spec.replicas).toBe(2);
    expect(d.spec.template.spec.containers[0]!.image).toBe('simptu/agent:dev');
    expect(d.spec.template.spec.containers[0]!.env).toContainEqual({
      name: 'SIMPTU_AGENT_DATABASE_URL',
      valueFrom: { secretKeyRef: { name: AGENT_RUNTIME_SECRET, key: AGENT_RUNTIME_KEYS.databaseUrl } },
    });
    expect(objs[2]).toMatchObject({
      spec: {
        ingress: [
          { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'plat' } } }] },
        ],
      },
    });
  });

  it('scales to 0 while suspended, and only the Deployment hash changes', async () => {
    const a = await desiredAgentObjects(tenant());
    const b = await desiredAgentObjects(tenant({ suspended: true }));
    expect(desiredAgentReplicas(tenant({ suspended: true }))).toBe(0);
    expect(deployment(b).spec.replicas).toBe(0);
    const changed = a.filter(
      (o, i) =>
        o.metadata.annotations![SPEC_HASH_ANNOTATION] !== b[i]!.metadata.annotations![SPEC_HASH_ANNOTATION],
    );
    expect(changed.map((o) => o.kind)).toEqual(['Deployment']);
  });

  it('instructions and model name are not part of the Deployment (the agent reads them from the registry)', async () => {
    const a = await desiredAgentObjects(tenant());
    const b = await desiredAgentObjects(
      tenant({
        agent: { replicas: 2, model: { provider: 'builtin', name: 'other' }, instructions: 'Be brief.' },
      }),
    );
    expect(a.map((o) => o.metadata.annotations![SPEC_HASH_ANNOTATION])).toEqual(
      b.map((o) => o.metadata.annotations![SPEC_HASH_ANNOTATION]),
    );
  });

  it('mounts the credentials, sets the checksum, and opens configured backend egress', async () => {
    const objs = await desiredAgentObjects(
      tenant(),
      { agentEgress: { cidrs: ['10.20.0.0/16'], ports: [5432] } },
      {
        credentials: [{ secretName: AGENT_CREDENTIALS_SECRET, mountName: 'openai' }],
        checksum: 'f'.repeat(64),
      },
    );
    const d = deployment(objs) as unknown as {
      spec: {
        template: {
          metadata: { annotations: Record<string, string> };
          spec: { containers: Array<{ volumeMounts: unknown[] }> };
        };
      };
    };
    expect(d.spec.template.metadata.annotations['simptu.io/secrets-sha256']).toBe('f'.repeat(64));
    expect(d.spec.template.spec.containers[0]!.volumeMounts).toContainEqual({
      name: 'credentials-0',
      mountPath: '/etc/simptu/secrets/openai',
      readOnly: true,
    });
    expect(objs[2]).toMatchObject({
      spec: {
        egress: expect.arrayContaining([
          { to: [{ ipBlock: { cidr: '10.20.0.0/16' } }], ports: [{ protocol: 'TCP', port: 5432 }] },
        ]),
      },
    });
  });
});

describe('mirroredSecret', () => {
  it('copies data only, into the tenant namespace, hashed by content', () => {
    const src: KubeObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'openai', namespace: 'plat', uid: 'u', resourceVersion: '5' },
      data: { apiKey: 'c2s=' },
    };
    const m = mirroredSecret(tenant(), src);
    expect(m.metadata).toMatchObject({ name: AGENT_CREDENTIALS_SECRET, namespace: 'tenant-smile-dental' });
    expect(m.metadata.uid).toBeUndefined();
    expect(m.data).toEqual({ apiKey: 'c2s=' });
    const other = mirroredSecret(tenant(), { ...src, data: { apiKey: 'b3RoZXI=' } });
    expect(other.metadata.annotations![SPEC_HASH_ANNOTATION]).not.toBe(
      m.metadata.annotations![SPEC_HASH_ANNOTATION],
    );
    expect(mirroredSecret(tenant(), src, 'simptu-agent-twilio-credentials').metadata.name).toBe(
      'simptu-agent-twilio-credentials',
    );
  });
});

describe('runtimeSecret', () => {
  it('holds the four keys the TenantAgent env reads, the KEK as base64 text', () => {
    const kek = Buffer.alloc(32, 9);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const s = runtimeSecret(tenant(), {
      databaseUrlB64: b64('postgres://app@db/simptu'),
      redisUrlB64: b64('redis://r:6379'),
      kafkaBrokers: ['k1:9092', 'k2:9092'],
      kek,
    });
    expect(s.metadata).toMatchObject({ name: AGENT_RUNTIME_SECRET, namespace: 'tenant-smile-dental' });
    const text = Object.fromEntries(
      Object.entries(s.data as Record<string, string>).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString(),
      ]),
    );
    expect(text).toEqual({
      [AGENT_RUNTIME_KEYS.databaseUrl]: 'postgres://app@db/simptu',
      [AGENT_RUNTIME_KEYS.redisUrl]: 'redis://r:6379',
      [AGENT_RUNTIME_KEYS.kafkaBrokers]: 'k1:9092,k2:9092',
      [AGENT_RUNTIME_KEYS.kekBase64]: kek.toString('base64'),
    });
  });

  it('adds smtp-url only when the platform has an SMTP URL', () => {
    const base = {
      databaseUrlB64: 'ZGI=',
      redisUrlB64: 'cg==',
      kafkaBrokers: ['k:9092'],
      kek: Buffer.alloc(32, 1),
    };
    expect(runtimeSecret(tenant(), base).data).not.toHaveProperty(AGENT_RUNTIME_KEYS.smtpUrl);
    const smtpB64 = Buffer.from('smtp://m:pw@mail.example:587').toString('base64');
    expect(runtimeSecret(tenant(), { ...base, smtpUrlB64: smtpB64 }).data).toMatchObject({
      [AGENT_RUNTIME_KEYS.smtpUrl]: smtpB64,
    });
  });

  it('secretsChecksum changes with any value and not with order', () => {
    const sec = (name: string, v: string): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name },
      data: { k: v },
    });
    const a = secretsChecksum([sec('a', 'x'), sec('b', 'y')]);
    expect(secretsChecksum([sec('b', 'y'), sec('a', 'x')])).toBe(a);
    expect(secretsChecksum([sec('a', 'x'), sec('b', 'z')])).not.toBe(a);
  });
});

describe('credentialsSources', () => {
  it('one copy per distinct source, mounted under the name the spec uses', () => {
    const t = tenant({
      agent: { replicas: 1, model: { provider: 'openai', secretRef: { name: 'creds' } } },
      integrations: {
        twilio: { phoneNumber: '+15550001', credentialsSecretRef: { name: 'creds' } },
        meta: { pageId: 'p', credentialsSecretRef: { name: 'fb', namespace: 'other' } },
      },
    });
    expect(credentialsSources(t, 'plat')).toEqual({
      sources: [
        {
          roles: ['model', 'twilio'],
          source: { apiVersion: 'v1', kind: 'Secret', name: 'creds', namespace: 'plat' },
          mirror: AGENT_CREDENTIALS_SECRETS.model,
          mountName: 'creds',
        },
        {
          roles: ['meta'],
          source: { apiVersion: 'v1', kind: 'Secret', name: 'fb', namespace: 'other' },
          mirror: AGENT_CREDENTIALS_SECRETS.meta,
          mountName: 'fb',
        },
      ],
    });
    expect(credentialsSources(tenant(), 'plat')).toEqual({ sources: [] });
  });

  it('refuses one name from two namespaces (the agent looks credentials up by name)', () => {
    const t = tenant({
      agent: { replicas: 1, model: { provider: 'openai', secretRef: { name: 'creds', namespace: 'a' } } },
      integrations: {
        twilio: { phoneNumber: '+15550001', credentialsSecretRef: { name: 'creds', namespace: 'b' } },
      },
    });
    expect(credentialsSources(t, 'plat')).toMatchObject({ conflict: expect.stringContaining('creds') });
  });
});

describe('rolloutComplete', () => {
  const dep = (generation: number, status: object): KubeObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd', generation },
    status,
  });
  it.each([
    [dep(2, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2 }), 2, false],
    [dep(2, { observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 2 }), 2, false],
    [dep(2, { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 1 }), 2, false],
    [dep(2, { observedGeneration: 2, replicas: 3, updatedReplicas: 2, availableReplicas: 2 }), 2, false],
    [dep(2, { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2 }), 2, true],
    [dep(3, { observedGeneration: 3 }), 0, true],
    [dep(1, {}), 1, false],
  ])('case %#', (d, desired, done) => {
    expect(rolloutComplete(d, desired).done).toBe(done);
  });
});

it('dedicatedAgentRefs lists every object a dedicated agent leaves behind (and the legacy ConfigMap)', () => {
  expect(dedicatedAgentRefs('smile-dental').map((r) => `${r.kind}/${r.name}`)).toEqual([
    'Deployment/simptu-agent',
    'Service/simptu-agent',
    'NetworkPolicy/simptu-agent',
    'ConfigMap/simptu-agent-config',
    `Secret/${AGENT_RUNTIME_SECRET}`,
    'Secret/simptu-agent-model-credentials',
    'Secret/simptu-agent-twilio-credentials',
    'Secret/simptu-agent-meta-credentials',
  ]);
});

it('names the objects as the cdk8s TenantAgent construct does (kept here so cdk8s loads lazily)', async () => {
  const cdk8s = await import('@simptu/cdk8s');
  expect(AGENT_OBJECT_NAME).toBe(cdk8s.AGENT_OBJECT_NAME);
  expect(AGENT_CONFIGMAP_NAME).toBe(cdk8s.AGENT_CONFIGMAP_NAME);
  expect(AGENT_RUNTIME_SECRET).toBe(cdk8s.AGENT_RUNTIME_SECRET);
  expect(AGENT_RUNTIME_KEYS).toEqual(cdk8s.AGENT_RUNTIME_KEYS);
});
