/**
 * RBAC minimal and sufficient: the operator runs authenticated as the ServiceAccount the
 * `Operator` construct synthesizes (its ClusterRole, Role and bindings applied to the test
 * cluster, a token minted with the TokenRequest API), provisions a tenant with a dedicated agent
 * (its runtime Secret composed from the platform Secrets) and mirrored model credentials to
 * Ready, deletes it again — and everything outside its rules
 * is refused with 403.
 * @see https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Operator, type Manifest } from '@simptu/cdk8s';
import { App, Chart } from 'cdk8s';
import {
  createScratchDatabase,
  quoteIdent,
  tenantId,
  tenantNamespace,
  type ScratchDatabase,
} from '@simptu/common';
import { API_VERSION, KIND, PLURAL, type Tenant } from '../../operator/src/api/types.ts';
import { parseConfig } from '../../operator/src/config.ts';
import { kubeRequest, resourcePath } from '../../operator/src/controller/index.ts';
import { startOperator, type OperatorHandle } from '../../operator/src/manager.ts';
import { eventually, installCrd, kubeConfig } from '../../operator/test/support/harness.ts';

const shard = randomBytes(3).toString('hex');
const SHARD_LABEL = 'simptu.io/test-shard';
const platformNs = `rbac-${shard}`;
const clusterRoleName = `simptu-operator-rbac-${shard}`;
const admin = kubeConfig();
const TENANTS = { apiVersion: API_VERSION, plural: PLURAL };
const tenantName = `rbac-${shard}`;

let saKc: KubeConfig;
let handle: OperatorHandle | undefined;
let db: ScratchDatabase;
const appRole = `app_rbac_${shard}`;

/** The construct's objects, with cluster-scoped names made unique so tests can run side by side. */
function operatorObjects(): Manifest[] {
  const chart = new Chart(new App(), 'rbac', { disableResourceNameHashes: true });
  new Operator(chart, 'operator', { namespace: platformNs, kafkaBrokers: ['unused:9092'] });
  return (chart.toJson() as Manifest[])
    .filter((m) =>
      ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(m.kind),
    )
    .map((m) => {
      if (m.kind === 'ClusterRole') return { ...m, metadata: { ...m.metadata, name: clusterRoleName } };
      if (m.kind === 'ClusterRoleBinding')
        return {
          ...m,
          metadata: { ...m.metadata, name: clusterRoleName },
          roleRef: { ...(m.roleRef as object), name: clusterRoleName },
        };
      return m;
    });
}

const PATHS: Record<string, (m: Manifest) => string> = {
  ServiceAccount: (m) => `/api/v1/namespaces/${m.metadata.namespace}/serviceaccounts`,
  ClusterRole: () => '/apis/rbac.authorization.k8s.io/v1/clusterroles',
  ClusterRoleBinding: () => '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
  Role: (m) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${m.metadata.namespace}/roles`,
  RoleBinding: (m) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${m.metadata.namespace}/rolebindings`,
};

function status(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

beforeAll(async () => {
  await installCrd();
  await kubeRequest(admin, '/api/v1/namespaces', {
    method: 'POST',
    body: { metadata: { name: platformNs } },
  });
  for (const m of operatorObjects()) await kubeRequest(admin, PATHS[m.kind]!(m), { method: 'POST', body: m });
  // The KEK as the operator reads it (raw 32 bytes under `kek`) and as the services read it.
  const kek = randomBytes(32);
  await kubeRequest(admin, `/api/v1/namespaces/${platformNs}/secrets`, {
    method: 'POST',
    body: {
      metadata: { name: 'simptu-kek' },
      data: {
        kek: kek.toString('base64'),
        'kek-base64': Buffer.from(kek.toString('base64')).toString('base64'),
      },
    },
  });
  // Model credentials the admin keeps in the platform namespace; the operator mirrors them.
  await kubeRequest(admin, `/api/v1/namespaces/${platformNs}/secrets`, {
    method: 'POST',
    body: { metadata: { name: 'model-creds' }, stringData: { apiKey: 'sk-test' } },
  });
  // The platform Secrets (backends.ts names and keys) the dedicated agent's runtime Secret is
  // composed from.
  for (const [name, stringData] of [
    ['simptu-database', { 'app-url': 'postgres://simptu_app:pw@db:5432/simptu' }],
    ['simptu-redis', { url: 'redis://redis:6379' }],
  ] as const)
    await kubeRequest(admin, `/api/v1/namespaces/${platformNs}/secrets`, {
      method: 'POST',
      body: { metadata: { name }, stringData },
    });

  const token = await kubeRequest<{ status: { token: string } }>(
    admin,
    `/api/v1/namespaces/${platformNs}/serviceaccounts/simptu-operator/token`,
    {
      method: 'POST',
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { expirationSeconds: 3600 },
      },
    },
  );
  const cluster = admin.getCurrentCluster()!;
  saKc = new KubeConfig();
  saKc.loadFromOptions({
    clusters: [{ ...cluster, name: 'test' }],
    users: [{ name: 'simptu-operator', token: token.status.token }],
    contexts: [{ name: 'sa', cluster: 'test', user: 'simptu-operator' }],
    currentContext: 'sa',
  });
  db = await createScratchDatabase(process.env.DATABASE_URL!, 'simptu_rbac');
}, 120_000);

afterAll(async () => {
  // Leftovers (a failed run) go with the admin identity.
  await kubeRequest(admin, resourcePath(TENANTS, tenantName), {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { metadata: { finalizers: null } },
  }).catch(() => undefined);
  await kubeRequest(admin, resourcePath(TENANTS, tenantName), { method: 'DELETE' }).catch(() => undefined);
  await handle?.stop();
  for (const path of [
    `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${clusterRoleName}`,
    `/apis/rbac.authorization.k8s.io/v1/clusterroles/${clusterRoleName}`,
    `/api/v1/namespaces/${tenantNamespace(tenantName)}`,
    `/api/v1/namespaces/${platformNs}`,
  ])
    await kubeRequest(admin, path, { method: 'DELETE' }).catch(() => undefined);
  if (db) {
    const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await c.connect();
    try {
      await c
        .query(`DROP DATABASE IF EXISTS ${quoteIdent(tenantId(tenantName))} WITH (FORCE)`)
        .catch(() => undefined);
      await db.drop().catch(() => undefined);
      for (const role of [appRole, tenantId(tenantName)]) {
        await c.query(`DROP OWNED BY ${quoteIdent(role)}`).catch(() => undefined);
        await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).catch(() => undefined);
      }
    } finally {
      await c.end();
    }
  }
}, 120_000);

describe('operator RBAC from the Operator construct', () => {
  it('is sufficient: provisions a dedicated-agent tenant to Ready and deletes it, as the ServiceAccount', async () => {
    const config = parseConfig({
      databaseUrl: db.url,
      kafkaBrokers: process.env.KAFKA_BROKERS!.split(','),
      appRole,
      appRolePassword: `pw-${shard}-secret`,
      platformNamespace: platformNs,
      // Production setting: the KEK must exist, the operator never creates it.
      kms: { secretName: 'simptu-kek', createIfMissing: false },
      metricsPort: 0,
      probePort: 0,
      agent: { readiness: 'applied' },
      leaderElection: {
        leaseName: 'simptu-operator',
        leaseDurationMs: 4000,
        renewDeadlineMs: 3000,
        retryPeriodMs: 500,
      },
      tenantSelector: `${SHARD_LABEL}=${shard}`,
      logLevel: 'silent',
    });
    handle = await startOperator(config, {
      kc: saKc,
      logger: pino({ level: process.env.SIMPTU_TEST_LOG_LEVEL ?? 'silent' }),
    });
    await eventually('leadership (Lease in the platform namespace)', async () => handle!.isLeader());

    const tenant: Tenant = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: tenantName, labels: { [SHARD_LABEL]: shard } },
      spec: {
        displayName: 'RBAC test',
        businessType: 'gym',
        deletionPolicy: 'Delete',
        kafka: { partitions: 1 },
        isolation: { database: 'shared', agent: 'dedicated' },
        agent: {
          replicas: 1,
          model: { provider: 'openai', name: 'gpt-4o-mini', secretRef: { name: 'model-creds' } },
        },
      } as Tenant['spec'],
    };
    await kubeRequest(admin, resourcePath(TENANTS), { method: 'POST', body: tenant });
    let seen: Tenant | undefined;
    const ready = await eventually(
      'the tenant to be Ready',
      async () => {
        const t = await kubeRequest<Tenant>(admin, resourcePath(TENANTS, tenantName)).catch(() => undefined);
        seen = t;
        const c = t?.status?.conditions?.find((x) => x.type === 'Ready');
        return c?.status === 'True' && t!.status!.observedGeneration === t!.metadata.generation
          ? t
          : undefined;
      },
      120_000,
    ).catch((err: unknown) => {
      // Which condition stayed false says which permission is missing.
      throw new Error(`${String(err)}; conditions: ${JSON.stringify(seen?.status?.conditions)}`);
    });
    expect(ready.status?.conditions?.filter((c) => c.status !== 'True')).toEqual([]);
    const ns = tenantNamespace(tenantName);
    // What only the operator could have written, with the ServiceAccount's rules.
    await kubeRequest(admin, `/apis/apps/v1/namespaces/${ns}/deployments/simptu-agent`);
    await kubeRequest(admin, `/api/v1/namespaces/${ns}/secrets/simptu-agent-model-credentials`);
    await kubeRequest(admin, `/api/v1/namespaces/${ns}/secrets/simptu-agent-runtime`);
    const events = await kubeRequest<{ items: Array<{ regarding: { name: string } }> }>(
      admin,
      '/apis/events.k8s.io/v1/namespaces/default/events',
    );
    expect(events.items.some((e) => e.regarding.name === tenantName)).toBe(true);

    await kubeRequest(admin, resourcePath(TENANTS, tenantName), { method: 'DELETE' });
    await eventually(
      'the tenant to be finalized and gone',
      async () =>
        (await kubeRequest(admin, resourcePath(TENANTS, tenantName)).then(
          () => false,
          (e) => status(e) === 404,
        )) || undefined,
      120_000,
    );
  }, 300_000);

  it.each([
    ['list pods in every namespace', '/api/v1/pods', 'GET', undefined],
    [
      'read a Lease outside the platform namespace',
      '/apis/coordination.k8s.io/v1/namespaces/default/leases/x',
      'GET',
      undefined,
    ],
    [
      'delete the Tenant CRD',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tenants.simptu.io',
      'DELETE',
      undefined,
    ],
    [
      'create a Pod',
      `/api/v1/namespaces/${platformNs}/pods`,
      'POST',
      { metadata: { name: 'nope' }, spec: { containers: [{ name: 'c', image: 'x' }] } },
    ],
    ['delete a LimitRange', `/api/v1/namespaces/${platformNs}/limitranges/x`, 'DELETE', undefined],
    [
      'update a Tenant spec (PUT)',
      '/apis/simptu.io/v1alpha1/tenants/anything',
      'PUT',
      { apiVersion: 'simptu.io/v1alpha1', kind: 'Tenant', metadata: { name: 'anything' } },
    ],
    [
      'grant itself cluster-admin',
      '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
      'POST',
      {
        metadata: { name: `nope-${shard}` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name: 'simptu-operator', namespace: platformNs }],
      },
    ],
    ['delete Tenants', '/apis/simptu.io/v1alpha1/tenants/anything', 'DELETE', undefined],
    ['read Secrets by listing them', '/api/v1/secrets', 'GET', undefined],
    [
      'create a StatefulSet',
      `/apis/apps/v1/namespaces/${platformNs}/statefulsets`,
      'POST',
      {
        metadata: { name: 'nope' },
        spec: {
          selector: { matchLabels: { a: 'b' } },
          template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x' }] } },
        },
      },
    ],
  ] as const)('is minimal: refuses to %s (403)', async (_what, path, method, body) => {
    const err = await kubeRequest(saKc, path, { method, ...(body ? { body } : {}) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(status(err)).toBe(403);
  });
});
