/**
 * The Tenant resource (DESIGN §4) as TypeBox schemas: the ONE typed source from which the CRD
 * (`crd.ts`, `make manifests`) is generated and against which manifests can be checked offline.
 *
 * Conventions used here:
 * - Fields the API server defaults are *required* in these schemas, so that `Static<…>` equals the
 *   types the reconcilers read (`types.ts`, where they are never undefined). `crd.ts` drops a field
 *   from `required` when it carries a `default`, so admins may omit it. To check a manifest
 *   offline, apply the defaults first: {@link checkTenant} does exactly that.
 * - Every string has a `maxLength` and every list a `maxItems`: the API server estimates the cost
 *   of each CEL rule from them and refuses a CRD whose rules could be too expensive.
 *   @see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#resource-use-by-validation-functions
 * - Patterns are written in the common subset of ECMAScript and RE2 (Go) syntax, because TypeBox
 *   checks them with JavaScript's RegExp and the API server with Go's regexp.
 * - `additionalProperties: false` makes offline checks strict; the CRD cannot carry it (structural
 *   schemas forbid it), and relies on pruning instead, which `kubectl` turns into an error
 *   ("unknown field") because it sends `fieldValidation=Strict` by default.
 * - Rules a schema cannot express are CEL rules (`x-kubernetes-validations`) kept beside the field
 *   they guard, so the message an admin reads is defined next to the field it talks about.
 *   @see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation-rules
 */
import { FormatRegistry, Type } from '@sinclair/typebox';
import type { SchemaOptions, Static, TLiteral, TUnion } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { TENANT_NAME_MAX, TENANT_NAME_MIN, TENANT_NAME_PATTERN } from '@simptu/common';
import { AGENT_TOOL_NAMES, AGENT_TOOLS_BY_BUSINESS_TYPE, SIDE_EFFECT_TOOLS } from './tools.ts';
import { API_VERSION, KIND } from './types.ts';
import type { Tenant, TenantSpec, TenantStatus } from './types.ts';

/** One `x-kubernetes-validations` entry. */
export interface CelRule {
  rule: string;
  message: string;
  /** A CEL string expression for the message (may name the offending value); `message` is the fallback. */
  messageExpression?: string;
  /** JSONPath relative to the field carrying the rule, reported as the failing field. */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

function cel(...rules: CelRule[]): { 'x-kubernetes-validations': CelRule[] } {
  return { 'x-kubernetes-validations': rules };
}

/**
 * A union of string literals. `crd.ts` turns it into `{type: string, enum: [...]}`.
 */
function StringEnum<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {},
): TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    options,
  ) as unknown as TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }>;
}

// The only formats used are those Kubernetes' OpenAPI validation knows too; TypeBox needs them
// registered to check values (an unregistered format fails every check).
// @see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#format
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (v) => RFC3339.test(v) && !Number.isNaN(Date.parse(v)));
}
if (!FormatRegistry.Has('int64')) FormatRegistry.Set('int64', () => true);

/**
 * A pattern plus the sentence an admin reads when a value does not match it. `crd.ts` turns the
 * pair into a CEL `self.matches(…)` rule with that message, because the API server's own pattern
 * error only prints the regular expression.
 */
function matching(pattern: string, patternMessage: string): { pattern: string; patternMessage: string } {
  return { pattern, patternMessage };
}

// ---------------------------------------------------------------------------------------------
// Patterns (ECMAScript ∩ RE2)

/** A DNS-1123 label (Kubernetes object names such as a Secret's namespace). */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** A DNS-1123 subdomain (Secret names). */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/**
 * BCP 47 language tag, the common shape: language, optional script, optional region, variants
 * (`en`, `en-US`, `ro-RO`, `zh-Hant-TW`, `de-CH-1996`). Private-use and extension subtags are
 * not accepted: no locale data exists for them anyway.
 * @see https://www.rfc-editor.org/rfc/rfc5646#section-2.1
 */
export const LOCALE_PATTERN =
  '^[a-zA-Z]{2,3}(-[a-zA-Z]{4})?(-([a-zA-Z]{2}|[0-9]{3}))?(-([a-zA-Z0-9]{5,8}|[0-9][a-zA-Z0-9]{3}))*$';
/**
 * An IANA time zone name (`UTC`, `Europe/Bucharest`, `America/Argentina/Buenos_Aires`,
 * `Etc/GMT+2`). Checked by shape: the zone database itself changes with every tzdata release.
 * @see https://data.iana.org/time-zones/tz-link.html
 */
export const TIMEZONE_PATTERN =
  '^(UTC|GMT|Etc/[A-Za-z0-9+-]{1,20}|[A-Z][A-Za-z_-]{1,30}(/[A-Za-z0-9_+-]{1,30}){1,2})$';
/** A browser Origin: scheme, host and optional port; no path, no trailing slash. */
export const ORIGIN_PATTERN =
  '^https?://([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|\\[[0-9a-f:.]+\\])(:[0-9]{1,5})?$';
/** An absolute URI without a fragment (RFC 6749 §3.1.2), custom schemes allowed for native apps. */
export const REDIRECT_URI_PATTERN = '^[a-zA-Z][a-zA-Z0-9+.-]*:[^\\s#]+$';
/** An http(s) URL. */
export const HTTP_URL_PATTERN = '^https?://[^\\s]+$';
/** E.164: `+`, country code, subscriber number, at most 15 digits in all. */
export const E164_PATTERN = '^\\+[1-9][0-9]{6,14}$';
/** A mailbox address (the practical subset of RFC 5321 that mail providers accept). */
export const EMAIL_PATTERN =
  "^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$";
/** A Meta (Facebook/Instagram) Page id: numeric. */
export const META_PAGE_ID_PATTERN = '^[0-9]{1,32}$';
/** A model id as providers spell them (`gpt-4o-mini`, `anthropic.claude-3-5-sonnet-20241022-v2:0`, ARNs). */
export const MODEL_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$';

// ---------------------------------------------------------------------------------------------
// Limits (also used by the docs and the tests)

export const LIMITS = {
  displayNameMaxLength: 100,
  instructionsMaxLength: 8000,
  replicasMax: 20,
  partitionsMax: 100,
  retentionHoursMax: 8760,
  rotationDaysMax: 365,
  originsMaxItems: 20,
  redirectURIsMaxItems: 20,
  /** each of agent.tools.allow, deny, untrustedAllow (a set of catalogue names, so never more) */
  toolsMaxItems: 50,
  toolNameMaxLength: 64,
} as const;

/**
 * Defaulted objects default to their complete value, not `{}`: the API server checks a default
 * against the CEL rules of its schema before nested defaults are applied (a `{}` default for
 * agent.model fails "no such key: provider"), and the full value reads better in `kubectl explain`.
 */
export const DEFAULTS = {
  locale: 'en-US',
  timezone: 'UTC',
  isolation: 'shared',
  replicas: 1,
  provider: 'builtin',
  partitions: 3,
  retentionHours: 168,
  rotationDays: 90,
  deletionPolicy: 'Retain',
} as const;

// ---------------------------------------------------------------------------------------------
// spec

export const BusinessTypeSchema = StringEnum(['dental', 'gym', 'hotel'], {
  description: 'What kind of business this is; selects the agent graph and its tools.',
});
function isolationModeSchema(options: SchemaOptions) {
  return StringEnum(['shared', 'dedicated'], { default: DEFAULTS.isolation, ...options });
}
export const ModelProviderSchema = StringEnum(['builtin', 'bedrock', 'openai', 'anthropic'], {
  description:
    'builtin: a deterministic scripted model for development and tests (not an LLM); bedrock, openai ' +
    '(or any OpenAI-compatible server) and anthropic: real models through LangChain.',
  default: DEFAULTS.provider,
});
export const DeletionPolicySchema = StringEnum(['Retain', 'Delete'], {
  description:
    "What happens to the tenant's data when the Tenant is deleted. Retain: keep database, topics and keys, " +
    "mark the tenant archived. Delete: drop the data and destroy the tenant's keys (crypto-shredding).",
  default: DEFAULTS.deletionPolicy,
});

/** A reference to a Secret; secrets are never inlined. */
export function secretRefSchema(description: string) {
  return Type.Object(
    {
      name: Type.String({
        minLength: 1,
        maxLength: 253,
        ...matching(DNS_SUBDOMAIN_PATTERN, "must be a Secret name: lowercase letters, digits, '-' and '.'"),
        description: 'Secret name.',
      }),
      namespace: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 63,
          ...matching(DNS_LABEL_PATTERN, "must be a namespace name: lowercase letters, digits and '-'"),
          description: 'Secret namespace. Defaults to the platform namespace (simptu-system).',
        }),
      ),
    },
    { additionalProperties: false, description },
  );
}

const ModelSchema = Type.Object(
  {
    provider: ModelProviderSchema,
    name: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        ...matching(
          MODEL_NAME_PATTERN,
          'must be a model id such as gpt-4o-mini (letters, digits and ._:/@+-)',
        ),
        description: 'Model id at the provider, e.g. gpt-4o-mini. Required unless provider is builtin.',
      }),
    ),
    baseURL: Type.Optional(
      Type.String({
        maxLength: 2048,
        ...matching(HTTP_URL_PATTERN, 'must be an http:// or https:// URL'),
        description: 'Endpoint override: an OpenAI-compatible server, a proxy, a regional Bedrock endpoint.',
        ...cel({ rule: 'isURL(self)', message: 'must be a valid http(s) URL' }),
      }),
    ),
    secretRef: Type.Optional(
      secretRefSchema(
        'Secret holding the provider credentials (e.g. key apiKey, or AWS credentials for bedrock).',
      ),
    ),
  },
  {
    additionalProperties: false,
    default: { provider: DEFAULTS.provider },
    description: 'The language model behind the agent.',
    ...cel(
      {
        rule: "self.provider == 'builtin' || has(self.name)",
        message:
          'agent.model.name is required when agent.model.provider is not builtin (e.g. name: gpt-4o-mini)',
        fieldPath: '.name',
        reason: 'FieldValueRequired',
      },
      {
        rule: "self.provider == 'builtin' || has(self.secretRef) || (self.provider == 'openai' && has(self.baseURL))",
        message:
          'agent.model.secretRef is required for bedrock, openai and anthropic (only openai with a baseURL, ' +
          'an OpenAI-compatible server, may omit it)',
        fieldPath: '.secretRef',
        reason: 'FieldValueRequired',
      },
      {
        rule: "self.provider != 'builtin' || (!has(self.baseURL) && !has(self.secretRef))",
        message:
          'agent.model.baseURL and agent.model.secretRef are not used by the builtin provider; remove them',
        reason: 'FieldValueForbidden',
      },
    ),
  },
);

const IsolationSchema = Type.Object(
  {
    database: isolationModeSchema({
      description:
        "shared: a schema in the platform database; dedicated: the tenant's own database. Immutable: the " +
        "operator does not move a tenant's data between databases.",
      ...cel({
        rule: 'self == oldSelf',
        message:
          "isolation.database is immutable: a tenant's data cannot be moved between the shared and a dedicated " +
          'database; create a new Tenant instead',
        reason: 'FieldValueForbidden',
      }),
    }),
    agent: isolationModeSchema({
      description:
        'shared: the pooled agent serves the tenant; dedicated: its own Deployment in the tenant namespace. ' +
        'May change from shared to dedicated, not back.',
      ...cel({
        rule: "!(oldSelf == 'dedicated' && self == 'shared')",
        message: 'isolation.agent may not change from dedicated to shared',
        reason: 'FieldValueForbidden',
      }),
    }),
  },
  {
    additionalProperties: false,
    default: { database: DEFAULTS.isolation, agent: DEFAULTS.isolation },
    description: 'Where the tenant runs: shared or dedicated resources.',
  },
);

function toolListSchema<const T extends readonly string[]>(names: T, description: string) {
  return Type.Array(StringEnum(names, { maxLength: LIMITS.toolNameMaxLength, description: 'A tool name.' }), {
    maxItems: LIMITS.toolsMaxItems,
    uniqueItems: true,
    description,
  });
}

/** `self` is the tools object; `a` and `b` name two of its lists. */
function disjoint(a: string, b: string, message: string, messageExpression: string): CelRule {
  return {
    rule: `!has(self.${a}) || !has(self.${b}) || !self.${a}.exists(t, t in self.${b})`,
    message,
    messageExpression,
    fieldPath: `.${b}`,
    reason: 'FieldValueInvalid',
  };
}

export const ToolPolicySchema = Type.Object(
  {
    allow: Type.Optional(
      toolListSchema(
        AGENT_TOOL_NAMES,
        "Only these tools. Empty or absent: every tool of the tenant's business type.",
      ),
    ),
    deny: Type.Optional(toolListSchema(AGENT_TOOL_NAMES, 'Never these tools (applied after allow).')),
    untrustedAllow: Type.Optional(
      toolListSchema(
        SIDE_EFFECT_TOOLS,
        'Tools that change data (book, cancel, send, …) and stay allowed while the agent handles ' +
          'untrusted input such as an e-mail. Absent: an e-mail can ask, never act; such calls are refused.',
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      "Per-tenant tool policy (guard rails). Names must be tools of the tenant's business type; see " +
      'docs/tenant-reference.md.',
    ...cel(
      disjoint(
        'allow',
        'deny',
        'a tool may not be both in agent.tools.allow and agent.tools.deny',
        "'tool ' + self.allow.filter(t, t in self.deny)[0] + ' is both in agent.tools.allow and agent.tools.deny; remove it from one of them'",
      ),
      disjoint(
        'untrustedAllow',
        'deny',
        'a tool in agent.tools.untrustedAllow may not be denied',
        "'tool ' + self.untrustedAllow.filter(t, t in self.deny)[0] + ' is in agent.tools.untrustedAllow and in agent.tools.deny; a denied tool is never allowed'",
      ),
      {
        rule:
          '!has(self.untrustedAllow) || !has(self.allow) || size(self.allow) == 0 || ' +
          'self.untrustedAllow.all(t, t in self.allow)',
        message:
          'every tool in agent.tools.untrustedAllow must also be in agent.tools.allow (when allow is set)',
        messageExpression:
          "'tool ' + self.untrustedAllow.filter(t, !(t in self.allow))[0] + ' is in agent.tools.untrustedAllow but not in agent.tools.allow'",
        fieldPath: '.untrustedAllow',
        reason: 'FieldValueInvalid',
      },
    ),
  },
);

/**
 * One rule per business type on the spec: agent.tools may name only that type's tools (a gym
 * denying `book_appointment` would deny nothing — its booking tool is `book_class`).
 */
function toolsOfBusinessTypeRules(): CelRule[] {
  return Object.entries(AGENT_TOOLS_BY_BUSINESS_TYPE).map(([type, names]) => {
    const sorted = [...names].sort();
    const known = `[${sorted.map((n) => `'${n}'`).join(', ')}]`;
    const list = (l: string) => `self.agent.tools.${l}`;
    const fits = (l: string) => `(!has(${list(l)}) || ${list(l)}.all(t, t in ${known}))`;
    const stranger = (l: string) => `${list(l)}.filter(t, !(t in ${known}))[0]`;
    return {
      rule: `self.businessType != '${type}' || !has(self.agent.tools) || (${fits('allow')} && ${fits('deny')} && ${fits('untrustedAllow')})`,
      message: `agent.tools may name only tools of a ${type} assistant: ${sorted.join(', ')}`,
      // Evaluated only when the rule failed: one of the three lists has a stranger.
      messageExpression:
        `'agent.tools names ' + (!${fits('allow')} ? ${stranger('allow')} : !${fits('deny')} ? ` +
        `${stranger('deny')} : ${stranger('untrustedAllow')}) + ', which a ${type} assistant does not ` +
        `have; its tools: ${sorted.join(', ')}'`,
      fieldPath: '.agent.tools',
      reason: 'FieldValueInvalid',
    };
  });
}

const AgentSchema = Type.Object(
  {
    replicas: Type.Integer({
      minimum: 0,
      maximum: LIMITS.replicasMax,
      default: DEFAULTS.replicas,
      description:
        'Pods of the dedicated agent Deployment (0 stops it). Only meaningful with isolation.agent: dedicated; ' +
        'must stay 1 for a shared agent, which the platform scales as a pool.',
    }),
    model: ModelSchema,
    instructions: Type.Optional(
      Type.String({
        maxLength: LIMITS.instructionsMaxLength,
        description: 'Persona and house rules added to the system prompt.',
      }),
    ),
    tools: Type.Optional(ToolPolicySchema),
  },
  {
    additionalProperties: false,
    default: { replicas: DEFAULTS.replicas, model: { provider: DEFAULTS.provider } },
    description: 'The AI agent serving this tenant.',
  },
);

const KafkaSchema = Type.Object(
  {
    partitions: Type.Integer({
      minimum: 1,
      maximum: LIMITS.partitionsMax,
      default: DEFAULTS.partitions,
      description: 'Partitions of each tenant topic. May grow, never shrink.',
      ...cel({
        rule: 'self >= oldSelf',
        message: 'kafka.partitions may not decrease (Kafka cannot remove partitions from a topic)',
        reason: 'FieldValueForbidden',
      }),
    }),
    retentionHours: Type.Integer({
      minimum: 1,
      maximum: LIMITS.retentionHoursMax,
      default: DEFAULTS.retentionHours,
      description: 'retention.ms of the tenant topics, in hours (1 hour to 365 days).',
    }),
  },
  {
    additionalProperties: false,
    default: { partitions: DEFAULTS.partitions, retentionHours: DEFAULTS.retentionHours },
    description: "The tenant's Kafka topics.",
  },
);

const EncryptionSchema = Type.Object(
  {
    rotationDays: Type.Integer({
      minimum: 1,
      maximum: LIMITS.rotationDaysMax,
      default: DEFAULTS.rotationDays,
      description: "Days between rotations of the tenant's data encryption key.",
    }),
  },
  {
    additionalProperties: false,
    default: { rotationDays: DEFAULTS.rotationDays },
    description: "Envelope encryption of the tenant's data.",
  },
);

const FrontendSchema = Type.Object(
  {
    origins: Type.Optional(
      Type.Array(
        Type.String({
          maxLength: 253,
          ...matching(
            ORIGIN_PATTERN,
            'must be an origin such as https://app.example.com or http://localhost:5173 (scheme, host and optional port; no path, no trailing slash)',
          ),
          description: 'e.g. https://smile-dental.example or http://localhost:5173',
        }),
        {
          maxItems: LIMITS.originsMaxItems,
          uniqueItems: true,
          description: 'Origins allowed to call the API and open the WebSocket hub (scheme://host[:port]).',
        },
      ),
    ),
    redirectURIs: Type.Optional(
      Type.Array(
        Type.String({
          maxLength: 2048,
          ...matching(
            REDIRECT_URI_PATTERN,
            'must be an absolute URI without a fragment, such as https://app.example.com/callback',
          ),
          ...cel(
            {
              rule:
                "!self.startsWith('http://') || " +
                "self.matches(r'^http://(localhost|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]{1,5})?(/|$)')",
              message: 'must use https (http is allowed only for localhost)',
            },
            {
              rule: "!self.startsWith('http') || isURL(self)",
              message: 'must be a valid absolute URL',
            },
          ),
        }),
        {
          maxItems: LIMITS.redirectURIsMaxItems,
          uniqueItems: true,
          description: "Redirect URIs of the tenant's SSO client (registered by the operator).",
        },
      ),
    ),
  },
  { additionalProperties: false, description: "Where this tenant's web apps live." },
);

const IntegrationsSchema = Type.Object(
  {
    twilio: Type.Optional(
      Type.Object(
        {
          phoneNumber: Type.String({
            maxLength: 16,
            ...matching(E164_PATTERN, 'must be a phone number in E.164 form, such as +40712345678'),
            description: 'The Twilio number in E.164 form, e.g. +40712345678.',
          }),
          credentialsSecretRef: secretRefSchema('Secret with accountSid and authToken.'),
        },
        { additionalProperties: false, description: 'SMS and WhatsApp through Twilio.' },
      ),
    ),
    meta: Type.Optional(
      Type.Object(
        {
          pageId: Type.String({
            maxLength: 32,
            ...matching(META_PAGE_ID_PATTERN, 'must be a numeric Meta Page id'),
            description: 'The numeric Page id.',
          }),
          whatsappPhoneNumberId: Type.Optional(
            Type.String({
              maxLength: 32,
              ...matching(META_PAGE_ID_PATTERN, 'must be a numeric WhatsApp phone number id'),
              description:
                'The numeric phone number id of a WhatsApp Cloud API number: inbound WhatsApp webhooks must carry it; replies are sent from it.',
            }),
          ),
          credentialsSecretRef: secretRefSchema(
            'Secret with pageAccessToken, appSecret and verifyToken (and whatsappAccessToken for WhatsApp).',
          ),
        },
        {
          additionalProperties: false,
          description: 'Messenger, Instagram and WhatsApp (Cloud API) through the Meta Graph API.',
        },
      ),
    ),
    email: Type.Optional(
      Type.Object(
        {
          ingestAddress: Type.String({
            maxLength: 254,
            ...matching(EMAIL_PATTERN, 'must be an e-mail address such as bookings@clinic.example'),
            description: 'Mailbox whose messages are routed to this tenant.',
          }),
        },
        { additionalProperties: false, description: 'Inbound e-mail.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'Messaging channels; all optional, secrets by reference only.',
  },
);

export const TenantSpecSchema = Type.Object(
  {
    displayName: Type.String({
      minLength: 1,
      maxLength: LIMITS.displayNameMaxLength,
      description: 'Name of the business as customers see it.',
    }),
    businessType: BusinessTypeSchema,
    locale: Type.String({
      maxLength: 35,
      ...matching(LOCALE_PATTERN, 'must be a BCP 47 language tag such as en-US or ro-RO'),
      default: DEFAULTS.locale,
      description: 'BCP 47 language tag the agent speaks and formats in, e.g. en-US, ro-RO.',
    }),
    timezone: Type.String({
      maxLength: 64,
      ...matching(TIMEZONE_PATTERN, 'must be an IANA time zone name such as Europe/Bucharest or UTC'),
      default: DEFAULTS.timezone,
      description: 'IANA time zone of the business, e.g. Europe/Bucharest.',
    }),
    isolation: IsolationSchema,
    agent: AgentSchema,
    kafka: KafkaSchema,
    encryption: EncryptionSchema,
    frontend: Type.Optional(FrontendSchema),
    integrations: Type.Optional(IntegrationsSchema),
    deletionPolicy: DeletionPolicySchema,
    deletionProtection: Type.Boolean({
      default: false,
      description: 'When true, the API server refuses to delete the Tenant (ValidatingAdmissionPolicy).',
    }),
    suspended: Type.Boolean({
      default: false,
      description:
        'When true, the tenant is kept (data, keys, topics) but not served; its phase becomes Suspended.',
    }),
  },
  {
    additionalProperties: false,
    description: 'TenantSpec: what the admin wants for this business.',
    ...cel(
      {
        rule: "self.isolation.agent == 'dedicated' || self.agent.replicas == 1",
        message:
          'agent.replicas applies to a dedicated agent only; leave it at 1 with isolation.agent: shared ' +
          '(the shared agent pool is scaled by the platform)',
        fieldPath: '.agent.replicas',
        reason: 'FieldValueForbidden',
      },
      ...toolsOfBusinessTypeRules(),
    ),
  },
);

// ---------------------------------------------------------------------------------------------
// status

/** metav1.Condition, with the same validation Kubernetes' own types carry. */
export const TenantConditionSchema = Type.Object(
  {
    type: Type.String({
      maxLength: 316,
      pattern:
        '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
    }),
    status: StringEnum(['True', 'False', 'Unknown']),
    reason: Type.String({
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
    }),
    message: Type.String({ maxLength: 32768 }),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, format: 'int64' })),
    lastTransitionTime: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);

export const TenantPhaseSchema = StringEnum(
  ['Pending', 'Provisioning', 'Ready', 'Degraded', 'Deleting', 'Suspended'],
  {
    description: 'A one-word summary for humans; code should read the conditions.',
  },
);

export const TenantStatusSchema = Type.Object(
  {
    phase: Type.Optional(TenantPhaseSchema),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, format: 'int64', description: 'The spec generation the status describes.' }),
    ),
    conditions: Type.Optional(
      Type.Array(TenantConditionSchema, {
        maxItems: 32,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
        description: 'One condition per backend (NamespaceReady, …) rolled up into Ready.',
      }),
    ),
    database: Type.Optional(
      Type.Object(
        {
          name: Type.String({ maxLength: 63, description: 'Database holding the tenant schema.' }),
          schema: Type.String({ maxLength: 63, description: 'The tenant schema, t_<name>.' }),
          schemaVersion: Type.Integer({
            minimum: 0,
            description: 'Latest migration applied to the tenant schema.',
          }),
        },
        { additionalProperties: false },
      ),
    ),
    encryption: Type.Optional(
      Type.Object(
        {
          activeKeyVersion: Type.Integer({
            minimum: 1,
            description: 'Version of the data key new data is encrypted with.',
          }),
          rotatedAt: Type.String({ format: 'date-time', description: 'When that version was created.' }),
        },
        { additionalProperties: false },
      ),
    ),
    topics: Type.Optional(
      Type.Array(Type.String({ maxLength: 249 }), {
        maxItems: 16,
        description: "The tenant's Kafka topics.",
      }),
    ),
    endpoints: Type.Optional(
      Type.Object(
        {
          api: Type.Optional(Type.String({ maxLength: 2048, description: 'REST API base URL.' })),
          websocket: Type.Optional(
            Type.String({ maxLength: 2048, description: 'WebSocket hub URL (Phoenix Channels).' }),
          ),
          issuer: Type.Optional(
            Type.String({ maxLength: 2048, description: 'OIDC issuer for this tenant.' }),
          ),
        },
        { additionalProperties: false, description: "Where the tenant's frontends connect." },
      ),
    ),
  },
  { additionalProperties: false, description: 'TenantStatus: what the operator observed.' },
);

// ---------------------------------------------------------------------------------------------
// the whole object (offline checks of manifests; the CRD root is built in crd.ts)

export const TenantSchema = Type.Object(
  {
    apiVersion: Type.Literal(API_VERSION),
    kind: Type.Literal(KIND),
    metadata: Type.Object(
      {
        name: Type.String({
          minLength: TENANT_NAME_MIN,
          maxLength: TENANT_NAME_MAX,
          pattern: TENANT_NAME_PATTERN,
        }),
      },
      { additionalProperties: true },
    ),
    spec: TenantSpecSchema,
    status: Type.Optional(TenantStatusSchema),
  },
  { additionalProperties: false },
);

// ---------------------------------------------------------------------------------------------
// compile-time proof that types.ts describes exactly these schemas

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Fails to compile (`true` is not assignable to `false`) when the two drift apart. */
function assertType<T extends true>(): T | undefined {
  return undefined;
}
assertType<Equals<Static<typeof TenantSpecSchema>, TenantSpec>>();
assertType<Equals<Static<typeof TenantStatusSchema>, TenantStatus>>();

// ---------------------------------------------------------------------------------------------
// offline checking

export type CheckResult = { ok: true; tenant: Tenant } | { ok: false; errors: string[] };

/**
 * Check a Tenant manifest the way the schema part of the API server would: apply the CRD defaults,
 * then validate. CEL rules are not evaluated here (the API server does that; see crd.test.ts).
 * The input is not modified.
 */
export function checkTenant(manifest: unknown): CheckResult {
  const candidate = Value.Default(TenantSchema, Value.Clone(manifest));
  if (Value.Check(TenantSchema, candidate)) return { ok: true, tenant: candidate as Tenant };
  return {
    ok: false,
    errors: [...Value.Errors(TenantSchema, candidate)].map((e) => `${e.path || '/'}: ${e.message}`),
  };
}
