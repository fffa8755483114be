/**
 * A thin raw JSON client on client-node's own HTTP stack (`RequestContext`, the kubeconfig's
 * authentication and TLS dispatcher, `IsomorphicFetchHttpLibrary`).
 *
 * Why not the typed APIs everywhere: their (de)serializers turn timestamps into `Date`s and
 * format `MicroTime` with milliseconds, while the informer's watch stream is plain JSON. The
 * informer's list, the Lease and the Event writes use this client so every object the
 * controller machinery touches has the wire shape, and MicroTime fields are written exactly
 * as the API server expects (RFC 3339 with microseconds).
 */
// client-node's HTTP layer only, not its index: that one evaluates the whole generated client
// (see kubeconfig.ts).
import { ApiException } from '@kubernetes/client-node/dist/gen/apis/exception.js';
import { HttpMethod, RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { IsomorphicFetchHttpLibrary } from '@kubernetes/client-node/dist/gen/http/isomorphic-fetch.js';
import type { KubeAccess } from './kubeconfig.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RequestOptions {
  method?: Method;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** @default 'application/json' (patches: application/merge-patch+json, application/apply-patch+yaml) */
  contentType?: string;
  /** @default 'application/json' (see `metadataAccept` for metadata-only reads) */
  accept?: string;
  signal?: AbortSignal;
}

/**
 * The `Accept` header of a metadata-only read: the server answers with `PartialObjectMetadata`
 * (`…List` for a list) — name, labels, annotations, resourceVersion… and no spec or status — and
 * falls back to the full object where it can't (the trailing `application/json`).
 * @see https://github.com/kubernetes/client-go/tree/master/metadata (the metadata-only client)
 */
export function metadataAccept(list: boolean): string {
  return `application/json;as=PartialObjectMetadata${list ? 'List' : ''};g=meta.k8s.io;v=v1,application/json`;
}

const http = new IsomorphicFetchHttpLibrary();

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/** How long one connection pool serves a KubeConfig before a fresh one takes over. */
const DISPATCHER_TTL_MS = 5 * 60_000;
const dispatchers = new WeakMap<KubeAccess, { dispatcher: Dispatcher; since: number }>();

/**
 * Authenticates `ctx` for the current user of `kc` and makes it use one connection pool per
 * KubeConfig. client-node's `applySecurityAuthentication` sets a NEW undici Agent on every
 * request whenever TLS options apply (a CA, a client certificate, skip-verify — i.e. always in
 * a cluster): every request then opens its own connection, TLS handshake included, and each
 * agent lingers with its socket until the keep-alive expires — a request storm's worth of
 * sockets and garbage. Headers (tokens) still come from client-node on every request; the agent
 * it made is dropped unused and the pooled one is used instead, which is replaced by client-node's
 * next agent every `DISPATCHER_TTL_MS` (so a rotated client certificate on disk is picked up);
 * the old pool closes once its requests, watches included, have ended.
 */
async function authenticate(kc: KubeAccess, ctx: RequestContext): Promise<void> {
  await kc.applySecurityAuthentication(ctx);
  if (kc.pooled) return; // it keeps one pool itself (LightKubeConfig)
  const fresh = ctx.getDispatcher();
  if (!fresh) return; // no TLS options: undici's global dispatcher, which pools already
  const now = Date.now();
  const pooled = dispatchers.get(kc);
  if (pooled && now - pooled.since < DISPATCHER_TTL_MS) {
    ctx.setDispatcher(pooled.dispatcher); // `fresh` never connected: nothing to close
    return;
  }
  dispatchers.set(kc, { dispatcher: fresh, since: now });
  if (pooled) {
    // Not at once: a request may hold it between authentication and dispatch.
    setTimeout(() => void pooled.dispatcher.close().catch(() => undefined), 30_000).unref();
  }
}

/** Sends one request to the current cluster of `kc`; throws `ApiException` on a non-2xx answer. */
export async function kubeRequest<T = unknown>(
  kc: KubeAccess,
  path: string,
  opts: RequestOptions = {},
): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  for (const [k, v] of Object.entries(opts.query ?? {}))
    if (v !== undefined) url.searchParams.set(k, String(v));
  const ctx = new RequestContext(url.toString(), (opts.method ?? 'GET') as HttpMethod);
  ctx.setHeaderParam('Accept', opts.accept ?? 'application/json');
  if (opts.body !== undefined) {
    ctx.setHeaderParam('Content-Type', opts.contentType ?? 'application/json');
    ctx.setBody(JSON.stringify(opts.body));
  }
  if (opts.signal) ctx.setSignal(opts.signal);
  await authenticate(kc, ctx);
  const res = await http.send(ctx).toPromise();
  const text = await res.body.text();
  let parsed: unknown = undefined;
  if (text.length > 0) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (res.httpStatusCode < 200 || res.httpStatusCode > 299) {
    throw new ApiException(res.httpStatusCode, `${opts.method ?? 'GET'} ${path}`, parsed, res.headers);
  }
  return parsed as T;
}

/** A resource collection: `apiVersion` ('v1' or 'group/version') + lower-case `plural`. */
export interface ResourceRef {
  apiVersion: string;
  plural: string;
  /** Omit for cluster-scoped resources or to span all namespaces. */
  namespace?: string;
}

/** REST path of a collection or, with `name`, of one object (and `subresource`). */
export function resourcePath(ref: ResourceRef, name?: string, subresource?: string): string {
  const root = ref.apiVersion.includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
  let p = ref.namespace
    ? `${root}/namespaces/${encodeURIComponent(ref.namespace)}/${ref.plural}`
    : `${root}/${ref.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) p += `/${subresource}`;
  return p;
}

/** Kubernetes `MicroTime`: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** One event of a watch stream. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Record<string, unknown>;
}

/**
 * Streams a watch (`?watch=1`) and calls `onEvent` for each line, resolving when the server
 * ends the stream (e.g. after `timeoutSeconds`) and rejecting on HTTP errors or when `signal`
 * aborts. `idleTimeoutMs` guards against a half-open connection that never ends.
 * @see https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
 */
export async function kubeWatch(
  kc: KubeAccess,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  onEvent: (ev: WatchEvent) => void,
  opts: { signal?: AbortSignal; idleTimeoutMs?: number; accept?: string } = {},
): Promise<void> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  url.searchParams.set('watch', 'true');
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));

  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(opts.signal?.reason);
  if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  let idle: NodeJS.Timeout | undefined;
  const armIdle = () => {
    if (!opts.idleTimeoutMs) return;
    clearTimeout(idle);
    idle = setTimeout(
      () => abort.abort(new Error(`watch idle for ${opts.idleTimeoutMs} ms`)),
      opts.idleTimeoutMs,
    );
    idle.unref();
  };
  try {
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    ctx.setHeaderParam('Accept', opts.accept ?? 'application/json');
    ctx.setSignal(abort.signal);
    await authenticate(kc, ctx);
    armIdle();
    const res = await http.send(ctx).toPromise();
    if (res.httpStatusCode !== 200) {
      const text = await res.body.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep text */
      }
      throw new ApiException(res.httpStatusCode, `WATCH ${path}`, parsed, res.headers);
    }
    const stream = res.body.stream() as ReadableStream<Uint8Array> | undefined;
    if (!stream) return;
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of stream) {
      armIdle();
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) onEvent(JSON.parse(line) as WatchEvent);
      }
    }
    if (buf.trim()) onEvent(JSON.parse(buf) as WatchEvent);
    if (abort.signal.aborted) throw abort.signal.reason;
  } catch (err) {
    throw abort.signal.aborted && abort.signal.reason instanceof Error ? abort.signal.reason : err;
  } finally {
    clearTimeout(idle);
    opts.signal?.removeEventListener('abort', onOuterAbort);
    abort.abort();
  }
}
