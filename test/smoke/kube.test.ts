import { randomBytes } from 'node:crypto';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Watch,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { requireEnv } from '../support/testenv.ts';

const suffix = randomBytes(4).toString('hex');
const group = `smoke${suffix}.simptu.io`;
const plural = 'widgets';
const ns = `smoke-${suffix}`;

function adminConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(requireEnv('KUBECONFIG'));
  return kc;
}

/** A kubeconfig for the same server with another identity (a bearer token). */
function tokenConfig(token: string): KubeConfig {
  const cluster = adminConfig().getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'other', token }],
    contexts: [{ name: 'other', cluster: cluster.name, user: 'other' }],
    currentContext: 'other',
  });
  return kc;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('test environment: kube-apiserver + etcd', () => {
  const kc = adminConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apiext = kc.makeApiClient(ApiextensionsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);

  afterAll(async () => {
    await apiext.deleteCustomResourceDefinition({ name: `${plural}.${group}` }).catch(() => undefined);
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it('creates a namespace, registers a CRD, and streams watch events of a custom object', async () => {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    expect((await core.readNamespace({ name: ns })).status?.phase).toBe('Active');

    const crd: V1CustomResourceDefinition = {
      metadata: { name: `${plural}.${group}` },
      spec: {
        group,
        scope: 'Namespaced',
        names: { plural, singular: 'widget', kind: 'Widget' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: {
                    type: 'object',
                    properties: { size: { type: 'integer', minimum: 1 } },
                    x_kubernetes_validations: [
                      { rule: 'self.size <= 10', message: 'size must be at most 10' },
                    ],
                  },
                  status: { type: 'object', properties: { phase: { type: 'string' } } },
                },
              },
            },
          },
        ],
      },
    };
    await apiext.createCustomResourceDefinition({ body: crd });
    await until('the CRD to be Established', async () => {
      const got = await apiext.readCustomResourceDefinition({ name: `${plural}.${group}` });
      return got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')
        ? true
        : undefined;
    });

    // A freshly established CRD may take a moment to be served: list until it answers, then
    // watch from the list's resourceVersion so no event can be missed.
    const listed = await until('the custom resource endpoint', async () => {
      try {
        return (await custom.listNamespacedCustomObject({ group, version: 'v1', namespace: ns, plural })) as {
          metadata: { resourceVersion: string };
        };
      } catch (e) {
        // 404 until the new resource is served, 429 "storage is (re)initializing" just after
        if (e instanceof ApiException && (e.code === 404 || e.code === 429)) return undefined;
        throw e;
      }
    });
    const events: { type: string; name: string; size: number }[] = [];
    let watchError: unknown;
    const watch = await new Watch(kc).watch(
      `/apis/${group}/v1/namespaces/${ns}/${plural}`,
      { resourceVersion: listed.metadata.resourceVersion, allowWatchBookmarks: false },
      (type, obj) => events.push({ type, name: obj.metadata.name, size: obj.spec.size }),
      (err) => (watchError = err),
    );
    try {
      await custom.createNamespacedCustomObject({
        group,
        version: 'v1',
        namespace: ns,
        plural,
        body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } },
      });
      await custom.patchNamespacedCustomObject({
        group,
        version: 'v1',
        namespace: ns,
        plural,
        name: 'w1',
        body: [{ op: 'replace', path: '/spec/size', value: 4 }],
      });
      await until('the watch events', async () => {
        if (watchError) throw watchError;
        return events.length >= 2 ? true : undefined;
      });
      expect(events.slice(0, 2)).toEqual([
        { type: 'ADDED', name: 'w1', size: 3 },
        { type: 'MODIFIED', name: 'w1', size: 4 },
      ]);

      // CEL validation runs in the real API server.
      const refused = await custom
        .createNamespacedCustomObject({
          group,
          version: 'v1',
          namespace: ns,
          plural,
          body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w2' }, spec: { size: 11 } },
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(refused).toBeInstanceOf(ApiException);
      expect((refused as ApiException<string>).code).toBe(422);
      expect(String((refused as ApiException<string>).body)).toContain('size must be at most 10');
    } finally {
      watch.abort();
    }
  });

  it('enforces RBAC: an identity without rights gets 403', async () => {
    const other = tokenConfig(requireEnv('KUBE_UNPRIVILEGED_TOKEN')).makeApiClient(CoreV1Api);
    const err = await other.listNamespace().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<unknown>).code).toBe(403);
  });
});
