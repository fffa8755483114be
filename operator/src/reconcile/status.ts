/**
 * Status of a Tenant: one condition per backend rolled up into `Ready`, a phase, and the
 * fields each backend reports (DESIGN §4–§5). Pure functions, so the controller can compare the
 * desired status with the current one and skip the write when nothing changed — a steady state
 * performs no writes.
 * @see https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties
 */
import type {
  Tenant,
  TenantCondition,
  TenantPhase,
  TenantStatus,
  BackendConditionType,
} from '../api/types.ts';
import { CONDITION_TYPES } from '../api/types.ts';
import type { StepResult } from './types.ts';

export type Outcomes = Partial<Record<BackendConditionType, StepResult>>;

function conditionFrom(
  type: string,
  r: StepResult | undefined,
  generation: number,
): Omit<TenantCondition, 'lastTransitionTime'> {
  if (!r)
    return {
      type,
      status: 'Unknown',
      reason: 'Pending',
      message: 'not reconciled yet',
      observedGeneration: generation,
    };
  return {
    type,
    status: r.kind === 'ready' ? 'True' : r.kind === 'error' ? 'Unknown' : 'False',
    reason: r.reason,
    message: r.message,
    observedGeneration: generation,
  };
}

/** Keeps lastTransitionTime when the status value did not change (API conventions). */
export function mergeCondition(
  previous: TenantCondition[] | undefined,
  next: Omit<TenantCondition, 'lastTransitionTime'>,
  now: Date,
): TenantCondition {
  const old = previous?.find((c) => c.type === next.type);
  const lastTransitionTime = old && old.status === next.status ? old.lastTransitionTime : now.toISOString();
  return { ...next, lastTransitionTime };
}

export function phaseOf(tenant: Tenant, outcomes: Outcomes, allReady: boolean): TenantPhase {
  if (tenant.metadata.deletionTimestamp) return 'Deleting';
  if (allReady) return tenant.spec.suspended ? 'Suspended' : 'Ready';
  const wasReady = tenant.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  const wasDegraded = tenant.status?.phase === 'Degraded';
  // Something only an admin can fix, or a tenant that was serving and lost a backend.
  const blocked = Object.values(outcomes).some((r) => r?.kind === 'blocked');
  return blocked || wasReady || wasDegraded ? 'Degraded' : 'Provisioning';
}

/** The status the controller wants, from the backends' outcomes of this pass. */
export function desiredStatus(tenant: Tenant, outcomes: Outcomes, now: Date): TenantStatus {
  const generation = tenant.metadata.generation ?? 0;
  const prev = tenant.status?.conditions;
  const conditions = CONDITION_TYPES.map((type) =>
    mergeCondition(prev, conditionFrom(type, outcomes[type], generation), now),
  );
  const notReady = conditions.filter((c) => c.status !== 'True');
  const allReady = notReady.length === 0;
  const ready = mergeCondition(
    prev,
    {
      type: 'Ready',
      status: allReady ? 'True' : 'False',
      reason: allReady
        ? tenant.spec.suspended
          ? 'Suspended'
          : 'Provisioned'
        : notReady.length === 1
          ? notReady[0]!.reason
          : 'BackendsNotReady',
      message: allReady
        ? tenant.spec.suspended
          ? 'all backends are in place; the tenant is suspended'
          : 'all backends are provisioned'
        : notReady.map((c) => `${c.type}: ${c.message}`).join('; '),
      observedGeneration: generation,
    },
    now,
  );
  const status: TenantStatus = {
    ...(tenant.status ?? {}),
    phase: phaseOf(tenant, outcomes, allReady),
    observedGeneration: generation,
    conditions: [...conditions, ready],
  };
  for (const r of Object.values(outcomes)) {
    if (r && r.kind !== 'error' && r.status) Object.assign(status, r.status);
  }
  return status;
}

/** Deep equality on the JSON form, so `status` from the API server compares with a built one. */
export function sameStatus(a: TenantStatus | undefined, b: TenantStatus): boolean {
  return canonical(a ?? {}) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(
          Object.entries(val as Record<string, unknown>)
            .filter(([, x]) => x !== undefined)
            .sort(([x], [y]) => (x < y ? -1 : 1)),
        )
      : val,
  );
}
