import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TENANT_LABEL } from '@simptu/common';
import { API_VERSION, KIND, type Tenant } from '../../src/api/types.ts';
import {
  agentReconciler,
  dedicatedAgentRefs,
  AGENT_CREDENTIALS_SECRET,
  AGENT_RUNTIME_KEYS,
  AGENT_RUNTIME_SECRET,
  type AgentDeps,
} from '../../src/reconcile/agent.ts';
import {
  kubeObjectClient,
  namespaceReconciler,
  type KubeObject,
  type ObjectClient,
  type ObjectRef,
} from '../../src/reconcile/namespace.ts';

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

const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (v: unknown) => Buffer.from(String(v), 'base64').toString('utf8');

// A platform namespace of this file's own, with the Secrets the runtime Secret is composed from.
const platformNs = `agent-plat-${randomBytes(4).toString('hex')}`;
const KEK = randomBytes(32);
const DB_URL = 'postgres://simptu_app:pw@db.example:5432/simptu';
const REDIS_URL = 'redis://:pw@redis.example:6379';

let kube: ObjectClient;
const namespaces: string[] = [];

const secretRef = (name: string, namespace = platformNs): ObjectRef => ({
  apiVersion: 'v1',
  kind: 'Secret',
  name,
  namespace,
});

async function putSecret(name: string, data: Record<string, string>, namespace = platformNs): Promise<void> {
  await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'Opaque', data });
}

function deps(over: Partial<AgentDeps> = {}): AgentDeps & { writes: ReturnType<typeof counter> } {
  return {
    kube,
    writes: counter(),
    agentReadiness: 'applied',
    platformNamespace: platformNs,
    runtime: {
      databaseUrl: { name: 'simptu-database', key: 'app-url' },
      redisUrl: { name: 'simptu-redis', key: 'url' },
      kekSecret: 'simptu-kek',
      kafkaBrokers: ['kafka.example:9092'],
    },
    ...over,
  } as AgentDeps & { writes: ReturnType<typeof counter> };
}

beforeAll(async () => {
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG ?? '');
  kube = kubeObjectClient(kc);
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: platformNs } });
  await putSecret('simptu-database', {
    'app-url': b64(DB_URL),
    'admin-url': b64('postgres://admin@db/simptu'),
  });
  await putSecret('simptu-redis', { url: b64(REDIS_URL) });
  // raw bytes under `kek`, as the operator's KMS reads it
  await putSecret('simptu-kek', { kek: KEK.toString('base64') });
});

afterAll(async () => {
  for (const ns of [...namespaces, platformNs])
    await kube.delete({ apiVersion: 'v1', kind: 'Namespace', name: ns }).catch(() => undefined);
});

async function withNamespace(t: Tenant): Promise<string> {
  namespaces.push(`tenant-${t.metadata.name}`);
  expect(
    (await namespaceReconciler.reconcile(t, { kube, writes: counter(), platformNamespace: platformNs })).kind,
  ).toBe('ready');
  return `tenant-${t.metadata.name}`;
}

interface Container {
  image: string;
  env: Array<{
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef: { name: string; key: string; optional?: boolean } };
  }>;
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
const deploymentRef = (ns: string): ObjectRef => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  name: 'simptu-agent',
  namespace: ns,
});
async function container(ns: string): Promise<Container> {
  const d = (await kube.get(deploymentRef(ns))) as KubeObject & {
    spec: { template: { spec: { containers: Container[] } } };
  };
  return d.spec.template.spec.containers[0]!;
}
async function checksum(ns: string): Promise<string | undefined> {
  const d = (await kube.get(deploymentRef(ns))) as KubeObject & {
    spec: { template: { metadata: { annotations?: Record<string, string> } } };
  };
  return d.spec.template.metadata.annotations?.['simptu.io/secrets-sha256'];
}

describe('agent reconciler (real kube-apiserver)', () => {
  it('dedicated: writes the runtime Secret and the TenantAgent objects once, scales to 0 when suspended', async () => {
    const t = tenant();
    const ns = await withNamespace(t);
    const d = deps({ agentImage: 'simptu/agent:test' });

    expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready', reason: 'AgentApplied' });
    expect(d.writes.counts.agent).toBe(4); // runtime Secret, Deployment, Service, NetworkPolicy

    // The runtime Secret holds what the Deployment's env references, KEK as base64 text.
    const runtime = await kube.get(secretRef(AGENT_RUNTIME_SECRET, ns));
    expect(runtime?.metadata.labels?.[TENANT_LABEL]).toBe(t.metadata.name);
    const data = runtime!.data as Record<string, string>;
    expect(text(data[AGENT_RUNTIME_KEYS.databaseUrl])).toBe(DB_URL);
    expect(text(data[AGENT_RUNTIME_KEYS.redisUrl])).toBe(REDIS_URL);
    expect(text(data[AGENT_RUNTIME_KEYS.kafkaBrokers])).toBe('kafka.example:9092');
    expect(text(data[AGENT_RUNTIME_KEYS.kekBase64])).toBe(KEK.toString('base64'));
    const c = await container(ns);
    expect(c.image).toBe('simptu/agent:test');
    // (the optional SMTP URL aside: this platform namespace has no `simptu-smtp`)
    for (const e of c.env.filter((x) => x.valueFrom && !x.valueFrom.secretKeyRef.optional))
      expect(Object.keys(data), e.name).toContain(e.valueFrom!.secretKeyRef.key);
    expect(c.env.filter((x) => x.valueFrom).map((x) => x.valueFrom!.secretKeyRef.name)).toEqual(
      Array(5).fill(AGENT_RUNTIME_SECRET),
    );
    expect(await checksum(ns)).toMatch(/^[0-9a-f]{64}$/);
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
          { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': platformNs } } }] },
        ],
      },
    });
    expect(
      await kube.get({ apiVersion: 'v1', kind: 'Service', name: 'simptu-agent', namespace: ns }),
    ).toBeDefined();

    // steady state: zero writes
    expect((await agentReconciler.reconcile(t, d)).kind).toBe('ready');
    expect(d.writes.counts.agent).toBe(4);

    // suspended: only the Deployment is rewritten, to 0 replicas
    const suspended: Tenant = { ...t, spec: { ...t.spec, suspended: true } };
    expect(await agentReconciler.reconcile(suspended, d)).toMatchObject({ kind: 'ready' });
    expect(d.writes.counts.agent).toBe(5);
    expect(await kube.get(deploymentRef(ns))).toMatchObject({ spec: { replicas: 0 } });
  });

  it('runtime: blocked while a platform Secret or key is missing; a changed source updates the copy and rolls the pods', async () => {
    const t = tenant();
    const ns = await withNamespace(t);
    const redisSecret = `redis-${t.metadata.name}`;
    const d = deps();
    d.runtime = { ...d.runtime, redisUrl: { name: redisSecret, key: 'url' } };

    expect(await agentReconciler.reconcile(t, d)).toMatchObject({
      kind: 'blocked',
      reason: 'AgentRuntimeSecretNotFound',
      message: expect.stringContaining(`Secret ${platformNs}/${redisSecret}`),
    });
    expect(d.writes.counts.agent).toBeUndefined();
    expect(await kube.get(deploymentRef(ns))).toBeUndefined();

    await putSecret(redisSecret, { other: b64('x') });
    expect(await agentReconciler.reconcile(t, d)).toMatchObject({
      kind: 'blocked',
      reason: 'AgentRuntimeSecretInvalid',
      message: expect.stringContaining("no key 'url'"),
    });

    await putSecret(redisSecret, { url: b64('redis://one:6379') });
    expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready' });
    expect(d.writes.counts.agent).toBe(4);
    const before = await checksum(ns);

    // rotation: the copy follows, the Deployment's checksum changes (pods roll)
    await putSecret(redisSecret, { url: b64('redis://two:6379') });
    expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready' });
    expect(d.writes.counts.agent).toBe(6); // runtime Secret + Deployment
    const copy = await kube.get(secretRef(AGENT_RUNTIME_SECRET, ns));
    expect(text((copy!.data as Record<string, string>)[AGENT_RUNTIME_KEYS.redisUrl])).toBe(
      'redis://two:6379',
    );
    expect(await checksum(ns)).not.toBe(before);
    expect((await agentReconciler.reconcile(t, d)).kind).toBe('ready');
    expect(d.writes.counts.agent).toBe(6);

    // the KEK Secret without a usable key
    const badKek = deps({ runtime: { ...d.runtime, kekSecret: redisSecret } });
    expect(await agentReconciler.reconcile(t, badKek)).toMatchObject({
      kind: 'blocked',
      reason: 'AgentRuntimeSecretInvalid',
    });
  });

  it('SMTP: optional simptu-smtp/url is copied as smtp-url, opens SMTP egress, and rolls the pods when it changes', async () => {
    const smtpRef = secretRef('simptu-smtp');
    const npRef = (ns: string): ObjectRef => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      name: 'simptu-agent',
      namespace: ns,
    });
    const egressPorts = async (ns: string): Promise<number[][]> =>
      (
        (await kube.get(npRef(ns))) as KubeObject & {
          spec: { egress: Array<{ ports?: Array<{ port: number }> }> };
        }
      ).spec.egress.map((r) => (r.ports ?? []).map((p) => p.port));
    const runtimeData = async (ns: string) =>
      (await kube.get(secretRef(AGENT_RUNTIME_SECRET, ns)))!.data as Record<string, string>;
    const t = tenant();
    const ns = await withNamespace(t);
    const d = deps();
    try {
      // No simptu-smtp: not an error, the tenant is Ready; no smtp-url, no SMTP egress.
      expect(await kube.get(smtpRef)).toBeUndefined();
      expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready', reason: 'AgentApplied' });
      expect(d.writes.counts.agent).toBe(4);
      expect(Object.keys(await runtimeData(ns))).not.toContain(AGENT_RUNTIME_KEYS.smtpUrl);
      expect((await egressPorts(ns)).flat()).not.toContain(587);
      const env = (await container(ns)).env.find((e) => e.name === 'SIMPTU_AGENT_CHANNELS_SMTP_URL');
      expect(env).toEqual({
        name: 'SIMPTU_AGENT_CHANNELS_SMTP_URL',
        valueFrom: {
          secretKeyRef: { name: AGENT_RUNTIME_SECRET, key: AGENT_RUNTIME_KEYS.smtpUrl, optional: true },
        },
      });
      const without = await checksum(ns);

      // The platform gets an SMTP server: copied, egress opened on 587/465, pods roll.
      await putSecret('simptu-smtp', { url: b64('smtp://mailer:pw@smtp.example.com:587') });
      expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready' });
      expect(d.writes.counts.agent).toBe(7); // runtime Secret, Deployment, NetworkPolicy
      expect(text((await runtimeData(ns))[AGENT_RUNTIME_KEYS.smtpUrl])).toBe(
        'smtp://mailer:pw@smtp.example.com:587',
      );
      expect(await egressPorts(ns)).toContainEqual([587, 465]);
      const first = await checksum(ns);
      expect(first).not.toBe(without);
      expect((await agentReconciler.reconcile(t, d)).kind).toBe('ready');
      expect(d.writes.counts.agent).toBe(7);

      // Rotation of the source: the copy follows and the digest changes.
      await putSecret('simptu-smtp', { url: b64('smtps://mailer:new@smtp.example.com:465') });
      expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready' });
      expect(d.writes.counts.agent).toBe(9); // runtime Secret + Deployment
      expect(text((await runtimeData(ns))[AGENT_RUNTIME_KEYS.smtpUrl])).toBe(
        'smtps://mailer:new@smtp.example.com:465',
      );
      const second = await checksum(ns);
      expect(second).not.toBe(first);

      // Configured ports replace the default.
      expect(await agentReconciler.reconcile(t, deps({ agentSmtpPorts: [2525] }))).toMatchObject({
        kind: 'ready',
      });
      expect(await egressPorts(ns)).toContainEqual([2525]);
      expect((await egressPorts(ns)).flat()).not.toContain(587);

      // The key goes (the Secret stays): still Ready, smtp-url removed, SMTP egress closed.
      await putSecret('simptu-smtp', { other: b64('x') });
      expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready', reason: 'AgentApplied' });
      expect(Object.keys(await runtimeData(ns))).not.toContain(AGENT_RUNTIME_KEYS.smtpUrl);
      expect((await egressPorts(ns)).flat()).not.toContain(2525);
      expect((await egressPorts(ns)).flat()).not.toContain(587);
      expect(await checksum(ns)).not.toBe(second);
      expect(await checksum(ns)).toBe(without);
    } finally {
      await kube.delete(smtpRef);
    }
  });

  it("readiness 'rollout' waits for available replicas (no deployment controller runs here)", async () => {
    const t = tenant();
    await withNamespace(t);
    const r = await agentReconciler.reconcile(t, deps({ agentReadiness: 'rollout', pollMs: 1234 }));
    expect(r).toMatchObject({ kind: 'progressing', reason: 'AgentRollingOut', requeueAfterMs: 1234 });
  });

  it('mirrors and mounts the model secret under the name the spec uses; blocked while it is missing', async () => {
    const t = tenant();
    const secretName = `model-${t.metadata.name}`;
    t.spec.agent.model = { provider: 'openai', name: 'gpt-4o-mini', secretRef: { name: secretName } };
    const ns = await withNamespace(t);
    const d = deps();
    expect(await agentReconciler.reconcile(t, d)).toMatchObject({
      kind: 'blocked',
      reason: 'ModelSecretNotFound',
    });
    expect(d.writes.counts.agent).toBeUndefined();

    await putSecret(secretName, { apiKey: b64('sk-test') });
    expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready' });
    expect(d.writes.counts.agent).toBe(5);
    const copyRef = secretRef(AGENT_CREDENTIALS_SECRET, ns);
    expect(await kube.get(copyRef)).toMatchObject({ data: { apiKey: b64('sk-test') } });
    const c = await container(ns);
    expect(c.env).toContainEqual({ name: 'SIMPTU_AGENT_SECRETS_DIR', value: '/etc/simptu/secrets' });
    expect(c.volumeMounts.map((m) => m.mountPath)).toContain(`/etc/simptu/secrets/${secretName}`);
    const before = await checksum(ns);

    // rotation of the source secret propagates and rolls the pods
    await putSecret(secretName, { apiKey: b64('sk-new') });
    await agentReconciler.reconcile(t, d);
    expect(d.writes.counts.agent).toBe(7);
    expect(await kube.get(copyRef)).toMatchObject({ data: { apiKey: b64('sk-new') } });
    expect(await checksum(ns)).not.toBe(before);

    // secretRef removed from the spec → the copy goes, the mount goes
    const noSecret: Tenant = {
      ...t,
      spec: { ...t.spec, agent: { ...t.spec.agent, model: { provider: 'openai' } } },
    };
    expect(await agentReconciler.reconcile(noSecret, d)).toMatchObject({ kind: 'ready' });
    expect(await kube.get(copyRef)).toBeUndefined();
    expect(d.writes.counts.agent).toBe(9); // Deployment re-applied + Secret deleted
    expect((await container(ns)).volumeMounts.map((m) => m.mountPath)).toEqual(['/tmp']);
  });

  it('mirrors channel credentials too; blocked while one is missing', async () => {
    const t = tenant();
    const tw = `twilio-${t.metadata.name}`;
    t.spec.integrations = { twilio: { phoneNumber: '+15550100', credentialsSecretRef: { name: tw } } };
    const ns = await withNamespace(t);
    const d = deps();
    expect(await agentReconciler.reconcile(t, d)).toMatchObject({
      kind: 'blocked',
      reason: 'ChannelSecretNotFound',
      message: expect.stringContaining('spec.integrations.twilio.credentialsSecretRef'),
    });
    await putSecret(tw, { accountSid: b64('AC1'), authToken: b64('tok') });
    expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready' });
    expect(await kube.get(secretRef('simptu-agent-twilio-credentials', ns))).toMatchObject({
      data: { accountSid: b64('AC1'), authToken: b64('tok') },
    });
    expect((await container(ns)).volumeMounts.map((m) => m.mountPath)).toContain(`/etc/simptu/secrets/${tw}`);
  });

  it('removes the ConfigMap earlier versions created', async () => {
    const t = tenant();
    const ns = await withNamespace(t);
    const cm: ObjectRef = { apiVersion: 'v1', kind: 'ConfigMap', name: 'simptu-agent-config', namespace: ns };
    await kube.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: cm.name, namespace: ns, labels: { [TENANT_LABEL]: t.metadata.name } },
      data: { 'instructions.md': 'old' },
    });
    expect(await agentReconciler.reconcile(t, deps())).toMatchObject({ kind: 'ready' });
    expect(await kube.get(cm)).toBeUndefined();
  });

  it('shared: no dedicated objects remain (runtime Secret included), ready with PooledAgent; finalize cleans up', async () => {
    const t = tenant();
    const ns = await withNamespace(t);
    const d = deps();
    expect((await agentReconciler.reconcile(t, d)).kind).toBe('ready');
    expect(await kube.get(secretRef(AGENT_RUNTIME_SECRET, ns))).toBeDefined();

    const shared: Tenant = { ...t, spec: { ...t.spec, isolation: { database: 'shared', agent: 'shared' } } };
    const r = await agentReconciler.reconcile(shared, d);
    expect(r).toMatchObject({ kind: 'ready', reason: 'PooledAgent' });
    expect(d.writes.counts.agent).toBe(8);
    for (const ref of dedicatedAgentRefs(t.metadata.name)) {
      const live = await kube.get(ref);
      expect(
        live === undefined || live.metadata.deletionTimestamp !== undefined,
        `${ref.kind} ${ref.name} gone`,
      ).toBe(true);
    }
    // steady state for shared: nothing to do, and no runtime Secret needed
    expect(
      await agentReconciler.reconcile(shared, deps({ runtime: { kafkaBrokers: [] }, writes: d.writes })),
    ).toMatchObject({
      kind: 'ready',
      reason: 'PooledAgent',
    });
    expect(d.writes.counts.agent).toBe(8);

    // finalize a dedicated one
    expect((await agentReconciler.reconcile(t, d)).kind).toBe('ready');
    expect(await agentReconciler.finalize(t, d)).toMatchObject({ kind: 'ready', reason: 'AgentDeleted' });
    for (const ref of dedicatedAgentRefs(t.metadata.name))
      expect(await kube.get(ref), `${ref.kind} ${ref.name}`).toBeUndefined();
  });

  it('shared: switching from dedicated deletes the Secrets first and the Deployment last', async () => {
    const t = tenant();
    await withNamespace(t);
    const d = deps();
    expect((await agentReconciler.reconcile(t, d)).kind).toBe('ready');
    const rec = recording(kube);
    const shared: Tenant = { ...t, spec: { ...t.spec, isolation: { database: 'shared', agent: 'shared' } } };
    expect(await agentReconciler.reconcile(shared, { ...d, kube: rec.client })).toMatchObject({
      kind: 'ready',
      reason: 'PooledAgent',
    });
    // A crash half-way leaves a Deployment (cached by the operator) as long as a Secret may remain.
    expect(rec.deletes.map((r) => r.kind)).toEqual(['Secret', 'NetworkPolicy', 'Service', 'Deployment']);
  });

  it('shared: no Secret GET while no dedicated object exists and the status records none; checked otherwise', async () => {
    const t: Tenant = { ...tenant('shared'), status: { conditions: [] } };
    const ns = await withNamespace(t);
    const rec = recording(kube);
    const d = deps({ kube: rec.client });
    expect(await agentReconciler.reconcile(t, d)).toMatchObject({ kind: 'ready', reason: 'PooledAgent' });
    expect(rec.gets.filter((r) => r.kind === 'Secret')).toEqual([]);
    expect(rec.gets.map((r) => r.kind)).toContain('Deployment');
    expect(await agentReconciler.finalize(t, d)).toMatchObject({ kind: 'ready', reason: 'AgentDeleted' });
    expect(rec.gets.filter((r) => r.kind === 'Secret')).toEqual([]);

    // A runtime Secret of ours without the other objects: what a dedicated pass leaves when it fails
    // between the Secrets and the Deployment. Its outcome is in the status, so the Secrets are checked.
    const orphan = async () =>
      kube.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: AGENT_RUNTIME_SECRET, namespace: ns, labels: { [TENANT_LABEL]: t.metadata.name } },
        type: 'Opaque',
        data: { x: b64('y') },
      });
    const condition = (reason: string) => ({
      type: 'AgentReady',
      status: 'Unknown' as const,
      reason,
      message: '',
      observedGeneration: 1,
      lastTransitionTime: new Date().toISOString(),
    });
    await orphan();
    const failed: Tenant = { ...t, status: { conditions: [condition('AgentApplyFailed')] } };
    expect(await agentReconciler.reconcile(failed, d)).toMatchObject({
      kind: 'ready',
      message: expect.stringContaining(`Secret ${ns}/${AGENT_RUNTIME_SECRET}`),
    });
    expect(await kube.get(secretRef(AGENT_RUNTIME_SECRET, ns))).toBeUndefined();

    // Recorded as shared, but a dedicated object of ours remains (a deletion cut short): checked too.
    await orphan();
    await kube.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'simptu-agent', namespace: ns, labels: { [TENANT_LABEL]: t.metadata.name } },
      spec: { ports: [{ port: 80 }] },
    });
    const pooled: Tenant = { ...t, status: { conditions: [condition('PooledAgent')] } };
    expect(await agentReconciler.reconcile(pooled, d)).toMatchObject({
      kind: 'ready',
      reason: 'PooledAgent',
    });
    expect(await kube.get(secretRef(AGENT_RUNTIME_SECRET, ns))).toBeUndefined();
    expect(await kube.get({ apiVersion: 'v1', kind: 'Service', name: 'simptu-agent', namespace: ns })).toBe(
      undefined,
    );
  });
});

/** The real client, recording what was asked of it. */
function recording(base: ObjectClient): { client: ObjectClient; gets: ObjectRef[]; deletes: ObjectRef[] } {
  const gets: ObjectRef[] = [];
  const deletes: ObjectRef[] = [];
  return {
    gets,
    deletes,
    client: {
      get: (ref) => (gets.push(ref), base.get(ref)),
      apply: (obj) => base.apply(obj),
      delete: (ref) => (deletes.push(ref), base.delete(ref)),
    },
  };
}
