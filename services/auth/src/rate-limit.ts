/**
 * Brute-force protection in Redis, shared by every replica:
 * - a fixed-window counter per IP (login, access-code exchange, password-reset requests);
 * - per-account failure counting with lockout: `maxFailures` wrong passwords within the
 *   window lock the account for `lockoutSec`, whatever IP they come from (so a botnet can't
 *   spread guesses), and a successful login resets the count.
 * Keys carry the deployment prefix; account keys hash the address so no e-mail sits in Redis.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Authentication_Cheat_Sheet.html#account-lockout
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface WindowResult {
  allowed: boolean;
  count: number;
  /** seconds until the window resets */
  retryAfterSec: number;
}

const INCR_WINDOW = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
return {n, ttl}`;

export class RateLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  #k(...parts: string[]): string {
    return `${this.#prefix}rl:${parts.join(':')}`;
  }

  static account(tenant: string, email: string): string {
    return createHash('sha256').update(`${tenant}\0${email.trim().toLowerCase()}`).digest('base64url');
  }

  /** Counts one hit in a fixed window; `allowed` while the count is at most `max`. */
  async hit(bucket: string, id: string, max: number, windowSec: number): Promise<WindowResult> {
    const [n, ttl] = (await this.#redis.eval(INCR_WINDOW, 1, this.#k(bucket, id), String(windowSec))) as [
      number,
      number,
    ];
    return { allowed: n <= max, count: n, retryAfterSec: Math.max(1, ttl) };
  }

  /** Seconds the account stays locked (0 when it is not). */
  async lockedFor(account: string): Promise<number> {
    const ttl = await this.#redis.ttl(this.#k('lock', account));
    return ttl > 0 ? ttl : 0;
  }

  /** Counts a failure; returns the lock duration when this failure locked the account. */
  async recordFailure(
    account: string,
    opts: { maxFailures: number; windowSec: number; lockoutSec: number },
  ): Promise<number> {
    const r = await this.hit('fail', account, opts.maxFailures, opts.windowSec);
    if (r.count >= opts.maxFailures) {
      await this.#redis
        .multi()
        .set(this.#k('lock', account), '1', 'EX', opts.lockoutSec)
        .del(this.#k('fail', account))
        .exec();
      return opts.lockoutSec;
    }
    return 0;
  }

  async recordSuccess(account: string): Promise<void> {
    await this.#redis.del(this.#k('fail', account));
  }

  /** Lifts a lock (after a password reset). */
  async unlock(account: string): Promise<void> {
    await this.#redis.del(this.#k('fail', account), this.#k('lock', account));
  }
}
