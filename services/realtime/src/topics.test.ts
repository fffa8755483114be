import { describe, expect, it } from 'vitest';
import { decideJoin, parseTopic, topicKey } from './topics.ts';

const SID = '3f2b8c1e-9d4a-4e2b-8f1a-2c3d4e5f6a7b';

describe('topics', () => {
  it('parses the three topic kinds and nothing else', () => {
    expect(parseTopic(`session:${SID}`)).toEqual({ kind: 'session', id: SID });
    expect(parseTopic('staff:lobby')).toEqual({ kind: 'staff_lobby' });
    expect(parseTopic('user:abc')).toEqual({ kind: 'user', id: 'abc' });
    for (const t of [
      'session:nope',
      'staff:other',
      'user:',
      'room:lobby',
      'session:' + SID.toUpperCase(),
      'user:a/b',
    ])
      expect(parseTopic(t)).toBeUndefined();
  });
  it('keys by tenant, never by what the client says', () => {
    expect(topicKey('smile-dental', 'staff:lobby')).toBe('smile-dental/staff:lobby');
  });
  it('authorizes staff:lobby for staff roles only and user:<id> for that user only', () => {
    const customer = { sub: 'c1', roles: ['customer' as const] };
    const staff = { sub: 's1', roles: ['staff' as const] };
    expect(decideJoin({ kind: 'staff_lobby' }, customer)).toEqual({ allow: false, reason: 'unauthorized' });
    expect(decideJoin({ kind: 'staff_lobby' }, staff)).toEqual({ allow: true });
    expect(decideJoin({ kind: 'staff_lobby' }, { sub: 'o', roles: ['owner'] })).toEqual({ allow: true });
    expect(decideJoin({ kind: 'user', id: 'c1' }, customer)).toEqual({ allow: true });
    expect(decideJoin({ kind: 'user', id: 'c2' }, customer)).toEqual({
      allow: false,
      reason: 'unauthorized',
    });
    expect(decideJoin({ kind: 'user', id: 'c1' }, staff)).toEqual({ allow: false, reason: 'unauthorized' });
    expect(decideJoin({ kind: 'session', id: SID }, customer)).toEqual({
      check: 'session',
      id: SID,
      staff: false,
    });
    expect(decideJoin({ kind: 'session', id: SID }, staff)).toEqual({
      check: 'session',
      id: SID,
      staff: true,
    });
  });
});
