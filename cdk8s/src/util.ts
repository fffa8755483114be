/**
 * Helpers shared by the platform constructs: validation (placeholder-aware, see
 * placeholders.ts), labels, Pod Security "restricted" security contexts and resources.
 * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
 */
import { k8s } from 'cdk8s-plus-27';
import { isPlaceholder } from './placeholders.ts';

// Kubernetes quantity grammar (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
const QUANTITY_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export const PART_OF = 'simptu';

export interface ResourceSpec {
  /** @default per construct */
  readonly requests?: { readonly cpu?: string; readonly memory?: string };
  /** @default per construct */
  readonly limits?: { readonly cpu?: string; readonly memory?: string };
}

export interface SecretKeyRef {
  /** Secret name (in the construct's namespace). */
  readonly name: string;
  /** Key in the Secret. */
  readonly key: string;
}

export function fail(construct: string, message: string): never {
  throw new TypeError(`${construct}: ${message}`);
}

export function checkDnsLabel(construct: string, what: string, v: string | undefined): void {
  if (v === undefined || isPlaceholder(v)) return;
  if (!DNS_LABEL_RE.test(v) || v.length > 63)
    fail(construct, `${what} ${JSON.stringify(v)} is not a DNS label`);
}

export function checkSecretName(construct: string, what: string, v: string | undefined): void {
  if (v === undefined || isPlaceholder(v)) return;
  if (!DNS_SUBDOMAIN_RE.test(v) || v.length > 253)
    fail(construct, `${what} ${JSON.stringify(v)} is not a valid object name`);
}

export function checkSecretKeyRef(construct: string, what: string, ref: SecretKeyRef | undefined): void {
  if (!ref) return;
  checkSecretName(construct, `${what}.name`, ref.name);
  if (!isPlaceholder(ref.key) && !/^[-._a-zA-Z0-9]{1,253}$/.test(ref.key))
    fail(construct, `${what}.key ${JSON.stringify(ref.key)} is not a valid Secret key`);
}

export function checkHost(construct: string, what: string, v: string | undefined): void {
  if (v === undefined || isPlaceholder(v)) return;
  if (!DNS_SUBDOMAIN_RE.test(v) || v.length > 253)
    fail(construct, `${what} ${JSON.stringify(v)} is not a host name`);
}

export function checkImage(construct: string, v: string | undefined): void {
  if (v === undefined || isPlaceholder(v)) return;
  // repository[:tag][@digest]; the repository part is lower-case (distribution reference grammar)
  const repo = v.split('@')[0]!.replace(/:[\w][\w.-]{0,127}$/, '');
  if (v.trim() === '' || /\s/.test(v) || !/^[a-z0-9]+([._/:-][a-z0-9]+)*$/.test(repo))
    fail(construct, `image ${JSON.stringify(v)} is not a valid image reference`);
}

export function checkInt(
  construct: string,
  what: string,
  v: number | undefined,
  min: number,
  max: number,
): void {
  if (v === undefined || isPlaceholder(v)) return;
  if (!Number.isInteger(v) || v < min || v > max)
    fail(construct, `${what} must be an integer from ${min} to ${max}, got ${v}`);
}

export function checkUrl(construct: string, what: string, v: string | undefined): void {
  if (v === undefined || isPlaceholder(v)) return;
  if (!URL.canParse(v)) fail(construct, `${what} ${JSON.stringify(v)} is not a URL`);
}

export function checkResources(construct: string, r: ResourceSpec | undefined): void {
  for (const kind of ['requests', 'limits'] as const) {
    for (const [res, q] of Object.entries(r?.[kind] ?? {})) {
      if (q === undefined || isPlaceholder(q)) continue;
      if (!QUANTITY_RE.test(q))
        fail(construct, `resources.${kind}.${res} ${JSON.stringify(q)} is not a Kubernetes quantity`);
    }
  }
}

export function checkEnv(construct: string, env: Readonly<Record<string, string>> | undefined): void {
  for (const k of Object.keys(env ?? {})) {
    if (!ENV_NAME_RE.test(k)) fail(construct, `env name ${JSON.stringify(k)} is not a valid variable name`);
  }
}

export function checkBrokers(construct: string, brokers: readonly string[] | undefined): void {
  if (brokers === undefined) return;
  if (brokers.length === 0) fail(construct, 'kafkaBrokers must list at least one host:port');
  for (const b of brokers) {
    if (isPlaceholder(b)) continue;
    if (!/^[A-Za-z0-9.-]+:\d{1,5}$/.test(b))
      fail(construct, `kafka broker ${JSON.stringify(b)} is not host:port`);
  }
}

/** `app.kubernetes.io/*` labels of a platform component (DESIGN §3). */
export function platformLabels(name: string, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': PART_OF,
  };
}

/** Pod-level security context of the "restricted" profile. */
export function restrictedPodSecurity(uid: number): k8s.PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    fsGroup: uid,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Container-level security context of the "restricted" profile, with a read-only root. */
export function restrictedContainerSecurity(): k8s.SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Requests and limits with per-field defaults. */
export function resources(
  r: ResourceSpec | undefined,
  defaults: { requests: { cpu: string; memory: string }; limits: { cpu: string; memory: string } },
): k8s.ResourceRequirements {
  const q = (o: Record<string, string | undefined>) =>
    Object.fromEntries(
      Object.entries(o)
        .filter((e): e is [string, string] => e[1] !== undefined)
        .map(([k, v]) => [k, k8s.Quantity.fromString(v)]),
    );
  return {
    requests: q({ ...defaults.requests, ...definedOnly(r?.requests) }),
    limits: q({ ...defaults.limits, ...definedOnly(r?.limits) }),
  };
}

function definedOnly(o: Record<string, string | undefined> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(o ?? {}).filter((e): e is [string, string] => e[1] !== undefined));
}

export function secretEnv(name: string, ref: SecretKeyRef): k8s.EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: ref.name, key: ref.key } } };
}

export function httpProbe(
  path: string,
  port: string,
  opts: { periodSeconds?: number; failureThreshold?: number } = {},
): k8s.Probe {
  return {
    httpGet: { path, port: k8s.IntOrString.fromString(port) },
    periodSeconds: opts.periodSeconds ?? 10,
    timeoutSeconds: 2,
    failureThreshold: opts.failureThreshold ?? 3,
  };
}

export const intOrStr = (v: number | string): k8s.IntOrString =>
  typeof v === 'number' ? k8s.IntOrString.fromNumber(v) : k8s.IntOrString.fromString(v);
