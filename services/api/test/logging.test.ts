/**
 * Lazy per-request child loggers (src/logging.ts): the same lines as pino's own children, and no
 * child (no redaction work) until something is logged at an enabled level.
 */
import { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { describe, expect, it } from 'vitest';
import { createLogger } from '@simptu/common';
import { lazyChild } from '../src/logging.ts';

function capture(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) {
        const { time: _time, ...rest } = JSON.parse(l) as Record<string, unknown>;
        lines.push(rest);
      }
      cb();
    },
  });
  const logger = createLogger({ service: 'api', level, destination }) as unknown as FastifyBaseLogger;
  // Counts children made (pino's children inherit this method: `this` is the parent).
  let children = 0;
  const original = logger.child;
  logger.child = function (this: FastifyBaseLogger, ...args: Parameters<FastifyBaseLogger['child']>) {
    children++;
    return original.apply(this, args);
  };
  return { logger, lines, children: () => children };
}

describe('lazyChild', () => {
  it('logs exactly what the eager child logs (bindings, redaction, levels)', () => {
    const eager = capture();
    const lazy = capture();
    const e = eager.logger.child({ reqId: 'r-1' }).child({ tenant: 'smile', principal: 'p-1' });
    const l = lazyChild(lazy.logger, { reqId: 'r-1' }).child({ tenant: 'smile', principal: 'p-1' });
    for (const log of [e, l]) {
      log.info({ body: 'secret text', n: 1 }, 'hello');
      log.debug('not at info');
      log.warn('careful');
      log.error({ err: new Error('boom') }, 'failed');
    }
    expect(lazy.lines).toEqual(eager.lines);
    expect(lazy.lines).toHaveLength(3);
    expect(lazy.lines[0]).toMatchObject({ reqId: 'r-1', tenant: 'smile', body: '[redacted]', msg: 'hello' });
  });

  it('creates no pino child until a line is logged at an enabled level, then only one', () => {
    const c = capture('warn');
    const log = lazyChild(c.logger, { reqId: 'r-2' }).child({ tenant: 't' });
    log.info('below the level');
    log.debug('below the level');
    expect(c.children()).toBe(0);
    expect(log.level).toBe('warn');
    log.warn('now');
    log.error('again');
    expect(c.children()).toBe(1);
    expect(c.lines.map((x) => x.msg)).toEqual(['now', 'again']);
    // a per-route level (fastify passes it as an option)
    const quiet = lazyChild(c.logger, { reqId: 'r-3' }, { level: 'error' });
    quiet.warn('hidden');
    expect(c.children()).toBe(1);
    quiet.level = 'info';
    quiet.info('shown');
    expect(c.lines.at(-1)).toMatchObject({ msg: 'shown', reqId: 'r-3' });
  });
});
