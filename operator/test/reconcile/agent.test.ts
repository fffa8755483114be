import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, KIND, type Tenant } from '../../src/api/types.ts';
import {
  agentReconciler,
  dedicatedAgentRefs,
  AGENT_CREDENTIALS_SECRET,
  type AgentDeps,
} from '../../src/reconcile/agent.ts';
import { kubeObjectClient, namespaceReconciler, type ObjectClient } from '../../src/reconcile/namespace.ts';

function counter() {
  const counts: Record<string, number> = {};
  return { counts, inc: (b: string, n = 1) => void (counts[b] = (counts[b] ?? 0) + n) };
}

function tenant(agent: 'shared' | 'dedicated' = 'dedicated'): Tenant {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: `ag-${randomBytes(5).toString('hex')}`, generation: 1 },
    spec: {
      displayName: 'Agent test',
      businessType: 'hotel',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent },
      agent: { replicas: 2, model: { provider: 'builtin' }, instructions: 'Welcome guests.' },
      kafka: { partitions: 1, retentionHours: 1 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: false,
    },
  };
}

let kube: ObjectClient;
const namespaces: string[] = [];
const secrets: string[] = [];

beforeAll(() => {
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG ?? '');
  kube = kubeObjectClient(kc);
});

afterAll(async () => {
  for (const ns of namespaces)
    await kube.delete({ apiVersion: 'v1', kind: 'Namespace', name: ns }).catch(() => undefined);
  for (const s of secrets)
    await kube
      .delete({ apiVersion: 'v1', kind: 'Secret', name: s, namespace: 'default' })
      .catch(() => undefined);
});

async function withNamespace(t: Tenant): Promise<void> {
  namespaces.push(`tenant-${t.metadata.name}`);
  expect((await namespaceReconciler.reconcile(t, { kube, writes: counter() })).kind).toBe('ready');
}

describe('agent reconciler (real kube-apiserver)', () => {
  it('dedicated: applies the TenantAgent objects once, scales to 0 when suspended', async () => {
    const t = tenant();
    await withNamespace(t);
    const writes = counter();
    const deps: AgentDeps = { kube, writes, agentReadiness: 'applied', agentImage: 'simptu/agent:test' };

    expect(await agentReconciler.reconcile(t, deps)).toMatchObject({ kind: 'ready', reason: 'AgentApplied' });
    expect(writes.counts.agent).toBe(4);
    const ns = `tenant-${t.metadata.name}`;
    expect(
      await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'simptu-agent', namespace: ns }),
    ).toMatchObject({
      spec: {
        replicas: 2,
        template: {
          spec: {
            containers: [{ image: 'simptu/agent:test', securityContext: { readOnlyRootFilesystem: true } }],
          },
        },
      },
    });
    expect(
      await kube.get({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        name: 'simptu-agent',
        namespace: ns,
      }),
    ).toMatchObject({
      spec: {
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'simptu-system' } } },
            ],
          },
        ],
      },
    });
    expect(
      await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'simptu-agent-config', namespace: ns }),
    ).toMatchObject({
      data: { 'instructions.md': 'Welcome guests.' },
    });
    expect(
      await kube.get({ apiVersion: 'v1', kind: 'Service', name: 'simptu-agent', namespace: ns }),
    ).toBeDefined();

    // steady state: zero writes
    expect((await agentReconciler.reconcile(t, deps)).kind).toBe('ready');
    expect(writes.counts.agent).toBe(4);

    // suspended: only the Deployment is rewritten, to 0 replicas
    const suspended: Tenant = { ...t, spec: { ...t.spec, suspended: true } };
    expect(await agentReconciler.reconcile(suspended, deps)).toMatchObject({ kind: 'ready' });
    expect(writes.counts.agent).toBe(5);
    expect(
      await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'simptu-agent', namespace: ns }),
    ).toMatchObject({ spec: { replicas: 0 } });
  });

  it("readiness 'rollout' waits for available replicas (no deployment controller runs here)", async () => {
    const t = tenant();
    await withNamespace(t);
    const r = await agentReconciler.reconcile(t, { kube, writes: counter(), pollMs: 1234 });
    expect(r).toMatchObject({ kind: 'progressing', reason: 'AgentRollingOut', requeueAfterMs: 1234 });
  });

  it('mirrors the model secret into the tenant namespace; blocked while it is missing', async () => {
    const t = tenant();
    const secretName = `model-${t.metadata.name}`;
    t.spec.agent.model = {
      provider: 'openai',
      name: 'gpt-4o-mini',
      secretRef: { name: secretName, namespace: 'default' },
    };
    await withNamespace(t);
    const writes = counter();
    const deps: AgentDeps = { kube, writes, agentReadiness: 'applied' };
    expect(await agentReconciler.reconcile(t, deps)).toMatchObject({
      kind: 'blocked',
      reason: 'ModelSecretNotFound',
    });
    expect(writes.counts.agent).toBeUndefined();

    secrets.push(secretName);
    await kube.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: secretName, namespace: 'default' },
      data: { OPENAI_API_KEY: Buffer.from('sk-test').toString('base64') },
    });
    expect(await agentReconciler.reconcile(t, deps)).toMatchObject({ kind: 'ready' });
    expect(writes.counts.agent).toBe(5);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const copyRef = {
      apiVersion: 'v1',
      kind: 'Secret',
      name: AGENT_CREDENTIALS_SECRET,
      namespace: `tenant-${t.metadata.name}`,
    };
    expect(await kube.get(copyRef)).toMatchObject({ data: { OPENAI_API_KEY: b64('sk-test') } });

    // rotation of the source secret propagates
    await kube.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: secretName, namespace: 'default' },
      data: { OPENAI_API_KEY: Buffer.from('sk-new').toString('base64') },
    });
    await agentReconciler.reconcile(t, deps);
    expect(writes.counts.agent).toBe(6);
    expect(await kube.get(copyRef)).toMatchObject({ data: { OPENAI_API_KEY: b64('sk-new') } });

    // secretRef removed from the spec → the copy goes, envFrom goes
    const noSecret: Tenant = {
      ...t,
      spec: { ...t.spec, agent: { ...t.spec.agent, model: { provider: 'openai' } } },
    };
    expect(await agentReconciler.reconcile(noSecret, deps)).toMatchObject({ kind: 'ready' });
    expect(await kube.get(copyRef)).toBeUndefined();
    expect(writes.counts.agent).toBe(8); // Deployment re-applied + Secret deleted
  });

  it('shared: no dedicated objects remain (leftovers deleted), ready with PooledAgent; finalize cleans up', async () => {
    const t = tenant();
    await withNamespace(t);
    const writes = counter();
    expect((await agentReconciler.reconcile(t, { kube, writes, agentReadiness: 'applied' })).kind).toBe(
      'ready',
    );

    const shared: Tenant = { ...t, spec: { ...t.spec, isolation: { database: 'shared', agent: 'shared' } } };
    const r = await agentReconciler.reconcile(shared, { kube, writes, agentReadiness: 'applied' });
    expect(r).toMatchObject({ kind: 'ready', reason: 'PooledAgent' });
    expect(writes.counts.agent).toBe(8);
    for (const ref of dedicatedAgentRefs(t.metadata.name)) {
      const live = await kube.get(ref);
      expect(live === undefined || live.metadata.deletionTimestamp !== undefined, `${ref.kind} gone`).toBe(
        true,
      );
    }
    // steady state for shared: nothing to do
    expect(await agentReconciler.reconcile(shared, { kube, writes })).toMatchObject({
      kind: 'ready',
      reason: 'PooledAgent',
    });
    expect(writes.counts.agent).toBe(8);

    // finalize a dedicated one
    expect((await agentReconciler.reconcile(t, { kube, writes, agentReadiness: 'applied' })).kind).toBe(
      'ready',
    );
    expect(await agentReconciler.finalize(t, { kube, writes })).toMatchObject({
      kind: 'ready',
      reason: 'AgentDeleted',
    });
    expect(await kube.get(dedicatedAgentRefs(t.metadata.name)[0]!)).toBeUndefined();
  });
});
