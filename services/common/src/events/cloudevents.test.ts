import { describe, expect, it } from 'vitest';
import {
  CLOUDEVENTS_CONTENT_TYPE,
  deterministicEventId,
  fromKafkaRecord,
  InvalidCloudEventError,
  newCloudEvent,
  TENANT_HEADER,
  toKafkaRecord,
  topicTenant,
} from './cloudevents.ts';

const base = {
  type: 'io.simptu.booking.created',
  source: '/simptu/api',
  tenant: 'smile-dental',
  data: { bookingId: 'b1' },
};

describe('CloudEvents, Kafka structured mode', () => {
  it('round-trips an event: value is the JSON event, headers carry content-type and tenant', () => {
    const e = newCloudEvent({ ...base, subject: 'booking/b1', time: new Date('2025-01-02T03:04:05.678Z') });
    expect(e).toMatchObject({
      specversion: '1.0',
      datacontenttype: 'application/json',
      time: '2025-01-02T03:04:05.678Z',
    });
    const rec = toKafkaRecord(e, 'b1');
    expect(rec.key).toBe('b1');
    expect(rec.headers).toEqual({
      'content-type': CLOUDEVENTS_CONTENT_TYPE,
      [TENANT_HEADER]: 'smile-dental',
    });
    expect(JSON.parse(rec.value)).toEqual(e);
    // as kafkajs delivers it: Buffers everywhere
    const got = fromKafkaRecord({
      key: Buffer.from(rec.key),
      value: Buffer.from(rec.value),
      headers: {
        'content-type': Buffer.from(rec.headers['content-type']!),
        [TENANT_HEADER]: Buffer.from('smile-dental'),
      },
    });
    expect(got).toEqual({ ok: true, event: e, key: 'b1' });
  });

  it('refuses to build or encode invalid events', () => {
    expect(() => newCloudEvent({ ...base, type: 'booking.created' })).toThrow(InvalidCloudEventError);
    expect(() => newCloudEvent({ ...base, type: 'io.simptu.booking' })).toThrow(/io\.simptu/);
    expect(() => newCloudEvent({ ...base, tenant: 'Smile_Dental' })).toThrow(/tenant/);
    expect(() => newCloudEvent({ ...base, source: '' })).toThrow(/source/);
    expect(() => toKafkaRecord(newCloudEvent(base), '')).toThrow(/key/);
    expect(newCloudEvent({ ...base, type: 'io.simptu.agent.token.delta' }).type).toBe(
      'io.simptu.agent.token.delta',
    );
  });

  it('decodes defensively: every bad record is a typed failure, never a throw', () => {
    const good = JSON.parse(toKafkaRecord(newCloudEvent(base), 'k').value);
    const ct = { 'content-type': CLOUDEVENTS_CONTENT_TYPE };
    const bad: Array<[unknown, Record<string, unknown>, RegExp]> = [
      [good, {}, /content-type/],
      [good, { 'content-type': 'application/json' }, /content-type/],
      ['{not json', ct, /not JSON/],
      [[1, 2], ct, /JSON object/],
      [{ ...good, specversion: '0.3' }, ct, /specversion/],
      [{ ...good, id: '' }, ct, /id/],
      [{ ...good, type: 'com.example.thing' }, ct, /io\.simptu/],
      [{ ...good, tenant: undefined }, ct, /tenant/],
      [{ ...good, tenant: '../etc' }, ct, /tenant/],
      [{ ...good, time: 'yesterday' }, ct, /time/],
      [{ ...good, datacontenttype: 'text/xml' }, ct, /datacontenttype/],
      [{ ...good, data: undefined }, ct, /data/],
      [good, { ...ct, [TENANT_HEADER]: 'other-tenant' }, /does not match/],
    ];
    for (const [value, headers, re] of bad) {
      const v = typeof value === 'string' ? value : JSON.stringify(value);
      const r = fromKafkaRecord({ value: Buffer.from(v), headers });
      expect(r.ok, v).toBe(false);
      if (!r.ok) expect(r.error).toMatch(re);
    }
    expect(fromKafkaRecord({ value: null, headers: ct })).toMatchObject({ ok: false });
  });

  it('survives random garbage (cheap fuzz)', () => {
    for (let i = 0; i < 500; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (i % 64) }, () => Math.floor(Math.random() * 256)));
      expect(
        fromKafkaRecord({ value: bytes, headers: { 'content-type': CLOUDEVENTS_CONTENT_TYPE } }).ok,
      ).toBe(false);
    }
  });

  it('derives topic tenants and deterministic ids', () => {
    expect(topicTenant('simptu.t.smile-dental.domain')).toBe('smile-dental');
    expect(topicTenant('simptu.platform.tenants')).toBeUndefined();
    expect(topicTenant('simptu.t.x.domain')).toBeUndefined(); // too short a tenant name
    expect(topicTenant('simptu.t.smile-dental.domain.extra')).toBeUndefined();
    const id = deterministicEventId('smile-dental', 'provisioned', 3);
    expect(id).toBe(deterministicEventId('smile-dental', 'provisioned', 3));
    expect(id).not.toBe(deterministicEventId('smile-dental', 'provisioned', 4));
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
