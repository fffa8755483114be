/**
 * The realtime benchmark's process plumbing: children (hub, bare server, client pools) are
 * started with an IPC channel (advanced serialization, so typed arrays travel as is) and answer
 * `{id, cmd, args}` requests. A child exits when its parent goes away, so an aborted run leaves
 * no server or client behind.
 * @see https://nodejs.org/api/child_process.html#advanced-serialization
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const now = () => performance.timeOrigin + performance.now();

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Request {
  id: number;
  cmd: string;
  args: unknown;
}
type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** In a child: answers the parent's requests with `handlers`. */
export function serve(handlers: Record<string, (args: never) => unknown>): void {
  if (!process.send) throw new Error('not started with an IPC channel');
  process.on('message', (m: Request) => {
    void (async () => {
      let reply: Reply;
      try {
        const h = handlers[m.cmd];
        if (!h) throw new Error(`unknown command ${m.cmd}`);
        reply = { id: m.id, ok: true, result: await h(m.args as never) };
      } catch (err) {
        reply = {
          id: m.id,
          ok: false,
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        };
      }
      process.send?.(reply);
    })();
  });
  // The parent is gone (finished, crashed, Ctrl-C): nothing should outlive it.
  process.on('disconnect', () => process.exit(0));
  process.send({ ready: true });
}

/** The open-files limits of this process, from /proc/self/limits (Linux). */
export function nofileLimits(pid: number | 'self' = 'self'): { soft: number; hard: number } {
  const text = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const n = (s: string | undefined) => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

export class Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  #next = 1;
  readonly #waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #exitCode: number | null | undefined;
  readonly #stderr: string[] = [];
  /** resolves once the child serves requests */
  readonly ready: Promise<void>;

  /**
   * Starts `node [nodeArgs] script` through `sh -c 'ulimit -n …'`: the open-files limit is raised
   * as far as the hard limit allows (raising the hard limit itself needs CAP_SYS_RESOURCE), and
   * `exec` keeps the pid, so /proc/<pid> is the node process.
   */
  constructor(
    name: string,
    script: string,
    opts: {
      nodeArgs?: string[];
      env?: Record<string, string | undefined>;
      nofile?: number;
      log?: (l: string) => void;
    },
  ) {
    this.name = name;
    const want = opts.nofile ?? 0;
    const cmd =
      want > 0 ? `ulimit -n ${want} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"` : 'exec "$@"';
    this.proc = spawn('sh', ['-c', cmd, 'sh', process.execPath, ...(opts.nodeArgs ?? []), script], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
      env: { ...process.env, ...opts.env },
    });
    this.exited = new Promise((r) =>
      this.proc.once('exit', (code) => {
        this.#exitCode = code;
        for (const w of this.#waiting.values())
          w.reject(new Error(`${name} exited (code ${code}): ${this.stderrTail()}`));
        this.#waiting.clear();
        r(code);
      }),
    );
    let ready!: () => void;
    this.ready = new Promise<void>((r) => (ready = r));
    this.proc.on('message', (m: Reply | { ready: true }) => {
      if ('ready' in m) return ready();
      const w = this.#waiting.get(m.id);
      if (!w) return;
      this.#waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(new Error(`${name}: ${m.error}`));
    });
    const keep = (l: string) => {
      this.#stderr.push(l);
      if (this.#stderr.length > 40) this.#stderr.shift();
      opts.log?.(l);
    };
    createInterface({ input: this.proc.stdout! }).on('line', (l) => opts.log?.(l));
    createInterface({ input: this.proc.stderr! }).on('line', keep);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  stderrTail(): string {
    return this.#stderr.slice(-10).join('\n');
  }

  call<T>(cmd: string, args: unknown = {}, timeoutMs = 120_000): Promise<T> {
    if (this.#exitCode !== undefined)
      return Promise.reject(
        new Error(`${this.name} has exited (code ${this.#exitCode}): ${this.stderrTail()}`),
      );
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`${this.name}: '${cmd}' timed out after ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.#waiting.set(id, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.proc.send({ id, cmd, args } satisfies Request);
    });
  }

  /** Asks the child to stop (`stop` command), then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.#exitCode !== undefined) return;
    await this.call('stop', {}, graceMs).catch(() => undefined);
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}
