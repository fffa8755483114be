/**
 * The contract between the tenant controller and its backend reconcilers (DESIGN §5,
 * CONVENTIONS 2–4): each backend is a pure desired-state builder plus a small apply step,
 * idempotent, owning exactly one condition, and reporting by typed result instead of throwing.
 */
import type { Tenant, TenantStatus, BackendConditionType } from '../api/types.ts';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** What a backend step tells the controller. */
export type StepResult =
  | {
      kind: 'ready';
      reason: string; // CamelCase, e.g. 'SchemaMigrated'
      message: string; // for humans
      /** fields of status this backend owns (database, encryption, topics, …) */
      status?: Partial<TenantStatus>;
      /** ask to run again later even though all is well (e.g. next key rotation) */
      requeueAfterMs?: number;
    }
  | {
      /** not ready yet, nothing wrong: e.g. waiting for a Deployment to roll out */
      kind: 'progressing';
      reason: string;
      message: string;
      status?: Partial<TenantStatus>;
      requeueAfterMs: number;
    }
  | {
      /** the admin must fix something (spec asks to shrink partitions, KEK mismatch, …): no hot retry */
      kind: 'blocked';
      reason: string;
      message: string;
      status?: Partial<TenantStatus>;
      requeueAfterMs?: number;
    }
  | {
      /** transient failure (backend down, conflict): retried with per-item exponential backoff */
      kind: 'error';
      reason: string;
      message: string;
      error?: unknown;
    };

/** Counts writes per backend so tests and benches can prove a steady state does none. */
export interface WriteCounter {
  inc(backend: string, n?: number): void;
}

export interface BackendReconciler<D = unknown> {
  readonly name: string;
  readonly condition: BackendConditionType;
  reconcile(tenant: Tenant, deps: D): Promise<StepResult>;
  /** Called while the tenant is being deleted; must be idempotent and safe after a crash. */
  finalize(tenant: Tenant, deps: D): Promise<StepResult>;
}
