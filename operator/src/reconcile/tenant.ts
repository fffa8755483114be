/**
 * The Tenant reconcile: level-triggered, one key at a time (CONVENTIONS 1). It reads the Tenant
 * from the cache, handles deletion and the finalizer, runs every backend reconciler in order,
 * and writes status only when it changed. It never branches on the watch event type.
 */
import { FINALIZER } from '@simptu/common';
import type { BackendConditionType, Tenant, TenantStatus } from '../api/types.ts';
import type { StepResult } from './types.ts';
import { desiredStatus, sameStatus, type Outcomes } from './status.ts';

/** Facts earlier backends established in this pass (e.g. schema version for the registry). */
export type Facts = Partial<TenantStatus>;

/** A backend reconciler with its dependencies already bound. */
export interface Backend {
  readonly name: string;
  readonly condition: BackendConditionType;
  /** backends (by condition) that must be ready before this one runs */
  readonly after?: readonly BackendConditionType[];
  reconcile(tenant: Tenant, facts: Facts): Promise<StepResult>;
  finalize(tenant: Tenant): Promise<StepResult>;
}

export interface TenantReconcilerDeps {
  getTenant(name: string): Tenant | undefined;
  /** re-reads the Tenant from the API server (status writes must start from the latest object) */
  readTenant(name: string): Promise<Tenant | undefined>;
  writeStatus(tenant: Tenant, status: TenantStatus): Promise<void>;
  setFinalizers(tenant: Tenant, finalizers: string[]): Promise<void>;
  event(tenant: Tenant, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  /** fault injection for crash-safety tests: may terminate the process at a named point */
  fault(point: string): void;
  backends: readonly Backend[];
  /** where frontends reach this tenant (status.endpoints) */
  endpoints?: (tenant: Tenant) => TenantStatus['endpoints'];
  now?: () => Date;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** A backend failed transiently: the controller retries the key with per-item backoff. */
export class BackendError extends Error {
  readonly failures: Array<{ backend: string; reason: string; message: string }>;
  constructor(
    failures: Array<{ backend: string; reason: string; message: string }>,
    options?: { cause?: unknown },
  ) {
    super(failures.map((f) => `${f.backend}: ${f.reason}: ${f.message}`).join('; '), options);
    this.name = 'BackendError';
    this.failures = failures;
  }
}

function errorResult(backend: string, err: unknown): StepResult {
  return {
    kind: 'error',
    reason: 'UnexpectedError',
    message: `${backend}: ${err instanceof Error ? err.message : String(err)}`,
    error: err,
  };
}

async function run(step: () => Promise<StepResult>, backend: string): Promise<StepResult> {
  try {
    return await step();
  } catch (err) {
    return errorResult(backend, err);
  }
}

export async function reconcileTenant(name: string, deps: TenantReconcilerDeps): Promise<ReconcileResult> {
  const now = deps.now ?? (() => new Date());
  const cached = deps.getTenant(name);
  if (!cached) return {}; // gone: nothing to do, the finalizer already cleaned up

  if (cached.metadata.deletionTimestamp) return finalizeTenant(cached, deps);

  let tenant = cached;
  if (!(tenant.metadata.finalizers ?? []).includes(FINALIZER)) {
    await deps.setFinalizers(tenant, [...(tenant.metadata.finalizers ?? []), FINALIZER]);
    deps.fault('finalizer:after');
    tenant = (await deps.readTenant(name)) ?? tenant;
  }

  const outcomes: Outcomes = {};
  const facts: Facts = {};
  // Backends run in waves: every backend whose dependencies have run goes at once, so a
  // reconcile takes as long as its slowest chain (e.g. topics ‖ database ‖ key, then the
  // registry), not the sum of all backends.
  let pending = [...deps.backends];
  while (pending.length > 0) {
    const wave = pending.filter((b) => (b.after ?? []).every((c) => outcomes[c] !== undefined));
    if (wave.length === 0)
      throw new Error(`backend dependencies form a cycle: ${pending.map((b) => b.name).join(', ')}`);
    pending = pending.filter((b) => !wave.includes(b));
    await Promise.all(
      wave.map(async (backend) => {
        const waitingFor = (backend.after ?? []).filter((c) => outcomes[c]?.kind !== 'ready');
        if (waitingFor.length > 0) {
          outcomes[backend.condition] = {
            kind: 'progressing',
            reason: 'WaitingForDependencies',
            message: `waiting for ${waitingFor.join(', ')}`,
            requeueAfterMs: 5_000,
          };
          return;
        }
        deps.fault(`${backend.name}:before`);
        const r = await run(() => backend.reconcile(tenant, facts), backend.name);
        deps.fault(`${backend.name}:after`);
        outcomes[backend.condition] = r;
        if (r.kind !== 'error' && r.status) Object.assign(facts, r.status);
      }),
    );
  }

  await writeStatusIfChanged(tenant, outcomes, deps, now());
  return resultOf(outcomes);
}

async function writeStatusIfChanged(
  tenant: Tenant,
  outcomes: Outcomes,
  deps: TenantReconcilerDeps,
  now: Date,
): Promise<void> {
  const status = desiredStatus(tenant, outcomes, now);
  if (deps.endpoints && !tenant.metadata.deletionTimestamp) status.endpoints = deps.endpoints(tenant);
  if (sameStatus(tenant.status, status)) return;
  await deps.writeStatus(tenant, status);
  const before = tenant.status?.phase;
  if (before !== status.phase) {
    deps.log.info({ tenant: tenant.metadata.name, from: before, to: status.phase }, 'tenant phase changed');
    if (status.phase === 'Ready')
      await deps.event(tenant, 'Normal', 'Provisioned', 'all backends are provisioned');
  }
  for (const [type, r] of Object.entries(outcomes)) {
    const prev = tenant.status?.conditions?.find((c) => c.type === type);
    if (r?.kind === 'blocked' && prev?.reason !== r.reason)
      await deps.event(tenant, 'Warning', r.reason, r.message);
  }
}

function resultOf(outcomes: Outcomes): ReconcileResult {
  const failures = Object.entries(outcomes)
    .filter(([, r]) => r?.kind === 'error')
    .map(([backend, r]) => ({ backend, reason: r!.reason, message: r!.message }));
  if (failures.length > 0) {
    const cause = Object.values(outcomes).find((r) => r?.kind === 'error');
    throw new BackendError(failures, { cause: cause?.kind === 'error' ? cause.error : undefined });
  }
  const delays = Object.values(outcomes)
    .map((r) => (r && r.kind !== 'error' ? r.requeueAfterMs : undefined))
    .filter((d): d is number => typeof d === 'number' && d > 0);
  return delays.length > 0 ? { requeueAfterMs: Math.min(...delays) } : {};
}

/** Deletion: every backend finalizes (in reverse order) before the finalizer comes off. */
async function finalizeTenant(tenant: Tenant, deps: TenantReconcilerDeps): Promise<ReconcileResult> {
  if (!(tenant.metadata.finalizers ?? []).includes(FINALIZER)) return {};
  const now = deps.now ?? (() => new Date());
  const outcomes: Outcomes = {};
  for (const backend of [...deps.backends].reverse()) {
    deps.fault(`${backend.name}:finalize`);
    outcomes[backend.condition] = await run(() => backend.finalize(tenant), backend.name);
  }
  const pending = Object.values(outcomes).some((r) => r?.kind !== 'ready');
  if (pending) {
    await writeStatusIfChanged(tenant, outcomes, deps, now());
    return resultOf(outcomes);
  }
  await deps.setFinalizers(
    tenant,
    (tenant.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
  );
  deps.log.info({ tenant: tenant.metadata.name, policy: tenant.spec.deletionPolicy }, 'tenant finalized');
  return {};
}
