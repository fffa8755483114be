/**
 * The operator's kubeconfig: where the API server is and how to authenticate to it.
 *
 * client-node's `KubeConfig` imports the whole generated client (every API group's models and
 * API classes) to evaluate its module: about 26 MB of heap and 50 MB of resident memory that an
 * operator speaking raw JSON (client.ts) never uses. `loadKubeConfig` therefore reads the common
 * cases itself — the in-cluster ServiceAccount, and a kubeconfig whose current context uses a
 * bearer token, a token file, a client certificate or basic auth — and hands anything else (exec
 * and auth-provider plugins, proxies, impersonation, several files in $KUBECONFIG) to client-node,
 * loaded only then. Both satisfy `KubeAccess`, which is all the operator needs.
 *
 * Precedence as client-node's `loadFromDefault` (and kubectl): $KUBECONFIG, ~/.kube/config, the
 * in-cluster ServiceAccount. Credentials in files (the ServiceAccount token is rotated by the
 * kubelet; certificates may be) are read again every `RELOAD_MS`.
 * @see https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { Agent } from 'undici';
import { parse } from 'yaml';

/** What the operator's client needs of a kubeconfig; client-node's `KubeConfig` has it too. */
export interface KubeAccess {
  getCurrentCluster(): { readonly server: string } | null;
  /** Sets the Authorization header and the connection pool (TLS) of a request. */
  applySecurityAuthentication(ctx: RequestContext): Promise<void>;
  /** True when it sets the same connection pool on every request (client-node's doesn't). */
  readonly pooled?: boolean;
}

export const SERVICEACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How often credentials in files are read again (client-node's token file interval). */
export const RELOAD_MS = 60_000;

/** Where each piece comes from: inline data, or a file read again every `RELOAD_MS`. */
interface Source {
  data?: string;
  file?: string;
}

export interface LightKubeConfigOptions {
  server: string;
  ca?: Source;
  cert?: Source;
  key?: Source;
  token?: Source;
  basic?: { username: string; password: string };
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
}

function read(src: Source | undefined): string | undefined {
  if (!src) return undefined;
  if (src.data !== undefined) return src.data;
  return src.file ? readFileSync(src.file, 'utf8') : undefined;
}

/** A kubeconfig of the common kinds, with one connection pool (one undici Agent) for all requests. */
export class LightKubeConfig implements KubeAccess {
  readonly pooled = true;
  readonly #opts: LightKubeConfigOptions;
  readonly #cluster: { server: string };
  #loadedAt = 0;
  #authorization: string | undefined;
  #tls = '';
  #agent: Agent | undefined;

  constructor(opts: LightKubeConfigOptions) {
    if (opts.server.startsWith('http:') && !opts.insecureSkipTlsVerify)
      throw new Error('kubeconfig: plain HTTP to the API server needs insecure-skip-tls-verify');
    this.#opts = opts;
    this.#cluster = { server: opts.server };
    this.#load(); // fail at start-up, not on the first request
  }

  getCurrentCluster(): { server: string } {
    return this.#cluster;
  }

  async applySecurityAuthentication(ctx: RequestContext): Promise<void> {
    if (Date.now() - this.#loadedAt >= RELOAD_MS) this.#load();
    if (this.#authorization) ctx.setHeaderParam('Authorization', this.#authorization);
    if (this.#agent) ctx.setDispatcher(this.#agent);
  }

  /** Reads the credentials; a changed CA or client certificate gets a new pool (the old one drains). */
  #load(): void {
    const o = this.#opts;
    const token = read(o.token)?.trim();
    this.#authorization = token
      ? `Bearer ${token}`
      : o.basic
        ? `Basic ${Buffer.from(`${o.basic.username}:${o.basic.password}`).toString('base64')}`
        : undefined;
    const tls = {
      ...(o.ca ? { ca: read(o.ca) } : {}),
      ...(o.cert ? { cert: read(o.cert) } : {}),
      ...(o.key ? { key: read(o.key) } : {}),
      ...(o.insecureSkipTlsVerify ? { rejectUnauthorized: false } : {}),
      ...(o.tlsServerName ? { servername: o.tlsServerName } : {}),
    };
    const fingerprint = JSON.stringify(tls);
    if (fingerprint !== this.#tls || !this.#agent) {
      const old = this.#agent;
      // keepAlive: TCP keep-alive at 30 s as client-go (and client-node) do.
      this.#agent = new Agent({ connect: { ...tls, keepAlive: true, keepAliveInitialDelay: 30_000 } });
      this.#tls = fingerprint;
      if (old) setTimeout(() => void old.close().catch(() => undefined), 30_000).unref();
    }
    this.#loadedAt = Date.now();
  }
}

/** The `data` or the file (relative to the kubeconfig's directory) of a kubeconfig field pair. */
function source(entry: Record<string, unknown>, field: string, dir: string): Source | undefined {
  const data = entry[`${field}-data`];
  if (typeof data === 'string' && data) return { data: Buffer.from(data, 'base64').toString('utf8') };
  const file = entry[field];
  if (typeof file === 'string' && file) return { file: file.startsWith('/') ? file : join(dir, file) };
  return undefined;
}

const named = (list: unknown, name: unknown, what: string): Record<string, unknown> => {
  const item = (Array.isArray(list) ? list : []).find((x: { name?: unknown }) => x?.name === name) as
    Record<string, Record<string, unknown>> | undefined;
  const inner = item?.[what];
  if (!inner) throw new Error(`kubeconfig: no ${what} named ${JSON.stringify(name)}`);
  return inner;
};

/**
 * A kubeconfig file as a `LightKubeConfig`, or undefined when its current context needs what only
 * client-node does (exec or auth-provider plugins, a proxy, impersonation).
 */
export function lightFromKubeconfigFile(path: string): LightKubeConfig | undefined {
  const doc = (parse(readFileSync(path, 'utf8')) ?? {}) as Record<string, unknown>;
  const dir = join(path, '..');
  const contextName = doc['current-context'];
  const context = named(doc.contexts, contextName, 'context');
  const cluster = named(doc.clusters, context.cluster, 'cluster');
  const user = context.user === undefined ? {} : named(doc.users, context.user, 'user');
  const userKeys = Object.keys(user);
  const supported = new Set([
    'token',
    'tokenFile',
    'client-certificate',
    'client-certificate-data',
    'client-key',
    'client-key-data',
    'username',
    'password',
  ]);
  if (userKeys.some((k) => !supported.has(k)) || cluster['proxy-url']) return undefined;
  if (typeof cluster.server !== 'string') throw new Error('kubeconfig: the current cluster has no server');
  const token =
    typeof user.token === 'string' && user.token
      ? { data: user.token }
      : typeof user.tokenFile === 'string'
        ? { file: user.tokenFile.startsWith('/') ? user.tokenFile : join(dir, user.tokenFile) }
        : undefined;
  const ca = source(cluster, 'certificate-authority', dir);
  const cert = source(user, 'client-certificate', dir);
  const key = source(user, 'client-key', dir);
  return new LightKubeConfig({
    server: cluster.server,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(token ? { token } : {}),
    ...(typeof user.username === 'string' && typeof user.password === 'string'
      ? { basic: { username: user.username, password: user.password } }
      : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecureSkipTlsVerify: true } : {}),
    ...(typeof cluster['tls-server-name'] === 'string' ? { tlsServerName: cluster['tls-server-name'] } : {}),
  });
}

/** The in-cluster ServiceAccount (as client-node's `loadFromCluster`). */
export function lightInCluster(
  env: NodeJS.ProcessEnv = process.env,
  dir = SERVICEACCOUNT_DIR,
): LightKubeConfig {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const scheme = ['80', '8080', '8001'].includes(port) ? 'http' : 'https';
  const h = host.includes(':') ? `[${host}]` : host;
  return new LightKubeConfig({
    server: `${scheme}://${h}:${port}`,
    ca: { file: join(dir, 'ca.crt') },
    token: { file: join(dir, 'token') },
  });
}

/**
 * The operator's kubeconfig: $KUBECONFIG, ~/.kube/config or the in-cluster ServiceAccount, read
 * by `LightKubeConfig` when it can and by client-node otherwise (see the file comment).
 */
export async function loadKubeConfig(
  env: NodeJS.ProcessEnv = process.env,
  home: string = homedir(),
): Promise<KubeAccess> {
  const files = (env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  const file =
    files.length > 0
      ? files
      : existsSync(join(home, '.kube', 'config'))
        ? [join(home, '.kube', 'config')]
        : [];
  const light =
    file.length === 1
      ? lightFromKubeconfigFile(file[0]!)
      : file.length === 0 && env.KUBERNETES_SERVICE_HOST
        ? lightInCluster(env)
        : undefined;
  if (light) return light;
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
