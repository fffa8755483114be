/**
 * The Helm chart is generated from the constructs and must stay in sync with them; Helm accepts
 * it (lint with every CI values file), renders it, the API server accepts what it renders, and —
 * the point of generating it — rendering it with an environment's values yields exactly the
 * objects cdk8s synthesizes for that environment.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Yaml } from 'cdk8s';
import { CHART_DIR, chartDrift, generateChart, valuesFor } from '../src/chart.ts';
import { ENVIRONMENTS, synthPlatform, type Manifest } from '../src/index.ts';
import { dryRunApply, helm, runHelm, scratchNamespace } from './kube.ts';

const cleanups: Array<() => void> = [];
afterAll(() => cleanups.forEach((c) => c()));

describe('chart generation', () => {
  const generated = generateChart();

  it('charts/simptu is in sync with the constructs (run `make chart` when this fails)', () => {
    expect(chartDrift(generated)).toEqual([]);
  });

  it('no placeholder survives, and every value is documented in values.yaml', () => {
    for (const [file, text] of generated.files) expect(text, file).not.toMatch(/__HV\d+__|@@RAW/);
    const values = generated.files.get('values.yaml')!;
    for (const p of generated.placeholders) {
      if (p.kind === 'expression') continue;
      expect(values).toContain(`${p.path.split('.').at(-1)}: ${JSON.stringify(p.default)}`);
    }
    expect(generated.files.get('crds/simptu.io_tenants.yaml')).toBe(
      readFileSync(resolve(CHART_DIR, '../../crds/simptu.io_tenants.yaml'), 'utf8'),
    );
  });

  it('values for an environment name only values the chart has', () => {
    const schema = JSON.parse(generated.files.get('values.schema.json')!) as {
      properties: Record<string, unknown>;
    };
    const check = (v: Record<string, unknown>, s: { properties?: Record<string, unknown> }, path: string) => {
      for (const [k, x] of Object.entries(v)) {
        const sub = s.properties?.[k] as { properties?: Record<string, unknown> } | undefined;
        expect(sub, `${path}${k}`).toBeDefined();
        if (x && typeof x === 'object' && !Array.isArray(x))
          check(x as Record<string, unknown>, sub!, `${path}${k}.`);
      }
    };
    for (const config of Object.values(ENVIRONMENTS)) check(valuesFor(config), schema, '');
  });
});

describe('Helm', () => {
  beforeAll(() => {
    helm(); // builds the pinned Helm once (.cache/helm)
  }, 900_000);

  it.each(['', ...Object.keys(ENVIRONMENTS)])('helm lint passes with %s values', (env) => {
    const args = ['lint', '--strict', CHART_DIR];
    if (env) args.push('-f', resolve(CHART_DIR, `ci/${env}-values.yaml`));
    const r = runHelm(args);
    expect(r.stdout + r.stderr).toContain('0 chart(s) failed');
    expect(r.status).toBe(0);
  });

  it('helm lint fails on a value of the wrong type (values.schema.json)', () => {
    const r = runHelm(['lint', CHART_DIR, '--set', 'api.replicas=many']);
    expect(r.status).not.toBe(0);
  });

  it.each(Object.keys(ENVIRONMENTS))(
    'rendered with %s values: identical to the cdk8s synthesis, and accepted by the API server',
    (env) => {
      const ns = scratchNamespace(`chart-${env}`);
      cleanups.push(ns.remove);
      const r = runHelm([
        'template',
        'simptu',
        CHART_DIR,
        '--namespace',
        ns.name,
        '--include-crds',
        '-f',
        resolve(CHART_DIR, `ci/${env}-values.yaml`),
      ]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const docs = parseDocs(r.stdout);
      const synthesized = synthPlatform({
        ...ENVIRONMENTS[env]!,
        namespace: ns.name,
        createNamespace: false,
      });
      const key = (m: Manifest) => `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`;
      const fromChart = new Map(docs.map((d) => [key(d), normalize(d)]));
      for (const m of synthesized) expect(fromChart.get(key(m)), key(m)).toEqual(normalize(m));
      // Besides the synthesized objects, the chart carries the CRD and the admission policy only.
      const extra = [...fromChart.keys()].filter((k) => !synthesized.some((m) => key(m) === k)).sort();
      expect(extra.map((k) => k.split('/')[0])).toEqual([
        'CustomResourceDefinition',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
      ]);

      const applied = dryRunApply(r.stdout);
      expect(applied.stderr).toBe('');
      expect(applied.status).toBe(0);
      expect(applied.stdout.trim().split('\n')).toHaveLength(docs.length);
    },
  );
});

function parseDocs(stream: string): Manifest[] {
  const dir = mkdtempSync(join(tmpdir(), 'simptu-helm-'));
  const file = join(dir, 'rendered.yaml');
  writeFileSync(file, stream);
  return (Yaml.load(file) as Array<Manifest | null>).filter((d): d is Manifest => d !== null);
}

/** Drops what differs by construction: the Kafka config hash is computed over placeholder text. */
function normalize(m: Manifest): unknown {
  const copy = structuredClone(m) as Manifest & {
    spec?: { template?: { metadata?: { annotations?: Record<string, string> } } };
  };
  const ann = copy.spec?.template?.metadata?.annotations;
  if (ann) {
    delete ann['simptu.io/config-sha256'];
    if (Object.keys(ann).length === 0) delete copy.spec!.template!.metadata!.annotations;
  }
  return JSON.parse(JSON.stringify(copy));
}
