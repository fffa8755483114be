import { describe, expect, it } from 'vitest';
import { OutboundQueue } from './outbound.ts';
import type { Frame } from './protocol.ts';

/** A socket stand-in whose kernel buffer we control (the queue only reads these two members). */
class FakeSocket {
  bufferedAmount = 0;
  sent: unknown[][] = [];
  send(data: string) {
    this.sent.push(JSON.parse(data) as unknown[]);
  }
}

const token = (delta: string, seq: number, session = 's1'): Frame => ({
  joinRef: '1',
  ref: null,
  topic: `session:${session}`,
  event: 'agent.token',
  payload: { session_id: session, delta, seq, stream_seq: seq + 100 },
});

describe('OutboundQueue', () => {
  it('writes straight through while the socket keeps up', () => {
    const s = new FakeSocket();
    const q = new OutboundQueue(s, { onOverflow: () => undefined });
    q.push(token('a', 1));
    q.push(token('b', 2));
    expect(s.sent.map((f) => (f[4] as { delta: string }).delta)).toEqual(['a', 'b']);
  });

  it('sends a pre-encoded text as is, and queues and coalesces pre-encoded frames like any other', () => {
    const s = new FakeSocket();
    const q = new OutboundQueue(s, { highWaterBytes: 1000, onOverflow: () => undefined });
    const f = token('a', 1);
    q.push(f, JSON.stringify(['1', null, f.topic, f.event, { pre: 'encoded' }]));
    expect(s.sent[0]![4]).toEqual({ pre: 'encoded' });
    s.bufferedAmount = 5000;
    const b = token('b', 2);
    const c = token('c', 3);
    q.push(b, JSON.stringify([b.joinRef, null, b.topic, b.event, b.payload]));
    q.push(c, JSON.stringify([c.joinRef, null, c.topic, c.event, c.payload]));
    expect(q.queued).toBe(1);
    s.bufferedAmount = 0;
    q.flush();
    expect(s.sent[1]![4]).toMatchObject({ delta: 'bc', seq: 3, coalesced: 2 });
  });

  it('coalesces consecutive token deltas of a session while the buffer is high, keeping order', () => {
    const s = new FakeSocket();
    let coalesced = 0;
    const q = new OutboundQueue(s, {
      highWaterBytes: 1000,
      onOverflow: () => undefined,
      onCoalesced: (n) => (coalesced += n),
    });
    s.bufferedAmount = 5000;
    q.push(token('Hel', 1));
    q.push(token('lo', 2));
    q.push(token(' wo', 3));
    q.push({
      joinRef: '1',
      ref: null,
      topic: 'session:s1',
      event: 'agent.message',
      payload: { body: 'Hello wo' },
    });
    q.push(token('rld', 4));
    expect(s.sent).toHaveLength(0);
    s.bufferedAmount = 0;
    q.flush();
    expect(s.sent.map((f) => f[3])).toEqual(['agent.token', 'agent.message', 'agent.token']);
    expect(s.sent[0]![4]).toMatchObject({ delta: 'Hello wo', seq: 3, stream_seq: 103, coalesced: 3 });
    expect(s.sent[2]![4]).toMatchObject({ delta: 'rld', seq: 4 });
    expect(coalesced).toBe(2);
  });

  it('never merges deltas of different sessions', () => {
    const s = new FakeSocket();
    const q = new OutboundQueue(s, { highWaterBytes: 1000, onOverflow: () => undefined });
    s.bufferedAmount = 5000;
    q.push(token('a', 1, 's1'));
    q.push(token('b', 1, 's2'));
    expect(q.queued).toBe(2);
    q.close();
  });

  it('calls onOverflow once the bound is exceeded, and then drops everything', () => {
    const s = new FakeSocket();
    let overflows = 0;
    const q = new OutboundQueue(s, { highWaterBytes: 1024, maxBytes: 4096, onOverflow: () => overflows++ });
    s.bufferedAmount = 3000;
    for (let i = 0; i < 20; i++)
      q.push({
        joinRef: '1',
        ref: null,
        topic: 't',
        event: 'agent.message',
        payload: { body: 'x'.repeat(100), i },
      });
    expect(overflows).toBe(1);
    expect(q.queued).toBe(0);
    s.bufferedAmount = 0;
    q.flush();
    expect(s.sent).toHaveLength(0);
  });
});
