/**
 * CloudEvents 1.0 in the Kafka protocol binding, **structured content mode** (DESIGN §3: one
 * choice everywhere): the record value is the whole event as JSON, the `content-type` header is
 * `application/cloudevents+json; charset=UTF-8`, the record key is the conversation or
 * aggregate id. Every event carries the `tenant` extension attribute; we also copy it into a
 * `simptu-tenant` header so the tenant check at each hop doesn't depend on parsing the body.
 * Pure functions; decode returns a typed result, never throws.
 * @see https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md
 * @see https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/kafka-protocol-binding.md#33-structured-content-mode
 */
import { createHash, randomUUID } from 'node:crypto';
import { isValidTenantName } from '../names.ts';

export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json; charset=UTF-8';
export const TENANT_HEADER = 'simptu-tenant';

/** `io.simptu.<area>.<event>`, lower-case segments; `<event>` may itself be dotted (`token.delta`). */
export const EVENT_TYPE_RE = /^io\.simptu\.[a-z][a-z0-9-]*(\.[a-z][a-z0-9_-]*)+$/;

export interface CloudEvent<T = unknown> {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject?: string;
  time: string;
  datacontenttype: 'application/json';
  /** extension attribute (DESIGN §3): the tenant the event belongs to */
  tenant: string;
  data: T;
}

export interface NewCloudEvent<T> {
  type: string;
  /** URI-reference of the producer, e.g. `/simptu/api` */
  source: string;
  tenant: string;
  data: T;
  subject?: string;
  /** @default a random UUID; pass a deterministic id to make re-publication deduplicable */
  id?: string;
  /** @default now */
  time?: Date;
}

export class InvalidCloudEventError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCloudEventError';
  }
}

/** Builds an event; throws `InvalidCloudEventError` on a bad type or tenant (a programming error). */
export function newCloudEvent<T>(e: NewCloudEvent<T>): CloudEvent<T> {
  const event: CloudEvent<T> = {
    specversion: '1.0',
    id: e.id ?? randomUUID(),
    source: e.source,
    type: e.type,
    ...(e.subject !== undefined ? { subject: e.subject } : {}),
    time: (e.time ?? new Date()).toISOString(),
    datacontenttype: 'application/json',
    tenant: e.tenant,
    data: e.data,
  };
  const problem = validateCloudEvent(event as unknown as Record<string, unknown>);
  if (problem) throw new InvalidCloudEventError(problem);
  return event;
}

/**
 * A deterministic event id from its identifying parts: a re-publication after a crash carries
 * the same id, so consumers that remember processed ids apply it once.
 */
export function deterministicEventId(...parts: Array<string | number>): string {
  const h = createHash('sha256').update(parts.map(String).join('\n')).digest('hex');
  // UUID-shaped (version 8 = custom, RFC 9562 §5.8; variant 10xx).
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// RFC 3339 date-time, as CloudEvents requires for `time`.
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/** The first problem with an event's attributes, or undefined when it is valid. */
export function validateCloudEvent(e: Record<string, unknown>): string | undefined {
  if (e.specversion !== '1.0') return `specversion ${JSON.stringify(e.specversion)} is not 1.0`;
  for (const attr of ['id', 'source', 'type', 'tenant'] as const) {
    if (typeof e[attr] !== 'string' || e[attr] === '')
      return `attribute ${attr} missing or not a non-empty string`;
  }
  if (!EVENT_TYPE_RE.test(e.type as string))
    return `type ${JSON.stringify(e.type)} is not io.simptu.<area>.<event>`;
  if (!isValidTenantName(e.tenant as string))
    return `tenant ${JSON.stringify(e.tenant)} is not a valid tenant name`;
  if (typeof e.time !== 'string' || !RFC3339_RE.test(e.time) || Number.isNaN(Date.parse(e.time)))
    return 'attribute time missing or not an RFC 3339 timestamp';
  if (e.subject !== undefined && typeof e.subject !== 'string') return 'attribute subject is not a string';
  if (e.datacontenttype !== undefined && e.datacontenttype !== 'application/json')
    return `datacontenttype ${JSON.stringify(e.datacontenttype)} is not application/json`;
  if (!('data' in e)) return 'data missing';
  return undefined;
}

/** What kafkajs sends (`Message`) and what we decode from (`KafkaMessage`), in the shape both share. */
export interface KafkaRecord {
  key: string;
  value: string;
  headers: Record<string, string>;
}

/** Structured mode: value = the event, `content-type` + `simptu-tenant` headers, key = aggregate id. */
export function toKafkaRecord(event: CloudEvent, key: string): KafkaRecord {
  if (typeof key !== 'string' || key === '')
    throw new InvalidCloudEventError('record key must be a non-empty string');
  const problem = validateCloudEvent(event as unknown as Record<string, unknown>);
  if (problem) throw new InvalidCloudEventError(problem);
  return {
    key,
    value: JSON.stringify(event),
    headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE, [TENANT_HEADER]: event.tenant },
  };
}

export type DecodeResult =
  { ok: true; event: CloudEvent; key: string | undefined } | { ok: false; error: string };

export interface IncomingRecord {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, unknown>;
}

/**
 * Parses and validates a structured-mode record (value and headers as kafkajs gives them).
 * When the `simptu-tenant` header is present it must match the event's `tenant`.
 */
export function fromKafkaRecord(record: IncomingRecord): DecodeResult {
  const ct = headerString(record.headers?.['content-type']);
  if (ct === undefined || !ct.toLowerCase().startsWith('application/cloudevents+json')) {
    return {
      ok: false,
      error: `content-type ${JSON.stringify(ct ?? null)} is not application/cloudevents+json`,
    };
  }
  if (record.value === null || record.value.length === 0) return { ok: false, error: 'empty record value' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof record.value === 'string' ? record.value : record.value.toString('utf8'));
  } catch (err) {
    return { ok: false, error: `value is not JSON: ${(err as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { ok: false, error: 'value is not a JSON object' };
  const problem = validateCloudEvent(parsed as Record<string, unknown>);
  if (problem) return { ok: false, error: problem };
  const event = parsed as CloudEvent;
  const headerTenant = headerString(record.headers?.[TENANT_HEADER]);
  if (headerTenant !== undefined && headerTenant !== event.tenant)
    return {
      ok: false,
      error: `header ${TENANT_HEADER} ${JSON.stringify(headerTenant)} does not match the event tenant`,
    };
  const key =
    record.key == null
      ? undefined
      : typeof record.key === 'string'
        ? record.key
        : record.key.toString('utf8');
  return { ok: true, event, key };
}

export function headerString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v) && v.length > 0) return headerString(v[0]);
  return undefined;
}

/** The tenant a topic belongs to: `simptu.t.<name>.<kind>` → name; undefined for other topics. */
export function topicTenant(topic: string): string | undefined {
  const m = /^simptu\.t\.([^.]+)\.[a-z][a-z0-9-]*$/.exec(topic);
  return m && isValidTenantName(m[1]!) ? m[1] : undefined;
}
