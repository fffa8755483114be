/**
 * An informer: a local cache of one resource kind kept current by list + watch, like client-go's
 * Reflector + Indexer.
 *
 * - lists (paginated), then watches from the list's resourceVersion with bookmarks; each event
 *   advances the resourceVersion, so a watch the server closes (`timeoutSeconds`) or a dropped
 *   connection resumes exactly where it stopped and no event is lost;
 * - 410 Gone (resourceVersion compacted away) → relist, diffing the new list against the cache
 *   so handlers see the deletes that happened while we were away;
 * - other errors → retry with exponential backoff and jitter (800 ms … 30 s, like client-go);
 * - `labelSelector` / `fieldSelector` scope both list and watch (watch only what you own);
 * - cached objects have `metadata.managedFields` stripped and are deep-frozen: callers can read
 *   them without copying and cannot corrupt the cache (use `structuredClone` to modify);
 * - memory: `transform` reduces each object to what the readers use before it is cached
 *   (client-go's `SetTransform`), and `metadataOnly` has the server send metadata only
 *   (`PartialObjectMetadata`, controller-runtime's metadata-only watches), so an informer over
 *   thousands of objects holds kilobytes, not the whole objects, per entry.
 *
 * Handlers are meant only to enqueue keys; they run synchronously on the watch stream.
 * @see https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
 * @see https://github.com/kubernetes/client-go/blob/master/tools/cache/reflector.go
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  kubeRequest,
  kubeWatch,
  metadataAccept,
  resourcePath,
  type ResourceRef,
  type WatchEvent,
} from './client.ts';
import { errorMessage, isGone } from './errors.ts';
import type { KubeAccess } from './kubeconfig.ts';
import { noopLogger, type Logger } from './log.ts';

export interface InformerOptions extends ResourceRef {
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size of the list. @default 500 */
  pageSize?: number;
  /**
   * Server-side watch timeout; the server then closes the watch and we resume it.
   * @default random 300–600 s (client-go's minWatchTimeout × [1, 2) spreads reconnects)
   */
  watchTimeoutSeconds?: number;
  /** Backoff after errors. @default 800 ms initial, 30 s max */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * Ask the server for metadata only (`PartialObjectMetadata`): cached objects then have
   * `apiVersion`, `kind` (from these options) and `metadata`, nothing else. For kinds whose
   * readers look at names, labels, annotations and deletion only.
   */
  metadataOnly?: boolean;
  /** The kind of the objects; required with `metadataOnly` (the server then says `PartialObjectMetadata`). */
  kind?: string;
  /**
   * Reduces an object before it is cached (after managedFields are stripped, before it is
   * frozen); handlers and `get` see the result. Must keep `metadata.name`, `metadata.namespace`
   * and `metadata.resourceVersion`. See `slimObject`.
   */
  transform?: (obj: Record<string, unknown>) => Record<string, unknown>;
  logger?: Logger;
}

export interface InformerHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

/** The cache key of an object: `namespace/name`, or `name` when cluster-scoped (client-go's MetaNamespaceKeyFunc). */
export function objectKey(obj: KubernetesObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

/** Splits a key made by `objectKey`. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** Metadata fields `slimObject` keeps by default: what controllers read of objects they own. */
export const SLIM_METADATA_FIELDS = [
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
] as const;

/** kubectl's client-side apply copy of the whole object: large, and no controller reads it. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * A `transform` for informers: keeps `apiVersion`, `kind`, the metadata fields controllers read
 * (`SLIM_METADATA_FIELDS`, minus kubectl's last-applied annotation) and the listed top-level
 * fields (e.g. `['status']` for a Deployment's rollout, `['spec', 'status']` for a primary).
 */
export function slimObject(
  keep: readonly string[] = [],
): (obj: Record<string, unknown>) => Record<string, unknown> {
  return (obj) => {
    const out: Record<string, unknown> = { apiVersion: obj.apiVersion, kind: obj.kind };
    const meta = (obj.metadata ?? {}) as Record<string, unknown>;
    const slim: Record<string, unknown> = {};
    for (const f of SLIM_METADATA_FIELDS) if (meta[f] !== undefined) slim[f] = meta[f];
    const annotations = slim.annotations as Record<string, string> | undefined;
    if (annotations && LAST_APPLIED_ANNOTATION in annotations) {
      const { [LAST_APPLIED_ANNOTATION]: _dropped, ...rest } = annotations;
      slim.annotations = rest;
    }
    out.metadata = slim;
    for (const k of keep) if (obj[k] !== undefined) out[k] = obj[k];
    return out;
  };
}

/**
 * The error for an `ERROR` watch event (a `metav1.Status`), classifiable with `isGone` & co.
 * A too-old resourceVersion arrives this way: `{code: 410, reason: 'Expired'}`.
 */
export function watchError(status: Record<string, unknown>): Error & { statusCode?: number; body: unknown } {
  const s = status as { code?: number; message?: string; reason?: string };
  return Object.assign(new Error(`watch error: ${s.message ?? s.reason ?? 'unknown'}`), {
    statusCode: s.code,
    body: status,
  });
}

interface ListResponse {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: Array<Record<string, unknown>>;
  kind?: string;
  apiVersion?: string;
}

export class Informer<T extends KubernetesObject = KubernetesObject> {
  readonly #kc: KubeAccess;
  readonly #opts: InformerOptions;
  readonly #log: Logger;
  readonly #cache = new Map<string, T>();
  readonly #handlers: InformerHandlers<T>[] = [];
  #resourceVersion = '';
  #synced = false;
  #syncWaiters: Array<() => void> = [];
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  /** Counts (re)lists and watch (re)starts, for tests and debugging. */
  readonly stats = { lists: 0, watches: 0, errors: 0 };

  constructor(kc: KubeAccess, opts: InformerOptions) {
    if (opts.metadataOnly && !opts.kind) throw new Error('Informer: metadataOnly needs the kind');
    this.#kc = kc;
    this.#opts = opts;
    this.#log = (opts.logger ?? noopLogger).child({
      informer: resourcePath(opts),
      labelSelector: opts.labelSelector,
    });
  }

  /** Registers handlers; objects already cached are replayed as adds (like client-go's AddEventHandler). */
  addHandler(h: InformerHandlers<T>): void {
    this.#handlers.push(h);
    if (h.onAdd) for (const obj of this.#cache.values()) h.onAdd(obj);
  }

  /** Starts list + watch in the background. Idempotent. */
  start(): void {
    if (this.#loop) return;
    this.#abort = new AbortController();
    this.#loop = this.#run(this.#abort.signal);
  }

  /** Stops watching and waits for the loop to end. The cache keeps its last contents. */
  async stop(): Promise<void> {
    this.#abort?.abort(new Error('informer stopped'));
    await this.#loop;
    this.#loop = undefined;
    for (const w of this.#syncWaiters.splice(0)) w();
  }

  /** True once the first list has been stored (and handlers called for it). */
  hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves when synced, or when stopped / `signal` aborts (check `hasSynced()`). */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.#synced) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        resolve(this.#synced);
      };
      signal?.addEventListener('abort', done, { once: true });
      this.#syncWaiters.push(done);
    });
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  keys(): string[] {
    return [...this.#cache.keys()];
  }

  /** The resourceVersion the next watch resumes from ('' = relist). */
  lastSyncResourceVersion(): string {
    return this.#resourceVersion;
  }

  /** What the cache stores: the object as sent (or its `transform`), minus managedFields, frozen. */
  #prepare(raw: Record<string, unknown>): T {
    if (this.#opts.metadataOnly) {
      // PartialObjectMetadata: restore what the object is.
      raw.apiVersion = this.#opts.apiVersion;
      raw.kind = this.#opts.kind;
    }
    const meta = raw.metadata as Record<string, unknown> | undefined;
    if (meta && 'managedFields' in meta) delete meta.managedFields;
    const obj = this.#opts.transform ? this.#opts.transform(raw) : raw;
    return deepFreeze(obj as unknown as T);
  }

  async #run(signal: AbortSignal): Promise<void> {
    const initial = this.#opts.backoffInitialMs ?? 800;
    const max = this.#opts.backoffMaxMs ?? 30_000;
    let backoff = initial;
    while (!signal.aborted) {
      try {
        if (!this.#resourceVersion) await this.#relist(signal);
        const began = Date.now();
        await this.#watch(signal);
        if (Date.now() - began >= 1000) {
          backoff = initial; // a watch that ran and ended normally: the server is fine
        } else if (!signal.aborted) {
          // Closed at once without an error: don't spin; back off like after an error.
          await sleep(backoff * (0.5 + Math.random() * 0.5), signal);
          backoff = Math.min(backoff * 2, max);
        }
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          this.#log.info({ rv: this.#resourceVersion }, 'resourceVersion expired (410 Gone); relisting');
          this.#resourceVersion = '';
          continue;
        }
        this.stats.errors++;
        const wait = backoff * (0.5 + Math.random() * 0.5);
        this.#log.warn(
          { err: errorMessage(err), retryInMs: Math.round(wait) },
          'list/watch failed; backing off',
        );
        await sleep(wait, signal);
        backoff = Math.min(backoff * 2, max);
      }
    }
  }

  async #relist(signal: AbortSignal): Promise<void> {
    this.stats.lists++;
    const path = resourcePath(this.#opts);
    const items: T[] = [];
    let cont: string | undefined;
    let rv: string;
    do {
      const page = await kubeRequest<ListResponse>(this.#kc, path, {
        query: {
          labelSelector: this.#opts.labelSelector,
          fieldSelector: this.#opts.fieldSelector,
          limit: this.#opts.pageSize ?? 500,
          continue: cont,
        },
        ...(this.#opts.metadataOnly ? { accept: metadataAccept(true) } : {}),
        signal,
      });
      // List items carry no apiVersion/kind; restore them so cached objects are self-describing.
      const kind = page.kind?.replace(/List$/, '');
      for (const raw of page.items ?? []) {
        if (kind && !raw.kind) raw.kind = kind;
        if (page.apiVersion && !raw.apiVersion) raw.apiVersion = page.apiVersion;
        items.push(this.#prepare(raw));
      }
      rv = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?.continue || undefined;
    } while (cont);
    if (signal.aborted) return;
    this.#replace(items);
    this.#resourceVersion = rv;
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
  }

  /** Replaces the cache with a fresh list, emitting the differences. */
  #replace(items: T[]): void {
    const fresh = new Map(items.map((o) => [objectKey(o), o]));
    for (const [key, old] of this.#cache) {
      if (!fresh.has(key)) {
        this.#cache.delete(key);
        this.#emit('delete', old);
      }
    }
    for (const [key, obj] of fresh) this.#upsert(key, obj);
  }

  #upsert(key: string, obj: T): void {
    const old = this.#cache.get(key);
    this.#cache.set(key, obj);
    if (!old) this.#emit('add', obj);
    else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.#emit('update', obj, old);
  }

  async #watch(signal: AbortSignal): Promise<void> {
    this.stats.watches++;
    const timeoutSeconds = this.#opts.watchTimeoutSeconds ?? Math.floor(300 * (1 + Math.random()));
    await kubeWatch(
      this.#kc,
      resourcePath(this.#opts),
      {
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: true,
        labelSelector: this.#opts.labelSelector,
        fieldSelector: this.#opts.fieldSelector,
        timeoutSeconds,
      },
      (ev) => this.#onEvent(ev, signal),
      // A silent connection well past the server's own timeout is dead; restart it.
      {
        signal,
        idleTimeoutMs: (timeoutSeconds + 30) * 1000,
        ...(this.#opts.metadataOnly ? { accept: metadataAccept(false) } : {}),
      },
    );
  }

  #onEvent(ev: WatchEvent, signal: AbortSignal): void {
    if (signal.aborted) return;
    if (ev.type === 'ERROR') {
      // A metav1.Status inside the stream; 410 means our resourceVersion is too old.
      throw watchError(ev.object);
    }
    const rv = (ev.object.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
    if (ev.type !== 'BOOKMARK') {
      const obj = this.#prepare(ev.object);
      const key = objectKey(obj);
      if (ev.type === 'DELETED') {
        const old = this.#cache.get(key);
        this.#cache.delete(key);
        this.#emit('delete', old ?? obj);
      } else {
        this.#upsert(key, obj);
      }
    }
    if (rv) this.#resourceVersion = rv;
  }

  #emit(type: 'add' | 'update' | 'delete', obj: T, old?: T): void {
    for (const h of this.#handlers) {
      try {
        if (type === 'add') h.onAdd?.(obj);
        else if (type === 'update') h.onUpdate?.(old as T, obj);
        else h.onDelete?.(obj);
      } catch (err) {
        // A handler bug must not break the watch loop (and so the cache).
        this.#log.error({ err: errorMessage(err) }, 'informer handler threw');
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
