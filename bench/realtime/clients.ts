/**
 * A pool of cheap WebSocket clients in one child process (`node bench/realtime/clients.ts`,
 * started by run.ts): raw `ws` sockets (no phoenix.js, no per-socket timers) speaking Phoenix V2
 * frames by hand, from one loopback source address, each joined to one topic. Heartbeats go out
 * rarely: every socket once per `heartbeatMs` (30 s, phoenix.js's interval), spread over that
 * period by one process-wide timer.
 *
 * Commands: `connect`, `arm` / `collect` (count one event's frames: first and last receive
 * time), `latencyStart` / `latencyStop` (receive time − the payload's `sent_at` of every
 * `agent.token` frame), `closeAll`, `stop`.
 */
import { WebSocket } from 'ws';
import { nofileLimits, now, serve } from './rpc.ts';

interface Sock {
  ws: WebSocket;
  topic: string;
  /** which server's sockets (the hub's and the bare server's are open side by side) */
  group: string;
  /** resolves the join reply */
  onJoin?: (status: string, response: Record<string, unknown>) => void;
}

const socks = new Set<Sock>();
let hbRef = 0;

interface Recorder {
  event: string;
  group: string;
  count: number;
  first: number;
  last: number;
  maxStreamSeq: number;
  sample?: string;
  expected: number;
  done?: () => void;
}
let rec: Recorder | undefined;

interface LatencyRecorder {
  values: number[];
  frames: number;
  tokens: number;
  coalescedFrames: number;
}
let lat: LatencyRecorder | undefined;

function onFrame(s: Sock, data: Buffer): void {
  const t = now();
  let f: unknown[];
  try {
    f = JSON.parse(data.toString('utf8')) as unknown[];
  } catch {
    return;
  }
  const event = f[3];
  const payload = (f[4] ?? {}) as Record<string, unknown>;
  if (event === 'phx_reply') {
    if (f[2] === s.topic && f[1] === '1' && s.onJoin) {
      const cb = s.onJoin;
      s.onJoin = undefined;
      cb(String(payload.status), (payload.response ?? {}) as Record<string, unknown>);
    }
    return;
  }
  if (rec && event === rec.event && s.group === rec.group) {
    if (rec.count === 0) {
      rec.first = t;
      rec.sample = data.toString('utf8');
    }
    rec.count++;
    rec.last = t;
    if (typeof payload.stream_seq === 'number')
      rec.maxStreamSeq = Math.max(rec.maxStreamSeq, payload.stream_seq);
    if (rec.count >= rec.expected) rec.done?.();
    return;
  }
  if (lat && event === 'agent.token' && typeof payload.sent_at === 'number') {
    lat.values.push(t - payload.sent_at);
    lat.frames++;
    const c = typeof payload.coalesced === 'number' ? payload.coalesced : 1;
    lat.tokens += c;
    if (c > 1) lat.coalescedFrames++;
  }
}

function openOne(
  url: string,
  topic: string,
  group: string,
  localAddress: string,
  timeoutMs: number,
): Promise<Sock> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, localAddress, handshakeTimeout: timeoutMs });
    const s: Sock = { ws, topic, group };
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail('join timeout'), timeoutMs);
    ws.on('error', (err) => fail(`error: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      fail(`http ${res.statusCode}`);
    });
    ws.on('close', () => {
      socks.delete(s);
      fail('closed');
    });
    ws.on('message', (d) => onFrame(s, d as Buffer));
    ws.on('open', () => {
      s.onJoin = (status, response) => {
        if (status !== 'ok') return fail(`join ${status}: ${JSON.stringify(response)}`);
        settled = true;
        clearTimeout(timer);
        socks.add(s);
        resolve(s);
      };
      ws.send(JSON.stringify(['1', '1', topic, 'phx_join', {}]));
    });
  });
}

let heartbeatTimer: NodeJS.Timeout | undefined;
function startHeartbeats(heartbeatMs: number): void {
  if (heartbeatTimer) return;
  // One timer: each second a 1/(heartbeatMs/1000) slice of the sockets heartbeats.
  const slices = Math.max(1, Math.round(heartbeatMs / 1000));
  let slice = 0;
  heartbeatTimer = setInterval(() => {
    let i = 0;
    for (const s of socks) {
      if (i++ % slices === slice && s.ws.readyState === WebSocket.OPEN)
        s.ws.send(JSON.stringify([null, String(++hbRef), 'phoenix', 'heartbeat', {}]));
    }
    slice = (slice + 1) % slices;
  }, 1000);
}

serve({
  /** Opens and joins `entries` (token → topic) with at most `concurrency` handshakes in flight. */
  async connect(a: {
    url: string;
    group: string;
    entries: Array<{ token: string; topic: string }>;
    localAddress: string;
    concurrency: number;
    timeoutMs: number;
    heartbeatMs: number;
  }) {
    startHeartbeats(a.heartbeatMs);
    const t0 = now();
    let next = 0;
    let joined = 0;
    const errors: Record<string, number> = {};
    const worker = async () => {
      while (next < a.entries.length) {
        const e = a.entries[next++]!;
        try {
          await openOne(`${a.url}&token=${e.token}`, e.topic, a.group, a.localAddress, a.timeoutMs);
          joined++;
        } catch (err) {
          const k = (err as Error).message.slice(0, 80);
          errors[k] = (errors[k] ?? 0) + 1;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(a.concurrency, a.entries.length) }, worker));
    return { joined, failed: a.entries.length - joined, errors, ms: now() - t0 };
  },
  /** Starts counting frames of `event` on the `group`'s sockets; `collect` waits for `expected` of them. */
  arm(a: { event: string; group: string; expected: number }) {
    rec = {
      event: a.event,
      group: a.group,
      count: 0,
      first: 0,
      last: 0,
      maxStreamSeq: 0,
      expected: a.expected,
    };
    return null;
  },
  async collect(a: { timeoutMs: number }) {
    const r = rec;
    if (!r) throw new Error('not armed');
    if (r.count < r.expected)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, a.timeoutMs);
        r.done = () => {
          clearTimeout(t);
          resolve();
        };
      });
    rec = undefined;
    return { count: r.count, first: r.first, last: r.last, maxStreamSeq: r.maxStreamSeq, sample: r.sample };
  },
  latencyStart() {
    lat = { values: [], frames: 0, tokens: 0, coalescedFrames: 0 };
    return null;
  },
  latencyStop() {
    const l = lat;
    lat = undefined;
    if (!l) throw new Error('not started');
    return {
      values: Float64Array.from(l.values),
      frames: l.frames,
      tokens: l.tokens,
      coalescedFrames: l.coalescedFrames,
    };
  },
  async closeAll(a: { timeoutMs: number; group?: string }) {
    const all = [...socks].filter((s) => a.group === undefined || s.group === a.group);
    for (const s of all) socks.delete(s);
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.ws.readyState === WebSocket.CLOSED) return resolve();
            const t = setTimeout(() => {
              s.ws.terminate();
              resolve();
            }, a.timeoutMs);
            s.ws.once('close', () => {
              clearTimeout(t);
              resolve();
            });
            s.ws.close(1000);
          }),
      ),
    );
    return all.length;
  },
  info() {
    return { sockets: socks.size, nofile: nofileLimits(), rssMiB: process.memoryUsage().rss / 2 ** 20 };
  },
  stop() {
    setImmediate(() => process.exit(0));
    return null;
  },
});
