/**
 * What can be checked of the kind workflow without Docker: the scripts parse, the cluster config
 * maps the ingress ports, the image list follows the Dockerfiles that exist, and `make images`
 * builds the image names the chart's values refer to.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Yaml } from 'cdk8s';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

describe('kind workflow', () => {
  it.each(readdirSync(resolve(ROOT, 'hack/kind')).filter((f) => f.endsWith('.sh')))(
    'hack/kind/%s is valid bash',
    (f) => {
      const r = spawnSync('bash', ['-n', resolve(ROOT, 'hack/kind', f)], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    },
  );

  it('kind-config.yaml: an ingress-ready node with ports 80 and 443 mapped', () => {
    const [cfg] = Yaml.load(resolve(ROOT, 'kind-config.yaml')) as Array<{
      nodes: Array<{
        kubeadmConfigPatches: string[];
        extraPortMappings: Array<{ containerPort: number; hostPort: number }>;
      }>;
    }>;
    const node = cfg!.nodes[0]!;
    expect(node.kubeadmConfigPatches.join('\n')).toContain('node-labels: "ingress-ready=true"');
    expect(node.extraPortMappings.map((m) => [m.containerPort, m.hostPort])).toEqual([
      [80, 80],
      [443, 443],
    ]);
  });

  it('images: one per Dockerfile, named simptu/<service> like the chart expects', () => {
    const r = spawnSync(
      'bash',
      ['-c', `source ${resolve(ROOT, 'hack/kind/lib.sh')}; printf '%s\\n' "\${SERVICES[@]}"`],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    const services = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(':')[0]);
    expect(services).toEqual(expect.arrayContaining(['operator', 'api', 'realtime']));
    const values = readFileSync(resolve(ROOT, 'charts/simptu/ci/dev-kind-values.yaml'), 'utf8');
    expect(values).toMatch(/registry: simptu/);
    expect(values).toMatch(/pullPolicy: Never/);
    // Every enabled component of the dev values has an image built by `make images`.
    for (const svc of ['api', 'realtime']) expect(services).toContain(svc);
  });
});
