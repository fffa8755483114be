import { describe, expect, it } from 'vitest';
import { channelEventName, decryptBody, decryptStream, routeEvent } from './events.ts';

const SID = '3f2b8c1e-9d4a-4e2b-8f1a-2c3d4e5f6a7b';
const CID = '0b2b8c1e-9d4a-4e2b-8f1a-2c3d4e5f6a7b';

describe('routeEvent', () => {
  it('maps io.simptu.<area>.<event> to <area>.<event>', () => {
    expect(channelEventName('io.simptu.agent.token')).toBe('agent.token');
  });
  it('routes token deltas to the session only', () => {
    expect(
      routeEvent({ type: 'io.simptu.agent.token', data: { session_id: SID, delta: 'Hi', seq: 0 } }),
    ).toEqual({
      ok: true,
      routed: {
        event: 'agent.token',
        data: { session_id: SID, delta: 'Hi', seq: 0 },
        topics: [`session:${SID}`],
      },
    });
  });
  it('routes handoffs to the session and the staff lobby', () => {
    const r = routeEvent({
      type: 'io.simptu.agent.handoff',
      data: { session_id: SID, reason: 'asks for a human' },
    });
    expect(r.ok && r.routed.topics).toEqual([`session:${SID}`, 'staff:lobby']);
  });
  it('routes bookings to the lobby and the customer', () => {
    const r = routeEvent({ type: 'io.simptu.booking.created', data: { booking_id: 'b1', customer_id: CID } });
    expect(r.ok && r.routed.topics).toEqual(['staff:lobby', `user:${CID}`]);
  });
  it('routes new messages to the session and the customer', () => {
    const r = routeEvent({
      type: 'io.simptu.message.created',
      data: { session_id: SID, message_id: 'm1', seq: 1, role: 'user', body: 'x', customer_id: CID },
    });
    expect(r.ok && r.routed.topics).toEqual([`session:${SID}`, `user:${CID}`]);
  });
  it('drops unknown types and invalid payloads with a reason', () => {
    expect(routeEvent({ type: 'io.simptu.agent.unknown', data: {} })).toMatchObject({
      ok: false,
      reason: 'unknown_type',
    });
    expect(
      routeEvent({ type: 'io.simptu.agent.token', data: { session_id: SID, delta: 5, seq: 0 } }),
    ).toMatchObject({
      ok: false,
      reason: 'invalid_payload',
    });
    expect(
      routeEvent({ type: 'io.simptu.agent.token', data: { session_id: 'nope', delta: '', seq: 0 } }),
    ).toMatchObject({
      ok: false,
      reason: 'invalid_payload',
    });
    expect(routeEvent({ type: 'io.simptu.agent.token', data: null })).toMatchObject({
      ok: false,
      reason: 'invalid_payload',
    });
  });
});

describe('decryptBody', () => {
  it('replaces body_enc by body, or fails closed', () => {
    const d = { message_id: 'm1', body_enc: 'ENC' };
    expect(decryptBody(d, (t, id) => `${t}:${id}`)).toEqual({ message_id: 'm1', body: 'ENC:m1' });
    expect(
      decryptBody(d, () => {
        throw new Error('no');
      }),
    ).toBeUndefined();
    expect(decryptBody({ body: 'plain' }, () => 'x')).toEqual({ body: 'plain' });
  });
});

describe("the agent's stream events (docs/agent.md)", () => {
  const enc = (o: unknown) => `ENC(${JSON.stringify(o)})`;
  const dec = (t: string) => {
    const m = /^ENC\((.*)\)$/.exec(t);
    if (!m) throw new Error('does not decrypt');
    return m[1]!;
  };
  it('routes a token with payload_enc; one of delta and payload_enc is required', () => {
    const data = { session_id: SID, run_id: 'r1', seq: 1, payload_enc: enc({ text: 'Hi' }) };
    expect(routeEvent({ type: 'io.simptu.agent.token', data })).toMatchObject({ ok: true });
    expect(routeEvent({ type: 'io.simptu.agent.token', data: { session_id: SID, seq: 1 } })).toMatchObject({
      ok: false,
      reason: 'invalid_payload',
    });
    expect(
      routeEvent({ type: 'io.simptu.agent.tool_call', data: { session_id: SID, name: 'find_slots' } }),
    ).toMatchObject({ ok: false, reason: 'invalid_payload' });
  });
  it('decrypts payload_enc into delta / args / result and names tool_call_id call_id', () => {
    expect(
      decryptStream(
        'agent.token',
        { session_id: SID, run_id: 'r1', seq: 1, payload_enc: enc({ text: 'Hi' }) },
        dec,
      ),
    ).toEqual({ session_id: SID, run_id: 'r1', seq: 1, delta: 'Hi' });
    expect(
      decryptStream(
        'agent.tool_call',
        {
          session_id: SID,
          tool_call_id: 'c1',
          name: 'find_slots',
          payload_enc: enc({ args: { day: 'mon' } }),
        },
        dec,
      ),
    ).toEqual({ session_id: SID, call_id: 'c1', name: 'find_slots', args: { day: 'mon' } });
    expect(
      decryptStream(
        'agent.tool_result',
        { session_id: SID, tool_call_id: 'c1', ok: true, payload_enc: enc({ result: [1] }) },
        dec,
      ),
    ).toEqual({ session_id: SID, call_id: 'c1', ok: true, result: [1] });
    // in clear: unchanged; other events: unchanged
    expect(decryptStream('agent.token', { session_id: SID, delta: 'x', seq: 0 }, dec)).toEqual({
      session_id: SID,
      delta: 'x',
      seq: 0,
    });
    expect(decryptStream('booking.created', { booking_id: 'b', payload_enc: 'zz' }, dec)).toEqual({
      booking_id: 'b',
      payload_enc: 'zz',
    });
  });
  it('fails closed: not decryptable, not an object, a token without text', () => {
    const base = { session_id: SID, seq: 1 };
    expect(decryptStream('agent.token', { ...base, payload_enc: 'garbage' }, dec)).toBeUndefined();
    expect(decryptStream('agent.token', { ...base, payload_enc: enc([1]) }, dec)).toBeUndefined();
    expect(decryptStream('agent.token', { ...base, payload_enc: enc({ text: 5 }) }, dec)).toBeUndefined();
  });
});
