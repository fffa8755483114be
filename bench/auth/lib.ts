/**
 * Helpers of the auth benchmark: a closed-loop rate meter for in-process work (raw jose, the
 * common verifier), interleaved rounds so machine-load drift hits both sides of a ratio alike,
 * and a typed handle on autocannon (it ships no types).
 */
import { createRequire } from 'node:module';

// ---------------------------------------------------------------------------------------------
// In-process rates

export interface RateResult {
  /** operations completed inside the window */
  ops: number;
  seconds: number;
  perSecond: number;
  /**
   * CPU seconds this process used meanwhile (all threads: jose's WebCrypto work included).
   * Less sensitive to other load on a shared machine than `perSecond`: a busy neighbour takes
   * wall-clock time from us, not CPU time per operation.
   */
  cpuSeconds: number;
  /** operations per CPU-second */
  perCpuSecond: number;
}

/**
 * Runs `op` in `concurrency` closed loops for `durationMs` and counts completions. jose's
 * WebCrypto operations are asynchronous (Node runs them on the libuv thread pool), so several
 * in flight is the fair way to measure them — as the SSO and a busy API server run them.
 * The first failure rejects: a benchmark whose operation fails measures nothing.
 */
export async function measureRate(
  op: () => Promise<unknown>,
  opts: { concurrency: number; durationMs: number },
): Promise<RateResult> {
  if (opts.concurrency < 1) throw new RangeError('concurrency must be at least 1');
  let ops = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + opts.durationMs;
  const loop = async () => {
    while (performance.now() < deadline) {
      await op();
      ops++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return { ops, seconds, perSecond: ops / seconds, cpuSeconds, perCpuSecond: ops / cpuSeconds };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Comparison {
  /** per-round rates of the measured path, in run order */
  subject: number[];
  /** per-round rates of the baseline, in run order */
  baseline: number[];
  subjectMedian: number;
  baselineMedian: number;
  /** subject ÷ baseline of each round (their spread shows how noisy the machine was) */
  roundRatios: number[];
  /**
   * The headline: the median of the per-round ratios. Each round's two sides ran back to back,
   * so a slow minute on a shared machine cancels out of its ratio; the median drops outliers.
   */
  ratio: number;
}

export function compare(subject: readonly number[], baseline: readonly number[]): Comparison {
  if (subject.length !== baseline.length || subject.length === 0)
    throw new RangeError('subject and baseline need the same, non-zero number of rounds');
  const roundRatios = subject.map((v, i) => v / baseline[i]!);
  return {
    subject: [...subject],
    baseline: [...baseline],
    subjectMedian: median(subject),
    baselineMedian: median(baseline),
    roundRatios,
    ratio: median(roundRatios),
  };
}

/**
 * Runs every side once per round, back to back, rotating which side goes first (A B, B A, …)
 * so neither always runs on a warmer or colder machine; returns each side's per-round rates.
 */
export async function interleave<K extends string>(
  rounds: number,
  sides: ReadonlyArray<readonly [K, () => Promise<number>]>,
  onRound?: (round: number, rates: Record<K, number>) => void,
): Promise<Record<K, number[]>> {
  if (rounds < 1) throw new RangeError('rounds must be at least 1');
  const out = Object.fromEntries(sides.map(([k]) => [k, [] as number[]])) as Record<K, number[]>;
  for (let r = 0; r < rounds; r++) {
    const rates = {} as Record<K, number>;
    for (let i = 0; i < sides.length; i++) {
      const [k, fn] = sides[(r + i) % sides.length]!;
      rates[k] = await fn();
      out[k].push(rates[k]);
    }
    onRound?.(r + 1, rates);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// autocannon (CommonJS, untyped): the subset of its API this benchmark uses.
// @see https://github.com/mcollina/autocannon#autocannonopts-cb

export interface AutocannonOptions {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  connections?: number;
  pipelining?: number;
  /** seconds */
  duration?: number;
  /** seconds */
  timeout?: number;
}

interface Histogram {
  average: number;
  mean: number;
  stddev: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
}

export interface AutocannonResult {
  /** seconds actually run */
  duration: number;
  requests: Histogram & { total: number; sent: number };
  latency: Histogram;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

export const autocannon = createRequire(import.meta.url)('autocannon') as (
  opts: AutocannonOptions,
) => Promise<AutocannonResult>;

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and base64'd. */
export function basicAuth(clientId: string, clientSecret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
}
