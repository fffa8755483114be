/**
 * Tenant manifests the API server must refuse (and a few it must accept), shared by the offline
 * schema test (`src/api/schema.test.ts`) and the kube-apiserver test (`crd.test.ts`).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { API_VERSION, KIND } from '../../src/api/types.ts';

/**
 * A spec as the fixtures handle it: loosely typed on purpose, because they build manifests that
 * no correct type describes (missing required fields, wrong types, unknown fields).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type LooseSpec = Record<string, any>;

/** A manifest as an admin writes it: defaulted fields may be missing. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec: LooseSpec;
}

export const SAMPLES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../config/samples');

export function loadSamples(): { file: string; manifest: Manifest }[] {
  return readdirSync(SAMPLES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => ({ file, manifest: parse(readFileSync(join(SAMPLES_DIR, file), 'utf8')) as Manifest }));
}

/** The smallest valid Tenant: everything else is defaulted. */
export function minimalTenant(name: string): Manifest {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name },
    spec: { displayName: 'Case Study Clinic', businessType: 'dental' },
  };
}

export interface RefusedCase {
  title: string;
  /** The manifest to create, for a unique valid name (name cases replace it). */
  create: (name: string) => Manifest;
  /** When set, `create` must be accepted, and then this change (applied to the stored object) refused. */
  update?: (spec: LooseSpec) => void;
  /** A substring of the API server's message. */
  message: string;
  /** Also refused offline by `checkTenant` (a schema rule, not a CEL or transition rule). */
  offline: boolean;
  /** Send `fieldValidation=Strict`, as kubectl does by default. */
  strict?: boolean;
}

function withSpec(patch: (spec: LooseSpec) => void): (name: string) => Manifest {
  return (name) => {
    const m = minimalTenant(name);
    patch(m.spec);
    return m;
  };
}

function renamed(rename: (name: string) => string): (name: string) => Manifest {
  return (name) => minimalTenant(rename(name));
}

const DEDICATED_AGENT = (s: LooseSpec) => {
  s.isolation = { agent: 'dedicated' };
};

export const REFUSED: RefusedCase[] = [
  // metadata.name (DESIGN §3: DNS label, 3–40)
  {
    title: 'name with uppercase letters',
    create: renamed((n) => `Tn-${n}`),
    message: 'RFC 1123',
    offline: true,
  },
  {
    title: 'name too short',
    create: renamed(() => 'ab'),
    message: 'must be 3 to 40 characters',
    offline: true,
  },
  {
    title: 'name too long (41)',
    create: renamed((n) => `${n}-${'x'.repeat(40 - n.length)}`),
    message: 'must be 3 to 40 characters',
    offline: true,
  },
  { title: 'name with a trailing dash', create: renamed((n) => `${n}-`), message: 'RFC 1123', offline: true },
  {
    title: 'name with a dot',
    create: renamed((n) => `a.${n}`),
    message: 'must be a DNS label',
    offline: true,
  },
  {
    title: 'name starting with a digit',
    create: renamed((n) => `9${n}`),
    message: 'must be a DNS label',
    offline: true,
  },
  // required fields and sizes
  {
    title: 'missing displayName',
    create: withSpec((s) => delete s.displayName),
    message: 'spec.displayName: Required value',
    offline: true,
  },
  {
    title: 'missing businessType',
    create: withSpec((s) => delete s.businessType),
    message: 'spec.businessType: Required value',
    offline: true,
  },
  {
    title: 'oversized displayName (101)',
    create: withSpec((s) => (s.displayName = 'D'.repeat(101))),
    message: 'spec.displayName: Too long',
    offline: true,
  },
  {
    title: 'oversized instructions (8001)',
    create: withSpec((s) => (s.agent = { instructions: 'i'.repeat(8001) })),
    message: 'spec.agent.instructions: Too long',
    offline: true,
  },
  // enums
  {
    title: 'unknown businessType',
    create: withSpec((s) => (s.businessType = 'spa')),
    message: 'Unsupported value: "spa"',
    offline: true,
  },
  {
    title: 'unknown model provider',
    create: withSpec((s) => (s.agent = { model: { provider: 'gemini', name: 'gemini-pro' } })),
    message: 'Unsupported value: "gemini"',
    offline: true,
  },
  {
    title: 'unknown deletionPolicy',
    create: withSpec((s) => (s.deletionPolicy = 'Destroy')),
    message: 'Unsupported value: "Destroy"',
    offline: true,
  },
  // numbers
  {
    title: 'negative replicas',
    create: withSpec((s) => {
      DEDICATED_AGENT(s);
      s.agent = { replicas: -1 };
    }),
    message: 'spec.agent.replicas in body should be greater than or equal to 0',
    offline: true,
  },
  {
    title: 'dedicated agent with 21 replicas',
    create: withSpec((s) => {
      DEDICATED_AGENT(s);
      s.agent = { replicas: 21 };
    }),
    message: 'spec.agent.replicas in body should be less than or equal to 20',
    offline: true,
  },
  {
    title: 'replicas on a shared agent',
    create: withSpec((s) => (s.agent = { replicas: 3 })),
    message: 'agent.replicas applies to a dedicated agent only',
    offline: false,
  },
  {
    title: 'zero partitions',
    create: withSpec((s) => (s.kafka = { partitions: 0 })),
    message: 'spec.kafka.partitions in body should be greater than or equal to 1',
    offline: true,
  },
  {
    title: 'retentionHours below range',
    create: withSpec((s) => (s.kafka = { retentionHours: 0 })),
    message: 'spec.kafka.retentionHours in body should be greater than or equal to 1',
    offline: true,
  },
  {
    title: 'retentionHours above range',
    create: withSpec((s) => (s.kafka = { retentionHours: 8761 })),
    message: 'spec.kafka.retentionHours in body should be less than or equal to 8760',
    offline: true,
  },
  {
    title: 'rotationDays zero',
    create: withSpec((s) => (s.encryption = { rotationDays: 0 })),
    message: 'spec.encryption.rotationDays in body should be greater than or equal to 1',
    offline: true,
  },
  // formats
  {
    title: 'bad timezone',
    create: withSpec((s) => (s.timezone = 'Mars/Olympus Mons')),
    message: 'must be an IANA time zone name',
    offline: true,
  },
  {
    title: 'bad locale',
    create: withSpec((s) => (s.locale = 'english')),
    message: 'must be a BCP 47 language tag',
    offline: true,
  },
  {
    title: 'origin with a path',
    create: withSpec((s) => (s.frontend = { origins: ['https://clinic.example/app'] })),
    message: 'must be an origin such as',
    offline: true,
  },
  {
    title: 'origin with another scheme',
    create: withSpec((s) => (s.frontend = { origins: ['ftp://clinic.example'] })),
    message: 'must be an origin such as',
    offline: true,
  },
  {
    title: 'duplicate origin',
    create: withSpec((s) => (s.frontend = { origins: ['https://clinic.example', 'https://clinic.example'] })),
    message: 'Duplicate value',
    offline: true,
  },
  {
    title: 'redirect URI over plain http',
    create: withSpec((s) => (s.frontend = { redirectURIs: ['http://clinic.example/callback'] })),
    message: 'must use https (http is allowed only for localhost)',
    offline: false,
  },
  {
    title: 'redirect URI with a fragment',
    create: withSpec((s) => (s.frontend = { redirectURIs: ['https://clinic.example/callback#x'] })),
    message: 'must be an absolute URI without a fragment',
    offline: true,
  },
  {
    title: 'relative redirect URI',
    create: withSpec((s) => (s.frontend = { redirectURIs: ['/callback'] })),
    message: 'must be an absolute URI without a fragment',
    offline: true,
  },
  {
    title: 'phone number not in E.164',
    create: withSpec(
      (s) =>
        (s.integrations = { twilio: { phoneNumber: '0712 345 678', credentialsSecretRef: { name: 'tw' } } }),
    ),
    message: 'must be a phone number in E.164 form',
    offline: true,
  },
  {
    title: 'bad ingest e-mail address',
    create: withSpec((s) => (s.integrations = { email: { ingestAddress: 'bookings at clinic.example' } })),
    message: 'must be an e-mail address',
    offline: true,
  },
  {
    title: 'non-numeric Meta page id',
    create: withSpec(
      (s) => (s.integrations = { meta: { pageId: 'harbor', credentialsSecretRef: { name: 'm' } } }),
    ),
    message: 'must be a numeric Meta Page id',
    offline: true,
  },
  {
    title: 'non-numeric WhatsApp phone number id',
    create: withSpec(
      (s) =>
        (s.integrations = {
          meta: { pageId: '123', whatsappPhoneNumberId: '+40712345678', credentialsSecretRef: { name: 'm' } },
        }),
    ),
    message: 'must be a numeric WhatsApp phone number id',
    offline: true,
  },
  {
    title: 'invalid Secret name',
    create: withSpec(
      (s) =>
        (s.integrations = {
          twilio: { phoneNumber: '+40712345678', credentialsSecretRef: { name: 'Twilio_Creds' } },
        }),
    ),
    message: 'must be a Secret name',
    offline: true,
  },
  {
    title: 'baseURL that is not a URL',
    create: withSpec(
      (s) => (s.agent = { model: { provider: 'openai', name: 'llama3', baseURL: 'llm.internal:8000/v1' } }),
    ),
    message: 'must be an http:// or https:// URL',
    offline: true,
  },
  // model provider rules (CEL)
  {
    title: 'non-builtin provider without a model name',
    create: withSpec((s) => (s.agent = { model: { provider: 'openai', secretRef: { name: 'openai' } } })),
    message: 'agent.model.name is required when agent.model.provider is not builtin',
    offline: false,
  },
  {
    title: 'anthropic without secretRef',
    create: withSpec((s) => (s.agent = { model: { provider: 'anthropic', name: 'claude-sonnet-4-5' } })),
    message: 'agent.model.secretRef is required for bedrock, openai and anthropic',
    offline: false,
  },
  {
    title: 'openai without secretRef nor baseURL',
    create: withSpec((s) => (s.agent = { model: { provider: 'openai', name: 'gpt-4o-mini' } })),
    message: 'agent.model.secretRef is required for bedrock, openai and anthropic',
    offline: false,
  },
  {
    title: 'builtin provider with a secretRef',
    create: withSpec((s) => (s.agent = { model: { provider: 'builtin', secretRef: { name: 'x' } } })),
    message: 'not used by the builtin provider',
    offline: false,
  },
  // agent.tools: names from the catalogue, sets, no contradictions, the business type's own tools
  {
    title: 'unknown tool',
    create: withSpec((s) => (s.agent = { tools: { allow: ['search_faq', 'teleport'] } })),
    message: 'Unsupported value: "teleport"',
    offline: true,
  },
  {
    title: 'duplicate tool',
    create: withSpec((s) => (s.agent = { tools: { deny: ['book_appointment', 'book_appointment'] } })),
    message: 'Duplicate value: "book_appointment"',
    offline: true,
  },
  {
    title: 'tool both allowed and denied',
    create: withSpec(
      (s) => (s.agent = { tools: { allow: ['search_faq', 'book_appointment'], deny: ['book_appointment'] } }),
    ),
    message: 'tool book_appointment is both in agent.tools.allow and agent.tools.deny',
    offline: false,
  },
  {
    title: 'tool denied by an edit while allowed',
    create: withSpec((s) => (s.agent = { tools: { allow: ['search_faq', 'book_appointment'] } })),
    update: (s) => (s.agent.tools.deny = ['book_appointment']),
    message: 'tool book_appointment is both in agent.tools.allow and agent.tools.deny',
    offline: false,
  },
  {
    title: 'untrustedAllow naming a tool without side effects',
    create: withSpec((s) => (s.agent = { tools: { untrustedAllow: ['search_faq'] } })),
    message: 'Unsupported value: "search_faq"',
    offline: true,
  },
  {
    title: 'untrustedAllow naming a denied tool',
    create: withSpec(
      (s) => (s.agent = { tools: { deny: ['send_message'], untrustedAllow: ['send_message'] } }),
    ),
    message: 'tool send_message is in agent.tools.untrustedAllow and in agent.tools.deny',
    offline: false,
  },
  {
    title: 'untrustedAllow outside allow',
    create: withSpec(
      (s) => (s.agent = { tools: { allow: ['search_faq'], untrustedAllow: ['identify_customer'] } }),
    ),
    message: 'tool identify_customer is in agent.tools.untrustedAllow but not in agent.tools.allow',
    offline: false,
  },
  {
    title: "a gym denying the dental booking tool (not one of the gym's tools)",
    create: withSpec((s) => {
      s.businessType = 'gym';
      s.agent = { tools: { deny: ['book_appointment'] } };
    }),
    message: 'agent.tools names book_appointment, which a gym assistant does not have',
    offline: false,
  },
  {
    title: 'a hotel allowing issue_access_code',
    create: withSpec((s) => {
      s.businessType = 'hotel';
      s.agent = { tools: { allow: ['search_faq', 'issue_access_code'] } };
    }),
    message: 'agent.tools names issue_access_code, which a hotel assistant does not have',
    offline: false,
  },
  // unknown fields: pruned by the schema, refused under fieldValidation=Strict (kubectl's default)
  {
    title: 'unknown field',
    create: withSpec((s) => (s.colour = 'teal')),
    message: 'unknown field "spec.colour"',
    offline: true,
    strict: true,
  },
  // transition rules (updates)
  {
    title: 'partitions decreased',
    create: withSpec((s) => (s.kafka = { partitions: 6 })),
    update: (s) => (s.kafka.partitions = 3),
    message: 'kafka.partitions may not decrease',
    offline: false,
  },
  {
    title: 'isolation.agent dedicated → shared',
    create: withSpec(DEDICATED_AGENT),
    update: (s) => (s.isolation.agent = 'shared'),
    message: 'isolation.agent may not change from dedicated to shared',
    offline: false,
  },
  {
    title: 'isolation.database dedicated → shared',
    create: withSpec((s) => (s.isolation = { database: 'dedicated' })),
    update: (s) => (s.isolation.database = 'shared'),
    message: 'isolation.database is immutable',
    offline: false,
  },
  {
    title: 'isolation.database shared → dedicated',
    create: withSpec(() => {}),
    update: (s) => (s.isolation.database = 'dedicated'),
    message: 'isolation.database is immutable',
    offline: false,
  },
];

export interface AcceptedCase {
  title: string;
  create: (name: string) => Manifest;
  update?: (spec: LooseSpec) => void;
}

/** Edge values that must pass, so the rules above are not simply too strict. */
export const ACCEPTED: AcceptedCase[] = [
  {
    title: 'Meta with a WhatsApp Cloud API number',
    create: withSpec(
      (s) =>
        (s.integrations = {
          meta: {
            pageId: '104857600012345',
            whatsappPhoneNumberId: '106540352242922',
            credentialsSecretRef: { name: 'meta' },
          },
        }),
    ),
  },
  {
    title: 'openai-compatible server without a key',
    create: withSpec(
      (s) =>
        (s.agent = {
          model: { provider: 'openai', name: 'llama3.1:8b', baseURL: 'http://127.0.0.1:11434/v1' },
        }),
    ),
  },
  {
    title: 'bedrock with a secret and an ARN model id',
    create: withSpec(
      (s) =>
        (s.agent = {
          model: {
            provider: 'bedrock',
            name: 'arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet-20240620-v1:0',
            secretRef: { name: 'bedrock-credentials', namespace: 'simptu-system' },
          },
        }),
    ),
  },
  {
    title: 'dedicated agent scaled to zero, limits at their maximum',
    create: withSpec((s) => {
      DEDICATED_AGENT(s);
      s.agent = { replicas: 0, instructions: 'i'.repeat(8000) };
      s.displayName = 'D'.repeat(100);
      s.kafka = { partitions: 100, retentionHours: 8760 };
      s.encryption = { rotationDays: 365 };
    }),
  },
  {
    title: 'locales, zones and loopback redirects',
    create: withSpec((s) => {
      s.locale = 'zh-Hant-TW';
      s.timezone = 'America/Argentina/Buenos_Aires';
      s.frontend = {
        origins: ['http://localhost:5173', 'http://127.0.0.1:8080', 'https://app.clinic.example'],
        redirectURIs: [
          'http://localhost:5173/callback',
          'https://app.clinic.example/cb?x=1',
          'io.simptu.app:/oauth2redirect',
        ],
      };
    }),
  },
  {
    title: 'partitions grow',
    create: withSpec((s) => (s.kafka = { partitions: 3 })),
    update: (s) => (s.kafka.partitions = 12),
  },
  {
    title: 'isolation.agent shared → dedicated, replicas set with it',
    create: withSpec(() => {}),
    update: (s) => {
      s.isolation.agent = 'dedicated';
      s.agent.replicas = 2;
    },
  },
  {
    title: 'tool policy: allow-list, deny-list and untrusted side effects of the tenant',
    create: withSpec(
      (s) =>
        (s.agent = {
          tools: {
            allow: ['search_faq', 'check_availability', 'book_appointment', 'identify_customer'],
            deny: ['send_message'],
            untrustedAllow: ['identify_customer'],
          },
        }),
    ),
    update: (s) => {
      s.agent.tools.allow = [];
      s.agent.tools.deny = ['book_appointment', 'send_message'];
    },
  },
  {
    title: 'tool policy of a gym, then of a hotel (names follow the business type)',
    create: withSpec((s) => {
      s.businessType = 'gym';
      s.agent = { tools: { deny: ['book_class'], untrustedAllow: ['cancel_class_booking'] } };
    }),
    update: (s) => {
      s.businessType = 'hotel';
      s.agent.tools = { deny: ['reserve_room'] };
    },
  },
  {
    title: 'name of exactly 40 characters',
    create: (name) => minimalTenant(`${name}-${'x'.repeat(39 - name.length)}`),
  },
];
