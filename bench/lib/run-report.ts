/**
 * What every benchmark run (bench/<name>/run.ts) shares around its measurements: where its log
 * and report go, the description of the machine in the report, and the end — clean up what the
 * run created (whether it succeeded or not), say what was left behind, and write the report
 * (with the error of a failed run) as JSON.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

/**
 * `bench/results/<name>-<timestamp>.log` and `.json` below `root` (the folder is created): the
 * log of the processes the run starts, and its report.
 */
export function resultFiles(root: string, name: string): { logFile: string; reportFile: string } {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(root, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  return {
    logFile: join(resultsDir, `${name}-${stamp}.log`),
    reportFile: join(resultsDir, `${name}-${stamp}.json`),
  };
}

/**
 * The machine a run measured on, for its report. `loadavg` (1/5/15-minute load averages by
 * moment of the run: other work on the machine skews every figure) is kept by reference, so
 * the run adds to it as it goes.
 */
export function machineInfo(loadavg: Record<string, number[]>) {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    loadavg,
  };
}

export interface FinishOptions {
  log: (msg: string) => void;
  /** removes what the run created; returns how many of each kind of thing it could not remove */
  cleanup: () => Promise<Record<string, number>>;
  /** the run's report; gets `leftovers`, and `error` when the run failed */
  report: Record<string, unknown>;
  /** what the run threw, if it did */
  failure: unknown;
  /** where the report goes */
  file: string;
}

/** Cleans up, writes the report and returns the exit code: 1 for a failed run, else 0. */
export async function cleanUpAndReport(o: FinishOptions): Promise<number> {
  o.log('cleaning up');
  const leftovers = await o.cleanup();
  o.report.leftovers = leftovers;
  if (Object.values(leftovers).some((n) => n > 0)) o.log(`WARNING: left behind ${JSON.stringify(leftovers)}`);
  else o.log('cleanup complete: nothing left behind');
  if (o.failure) o.report.error = o.failure instanceof Error ? o.failure.message : String(o.failure);
  writeFileSync(o.file, JSON.stringify(o.report, null, 2) + '\n');
  o.log(`results: ${o.file}`);
  return o.failure ? 1 : 0;
}
