/**
 * AgentReady (DESIGN §5.5).
 *
 *   dedicated  Deployment, Service, ConfigMap and NetworkPolicy in the tenant namespace, built
 *              from the cdk8s `TenantAgent` construct (the same one the chart uses) and applied
 *              with server-side apply plus the spec-hash skip (see namespace.ts). Replicas come
 *              from the spec, 0 while the tenant is suspended. A model `secretRef` names a Secret
 *              of the platform namespace (pods can only read their own namespace's Secrets), so
 *              it is mirrored into the tenant namespace as `simptu-agent-model-credentials`.
 *   shared     the pooled agent serves the tenant from the registry; any dedicated objects left
 *              over are deleted (CEL forbids dedicated→shared, but the reconciler does not rely
 *              on it).
 *
 * Readiness: `agentReadiness: 'rollout'` (default) reports progressing until the Deployment has
 * rolled out (`observedGeneration` caught up, `updatedReplicas` and `availableReplicas` ≥ the
 * desired count). `'applied'` reports ready as soon as the objects are applied: the test
 * environment (and `make dev`) has a kube-apiserver and kube-controller-manager without the
 * deployment controller, scheduler or kubelet, so pods never run there.
 */
import {
  synthTenantAgent,
  AGENT_CONFIGMAP_NAME,
  AGENT_OBJECT_NAME,
  type TenantAgentResources,
} from '@simptu/cdk8s';
import { PLATFORM_NAMESPACE, TENANT_LABEL, tenantLabels, tenantNamespace } from '@simptu/common';
import type { Tenant } from '../api/types.ts';
import type { BackendReconciler, StepResult, WriteCounter } from './types.ts';
import {
  applyObjects,
  describeRef,
  errorStep,
  refOf,
  withSpecHash,
  type KubeObject,
  type ObjectClient,
  type ObjectRef,
} from './namespace.ts';

export type AgentReadiness = 'rollout' | 'applied';

export const AGENT_CREDENTIALS_SECRET = 'simptu-agent-model-credentials';

export interface AgentOptions {
  /** @default 'simptu/agent:latest' */
  agentImage?: string;
  /** @default 'simptu-system' */
  platformNamespace?: string;
  /** container resources of dedicated agents @default the TenantAgent defaults */
  agentResources?: TenantAgentResources;
}

export interface AgentDeps extends AgentOptions {
  kube: ObjectClient;
  writes: WriteCounter;
  /** @default 'rollout' — use 'applied' where no kubelet runs pods (test environment, make dev) */
  agentReadiness?: AgentReadiness;
  /** how soon to look again while rolling out @default 5000 */
  pollMs?: number;
}

const BACKEND = 'agent';

/** Replicas the dedicated Deployment should have: the spec's, or 0 while suspended. */
export function desiredAgentReplicas(tenant: Tenant): number {
  return tenant.spec.suspended ? 0 : tenant.spec.agent.replicas;
}

/**
 * The dedicated agent's objects (ConfigMap, Deployment, Service, NetworkPolicy), each with its
 * spec hash. Pure. The mirrored credentials Secret is not included: its content is read from
 * the cluster (see `mirroredSecret`).
 */
export function desiredAgentObjects(tenant: Tenant, opts: AgentOptions = {}): KubeObject[] {
  const name = tenant.metadata.name;
  const model = tenant.spec.agent.model;
  const objs = synthTenantAgent({
    tenant: name,
    namespace: tenantNamespace(name),
    replicas: desiredAgentReplicas(tenant),
    model: {
      provider: model.provider,
      ...(model.name ? { name: model.name } : {}),
      ...(model.baseURL ? { baseURL: model.baseURL } : {}),
      ...(model.secretRef ? { secretRef: { name: AGENT_CREDENTIALS_SECRET } } : {}),
    },
    ...(tenant.spec.agent.instructions !== undefined ? { instructions: tenant.spec.agent.instructions } : {}),
    ...(opts.agentImage ? { image: opts.agentImage } : {}),
    ...(opts.agentResources ? { resources: opts.agentResources } : {}),
    platformNamespace: opts.platformNamespace ?? PLATFORM_NAMESPACE,
  });
  return objs.map((o) => withSpecHash(o as unknown as KubeObject));
}

/**
 * The tenant-namespace copy of the model credentials Secret. Pure: takes the source Secret.
 * Only `data` is copied (stringData is write-only and never read back).
 */
export function mirroredSecret(tenant: Tenant, source: KubeObject): KubeObject {
  const name = tenant.metadata.name;
  const data = (source.data ?? {}) as Record<string, string>;
  return withSpecHash({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: AGENT_CREDENTIALS_SECRET,
      namespace: tenantNamespace(name),
      labels: { ...tenantLabels(name, 'agent'), 'app.kubernetes.io/name': 'simptu-agent' },
    },
    type: 'Opaque',
    data: { ...data },
  });
}

/** Every object a dedicated agent may leave in the tenant namespace. */
export function dedicatedAgentRefs(tenantName: string): ObjectRef[] {
  const namespace = tenantNamespace(tenantName);
  return [
    { apiVersion: 'apps/v1', kind: 'Deployment', name: AGENT_OBJECT_NAME, namespace },
    { apiVersion: 'v1', kind: 'Service', name: AGENT_OBJECT_NAME, namespace },
    { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: AGENT_OBJECT_NAME, namespace },
    { apiVersion: 'v1', kind: 'ConfigMap', name: AGENT_CONFIGMAP_NAME, namespace },
    { apiVersion: 'v1', kind: 'Secret', name: AGENT_CREDENTIALS_SECRET, namespace },
  ];
}

interface DeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  availableReplicas?: number;
}

/** Rolled out the way `kubectl rollout status` judges it. Pure. */
export function rolloutComplete(deployment: KubeObject, desired: number): { done: boolean; message: string } {
  const generation = Number(deployment.metadata.generation ?? 0);
  const s = (deployment.status ?? {}) as DeploymentStatus;
  if ((s.observedGeneration ?? 0) < generation)
    return { done: false, message: 'waiting for the deployment controller to observe the new spec' };
  const updated = s.updatedReplicas ?? 0;
  const available = s.availableReplicas ?? 0;
  if (updated < desired) return { done: false, message: `${updated} of ${desired} replicas updated` };
  if (available < desired) return { done: false, message: `${available} of ${desired} replicas available` };
  if ((s.replicas ?? 0) > updated)
    return { done: false, message: `${(s.replicas ?? 0) - updated} old replicas pending termination` };
  return { done: true, message: `${available} of ${desired} replicas available` };
}

async function deleteLeftovers(
  tenant: Tenant,
  deps: AgentDeps,
  refs: readonly ObjectRef[] = dedicatedAgentRefs(tenant.metadata.name),
): Promise<string[]> {
  const deleted: string[] = [];
  for (const ref of refs) {
    const live = await deps.kube.get(ref);
    // Only what we created (our tenant label); never an admin's object that happens to share a name.
    if (
      !live ||
      live.metadata.deletionTimestamp ||
      live.metadata.labels?.[TENANT_LABEL] !== tenant.metadata.name
    )
      continue;
    if (await deps.kube.delete(ref)) {
      deps.writes.inc(BACKEND);
      deleted.push(describeRef(ref));
    }
  }
  return deleted;
}

async function reconcileAgent(tenant: Tenant, deps: AgentDeps): Promise<StepResult> {
  try {
    if (tenant.spec.isolation.agent === 'shared') {
      const deleted = await deleteLeftovers(tenant, deps);
      return {
        kind: 'ready',
        reason: 'PooledAgent',
        message: `served by the pooled agent${deleted.length > 0 ? `; removed ${deleted.join(', ')}` : ''}`,
      };
    }

    const objs: KubeObject[] = [];
    const secretRef = tenant.spec.agent.model.secretRef;
    if (secretRef) {
      const sourceRef: ObjectRef = {
        apiVersion: 'v1',
        kind: 'Secret',
        name: secretRef.name,
        namespace: secretRef.namespace ?? deps.platformNamespace ?? PLATFORM_NAMESPACE,
      };
      const source = await deps.kube.get(sourceRef);
      if (!source) {
        return {
          kind: 'blocked',
          reason: 'ModelSecretNotFound',
          message: `${describeRef(sourceRef)} (spec.agent.model.secretRef) does not exist`,
          requeueAfterMs: 60_000,
        };
      }
      objs.push(mirroredSecret(tenant, source));
    }
    objs.push(...desiredAgentObjects(tenant, deps));

    const out = await applyObjects(objs, deps, BACKEND);
    if (!secretRef) {
      // the secretRef was removed from the spec: the credentials copy must not linger
      await deleteLeftovers(
        tenant,
        deps,
        dedicatedAgentRefs(tenant.metadata.name).filter((r) => r.kind === 'Secret'),
      );
    }
    if (out.terminating.length > 0) {
      return {
        kind: 'progressing',
        reason: 'AgentObjectsTerminating',
        message: `waiting for ${out.terminating.join(', ')} to go`,
        requeueAfterMs: deps.pollMs ?? 5_000,
      };
    }
    const desired = desiredAgentReplicas(tenant);
    if ((deps.agentReadiness ?? 'rollout') === 'applied') {
      return {
        kind: 'ready',
        reason: 'AgentApplied',
        message: `dedicated agent applied with ${desired} replicas (readiness: applied)`,
      };
    }
    const deployment = objs.find((o) => o.kind === 'Deployment')!;
    // Re-read after a write: the apply response is enough too, but the cache path keeps one code path.
    const live = await deps.kube.get(refOf(deployment));
    if (!live)
      return {
        kind: 'progressing',
        reason: 'AgentRollingOut',
        message: 'deployment not visible yet',
        requeueAfterMs: deps.pollMs ?? 5_000,
      };
    const rollout = rolloutComplete(live, desired);
    if (!rollout.done)
      return {
        kind: 'progressing',
        reason: 'AgentRollingOut',
        message: rollout.message,
        requeueAfterMs: deps.pollMs ?? 5_000,
      };
    return {
      kind: 'ready',
      reason: tenant.spec.suspended ? 'AgentScaledDown' : 'AgentAvailable',
      message: tenant.spec.suspended ? 'dedicated agent scaled to 0 (tenant suspended)' : rollout.message,
    };
  } catch (err) {
    return errorStep('AgentApplyFailed', err);
  }
}

async function finalizeAgent(tenant: Tenant, deps: AgentDeps): Promise<StepResult> {
  try {
    const deleted = await deleteLeftovers(tenant, deps);
    // No need to wait: the namespace finalizer waits for the namespace, which holds all of them.
    return {
      kind: 'ready',
      reason: 'AgentDeleted',
      message: deleted.length > 0 ? `deleted ${deleted.join(', ')}` : 'no dedicated agent objects',
    };
  } catch (err) {
    return errorStep('AgentDeleteFailed', err);
  }
}

export const agentReconciler: BackendReconciler<AgentDeps> = {
  name: BACKEND,
  condition: 'AgentReady',
  reconcile: reconcileAgent,
  finalize: finalizeAgent,
};
