/** Helpers for the construct tests: synthesize a construct alone and find objects in it. */
import { Testing } from 'cdk8s';
import type { Construct } from 'constructs';

// Synthesized manifests are untyped JSON; tests index into them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
export type Obj = Record<string, Json> & {
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: Json };
};

export function synth(build: (scope: Construct) => void): Obj[] {
  const chart = Testing.chart();
  build(chart);
  return Testing.synth(chart) as Obj[];
}

export function find(objs: Obj[], kind: string, name?: string): Obj {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o)
    throw new Error(
      `no ${kind}${name ? ` ${name}` : ''} in ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`,
    );
  return o;
}

export function container(objs: Obj[], kind = 'Deployment'): Obj {
  return find(objs, kind).spec.template.spec.containers[0];
}

/** name → value (or `secret:<name>/<key>` / `field:<path>`) */
export function envOf(c: Obj): Record<string, string> {
  return Object.fromEntries(
    (c.env as Obj[]).map((e) => [
      e.name,
      e.value ??
        (e.valueFrom?.secretKeyRef
          ? `secret:${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`
          : `field:${e.valueFrom?.fieldRef?.fieldPath}`),
    ]),
  );
}
