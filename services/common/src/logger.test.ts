import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runWithContext } from './context.ts';
import { createLogger, REDACTED } from './logger.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, logger: createLogger({ service: 'test', level: 'debug', destination }) };
}

describe('logger', () => {
  it('adds tenant, request id and principal from the context', () => {
    const { lines, logger } = capture();
    logger.info('outside');
    runWithContext(
      {
        tenant: 'smile-dental',
        requestId: 'req-9',
        principal: { sub: 'user-1', roles: ['admin'], scope: [] },
      },
      () => logger.info({ bookingId: 'b1' }, 'inside'),
    );
    expect(lines[0]).toMatchObject({ service: 'test', msg: 'outside', level: 30 });
    expect(lines[0]!.time).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(lines[0]).not.toHaveProperty('tenant');
    expect(lines[1]).toMatchObject({
      tenant: 'smile-dental',
      requestId: 'req-9',
      principal: 'user-1',
      bookingId: 'b1',
      msg: 'inside',
    });
    expect(JSON.stringify(lines[1])).not.toContain('admin');
  });

  it('redacts credentials, personal data and message bodies at any of the first levels', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        req: { headers: { authorization: 'Bearer eyJsecret', cookie: 'sid=abc', 'user-agent': 'ua' } },
        password: 'hunter2',
        customer: { id: 'c1', phone: '+40712345678', email: 'ana@example.com', name: 'Ana Pop' },
        message: { id: 'm1', body: 'my tooth hurts' },
        chat: { last: { text: 'private words' } },
        tokens: { refreshToken: 'rt-secret' },
      },
      'request',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of [
      'eyJsecret',
      'sid=abc',
      'hunter2',
      '+40712345678',
      'ana@example.com',
      'Ana Pop',
      'my tooth hurts',
      'private words',
      'rt-secret',
    ])
      expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({
      req: { headers: { authorization: REDACTED, 'user-agent': 'ua' } },
      customer: { id: 'c1', phone: REDACTED },
      message: { id: 'm1', body: REDACTED },
    });
  });

  it('serializes errors with their stack', () => {
    const { lines, logger } = capture();
    logger.error({ err: new Error('kaput') }, 'failed');
    expect(lines[0]).toMatchObject({ err: { type: 'Error', message: 'kaput' } });
    expect((lines[0]!.err as { stack: string }).stack).toContain('kaput');
  });
});
