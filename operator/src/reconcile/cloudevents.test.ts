import { describe, it, expect } from 'vitest';
import {
  CLOUDEVENTS_CONTENT_TYPE,
  deterministicEventId,
  fromKafkaRecord,
  newCloudEvent,
  toKafkaRecord,
} from './cloudevents.ts';

describe('CloudEvents structured mode', () => {
  const time = new Date('2025-01-02T03:04:05.000Z');
  const ev = newCloudEvent({
    type: 'io.simptu.tenant.provisioned',
    tenant: 'smile-dental',
    subject: 'smile-dental',
    data: { a: 1 },
    time,
    id: 'e1',
  });

  it('builds a 1.0 event with the required and extension attributes', () => {
    expect(ev).toEqual({
      specversion: '1.0',
      id: 'e1',
      source: '/simptu/operator',
      type: 'io.simptu.tenant.provisioned',
      subject: 'smile-dental',
      time: '2025-01-02T03:04:05.000Z',
      datacontenttype: 'application/json',
      tenant: 'smile-dental',
      data: { a: 1 },
    });
    expect(newCloudEvent({ type: 't', tenant: 'x', data: null }).id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('encodes value = event JSON, content-type header, key = aggregate id, and round-trips', () => {
    const rec = toKafkaRecord(ev, 'smile-dental');
    expect(rec.key).toBe('smile-dental');
    expect(rec.headers).toEqual({ 'content-type': CLOUDEVENTS_CONTENT_TYPE });
    expect(JSON.parse(rec.value)).toEqual(ev);
    const back = fromKafkaRecord({
      value: Buffer.from(rec.value),
      headers: { 'content-type': Buffer.from(CLOUDEVENTS_CONTENT_TYPE) },
    });
    expect(back).toEqual({ ok: true, event: ev });
  });

  it.each([
    [{ value: '{}', headers: {} }, /content-type/],
    [{ value: 'not json', headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE } }, /not JSON/],
    [{ value: '[]', headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE } }, /object/],
    [
      { value: '{"specversion":"0.3"}', headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE } },
      /specversion/,
    ],
    [
      {
        value: '{"specversion":"1.0","id":"1","source":"/s","type":"t"}',
        headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE },
      },
      /tenant/,
    ],
    [
      {
        value: '{"specversion":"1.0","id":"1","source":"/s","type":"t","tenant":"x","time":"yesterday"}',
        headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE },
      },
      /time/,
    ],
    [{ value: null, headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE } }, /empty/],
  ])('rejects malformed records %#', (rec, err) => {
    const r = fromKafkaRecord(rec);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(err);
  });

  it('deterministic ids are stable, UUID-shaped and distinct per input', () => {
    const a = deterministicEventId('t', 'type', 'hash', 1);
    expect(a).toBe(deterministicEventId('t', 'type', 'hash', 1));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(deterministicEventId('t', 'type', 'hash', 2)).not.toBe(a);
  });
});
