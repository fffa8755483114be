/** Shared helpers of the controller integration tests (real kube-apiserver from KUBECONFIG). */
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

export function kubeConfig(): KubeConfig {
  const path = process.env.KUBECONFIG;
  if (!path) throw new Error('KUBECONFIG is not set: run `make testenv-up` (or source .testenv/env)');
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export function suffix(): string {
  return randomBytes(4).toString('hex');
}

/** Tests use the `default` namespace (no namespace controller needed to clean up) with unique names. */
export const NS = 'default';

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Deletes every ConfigMap in NS carrying `label=value`. */
export async function deleteConfigMaps(kc: KubeConfig, label: string, value: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await core.deleteCollectionNamespacedConfigMap({ namespace: NS, labelSelector: `${label}=${value}` });
}
