import { describe, expect, it } from 'vitest';
import { LAST_APPLIED_ANNOTATION, slimObject } from './informer.ts';

describe('slimObject', () => {
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'simptu-agent',
      namespace: 'tenant-a',
      uid: 'u1',
      resourceVersion: '42',
      generation: 3,
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { 'simptu.io/tenant': 'a' },
      annotations: { 'simptu.io/spec-hash': 'h', [LAST_APPLIED_ANNOTATION]: '{"big":true}' },
      managedFields: [{ manager: 'x' }],
      selfLink: '/apis/apps/v1/…',
    },
    spec: { replicas: 2, template: { spec: { containers: [{ name: 'agent' }] } } },
    status: { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 },
  };

  it('keeps identity, the metadata controllers read and the listed fields', () => {
    expect(slimObject(['status'])(deployment)).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'simptu-agent',
        namespace: 'tenant-a',
        uid: 'u1',
        resourceVersion: '42',
        generation: 3,
        creationTimestamp: '2026-01-01T00:00:00Z',
        labels: { 'simptu.io/tenant': 'a' },
        annotations: { 'simptu.io/spec-hash': 'h' },
      },
      status: deployment.status,
    });
  });

  it('keeps a deletionTimestamp and drops everything unlisted', () => {
    const gone = {
      ...deployment,
      metadata: { ...deployment.metadata, deletionTimestamp: '2026-01-02T00:00:00Z' },
    };
    const out = slimObject()(gone);
    expect(Object.keys(out)).toEqual(['apiVersion', 'kind', 'metadata']);
    expect(out.metadata).toMatchObject({ deletionTimestamp: '2026-01-02T00:00:00Z' });
    expect(deployment.metadata.annotations[LAST_APPLIED_ANNOTATION]).toBeDefined(); // input untouched
  });
});
