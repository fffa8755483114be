/**
 * NamespaceReady (DESIGN §5.1): namespace `tenant-<name>` with its labels (Pod Security
 * `restricted`), a ResourceQuota, a LimitRange, a default-deny NetworkPolicy, an allow-from-the-
 * platform-namespace policy and DNS egress.
 *
 * Pure builder (`desiredNamespaceObjects`) plus a small apply step (`applyObjects`): each object
 * carries `simptu.io/spec-hash`, the hash of its desired content, and is written with server-side
 * apply only when it is missing or its hash differs — a steady state does zero writes, a deleted
 * object comes back on the next (periodic) reconcile. The flip side, as in cloudnative-pg: an edit
 * to a field we own that leaves the annotation alone is not reverted until our desired content
 * changes; deleting the object (or the annotation) forces a re-apply.
 *
 * Ownership: the Namespace carries NO ownerReference to the Tenant. The Tenant's finalizer
 * deletes it explicitly and waits until it is gone (reporting `progressing` while it is
 * Terminating), so deletion is observable in the Tenant's status and never depends on the
 * garbage collector; an ownerReference would also let `kubectl delete --cascade=orphan` or a GC
 * race remove it behind the finalizer's back. The namespaced objects need none either: they go
 * with their namespace.
 */
import { createHash } from 'node:crypto';
import {
  FIELD_MANAGER,
  PLATFORM_NAMESPACE,
  TENANT_LABEL,
  tenantLabels,
  tenantNamespace,
} from '@simptu/common';
import type { Tenant } from '../api/types.ts';
import { kubeRequest, resourcePath } from '../controller/client.ts';
import { statusCode } from '../controller/errors.ts';
import type { KubeAccess } from '../controller/kubeconfig.ts';
import type { BackendReconciler, StepResult, WriteCounter } from './types.ts';

// ---------------------------------------------------------------------------------------------
// Generic object plumbing shared with agent.ts. Kept minimal and behind an interface so the
// controller can substitute informer-cache reads and its own SSA helper.

export const SPEC_HASH_ANNOTATION = 'simptu.io/spec-hash';

/** A Kubernetes object as plain JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string | Date;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/**
 * What the namespace and agent reconcilers need from the API server. `get` may answer from an
 * informer cache (it only needs metadata and, for the agent, Deployment status).
 */
export interface ObjectClient {
  /** the current object, or undefined when it does not exist */
  get(ref: ObjectRef): Promise<KubeObject | undefined>;
  /** server-side apply with the operator's field manager, forcing ownership of conflicting fields */
  apply(obj: KubeObject): Promise<KubeObject>;
  /** deletes; resolves false when the object was already gone */
  delete(ref: ObjectRef): Promise<boolean>;
}

export function refOf(obj: KubeObject): ObjectRef {
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    name: obj.metadata.name,
    ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
  };
}

export function describeRef(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

/** Plural resource names of the kinds the tenant reconcilers manage (no discovery round trip). */
const PLURALS: Readonly<Record<string, string>> = {
  Namespace: 'namespaces',
  ResourceQuota: 'resourcequotas',
  LimitRange: 'limitranges',
  NetworkPolicy: 'networkpolicies',
  Deployment: 'deployments',
  Service: 'services',
  ConfigMap: 'configmaps',
  Secret: 'secrets',
  ServiceAccount: 'serviceaccounts',
};

export function objectPath(ref: ObjectRef): string {
  const plural = PLURALS[ref.kind];
  if (!plural) throw new Error(`kubeObjectClient: unsupported kind ${ref.kind}`);
  return resourcePath(
    { apiVersion: ref.apiVersion, plural, ...(ref.namespace ? { namespace: ref.namespace } : {}) },
    ref.name,
  );
}

/**
 * ObjectClient speaking plain JSON to the API server. Not client-node's `KubernetesObjectApi`:
 * its typed (de)serializer silently drops fields whose TypeScript name differs from the wire
 * name — a NetworkPolicy's `ingress[].from` (`_from` in the model) vanished from an apply, which
 * turns "allow only from the platform namespace" into "allow from everywhere".
 * @see https://kubernetes.io/docs/reference/using-api/server-side-apply/
 */
export function kubeObjectClient(kc: KubeAccess, fieldManager: string = FIELD_MANAGER): ObjectClient {
  return {
    async get(ref) {
      try {
        return await kubeRequest<KubeObject>(kc, objectPath(ref));
      } catch (err) {
        if (statusCode(err) === 404) return undefined;
        throw err;
      }
    },
    async apply(obj) {
      // An apply configuration carries only our intent: never managedFields or a resourceVersion.
      const { managedFields: _mf, resourceVersion: _rv, ...metadata } = obj.metadata;
      return kubeRequest<KubeObject>(kc, objectPath(refOf(obj)), {
        method: 'PATCH',
        query: { fieldManager, force: true },
        contentType: 'application/apply-patch+yaml', // JSON is YAML
        body: { ...obj, metadata },
      });
    },
    async delete(ref) {
      try {
        // Background: the API server answers at once; dependants go with the garbage collector.
        await kubeRequest(kc, objectPath(ref), {
          method: 'DELETE',
          body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' },
        });
        return true;
      } catch (err) {
        if (statusCode(err) === 404) return false;
        throw err;
      }
    },
  };
}

/** JSON with object keys sorted, so equal content always hashes equal. */
export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : stableStringify(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
}

/** sha256 (hex) of the stable JSON of a value. */
export function stableHash(value: unknown): string {
  return createHash('sha256').update(stableStringify(value)).digest('hex');
}

/** Returns a copy of `obj` annotated with the hash of its content (without that annotation). */
export function withSpecHash<T extends KubeObject>(obj: T): T {
  const { [SPEC_HASH_ANNOTATION]: _ignored, ...annotations } = obj.metadata.annotations ?? {};
  const base = { ...obj, metadata: { ...obj.metadata, annotations } };
  if (Object.keys(annotations).length === 0) delete (base.metadata as { annotations?: unknown }).annotations;
  const hash = stableHash(base);
  return {
    ...obj,
    metadata: { ...obj.metadata, annotations: { ...annotations, [SPEC_HASH_ANNOTATION]: hash } },
  };
}

export interface ApplyOutcome {
  /** objects written (missing or changed), as `Kind ns/name` */
  applied: string[];
  /** objects found terminating: they cannot be applied until they are gone */
  terminating: string[];
}

/**
 * Applies objects in order, each only when missing or when its spec hash differs. Objects must
 * already carry their hash (`withSpecHash`). Writes are counted under `backend`.
 */
export async function applyObjects(
  objs: readonly KubeObject[],
  deps: { kube: ObjectClient; writes: WriteCounter },
  backend: string,
): Promise<ApplyOutcome> {
  const out: ApplyOutcome = { applied: [], terminating: [] };
  for (const obj of objs) {
    const ref = refOf(obj);
    const live = await deps.kube.get(ref);
    if (live?.metadata.deletionTimestamp) {
      out.terminating.push(describeRef(ref));
      continue;
    }
    const want = obj.metadata.annotations?.[SPEC_HASH_ANNOTATION];
    if (live && want !== undefined && live.metadata.annotations?.[SPEC_HASH_ANNOTATION] === want) continue;
    await deps.kube.apply(obj);
    deps.writes.inc(backend);
    out.applied.push(describeRef(ref));
  }
  return out;
}

export function errorStep(reason: string, err: unknown): StepResult {
  return { kind: 'error', reason, message: err instanceof Error ? err.message : String(err), error: err };
}

// ---------------------------------------------------------------------------------------------
// The namespace backend.

export interface NamespaceOptions {
  /** namespace of the platform services, the only one allowed into the tenant namespace @default 'simptu-system' */
  platformNamespace?: string;
  /** ResourceQuota `spec.hard` @default DEFAULT_QUOTA */
  quota?: Record<string, string>;
  /** default container requests/limits of the LimitRange @default DEFAULT_CONTAINER_LIMITS */
  containerDefaults?: { request: Record<string, string>; limit: Record<string, string> };
}

export const DEFAULT_QUOTA: Readonly<Record<string, string>> = {
  'requests.cpu': '4',
  'requests.memory': '8Gi',
  'limits.cpu': '8',
  'limits.memory': '16Gi',
  pods: '50',
  services: '10',
  'services.loadbalancers': '0',
  'services.nodeports': '0',
  persistentvolumeclaims: '0',
};

export const DEFAULT_CONTAINER_LIMITS = {
  request: { cpu: '100m', memory: '128Mi' },
  limit: { cpu: '500m', memory: '512Mi' },
} as const;

export const NAMESPACE_OBJECT_NAMES = {
  quota: 'tenant-quota',
  limitRange: 'tenant-limits',
  defaultDeny: 'default-deny',
  allowPlatform: 'allow-from-platform',
  allowDns: 'allow-dns-egress',
} as const;

/**
 * The namespace and everything in it, in apply order (the Namespace first), each with its spec
 * hash. Pure.
 */
export function desiredNamespaceObjects(tenant: Tenant, opts: NamespaceOptions = {}): KubeObject[] {
  const name = tenant.metadata.name;
  const ns = tenantNamespace(name);
  const platformNamespace = opts.platformNamespace ?? PLATFORM_NAMESPACE;
  const labels = tenantLabels(name, 'tenant');
  const meta = (objName: string) => ({ name: objName, namespace: ns, labels });
  const defaults = opts.containerDefaults ?? DEFAULT_CONTAINER_LIMITS;

  const objs: KubeObject[] = [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: ns,
        labels: {
          ...labels,
          // https://kubernetes.io/docs/concepts/security/pod-security-admission/
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/enforce-version': 'latest',
          'pod-security.kubernetes.io/audit': 'restricted',
          'pod-security.kubernetes.io/warn': 'restricted',
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: meta(NAMESPACE_OBJECT_NAMES.quota),
      spec: { hard: { ...(opts.quota ?? DEFAULT_QUOTA) } },
    },
    {
      apiVersion: 'v1',
      kind: 'LimitRange',
      metadata: meta(NAMESPACE_OBJECT_NAMES.limitRange),
      // With a quota on requests/limits every container must state them; these fill the gaps.
      spec: {
        limits: [
          { type: 'Container', defaultRequest: { ...defaults.request }, default: { ...defaults.limit } },
        ],
      },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta(NAMESPACE_OBJECT_NAMES.defaultDeny),
      // https://kubernetes.io/docs/concepts/services-networking/network-policies/#default-deny-all-ingress-and-all-egress-traffic
      spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta(NAMESPACE_OBJECT_NAMES.allowPlatform),
      spec: {
        podSelector: {},
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': platformNamespace } } },
            ],
          },
        ],
      },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta(NAMESPACE_OBJECT_NAMES.allowDns),
      spec: {
        podSelector: {},
        policyTypes: ['Egress'],
        // DNS wherever the cluster runs it (kube-system on most clusters, not on all).
        egress: [
          {
            to: [{ namespaceSelector: {} }],
            ports: [
              { protocol: 'UDP', port: 53 },
              { protocol: 'TCP', port: 53 },
            ],
          },
        ],
      },
    },
  ];
  return objs.map(withSpecHash);
}

export interface NamespaceDeps extends NamespaceOptions {
  kube: ObjectClient;
  writes: WriteCounter;
  /** how soon to look again while something is terminating @default 2000 */
  pollMs?: number;
}

const BACKEND = 'namespace';

async function reconcileNamespace(tenant: Tenant, deps: NamespaceDeps): Promise<StepResult> {
  const name = tenant.metadata.name;
  const ns = tenantNamespace(name);
  try {
    const live = await deps.kube.get({ apiVersion: 'v1', kind: 'Namespace', name: ns });
    const owner = live?.metadata.labels?.[TENANT_LABEL];
    if (owner !== undefined && owner !== name) {
      return {
        kind: 'blocked',
        reason: 'NamespaceConflict',
        message: `namespace ${ns} belongs to tenant ${JSON.stringify(owner)} (label ${TENANT_LABEL}); refusing to take it over`,
      };
    }
    const objs = desiredNamespaceObjects(tenant, deps);
    const out = await applyObjects(objs, deps, BACKEND);
    if (out.terminating.length > 0) {
      return {
        kind: 'progressing',
        reason: 'NamespaceTerminating',
        message: `waiting for ${out.terminating.join(', ')} to finish terminating before recreating it`,
        requeueAfterMs: deps.pollMs ?? 2_000,
      };
    }
    // Reason and message describe the state, not what this pass did: a pass that repaired
    // something and one that found nothing to do then write the same status, so the second
    // reconcile after provisioning performs no status write.
    return {
      kind: 'ready',
      reason: 'NamespaceReady',
      message: `namespace ${ns} and its ${objs.length - 1} policies and limits are in place`,
    };
  } catch (err) {
    return errorStep('NamespaceApplyFailed', err);
  }
}

async function finalizeNamespace(tenant: Tenant, deps: NamespaceDeps): Promise<StepResult> {
  const name = tenant.metadata.name;
  const ref: ObjectRef = { apiVersion: 'v1', kind: 'Namespace', name: tenantNamespace(name) };
  try {
    const live = await deps.kube.get(ref);
    if (!live) return { kind: 'ready', reason: 'NamespaceDeleted', message: `namespace ${ref.name} is gone` };
    const owner = live.metadata.labels?.[TENANT_LABEL];
    if (owner !== undefined && owner !== name) {
      // Not ours (see the conflict check above): leave it alone.
      return {
        kind: 'ready',
        reason: 'NamespaceNotOwned',
        message: `namespace ${ref.name} belongs to ${owner}; left in place`,
      };
    }
    if (!live.metadata.deletionTimestamp) {
      if (await deps.kube.delete(ref)) deps.writes.inc(BACKEND);
    }
    return {
      kind: 'progressing',
      reason: 'NamespaceTerminating',
      message: `waiting for namespace ${ref.name} to be deleted`,
      requeueAfterMs: deps.pollMs ?? 2_000,
    };
  } catch (err) {
    return errorStep('NamespaceDeleteFailed', err);
  }
}

export const namespaceReconciler: BackendReconciler<NamespaceDeps> = {
  name: BACKEND,
  condition: 'NamespaceReady',
  reconcile: reconcileNamespace,
  finalize: finalizeNamespace,
};
