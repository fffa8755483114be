import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { parseAllDocuments } from 'yaml';
import {
  CRD_FILE,
  POLICY_FILE,
  deletionProtectionBinding,
  deletionProtectionPolicy,
  renderManifests,
  tenantCRD,
  tenantOpenAPISchema,
  toStructuralSchema,
} from './crd.ts';
import type { JSONSchemaProps } from './crd.ts';
import { DEFAULTS, LIMITS } from './schema.ts';
import { AGENT_TOOL_NAMES, AGENT_TOOLS_BY_BUSINESS_TYPE, SIDE_EFFECT_TOOLS } from './tools.ts';

/** Keys a structural CRD schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps, as used here). */
const ALLOWED_KEYS = new Set([
  'description',
  'type',
  'format',
  'enum',
  'default',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'items',
  'properties',
  'additionalProperties',
  'required',
  'nullable',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-validations',
]);

/** Every schema node with its path. */
function* walk(s: JSONSchemaProps, path = '$'): Generator<[string, JSONSchemaProps]> {
  yield [path, s];
  for (const [k, v] of Object.entries(s.properties ?? {})) yield* walk(v, `${path}.${k}`);
  if (s.items) yield* walk(s.items, `${path}[*]`);
  if (s.additionalProperties) yield* walk(s.additionalProperties, `${path}.*`);
}

function at(schema: JSONSchemaProps, path: string): JSONSchemaProps {
  let s: JSONSchemaProps | undefined = schema;
  for (const part of path.split('.')) s = part === '[*]' ? s?.items : s?.properties?.[part];
  if (!s) throw new Error(`no schema at ${path}`);
  return s;
}

const schema = tenantOpenAPISchema();
const spec = at(schema, 'spec');

describe('tenant CRD schema', () => {
  it('is structural: every node has a type and only supported keys', () => {
    for (const [path, node] of walk(schema)) {
      expect(node.type, path).toMatch(/^(object|array|string|integer|number|boolean)$/);
      for (const key of Object.keys(node)) expect(ALLOWED_KEYS.has(key), `${path}: ${key}`).toBe(true);
      expect(
        node.properties && node.additionalProperties,
        `${path}: properties + additionalProperties`,
      ).toBeFalsy();
      if (node.type === 'array') expect(node.items, path).toBeDefined();
    }
  });

  it('bounds every string and list of the spec, so CEL cost estimation passes', () => {
    for (const [path, node] of walk(spec, '$.spec')) {
      if (node.type === 'string' && !node.enum) expect(node.maxLength, path).toBeGreaterThan(0);
      if (node.type === 'array') expect(node.maxItems, path).toBeGreaterThan(0);
    }
  });

  it('restricts metadata only through CEL on the root', () => {
    expect(schema.properties?.metadata).toEqual({ type: 'object' });
    const rules = schema['x-kubernetes-validations']?.map((r) => r.rule).join('\n');
    expect(rules).toContain('self.metadata.name.size() >= 3 && self.metadata.name.size() <= 40');
    expect(rules).toContain("self.metadata.name.matches('^[a-z]([a-z0-9-]*[a-z0-9])?$')");
    expect(schema.required).toEqual(['spec']);
  });

  it.each([
    ['locale', DEFAULTS.locale],
    ['timezone', DEFAULTS.timezone],
    ['isolation', { database: 'shared', agent: 'shared' }],
    ['isolation.database', 'shared'],
    ['isolation.agent', 'shared'],
    ['agent', { replicas: 1, model: { provider: 'builtin' } }],
    ['agent.replicas', 1],
    ['agent.model', { provider: 'builtin' }],
    ['agent.model.provider', 'builtin'],
    ['kafka', { partitions: 3, retentionHours: 168 }],
    ['kafka.partitions', 3],
    ['kafka.retentionHours', 168],
    ['encryption', { rotationDays: 90 }],
    ['encryption.rotationDays', 90],
    ['deletionPolicy', 'Retain'],
    ['deletionProtection', false],
    ['suspended', false],
  ])('defaults spec.%s to %j', (path, value) => {
    expect(at(spec, path).default).toEqual(value);
  });

  it('requires only what has no default', () => {
    expect(spec.required).toEqual(['displayName', 'businessType']);
    expect(at(spec, 'agent').required).toBeUndefined();
    expect(at(spec, 'integrations.twilio').required).toEqual(['phoneNumber', 'credentialsSecretRef']);
    expect(at(spec, 'agent.model.secretRef').required).toEqual(['name']);
  });

  it('turns literal unions into enums', () => {
    expect(at(spec, 'businessType')).toMatchObject({ type: 'string', enum: ['dental', 'gym', 'hotel'] });
    expect(at(spec, 'agent.model.provider').enum).toEqual(['builtin', 'bedrock', 'openai', 'anthropic']);
    expect(at(spec, 'deletionPolicy').enum).toEqual(['Retain', 'Delete']);
    expect(at(schema, 'status.phase').enum).toEqual([
      'Pending',
      'Provisioning',
      'Ready',
      'Degraded',
      'Deleting',
      'Suspended',
    ]);
  });

  it('keeps size limits', () => {
    expect(at(spec, 'displayName').maxLength).toBe(100);
    expect(at(spec, 'agent.instructions').maxLength).toBe(8000);
    expect(at(spec, 'agent.replicas')).toMatchObject({ minimum: 0, maximum: 20 });
    expect(at(spec, 'kafka.retentionHours')).toMatchObject({ minimum: 1, maximum: 8760 });
  });

  it('turns patterns with a message into readable CEL rules', () => {
    const tz = at(spec, 'timezone');
    expect(tz.pattern).toBeUndefined();
    expect(tz['x-kubernetes-validations']?.[0]).toEqual({
      rule: expect.stringMatching(/^self\.matches\(r'\^\(UTC\|/),
      message: 'must be an IANA time zone name such as Europe/Bucharest or UTC',
    });
    // a pattern containing a single quote is written as a double-quoted raw string
    expect(at(spec, 'integrations.email.ingestAddress')['x-kubernetes-validations']?.[0]?.rule).toMatch(
      /^self\.matches\(r"/,
    );
  });

  it('carries the transition rules', () => {
    expect(at(spec, 'kafka.partitions')['x-kubernetes-validations']?.[0]?.rule).toBe('self >= oldSelf');
    expect(at(spec, 'isolation.database')['x-kubernetes-validations']?.[0]?.rule).toBe('self == oldSelf');
    expect(at(spec, 'isolation.agent')['x-kubernetes-validations']?.[0]?.rule).toBe(
      "!(oldSelf == 'dedicated' && self == 'shared')",
    );
  });

  it('makes agent.tools lists sets of catalogue names, bounded', () => {
    for (const list of ['allow', 'deny', 'untrustedAllow']) {
      const node = at(spec, `agent.tools.${list}`);
      expect(node['x-kubernetes-list-type'], list).toBe('set');
      expect(node.maxItems, list).toBe(LIMITS.toolsMaxItems);
      expect(node.maxItems, list).toBeGreaterThanOrEqual(AGENT_TOOL_NAMES.length);
    }
    expect(at(spec, 'agent.tools.allow.[*]').enum).toEqual([...AGENT_TOOL_NAMES]);
    expect(at(spec, 'agent.tools.deny.[*]').enum).toEqual([...AGENT_TOOL_NAMES]);
    expect(at(spec, 'agent.tools.untrustedAllow.[*]').enum).toEqual([...SIDE_EFFECT_TOOLS]);
    expect(at(spec, 'agent.tools').default).toBeUndefined();
    // one business-type rule per type on the spec, naming that type's tools
    const rules = spec['x-kubernetes-validations'] ?? [];
    for (const [type, names] of Object.entries(AGENT_TOOLS_BY_BUSINESS_TYPE)) {
      const rule = rules.find((r) => r.rule.startsWith(`self.businessType != '${type}'`));
      expect(rule?.message, type).toBe(
        `agent.tools may name only tools of a ${type} assistant: ${[...names].sort().join(', ')}`,
      );
    }
  });

  it('makes unique lists sets and conditions a map keyed by type', () => {
    expect(at(spec, 'frontend.origins')['x-kubernetes-list-type']).toBe('set');
    expect(at(spec, 'frontend.redirectURIs')['x-kubernetes-list-type']).toBe('set');
    expect(at(schema, 'status.conditions')).toMatchObject({
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    });
    expect(at(schema, 'status.conditions.[*]').required).toEqual([
      'type',
      'status',
      'reason',
      'message',
      'lastTransitionTime',
    ]);
  });
});

describe('toStructuralSchema', () => {
  it('refuses what a CRD cannot express', () => {
    expect(() => toStructuralSchema(Type.Union([Type.String(), Type.Integer()]))).toThrow(
      /unions of string literals/,
    );
    expect(() =>
      toStructuralSchema(
        Type.Intersect([Type.Object({ a: Type.String() }), Type.Object({ b: Type.String() })]),
      ),
    ).toThrow(/allOf/);
    expect(() => toStructuralSchema(Type.Record(Type.String(), Type.String()))).toThrow(/patternProperties/);
    expect(() => toStructuralSchema(Type.Any())).toThrow(/needs a type/);
    expect(() => toStructuralSchema(Type.Array(Type.Object({}), { uniqueItems: true }))).toThrow(
      /list-type: map/,
    );
  });

  it('names the path of the offending keyword', () => {
    expect(() => toStructuralSchema(Type.Object({ a: Type.Object({ b: Type.Not(Type.String()) }) }))).toThrow(
      /^\$\.a\.b: /,
    );
  });

  it('drops additionalProperties: false and TypeBox symbols', () => {
    const out = toStructuralSchema(
      Type.Object({ a: Type.String() }, { additionalProperties: false, $id: 'X' }),
    );
    expect(out).toEqual({ type: 'object', properties: { a: { type: 'string' } }, required: ['a'] });
    expect(Object.getOwnPropertySymbols(out)).toEqual([]);
  });
});

describe('tenant CRD', () => {
  const crd = tenantCRD();
  const version = (crd.spec.versions as Record<string, unknown>[])[0]!;

  it('names the resource as DESIGN §3 says', () => {
    expect(crd.metadata.name).toBe('tenants.simptu.io');
    expect(crd.spec).toMatchObject({
      group: 'simptu.io',
      scope: 'Cluster',
      names: { kind: 'Tenant', plural: 'tenants', singular: 'tenant', shortNames: ['tn'] },
    });
    expect(version).toMatchObject({
      name: 'v1alpha1',
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });

  it('has the printer columns', () => {
    const cols = (version.additionalPrinterColumns as { name: string; jsonPath: string; priority?: number }[])
      .filter((c) => !c.priority)
      .map((c) => [c.name, c.jsonPath]);
    expect(cols).toEqual([
      ['Type', '.spec.businessType'],
      ['Phase', '.status.phase'],
      ['Ready', '.status.conditions[?(@.type=="Ready")].status'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });
});

describe('deletion protection policy', () => {
  it('denies DELETE of protected tenants', () => {
    const policy = deletionProtectionPolicy();
    expect(policy.spec).toMatchObject({
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [{ apiGroups: ['simptu.io'], operations: ['DELETE'], resources: ['tenants'] }],
      },
      validations: [{ expression: expect.stringContaining('oldObject.spec.deletionProtection != true') }],
    });
    expect(deletionProtectionBinding().spec).toEqual({
      policyName: policy.metadata.name,
      validationActions: ['Deny'],
    });
  });
});

describe('generated files', () => {
  const root = resolve(import.meta.dirname, '../../..');
  const files = renderManifests();

  it('are deterministic', () => {
    expect(renderManifests()).toEqual(files);
  });

  it.each([CRD_FILE, POLICY_FILE])('%s is up to date (run make manifests)', (file) => {
    expect(readFileSync(resolve(root, file), 'utf8')).toBe(files.get(file));
  });

  it('parse back to the built objects', () => {
    const docs = (file: string) => parseAllDocuments(files.get(file)!).map((d) => d.toJS());
    expect(docs(CRD_FILE)).toEqual([tenantCRD()]);
    expect(docs(POLICY_FILE)).toEqual([deletionProtectionPolicy(), deletionProtectionBinding()]);
    expect(files.get(CRD_FILE)).toMatch(/^# generated — do not edit; run make manifests/);
  });
});
