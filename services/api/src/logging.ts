/**
 * Per-request child loggers that cost nothing until they log.
 *
 * Fastify gives every request a child logger (`reqId`), and `authenticate` another (tenant,
 * principal). With the common logger's redaction (services/common/src/logger.ts: wildcard paths
 * such as `*.body`), pino serializes and redacts a child's bindings when the child is CREATED —
 * measured at ~20 µs per child in bench/api, a quarter of a cached history request's budget —
 * although most requests never log a line (the API runs at `info` with request logging, but a
 * deployment at `warn`, like the benchmark, logs only problems).
 *
 * `lazyChild(parent, bindings, opts)` records the bindings and creates the real pino child on the
 * first call of a log method at an ENABLED level (and reuses it); a child of a lazy child merges
 * bindings without creating anything. Lines logged are exactly those of the eager child.
 * @see https://fastify.dev/docs/latest/Reference/Server/#childloggerfactory
 * @see https://getpino.io/#/docs/child-loggers
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'fastify/types/logger.js';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

const LEVEL_VALUES: Record<string, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

const value = (level: string): number => LEVEL_VALUES[level] ?? 30;

type LogArgs = [obj: unknown, msg?: string, ...args: unknown[]];

class LazyChild {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #opts: ChildLoggerOptions;
  #level: string;
  #real: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions = {}) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#opts = opts;
    this.#level = opts.level ?? parent.level;
  }

  #get(): FastifyBaseLogger {
    return (this.#real ??= this.#parent.child(this.#bindings, { ...this.#opts, level: this.#level }));
  }

  get level(): string {
    return this.#level;
  }

  set level(level: string) {
    this.#level = level;
    if (this.#real) this.#real.level = level;
  }

  isLevelEnabled(level: string): boolean {
    return value(level) >= value(this.#level);
  }

  bindings(): Bindings {
    const parent = (this.#parent as { bindings?: () => Bindings }).bindings?.() ?? {};
    return { ...parent, ...this.#bindings };
  }

  child(bindings: Bindings, opts: ChildLoggerOptions = {}): FastifyBaseLogger {
    return new LazyChild(
      this.#parent,
      { ...this.#bindings, ...bindings },
      {
        ...this.#opts,
        ...opts,
        level: opts.level ?? this.#level,
      },
    ) as unknown as FastifyBaseLogger;
  }

  #log(level: Level, args: LogArgs): void {
    if (value(level) < value(this.#level)) return;
    (this.#get()[level] as (...a: unknown[]) => void)(...args);
  }

  fatal(...args: LogArgs): void {
    this.#log('fatal', args);
  }
  error(...args: LogArgs): void {
    this.#log('error', args);
  }
  warn(...args: LogArgs): void {
    this.#log('warn', args);
  }
  info(...args: LogArgs): void {
    this.#log('info', args);
  }
  debug(...args: LogArgs): void {
    this.#log('debug', args);
  }
  trace(...args: LogArgs): void {
    this.#log('trace', args);
  }
  silent(): void {}
}

/** A child of `parent` with `bindings` that is created only when it logs (see the file comment). */
export function lazyChild(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  opts?: ChildLoggerOptions,
): FastifyBaseLogger {
  return new LazyChild(parent, bindings, opts) as unknown as FastifyBaseLogger;
}
