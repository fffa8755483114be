import { describe, it, expect } from 'vitest';
import type { Tenant } from '../api/types.ts';
import {
  desiredAgentObjects,
  desiredAgentReplicas,
  mirroredSecret,
  rolloutComplete,
  dedicatedAgentRefs,
  AGENT_CREDENTIALS_SECRET,
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
  it('builds the TenantAgent objects in the tenant namespace, each hashed', () => {
    const objs = desiredAgentObjects(tenant(), { agentImage: 'simptu/agent:dev', platformNamespace: 'plat' });
    expect(objs.map((o) => o.kind)).toEqual(['ConfigMap', 'Deployment', 'Service', 'NetworkPolicy']);
    for (const o of objs) {
      expect(o.metadata.namespace).toBe('tenant-smile-dental');
      expect(o.metadata.annotations?.[SPEC_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
    }
    const d = deployment(objs);
    expect(d.spec.replicas).toBe(2);
    expect(d.spec.template.spec.containers[0]!.image).toBe('simptu/agent:dev');
    expect(objs[0]).toMatchObject({ data: { 'instructions.md': 'Be kind.' } });
    expect(objs[3]).toMatchObject({
      spec: {
        ingress: [
          { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'plat' } } }] },
        ],
      },
    });
  });

  it('scales to 0 while suspended, and only the Deployment hash changes', () => {
    const a = desiredAgentObjects(tenant());
    const b = desiredAgentObjects(tenant({ suspended: true }));
    expect(desiredAgentReplicas(tenant({ suspended: true }))).toBe(0);
    expect(deployment(b).spec.replicas).toBe(0);
    const changed = a.filter(
      (o, i) =>
        o.metadata.annotations![SPEC_HASH_ANNOTATION] !== b[i]!.metadata.annotations![SPEC_HASH_ANNOTATION],
    );
    expect(changed.map((o) => o.kind)).toEqual(['Deployment']);
  });

  it('points envFrom at the mirrored credentials Secret when the model has a secretRef', () => {
    const t = tenant({
      agent: {
        replicas: 1,
        model: { provider: 'openai', name: 'gpt-4o', secretRef: { name: 'openai', namespace: 'plat' } },
      },
    });
    const c = deployment(desiredAgentObjects(t)).spec.template.spec.containers[0]!;
    expect(c.envFrom).toEqual([{ secretRef: { name: AGENT_CREDENTIALS_SECRET } }]);
    expect(c.env).toContainEqual({ name: 'SIMPTU_MODEL_NAME', value: 'gpt-4o' });
  });
});

describe('mirroredSecret', () => {
  it('copies data only, into the tenant namespace, hashed by content', () => {
    const src: KubeObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'openai', namespace: 'plat', uid: 'u', resourceVersion: '5' },
      data: { OPENAI_API_KEY: 'c2s=' },
    };
    const m = mirroredSecret(tenant(), src);
    expect(m.metadata).toMatchObject({ name: AGENT_CREDENTIALS_SECRET, namespace: 'tenant-smile-dental' });
    expect(m.metadata.uid).toBeUndefined();
    expect(m.data).toEqual({ OPENAI_API_KEY: 'c2s=' });
    const other = mirroredSecret(tenant(), { ...src, data: { OPENAI_API_KEY: 'b3RoZXI=' } });
    expect(other.metadata.annotations![SPEC_HASH_ANNOTATION]).not.toBe(
      m.metadata.annotations![SPEC_HASH_ANNOTATION],
    );
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

it('dedicatedAgentRefs lists every object a dedicated agent leaves behind', () => {
  expect(dedicatedAgentRefs('smile-dental').map((r) => `${r.kind}/${r.name}`)).toEqual([
    'Deployment/simptu-agent',
    'Service/simptu-agent',
    'NetworkPolicy/simptu-agent',
    'ConfigMap/simptu-agent-config',
    `Secret/${AGENT_CREDENTIALS_SECRET}`,
  ]);
});
