import { describe, it, expect } from 'vitest';
import { ApiException } from '@kubernetes/client-node';
import { microTime, resourcePath } from './client.ts';
import { errorMessage, isAlreadyExists, isConflict, isGone, isNotFound } from './errors.ts';
import { mapByLabel } from './controller.ts';
import { objectKey, splitKey } from './informer.ts';

describe('resourcePath', () => {
  it('builds core, group, namespaced, cluster-scoped and subresource paths', () => {
    expect(resourcePath({ apiVersion: 'v1', plural: 'configmaps', namespace: 'ns' })).toBe(
      '/api/v1/namespaces/ns/configmaps',
    );
    expect(resourcePath({ apiVersion: 'v1', plural: 'namespaces' }, 'a')).toBe('/api/v1/namespaces/a');
    expect(resourcePath({ apiVersion: 'simptu.io/v1alpha1', plural: 'tenants' }, 'smile', 'status')).toBe(
      '/apis/simptu.io/v1alpha1/tenants/smile/status',
    );
  });
});

describe('microTime', () => {
  it('formats RFC 3339 with exactly six fractional digits', () => {
    expect(microTime(Date.UTC(2024, 0, 2, 3, 4, 5, 678))).toBe('2024-01-02T03:04:05.678000Z');
  });
});

describe('keys', () => {
  it('objectKey and splitKey round-trip namespaced and cluster-scoped objects', () => {
    expect(objectKey({ metadata: { name: 'a', namespace: 'ns' } })).toBe('ns/a');
    expect(objectKey({ metadata: { name: 'smile' } })).toBe('smile');
    expect(splitKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitKey('smile')).toEqual({ name: 'smile' });
  });

  it('mapByLabel maps an owned object to the key its label names', () => {
    const map = mapByLabel('simptu.io/tenant');
    expect(map({ metadata: { name: 'x', labels: { 'simptu.io/tenant': 'smile' } } })).toEqual(['smile']);
    expect(map({ metadata: { name: 'x' } })).toEqual([]);
  });
});

describe('error helpers', () => {
  const status = (code: number, reason: string) =>
    new ApiException(code, 'm', { kind: 'Status', code, reason, message: `it is ${reason}` }, {});
  it('tell AlreadyExists from Conflict by reason, also with a string body', () => {
    expect(isAlreadyExists(status(409, 'AlreadyExists'))).toBe(true);
    expect(isConflict(status(409, 'AlreadyExists'))).toBe(false);
    expect(isConflict(status(409, 'Conflict'))).toBe(true);
    expect(isConflict(new ApiException(409, 'm', JSON.stringify({ reason: 'AlreadyExists' }), {}))).toBe(
      false,
    );
    expect(isNotFound(status(404, 'NotFound'))).toBe(true);
    expect(isGone({ statusCode: 410 })).toBe(true); // watch errors carry statusCode
    expect(isNotFound(new Error('boom'))).toBe(false);
    expect(errorMessage(status(404, 'NotFound'))).toBe('404: it is NotFound');
  });
});
