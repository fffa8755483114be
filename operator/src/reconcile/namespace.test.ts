import { describe, it, expect } from 'vitest';
import { TENANT_LABEL } from '@simptu/common';
import type { Tenant } from '../api/types.ts';
import {
  desiredNamespaceObjects,
  stableHash,
  stableStringify,
  withSpecHash,
  SPEC_HASH_ANNOTATION,
  type KubeObject,
} from './namespace.ts';

function tenant(name = 'smile-dental'): Tenant {
  return {
    apiVersion: 'simptu.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name, generation: 1 },
    spec: {
      displayName: 'Smile Dental',
      businessType: 'dental',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: false,
    },
  };
}

const find = (objs: KubeObject[], kind: string, name?: string) =>
  objs.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

describe('stable hashing', () => {
  it('ignores key order and undefined members', () => {
    expect(stableStringify({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"x":1,"y":2}]},"b":1}',
    );
    expect(stableHash({ a: 1, b: 2 })).toBe(stableHash({ b: 2, a: 1 }));
    expect(stableHash({ a: 1 })).not.toBe(stableHash({ a: 2 }));
  });

  it('withSpecHash is idempotent and depends on content only', () => {
    const obj: KubeObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'x' },
      data: { a: '1' },
    };
    const once = withSpecHash(obj);
    expect(withSpecHash(once)).toEqual(once);
    expect(once.metadata.annotations?.[SPEC_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
    const other = withSpecHash({ ...obj, data: { a: '2' } });
    expect(other.metadata.annotations?.[SPEC_HASH_ANNOTATION]).not.toBe(
      once.metadata.annotations?.[SPEC_HASH_ANNOTATION],
    );
  });
});

describe('desiredNamespaceObjects', () => {
  it('starts with the namespace, labelled and Pod Security restricted', () => {
    const objs = desiredNamespaceObjects(tenant());
    const ns = objs[0]!;
    expect(ns.kind).toBe('Namespace');
    expect(ns.metadata.name).toBe('tenant-smile-dental');
    expect(ns.metadata.labels).toMatchObject({
      [TENANT_LABEL]: 'smile-dental',
      'app.kubernetes.io/managed-by': 'simptu-operator',
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    for (const o of objs.slice(1)) {
      expect(o.metadata.namespace).toBe('tenant-smile-dental');
      expect(o.metadata.labels?.[TENANT_LABEL]).toBe('smile-dental');
    }
    for (const o of objs) expect(o.metadata.annotations?.[SPEC_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
  });

  it('has a quota and limit range, overridable', () => {
    const objs = desiredNamespaceObjects(tenant(), {
      quota: { pods: '3' },
      containerDefaults: { request: { cpu: '1m' }, limit: { cpu: '2m' } },
    });
    expect(find(objs, 'ResourceQuota')?.spec).toEqual({ hard: { pods: '3' } });
    expect(find(objs, 'LimitRange')?.spec).toEqual({
      limits: [{ type: 'Container', defaultRequest: { cpu: '1m' }, default: { cpu: '2m' } }],
    });
    expect(find(desiredNamespaceObjects(tenant()), 'ResourceQuota')).toMatchObject({
      spec: { hard: { 'requests.cpu': '4' } },
    });
  });

  it('denies all traffic by default, allows ingress from the platform namespace and DNS egress', () => {
    const objs = desiredNamespaceObjects(tenant(), { platformNamespace: 'plat' });
    expect(find(objs, 'NetworkPolicy', 'default-deny')?.spec).toEqual({
      podSelector: {},
      policyTypes: ['Ingress', 'Egress'],
    });
    expect(find(objs, 'NetworkPolicy', 'allow-from-platform')?.spec).toEqual({
      podSelector: {},
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'plat' } } }] },
      ],
    });
    expect(find(objs, 'NetworkPolicy', 'allow-dns-egress')?.spec).toEqual({
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: {} }],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
      ],
    });
  });

  it('is deterministic, and a changed option changes exactly the affected hash', () => {
    const a = desiredNamespaceObjects(tenant());
    expect(desiredNamespaceObjects(tenant())).toEqual(a);
    const b = desiredNamespaceObjects(tenant(), { platformNamespace: 'other' });
    const hash = (o: KubeObject) => o.metadata.annotations![SPEC_HASH_ANNOTATION];
    const changed = a.filter((o, i) => hash(o) !== hash(b[i]!)).map((o) => o.metadata.name);
    expect(changed).toEqual(['allow-from-platform']);
  });
});
