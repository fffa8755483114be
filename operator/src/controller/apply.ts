/**
 * Writing objects the operator owns.
 *
 * `serverSideApply`: everything the operator owns is written with server-side apply under one
 * field manager: the server merges, tracks ownership per field, and an apply of unchanged
 * content is a no-op (same resourceVersion, no watch event), so steady state costs no writes.
 * @see https://kubernetes.io/docs/reference/using-api/server-side-apply/
 *
 * `patchStatus`: status of our custom resources goes through the status subresource with a
 * read–mutate–replace loop guarded by resourceVersion, retried on 409 Conflict. We chose this
 * over SSA on `/status` as the default because status is derived from the *current* status as
 * well as from the world (a condition keeps its `lastTransitionTime` when its status did not
 * change; counters and key versions only move forward), so the mutation must see the latest
 * object anyway; the resourceVersion precondition then guarantees no other writer's update is
 * silently lost, and an unchanged status is detected locally and not written at all.
 * `applyStatus` (SSA on `/status`) is provided for status that is computed purely from the world.
 * @see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource
 */
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig, KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { kubeRequest, resourcePath, type ResourceRef } from './client.ts';
import { isConflict } from './errors.ts';
import type { KubeAccess } from './kubeconfig.ts';

/** The content type of a server-side apply (client-node's `PatchStrategy.ServerSideApply`). */
const APPLY_PATCH = 'application/apply-patch+yaml';

export {
  isAlreadyExists,
  isConflict,
  isGone,
  isNotFound,
  errorMessage,
  statusCode,
  statusReason,
} from './errors.ts';

export interface ApplyOptions {
  fieldManager: string;
  /** Take ownership of fields another manager set (controllers should). @default true */
  force?: boolean;
  /** Validate and compute the result on the server without persisting. @default false */
  dryRun?: boolean;
}

/** One KubernetesObjectApi per KubeConfig, so its API discovery cache is reused. */
const objectApis = new WeakMap<KubeConfig, KubernetesObjectApi>();

/** client-node's generic object API (its index is loaded on first use only: see kubeconfig.ts). */
export async function objectApi(kc: KubeConfig): Promise<KubernetesObjectApi> {
  let api = objectApis.get(kc);
  if (!api) {
    const { KubernetesObjectApi } = await import('@kubernetes/client-node');
    api = KubernetesObjectApi.makeApiClient(kc);
    objectApis.set(kc, api);
  }
  return api;
}

/**
 * Server-side applies `obj` (a fully specified intent: apiVersion, kind, metadata.name,
 * metadata.namespace when namespaced, and only the fields we own). Returns the object as the
 * server stored it (typed by client-node, i.e. timestamps are `Date`s).
 */
export async function serverSideApply<T extends KubernetesObject>(
  kc: KubeConfig,
  obj: T,
  opts: ApplyOptions,
): Promise<T> {
  if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) {
    throw new Error('serverSideApply: apiVersion, kind and metadata.name are required');
  }
  // managedFields/resourceVersion in an apply configuration would be an ownership claim or a
  // precondition we never mean; drop them if a caller passed a read object back.
  const { managedFields: _mf, resourceVersion: _rv, ...metadata } = obj.metadata;
  const intent = { ...obj, metadata } as T;
  return (await objectApi(kc)).patch<T>(
    intent,
    undefined,
    opts.dryRun ? 'All' : undefined,
    opts.fieldManager,
    opts.force ?? true,
    APPLY_PATCH,
  );
}

/** A custom resource, by collection and name. */
export interface ObjectRef extends ResourceRef {
  name: string;
}

export interface PatchStatusOptions {
  /** Recorded in managedFields of the status write. */
  fieldManager?: string;
  /** Attempts on 409 Conflict before giving up (the error is rethrown). @default 5 */
  maxAttempts?: number;
}

export interface PatchStatusResult<T> {
  /** The object after the write (or as read, if nothing changed). */
  object: T;
  /** False when the mutation produced the status already stored: no write happened. */
  written: boolean;
  /** How many conflicts were retried. */
  conflicts: number;
}

/**
 * Re-reads the object, computes its new status with `mutate(current)` and replaces the status
 * subresource with a resourceVersion precondition; on 409 Conflict re-reads and re-applies
 * `mutate`. `mutate` must be pure (it may run several times) and gets a mutable deep copy.
 * Throws NotFound if the object is gone.
 */
export async function patchStatus<T extends KubernetesObject & { status?: unknown }>(
  kc: KubeAccess,
  ref: ObjectRef,
  mutate: (current: T) => T['status'] | Promise<T['status']>,
  opts: PatchStatusOptions = {},
): Promise<PatchStatusResult<T>> {
  const maxAttempts = opts.maxAttempts ?? 5;
  const path = resourcePath(ref, ref.name);
  for (let attempt = 1; ; attempt++) {
    const current = await kubeRequest<T>(kc, path);
    const status = await mutate(structuredClone(current));
    if (isDeepStrictEqual(status, current.status))
      return { object: current, written: false, conflicts: attempt - 1 };
    try {
      const object = await kubeRequest<T>(kc, `${path}/status`, {
        method: 'PUT',
        // metadata.resourceVersion from the read is the precondition.
        body: { ...current, status },
        query: { fieldManager: opts.fieldManager },
      });
      return { object, written: true, conflicts: attempt - 1 };
    } catch (err) {
      if (!isConflict(err) || attempt >= maxAttempts) throw err;
      // Someone wrote in between; brief jittered pause, then read again.
      await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
    }
  }
}

/**
 * Server-side applies `status` to the status subresource under `fieldManager` (forced).
 * Fields of ours that are absent from `status` are removed, so pass the complete status we own.
 */
export async function applyStatus<T extends KubernetesObject>(
  kc: KubeAccess,
  ref: ObjectRef & { kind: string },
  status: unknown,
  opts: ApplyOptions,
): Promise<T> {
  return kubeRequest<T>(kc, `${resourcePath(ref, ref.name)}/status`, {
    method: 'PATCH',
    contentType: APPLY_PATCH,
    // JSON is YAML, which the apply content type accepts.
    body: {
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) },
      status,
    },
    query: {
      fieldManager: opts.fieldManager,
      force: opts.force ?? true,
      dryRun: opts.dryRun ? 'All' : undefined,
    },
  });
}
