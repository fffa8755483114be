/**
 * CloudEvents 1.0 in the Kafka protocol binding, **structured content mode** (DESIGN §3: one
 * choice everywhere): the record value is the whole event as JSON, the `content-type` header is
 * `application/cloudevents+json; charset=UTF-8`, the record key is the aggregate id.
 * @see https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md
 * @see https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/kafka-protocol-binding.md#33-structured-content-mode
 */
import { createHash, randomUUID } from 'node:crypto';

export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json; charset=UTF-8';
export const OPERATOR_SOURCE = '/simptu/operator';

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
  tenant: string;
  data: T;
  source?: string;
  subject?: string;
  /** @default a random UUID; pass a deterministic id to make re-publication deduplicable */
  id?: string;
  /** @default now */
  time?: Date;
}

export function newCloudEvent<T>(e: NewCloudEvent<T>): CloudEvent<T> {
  return {
    specversion: '1.0',
    id: e.id ?? randomUUID(),
    source: e.source ?? OPERATOR_SOURCE,
    type: e.type,
    ...(e.subject !== undefined ? { subject: e.subject } : {}),
    time: (e.time ?? new Date()).toISOString(),
    datacontenttype: 'application/json',
    tenant: e.tenant,
    data: e.data,
  };
}

/**
 * A deterministic event id from its identifying parts: a re-publication after a crash carries
 * the same id, so consumers that remember processed ids apply it once.
 */
export function deterministicEventId(...parts: Array<string | number>): string {
  const h = createHash('sha256').update(parts.map(String).join('\n')).digest('hex');
  // UUID-shaped (version nibble 8 = custom, RFC 9562 §5.8) so tools expecting UUIDs are happy.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface KafkaRecord {
  key: string;
  value: string;
  headers: Record<string, string>;
}

/** Structured mode: value = the event, `content-type` header, key = the aggregate id. */
export function toKafkaRecord(event: CloudEvent, key: string): KafkaRecord {
  return { key, value: JSON.stringify(event), headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE } };
}

export type DecodeResult = { ok: true; event: CloudEvent } | { ok: false; error: string };

/** Parses and validates a structured-mode record (value as Buffer or string, headers as kafkajs gives them). */
export function fromKafkaRecord(record: {
  value: Buffer | string | null;
  headers?: Record<string, unknown>;
}): DecodeResult {
  const ct = headerString(record.headers?.['content-type']);
  if (ct === undefined || !ct.toLowerCase().startsWith('application/cloudevents+json')) {
    return {
      ok: false,
      error: `content-type ${JSON.stringify(ct ?? null)} is not application/cloudevents+json`,
    };
  }
  if (record.value === null) return { ok: false, error: 'empty record value' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof record.value === 'string' ? record.value : record.value.toString('utf8'));
  } catch (err) {
    return { ok: false, error: `value is not JSON: ${(err as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { ok: false, error: 'value is not a JSON object' };
  const e = parsed as Record<string, unknown>;
  if (e.specversion !== '1.0')
    return { ok: false, error: `specversion ${JSON.stringify(e.specversion)} is not 1.0` };
  for (const attr of ['id', 'source', 'type', 'tenant'] as const) {
    if (typeof e[attr] !== 'string' || e[attr] === '')
      return { ok: false, error: `attribute ${attr} missing or not a non-empty string` };
  }
  if (e.time !== undefined && (typeof e.time !== 'string' || Number.isNaN(Date.parse(e.time)))) {
    return { ok: false, error: 'attribute time is not an RFC 3339 timestamp' };
  }
  return { ok: true, event: e as unknown as CloudEvent };
}

function headerString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v) && v.length > 0) return headerString(v[0]);
  return undefined;
}
