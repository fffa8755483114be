/**
 * The Tenant CRD and the deletion-protection policy against the real kube-apiserver of the test
 * environment (KUBECONFIG): the generated manifests install, the samples are accepted and
 * defaulted exactly as `checkTenant` defaults them offline, bad manifests are refused with a
 * message an admin understands, and protected tenants cannot be deleted.
 */
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { RequestOptions } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiException, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { checkTenant } from '../../src/api/schema.ts';
import {
  CRD_NAME,
  DELETION_PROTECTION_POLICY,
  deletionProtectionBinding,
  deletionProtectionPolicy,
  tenantCRD,
  tenantOpenAPISchema,
} from '../../src/api/crd.ts';
import type { Manifest as ClusterManifest } from '../../src/api/crd.ts';
import { GROUP, PLURAL, VERSION } from '../../src/api/types.ts';
import { ACCEPTED, REFUSED, loadSamples, minimalTenant } from './cases.ts';
import type { LooseSpec, Manifest } from './cases.ts';

const RUN = randomBytes(3).toString('hex');
const RUN_LABEL = 'simptu.io/test-run';
const CASE_LABEL = 'simptu.io/test-case';
const FIELD_MANAGER = 'simptu-api-test';

const kc = new KubeConfig();
kc.loadFromDefault();
const custom = kc.makeApiClient(CustomObjectsApi);
const T = { group: GROUP, version: VERSION, plural: PLURAL };

// ------------------------------------------------------------------------------------------ helpers

interface RawResponse {
  status: number;
  body: unknown;
}

/** The parts of a stored Tenant these tests read. */
interface StoredTenant {
  metadata: { name: string; finalizers?: string[]; deletionTimestamp?: string };
  spec: LooseSpec;
}

interface StoredCRD {
  spec: { scope: string; versions: { schema: { openAPIV3Schema: unknown } }[] };
  status?: { acceptedNames?: unknown; conditions?: { type: string; status: string }[] };
}

interface Table {
  columnDefinitions: { name: string; priority: number }[];
  rows: { cells: unknown[] }[];
}

/**
 * A raw request with the kubeconfig's credentials. Used for server-side apply of the generated
 * manifests exactly as written (the typed clients re-serialize objects through their models, which
 * would drop keys such as `x-kubernetes-validations` from a plain JSON manifest) and for Table output.
 */
async function kube(
  method: string,
  path: string,
  opts: { body?: unknown; headers?: Record<string, string> } = {},
) {
  const server = new URL(kc.getCurrentCluster()!.server);
  const options: RequestOptions = {
    method,
    hostname: server.hostname,
    port: server.port,
    path,
    headers: { Accept: 'application/json', ...opts.headers },
  };
  await kc.applyToHTTPSOptions(options);
  return new Promise<RawResponse>((resolve, reject) => {
    const req = httpsRequest(options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }),
      );
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(JSON.stringify(opts.body));
    req.end();
  });
}

async function serverSideApply(m: ClusterManifest, collection: string): Promise<void> {
  const res = await kube(
    'PATCH',
    `${collection}/${m.metadata.name}?fieldManager=${FIELD_MANAGER}&force=true`,
    {
      body: m,
      headers: { 'Content-Type': 'application/apply-patch+yaml' },
    },
  );
  if (res.status !== 200 && res.status !== 201) {
    throw new Error(`apply ${m.kind} ${m.metadata.name}: ${res.status} ${JSON.stringify(res.body)}`);
  }
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The API server's message of a refused request, or undefined when it was accepted. */
async function refusal(p: Promise<unknown>): Promise<{ code: number; message: string } | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body: unknown = typeof err.body === 'string' ? safeJson(err.body) : err.body;
    const message = (body as { message?: unknown } | undefined)?.message;
    return { code: err.code, message: typeof message === 'string' ? message : String(err.body) };
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text };
  }
}

const created = new Set<string>();

function labelled(m: Manifest): Manifest {
  return { ...m, metadata: { ...m.metadata, labels: { ...m.metadata.labels, [RUN_LABEL]: RUN } } };
}

async function createTenant(m: Manifest, fieldValidation?: 'Strict'): Promise<StoredTenant> {
  const body = labelled(m);
  created.add(body.metadata.name);
  return custom.createClusterCustomObject({ ...T, body, fieldManager: FIELD_MANAGER, fieldValidation });
}

async function getTenant(name: string): Promise<StoredTenant> {
  return custom.getClusterCustomObject({ ...T, name });
}

/** Read, change the spec, write back (an update, so transition rules run). */
async function updateSpec(name: string, change: (spec: LooseSpec) => void): Promise<StoredTenant> {
  const current = await getTenant(name);
  change(current.spec);
  return custom.replaceClusterCustomObject({ ...T, name, body: current, fieldManager: FIELD_MANAGER });
}

/** Delete a tenant this test created: lift protection, strip finalizers, wait until it is gone. */
async function removeTenant(name: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await getTenant(name).catch((err) => {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    });
    if (!current) return;
    if (current.spec?.deletionProtection || current.metadata.finalizers?.length) {
      current.spec.deletionProtection = false;
      current.metadata.finalizers = [];
      const conflict = await refusal(custom.replaceClusterCustomObject({ ...T, name, body: current }));
      if (conflict?.code === 409) continue;
      if (conflict) throw new Error(`cleanup of ${name}: ${conflict.message}`);
    }
    const res = await refusal(custom.deleteClusterCustomObject({ ...T, name }));
    if (res && res.code !== 404) throw new Error(`cleanup of ${name}: ${res.message}`);
    await eventually(`${name} to be gone`, async () =>
      (await refusal(getTenant(name)))?.code === 404 ? true : undefined,
    );
    return;
  }
}

let caseNo = 0;
/** A unique, valid tenant name for this run. */
function uniqueName(prefix = 'c'): string {
  return `${prefix}${++caseNo}-${RUN}`;
}

// ------------------------------------------------------------------------------------------ setup

beforeAll(async () => {
  await serverSideApply(tenantCRD(), '/apis/apiextensions.k8s.io/v1/customresourcedefinitions');
  await serverSideApply(
    deletionProtectionPolicy(),
    '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies',
  );
  await serverSideApply(
    deletionProtectionBinding(),
    '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings',
  );
  await eventually('the CRD to be Established', async () => {
    const res = await kube('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`);
    const conditions = (res.body as StoredCRD | undefined)?.status?.conditions ?? [];
    const ok = (type: string) => conditions.some((c) => c.type === type && c.status === 'True');
    return ok('Established') && ok('NamesAccepted') ? true : undefined;
  });
  // The resource is served a moment after Established; wait until a list works.
  await eventually('tenants to be served', async () =>
    (await refusal(custom.listClusterCustomObject({ ...T, limit: 1 }))) === undefined ? true : undefined,
  );
});

afterAll(async () => {
  const list = (await custom.listClusterCustomObject({ ...T, labelSelector: `${RUN_LABEL}=${RUN}` })) as {
    items: StoredTenant[];
  };
  const names = new Set<string>([...created, ...list.items.map((t) => t.metadata.name)]);
  await Promise.all([...names].map((name) => removeTenant(name)));
});

// ------------------------------------------------------------------------------------------ tests

describe('installed CRD', () => {
  it('is served with exactly the generated schema', async () => {
    const res = await kube('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`);
    expect(res.status).toBe(200);
    const crd = res.body as StoredCRD;
    const version = crd.spec.versions[0]!;
    expect(version.schema.openAPIV3Schema).toEqual(tenantOpenAPISchema());
    expect(crd.spec.scope).toBe('Cluster');
    expect(crd.status?.acceptedNames).toMatchObject({
      kind: 'Tenant',
      shortNames: ['tn'],
      singular: 'tenant',
    });
  });

  it('shows the printer columns (Type, Phase, Ready, Age) in table output', async () => {
    const name = uniqueName('cols');
    await createTenant({ ...minimalTenant(name), spec: { displayName: 'Columns Gym', businessType: 'gym' } });
    const res = await kube('GET', `/apis/${GROUP}/${VERSION}/${PLURAL}/${name}`, {
      headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
    });
    expect(res.status).toBe(200);
    const table = res.body as Table;
    const columns = table.columnDefinitions;
    expect(columns.filter((c) => c.priority === 0).map((c) => c.name)).toEqual([
      'Name',
      'Type',
      'Phase',
      'Ready',
      'Age',
    ]);
    expect(columns.filter((c) => c.priority > 0).map((c) => c.name)).toEqual([
      'Database',
      'Agent',
      'Suspended',
    ]);
    const cells = table.rows[0]!.cells;
    expect(cells[0]).toBe(name);
    expect(cells[1]).toBe('gym');
  });
});

describe('accepted manifests', () => {
  it('fills in every default, the same ones checkTenant fills offline', async () => {
    const name = uniqueName('min');
    const m = minimalTenant(name);
    const stored = await createTenant(m);
    const offline = checkTenant(m);
    expect(offline.ok).toBe(true);
    if (offline.ok) expect(stored.spec).toEqual(offline.tenant.spec);
    expect(stored.spec).toMatchObject({
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Retain',
      deletionProtection: false,
      suspended: false,
    });
  });

  it.each(loadSamples().map((s) => [s.file, s.manifest] as const))('sample %s', async (_file, sample) => {
    // the sample under a unique name, so parallel runs and `make dev` do not collide
    const m: Manifest = {
      ...sample,
      metadata: { ...sample.metadata, name: `${sample.metadata.name}-${RUN}` },
    };
    const stored = await createTenant(m);
    const offline = checkTenant(m);
    expect(offline.ok).toBe(true);
    if (offline.ok) expect(stored.spec).toEqual(offline.tenant.spec);
  });

  it.each(ACCEPTED.map((c) => [c.title, c] as const))('%s', async (_title, c) => {
    const m = c.create(uniqueName());
    const res = await refusal(createTenant(m));
    expect(res?.message).toBeUndefined();
    if (c.update) expect((await refusal(updateSpec(m.metadata.name, c.update)))?.message).toBeUndefined();
  });
});

describe('refused manifests', () => {
  it.each(REFUSED.map((c) => [c.title, c] as const))('%s', async (_title, c) => {
    const m = c.create(uniqueName());
    if (c.update) {
      await createTenant(m);
      const res = await refusal(updateSpec(m.metadata.name, c.update));
      expect(res?.code).toBe(422);
      expect(res?.message).toContain(c.message);
    } else {
      const res = await refusal(createTenant(m, c.strict ? 'Strict' : undefined));
      expect(res, 'the API server accepted it').toBeDefined();
      expect(res?.message).toContain(c.message);
    }
  });

  it('has at least 18 cases', () => {
    expect(REFUSED.length).toBeGreaterThanOrEqual(18);
  });
});

describe('deletion protection', () => {
  it('refuses to delete a protected tenant, and deletes it once protection is lifted', async () => {
    const name = uniqueName('prot');
    const base = minimalTenant(name);
    await createTenant({
      ...base,
      metadata: { name, labels: { [CASE_LABEL]: name } },
      spec: { ...base.spec, deletionProtection: true },
    });

    // The policy takes effect once the API server has loaded it; a dry-run delete probes that
    // without the risk of deleting anything.
    const denied = await eventually('the deletion-protection policy to take effect', async () =>
      refusal(custom.deleteClusterCustomObject({ ...T, name, dryRun: 'All' })),
    );
    expect(denied.message).toContain(`tenant ${name} has deletionProtection: true; set it to false first`);

    const res = await refusal(custom.deleteClusterCustomObject({ ...T, name }));
    expect(res?.code).toBe(403);
    expect(res?.message).toContain(DELETION_PROTECTION_POLICY);
    expect(res?.message).toContain(`tenant ${name} has deletionProtection: true; set it to false first`);
    expect((await getTenant(name)).metadata.deletionTimestamp).toBeUndefined();

    // DELETE of a collection is admitted item by item. The selector matches this tenant only:
    // an empty one would delete every Tenant in the shared test cluster.
    const selector = `${RUN_LABEL}=${RUN},${CASE_LABEL}=${name}`;
    const matching = (await custom.listClusterCustomObject({ ...T, labelSelector: selector })) as {
      items: StoredTenant[];
    };
    expect(matching.items.map((t) => t.metadata.name)).toEqual([name]);
    const collection = await refusal(
      custom.deleteCollectionClusterCustomObject({ ...T, labelSelector: selector }),
    );
    expect(collection?.message).toContain(`tenant ${name} has deletionProtection: true`);
    expect((await getTenant(name)).metadata.deletionTimestamp).toBeUndefined();

    await updateSpec(name, (spec) => (spec.deletionProtection = false));
    expect(await refusal(custom.deleteClusterCustomObject({ ...T, name }))).toBeUndefined();
    await eventually(`${name} to be gone`, async () =>
      (await refusal(getTenant(name)))?.code === 404 ? true : undefined,
    );
  });

  it('does not stand in the way of unprotected tenants', async () => {
    const name = uniqueName('unprot');
    await createTenant(minimalTenant(name));
    expect(await refusal(custom.deleteClusterCustomObject({ ...T, name, dryRun: 'All' }))).toBeUndefined();
  });
});
