import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FieldCipher, TenantKeyring } from '@simptu/common';
import { decodeEntry, encodeEntry, sealEntry, type EntryPayload } from './entry.ts';
import { streamLocation } from './events.ts';
import { topicKey } from './topics.ts';

const SID = '3f2b8c1e-9d4a-4e2b-8f1a-2c3d4e5f6a7b';
const OTHER_SID = '0b2b8c1e-9d4a-4e2b-8f1a-2c3d4e5f6a7b';
const cipherOf = (tenant: string) => new FieldCipher(new TenantKeyring(tenant, [[1, randomBytes(32)]]));
const A = cipherOf('acme');
const B = cipherOf('other');
const keyA = topicKey('acme', `session:${SID}`);

/** An agent.token as services/agent writes it: the text encrypted, bound to the event id. */
function token(cipher: FieldCipher, text: string, id = randomUUID()): EntryPayload {
  return {
    event: 'agent.token',
    id,
    time: new Date().toISOString(),
    data: {
      session_id: SID,
      run_id: 'r1',
      seq: 3,
      payload_enc: cipher.encryptText(JSON.stringify({ text }), streamLocation(id)),
    },
  };
}

describe('stream entries', () => {
  it('stores the agent’s stream events sealed, as they came: no plaintext, decoded on delivery', () => {
    const p = token(A, 'secret words');
    const sealed = sealEntry(p)!;
    expect(sealed).toBeDefined();
    expect(sealed).not.toContain('secret');
    expect(decodeEntry(A, keyA, p.id, sealed)).toEqual({
      event: 'agent.token',
      id: p.id,
      time: p.time,
      data: { session_id: SID, run_id: 'r1', seq: 3, delta: 'secret words' },
    });
  });

  it('encrypts whatever has content in clear (clear deltas, bookings), bound to topic and event', () => {
    const clear: EntryPayload = {
      event: 'agent.token',
      id: randomUUID(),
      time: new Date().toISOString(),
      data: { session_id: SID, seq: 1, delta: 'in clear' },
    };
    expect(sealEntry(clear)).toBeUndefined();
    // payload_enc beside a clear delta: not sealed either (the delta would rest in clear)
    const both = token(A, 'x');
    both.data.delta = 'in clear';
    expect(sealEntry(both)).toBeUndefined();
    expect(
      sealEntry({ event: 'booking.created', id: randomUUID(), time: clear.time, data: { booking_id: 'b1' } }),
    ).toBeUndefined();
    const enc = encodeEntry(A, keyA, clear.id, clear);
    expect(enc).not.toContain('in clear');
    expect(decodeEntry(A, keyA, clear.id, enc)).toEqual(clear);
    expect(() => decodeEntry(A, topicKey('acme', `session:${OTHER_SID}`), clear.id, enc)).toThrow();
  });

  it('refuses a sealed entry copied to another topic, another event id or another tenant', () => {
    const p = token(A, 'hello');
    const sealed = sealEntry(p)!;
    // another session's topic of the same tenant (the event routes to its own session only)
    expect(() => decodeEntry(A, topicKey('acme', `session:${OTHER_SID}`), p.id, sealed)).toThrow();
    expect(() => decodeEntry(A, topicKey('acme', 'staff:lobby'), p.id, sealed)).toThrow();
    // stored under another event id
    expect(() => decodeEntry(A, keyA, randomUUID(), sealed)).toThrow();
    // the payload of another event pasted in (bound to that event's id)
    const other = token(A, 'copied');
    const pasted = JSON.stringify({ ...p, data: { ...p.data, payload_enc: other.data.payload_enc } });
    expect(() => decodeEntry(A, keyA, p.id, pasted)).toThrow();
    // another tenant's key
    expect(() => decodeEntry(B, topicKey('other', `session:${SID}`), p.id, sealed)).toThrow();
    // a hand-made "sealed" entry with the content in clear
    const forged = JSON.stringify({ ...p, data: { session_id: SID, seq: 1, delta: 'forged' } });
    expect(() => decodeEntry(A, keyA, p.id, forged)).toThrow();
  });
});
