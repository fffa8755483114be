/**
 * In-memory synthesis of the platform (no files): what `main.ts` writes and the tests validate.
 */
import { App, Chart } from 'cdk8s';
import { Platform, type PlatformConfig } from './platform.ts';

export type Manifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
};

/** Kinds that must exist before others refer to them (kubectl applies files in order). */
const ORDER = [
  'Namespace',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
];

export function synthPlatform(config: PlatformConfig): Manifest[] {
  const app = new App();
  const chart = new Chart(app, config.name, { disableResourceNameHashes: true });
  new Platform(chart, 'platform', config);
  const docs = chart.toJson() as Manifest[];
  const rank = (m: Manifest) => {
    const i = ORDER.indexOf(m.kind);
    return i === -1 ? ORDER.length : i;
  };
  // Stable: same-rank objects keep construct order.
  return docs
    .map((m, i) => ({ m, i }))
    .sort((a, b) => rank(a.m) - rank(b.m) || a.i - b.i)
    .map(({ m }) => m);
}
