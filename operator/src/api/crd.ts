/**
 * Builds the Tenant CustomResourceDefinition and the deletion-protection admission policy from the
 * TypeBox schemas in `schema.ts` (kubebuilder's `controller-gen crd`, for TypeScript). The output is
 * plain JSON, exactly what goes into `crds/*.yaml` (`make manifests`).
 *
 * @see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
 */
import { stringify } from 'yaml';
import { TENANT_NAME_MAX, TENANT_NAME_MIN, TENANT_NAME_PATTERN } from '@simptu/common';
import { TenantSpecSchema, TenantStatusSchema } from './schema.ts';
import type { CelRule } from './schema.ts';
import { GROUP, KIND, PLURAL, VERSION } from './types.ts';

export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const SINGULAR = 'tenant';
export const SHORT_NAMES = ['tn'];
export const DELETION_PROTECTION_POLICY = 'simptu-tenant-deletion-protection';

/** An OpenAPI v3 schema as a CRD carries it (apiextensions.k8s.io/v1 JSONSchemaProps, JSON spelling). */
export interface JSONSchemaProps {
  description?: string;
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  format?: string;
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  items?: JSONSchemaProps;
  properties?: Record<string, JSONSchemaProps>;
  additionalProperties?: JSONSchemaProps;
  required?: string[];
  nullable?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-validations'?: CelRule[];
}

/** Keywords copied as they are (after the type-specific handling below). */
const COPIED = [
  'description',
  'format',
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
  'nullable',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-preserve-unknown-fields',
] as const;
/** Keywords consumed by the conversion itself. */
const HANDLED = new Set([
  'x-kubernetes-validations',
  'patternMessage',
  'type',
  'properties',
  'required',
  'items',
  'additionalProperties',
  'anyOf',
  'const',
  'uniqueItems',
]);
/** JSON Schema keywords TypeBox may emit that a CRD has no use for. */
const DROPPED = new Set(['$id', '$schema', 'title']);

/**
 * Converts a TypeBox (JSON Schema) schema to a structural schema the API server accepts:
 * - a union of string literals becomes `type: string` + `enum`; a literal becomes a one-value enum;
 * - `uniqueItems: true` (forbidden in CRDs: quadratic) becomes `x-kubernetes-list-type: set`;
 * - `additionalProperties: false` is dropped (forbidden in structural schemas; pruning applies);
 * - a property with a `default` is removed from its parent's `required`, so admins may omit it;
 * - TypeBox's symbol keys vanish (only string keys are read).
 * Anything else the API server would not accept (allOf, oneOf, not, patternProperties, …) throws,
 * naming the path, so an unsupported construct fails `make manifests` instead of the install.
 * @see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
 */
export function toStructuralSchema(schema: object, path = '$'): JSONSchemaProps {
  const s = schema as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!HANDLED.has(key) && !DROPPED.has(key) && !(COPIED as readonly string[]).includes(key)) {
      throw new Error(`${path}: keyword ${JSON.stringify(key)} is not supported in a CRD schema`);
    }
  }
  const out: JSONSchemaProps = {};
  if (Array.isArray(s.anyOf)) {
    const values = s.anyOf.map((branch: Record<string, unknown>) => branch.const);
    if (!values.every((v) => typeof v === 'string')) {
      throw new Error(`${path}: only unions of string literals are supported (they become an enum)`);
    }
    out.type = 'string';
    out.enum = values;
  } else if ('const' in s) {
    out.type = typeOfValue(s.const, path);
    out.enum = [s.const];
  } else {
    if (typeof s.type !== 'string') throw new Error(`${path}: every schema needs a type (structural schema)`);
    out.type = s.type as JSONSchemaProps['type'];
  }
  for (const key of COPIED) {
    if (s[key] !== undefined) (out as Record<string, unknown>)[key] = structuredClone(s[key]);
  }
  if (out.type === 'array') {
    if (typeof s.items !== 'object' || s.items === null) throw new Error(`${path}: array without items`);
    out.items = toStructuralSchema(s.items, `${path}[*]`);
    if (s.uniqueItems === true) {
      if (out.items.type === 'object' || out.items.type === 'array') {
        throw new Error(`${path}: uniqueItems on a list of non-scalars; use x-kubernetes-list-type: map`);
      }
      out['x-kubernetes-list-type'] ??= 'set';
    }
  }
  if (out.type === 'object') {
    const props = (s.properties ?? {}) as Record<string, object>;
    if (Object.keys(props).length > 0) {
      out.properties = {};
      for (const [name, prop] of Object.entries(props)) {
        out.properties[name] = toStructuralSchema(prop, `${path}.${name}`);
      }
      const required = ((s.required ?? []) as string[]).filter(
        (name) => out.properties?.[name]?.default === undefined,
      );
      if (required.length > 0) out.required = required;
    }
    if (typeof s.additionalProperties === 'object' && s.additionalProperties !== null) {
      if (out.properties)
        throw new Error(`${path}: properties and additionalProperties are mutually exclusive`);
      out.additionalProperties = toStructuralSchema(s.additionalProperties, `${path}.*`);
    }
  }
  // Last, so that a field's rules read after the shape they constrain.
  const rules: CelRule[] = [];
  if (typeof s.patternMessage === 'string') {
    if (typeof out.pattern !== 'string') throw new Error(`${path}: patternMessage without pattern`);
    rules.push({ rule: `self.matches(${celRawString(out.pattern, path)})`, message: s.patternMessage });
    delete out.pattern;
  }
  if (Array.isArray(s['x-kubernetes-validations']))
    rules.push(...structuredClone(s['x-kubernetes-validations'] as CelRule[]));
  if (rules.length > 0) out['x-kubernetes-validations'] = rules;
  return out;
}

/** A CEL raw string literal (no escape processing), so a regular expression reads as written. */
function celRawString(text: string, path: string): string {
  if (!text.includes("'")) return `r'${text}'`;
  if (!text.includes('"')) return `r"${text}"`;
  throw new Error(`${path}: pattern contains both quote characters; cannot write it as a CEL raw string`);
}

function typeOfValue(v: unknown, path: string): JSONSchemaProps['type'] {
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number':
      return Number.isInteger(v) ? 'integer' : 'number';
    default:
      throw new Error(`${path}: unsupported literal ${JSON.stringify(v)}`);
  }
}

/**
 * Rules on the whole object: the only place CEL can see `metadata.name`. The API server already
 * insists on a DNS subdomain (≤ 253, dots allowed); a tenant name also becomes part of a namespace
 * (`tenant-<name>`, ≤ 63), Postgres identifiers (`t_<name>`, ≤ 63) and topic names, hence the
 * stricter DNS label of 3–40 characters (DESIGN §3).
 */
export const NAME_RULES: CelRule[] = [
  {
    rule: `self.metadata.name.size() >= ${TENANT_NAME_MIN} && self.metadata.name.size() <= ${TENANT_NAME_MAX}`,
    message: `metadata.name must be ${TENANT_NAME_MIN} to ${TENANT_NAME_MAX} characters long (it becomes part of namespace, database and topic names)`,
  },
  {
    rule: `self.metadata.name.matches('${TENANT_NAME_PATTERN}')`,
    message:
      "metadata.name must be a DNS label: lowercase letters, digits and '-', starting with a letter and " +
      'ending with a letter or digit',
  },
];

/** The `openAPIV3Schema` of the Tenant CRD. */
export function tenantOpenAPISchema(): JSONSchemaProps {
  return {
    description:
      'Tenant is one business (a dental clinic, a gym, a hotel) served by the Simptu platform. The operator ' +
      'provisions its namespace, encryption key, database, Kafka topics, agent and registry entry.',
    type: 'object',
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion of this representation: simptu.io/v1alpha1.' },
      kind: { type: 'string', description: 'Kind: Tenant.' },
      metadata: { type: 'object' },
      spec: toStructuralSchema(TenantSpecSchema, '$.spec'),
      status: toStructuralSchema(TenantStatusSchema, '$.status'),
    },
    required: ['spec'],
    'x-kubernetes-validations': structuredClone(NAME_RULES),
  };
}

/** JSON manifests, as written to YAML. Only what these builders produce is typed. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}

const LABELS = { 'app.kubernetes.io/part-of': 'simptu', 'app.kubernetes.io/component': 'tenant-api' };

/** The `tenants.simptu.io` CustomResourceDefinition. */
export function tenantCRD(): Manifest {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD_NAME, labels: { ...LABELS } },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
      },
      scope: 'Cluster',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          // @see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns
          additionalPrinterColumns: [
            { name: 'Type', type: 'string', jsonPath: '.spec.businessType', description: 'Business type' },
            { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Lifecycle phase' },
            {
              name: 'Ready',
              type: 'string',
              jsonPath: '.status.conditions[?(@.type=="Ready")].status',
              description: 'Status of the Ready condition',
            },
            { name: 'Database', type: 'string', jsonPath: '.spec.isolation.database', priority: 1 },
            { name: 'Agent', type: 'string', jsonPath: '.spec.isolation.agent', priority: 1 },
            { name: 'Suspended', type: 'boolean', jsonPath: '.spec.suspended', priority: 1 },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: tenantOpenAPISchema() },
        },
      ],
    },
  };
}

/**
 * Refuses DELETE of a Tenant whose `spec.deletionProtection` is true. An admission policy rather
 * than a finalizer or a webhook: it works while the operator is down or uninstalled, and needs no
 * server of its own. DELETE of a collection is admitted per item, so `kubectl delete tn --all`
 * is covered too.
 * @see https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/
 */
export function deletionProtectionPolicy(): Manifest {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: DELETION_PROTECTION_POLICY, labels: { ...LABELS } },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [
          { apiGroups: [GROUP], apiVersions: ['*'], operations: ['DELETE'], resources: [PLURAL] },
        ],
      },
      validations: [
        {
          expression: '!has(oldObject.spec.deletionProtection) || oldObject.spec.deletionProtection != true',
          messageExpression:
            "'tenant ' + oldObject.metadata.name + ' has deletionProtection: true; set it to false first'",
          message: 'the tenant has deletionProtection: true; set it to false first',
          reason: 'Forbidden',
        },
      ],
    },
  };
}

export function deletionProtectionBinding(): Manifest {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: DELETION_PROTECTION_POLICY, labels: { ...LABELS } },
    spec: { policyName: DELETION_PROTECTION_POLICY, validationActions: ['Deny'] },
  };
}

/** Where `make manifests` writes each file, relative to the repository root. */
export const CRD_FILE = 'crds/simptu.io_tenants.yaml';
export const POLICY_FILE = 'crds/tenant-deletion-protection.yaml';

const HEADER = '# generated — do not edit; run make manifests (source: operator/src/api/schema.ts, crd.ts)\n';

/** Deterministic YAML: insertion order, no line folding, so regeneration is byte-stable. */
function toYaml(docs: Manifest[]): string {
  return HEADER + docs.map((d) => '---\n' + stringify(d, { lineWidth: 0, minContentWidth: 0 })).join('');
}

/** Every generated file: path relative to the repository root → content. */
export function renderManifests(): Map<string, string> {
  return new Map([
    [CRD_FILE, toYaml([tenantCRD()])],
    [POLICY_FILE, toYaml([deletionProtectionPolicy(), deletionProtectionBinding()])],
  ]);
}
