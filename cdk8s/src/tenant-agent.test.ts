import { describe, it, expect } from 'vitest';
import { Testing } from 'cdk8s';
import { TENANT_LABEL } from '@simptu/common';
import {
  TenantAgent,
  synthTenantAgent,
  AGENT_CONFIGMAP_NAME,
  AGENT_OBJECT_NAME,
  type TenantAgentProps,
} from './tenant-agent.ts';

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
  it('produces Deployment, Service, ConfigMap and NetworkPolicy in the tenant namespace with tenant labels', () => {
    const { all } = synth({ tenant: 'smile-dental' });
    expect(all.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'NetworkPolicy', 'Service']);
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
      SIMPTU_MODEL_PROVIDER: 'builtin',
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

  it('passes the model config as env and the secretRef as envFrom', () => {
    const { byKind } = synth({
      tenant: 'hotel-x',
      model: {
        provider: 'openai',
        name: 'gpt-4o-mini',
        baseURL: 'http://llm.local/v1',
        secretRef: { name: 'openai-creds' },
      },
    });
    const d = byKind('Deployment');
    expect(envOf(d)).toMatchObject({
      SIMPTU_MODEL_PROVIDER: 'openai',
      SIMPTU_MODEL_NAME: 'gpt-4o-mini',
      SIMPTU_MODEL_BASE_URL: 'http://llm.local/v1',
    });
    expect(container(d).envFrom).toEqual([{ secretRef: { name: 'openai-creds' } }]);
  });

  it('puts the instructions in the ConfigMap, mounts it, and rolls pods when they change', () => {
    const a = synth({ tenant: 'smile-dental', instructions: 'Be kind.' });
    const b = synth({ tenant: 'smile-dental', instructions: 'Be brief.' });
    const cm = a.byKind('ConfigMap');
    expect(cm.metadata.name).toBe(AGENT_CONFIGMAP_NAME);
    expect(cm.data).toEqual({ 'instructions.md': 'Be kind.' });
    const d = a.byKind('Deployment');
    expect(d.spec.template.spec.volumes).toContainEqual({
      name: 'config',
      configMap: { name: AGENT_CONFIGMAP_NAME },
    });
    expect(envOf(d).SIMPTU_INSTRUCTIONS_FILE).toBe('/etc/simptu/agent/instructions.md');
    expect(d.spec.template.metadata.annotations['simptu.io/instructions-sha256']).not.toBe(
      b.byKind('Deployment').spec.template.metadata.annotations['simptu.io/instructions-sha256'],
    );
    expect(synth({ tenant: 'smile-dental' }).byKind('ConfigMap').data).toEqual({ 'instructions.md': '' });
  });

  it('NetworkPolicy: ingress only from the platform namespace, egress to it and DNS', () => {
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
    ]);
  });

  it('opens HTTPS egress to public addresses for hosted model providers only', () => {
    const hosted = synth({ tenant: 'smile-dental', model: { provider: 'anthropic' } }).byKind(
      'NetworkPolicy',
    );
    expect(hosted.spec.egress).toHaveLength(3);
    expect(hosted.spec.egress[2].ports).toEqual([{ protocol: 'TCP', port: 443 }]);
    expect(hosted.spec.egress[2].to[0].ipBlock.except).toContain('10.0.0.0/8');
    const off = synth({
      tenant: 'smile-dental',
      model: { provider: 'anthropic' },
      allowModelEgress: false,
    }).byKind('NetworkPolicy');
    expect(off.spec.egress).toHaveLength(2);
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
    [{ tenant: 'okay-name', model: { provider: 'openai' as const, baseURL: 'not a url' } }, /baseURL/],
    [
      { tenant: 'okay-name', model: { provider: 'openai' as const, secretRef: { name: 'Bad Name' } } },
      /secretRef/,
    ],
    [{ tenant: 'okay-name', resources: { limits: { memory: 'lots' } } }, /resources\.limits\.memory/],
  ])('rejects invalid props %j', (props, message) => {
    expect(() => new TenantAgent(Testing.chart(), 'agent', props as TenantAgentProps)).toThrow(message);
  });

  it('synthTenantAgent returns the manifests in memory with stable names', () => {
    const objs = synthTenantAgent({ tenant: 'smile-dental', replicas: 2 });
    expect(objs.map((o) => `${o.kind}/${(o.metadata as Obj).name}`)).toEqual([
      'ConfigMap/simptu-agent-config',
      'Deployment/simptu-agent',
      'Service/simptu-agent',
      'NetworkPolicy/simptu-agent',
    ]);
    expect(synthTenantAgent({ tenant: 'smile-dental', replicas: 2 })).toEqual(objs);
  });
});
