import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, replyFrame, tokenFromProtocols, AUTH_TOKEN_PREFIX } from './protocol.ts';

describe('decodeFrame', () => {
  it('decodes a V2 frame', () => {
    const r = decodeFrame('["1","2","session:x","phx_join",{"a":1}]', 1024);
    expect(r).toEqual({
      ok: true,
      frame: { joinRef: '1', ref: '2', topic: 'session:x', event: 'phx_join', payload: { a: 1 } },
    });
  });
  it('accepts null refs (heartbeats, broadcasts)', () => {
    expect(decodeFrame('[null,"5","phoenix","heartbeat",{}]', 1024).ok).toBe(true);
  });
  it.each([
    ['not json', 'not_json'],
    ['{"a":1}', 'not_array'],
    ['["1","2","t","e"]', 'bad_arity'],
    ['[1,"2","t","e",{}]', 'bad_join_ref'],
    ['["1",2,"t","e",{}]', 'bad_ref'],
    ['["1","2","","e",{}]', 'bad_topic'],
    ['["1","2","t",7,{}]', 'bad_event'],
    ['["1","2","t","e",[1]]', 'bad_payload'],
    ['["1","2","t","e",null]', 'bad_payload'],
  ])('refuses %s (%s)', (text, reason) => {
    expect(decodeFrame(text, 1024)).toMatchObject({ ok: false, reason });
  });
  it('keeps the ref and topic of a frame with a bad payload, to reply to it', () => {
    expect(decodeFrame('["1","9","session:x","message:send","str"]', 1024)).toMatchObject({
      ok: false,
      frame: { ref: '9', topic: 'session:x', joinRef: '1' },
    });
  });
  it('refuses frames over the size limit', () => {
    expect(decodeFrame(`["1","2","t","e",{"b":"${'x'.repeat(2000)}"}]`, 1024)).toMatchObject({
      ok: false,
      reason: 'too_large',
    });
  });
  it('round-trips with encodeFrame', () => {
    const f = replyFrame('1', '2', 't', 'ok', { x: 1 });
    expect(decodeFrame(encodeFrame(f), 1024)).toEqual({ ok: true, frame: f });
    expect(JSON.parse(encodeFrame(f))).toEqual([
      '1',
      '2',
      't',
      'phx_reply',
      { status: 'ok', response: { x: 1 } },
    ]);
  });
});

describe('tokenFromProtocols', () => {
  it('decodes the btoa form the phoenix client sends (padding stripped)', () => {
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.sig-_x';
    const enc = btoa(token).replace(/=/g, '');
    expect(tokenFromProtocols(['phoenix', `${AUTH_TOKEN_PREFIX}${enc}`])).toBe(token);
  });
  it('is undefined without the entry and empty for garbage', () => {
    expect(tokenFromProtocols(['phoenix'])).toBeUndefined();
    expect(tokenFromProtocols([`${AUTH_TOKEN_PREFIX}%%%`])).toBe('');
  });
});
