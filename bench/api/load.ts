/**
 * The load generator of the API benchmark, run as a child process (`fork(load.ts)`), so
 * autocannon's event loop is not the server's: on a small machine a load generator sharing the
 * server's thread would halve both. (Not a worker thread: autocannon treats a non-main thread as
 * one of its own workers and returns unaggregated results.) Receives a `LoadSpec` as its IPC
 * message, sends back a `LoadResult`, exits.
 *
 * `bodies: 'booking'` gives every request its own slot: start = `bookingBase` + n × `slotMinutes`
 * (n counts up across all connections), so no two requests of the run ask for the same time.
 * @see https://github.com/mcollina/autocannon#api
 */
import autocannon from 'autocannon';

export interface LoadSpec {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  connections: number;
  durationSeconds: number;
  /** distinct booking bodies per request */
  booking?: {
    serviceId: string;
    customerId: string;
    baseMs: number;
    slotMinutes: number;
    firstIndex: number;
  };
}

export interface LoadResult {
  requestsPerSecond: number;
  requests: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  statusCodes: Record<string, number>;
  errors: number;
  timeouts: number;
  /** bookings: the next unused slot index */
  nextIndex: number;
}

process.once('message', (spec: LoadSpec) => run(spec));

function run(spec: LoadSpec): void {
  let next = spec.booking?.firstIndex ?? 0;

  autocannon(
    {
      url: spec.url,
      connections: spec.connections,
      duration: spec.durationSeconds,
      timeout: 10,
      requests: [
        {
          method: spec.method,
          headers: spec.headers,
          ...(spec.booking
            ? {
                setupRequest: (req: autocannon.Request) => {
                  const b = spec.booking!;
                  const start = new Date(b.baseMs + next++ * b.slotMinutes * 60_000).toISOString();
                  return {
                    ...req,
                    body: JSON.stringify({ serviceId: b.serviceId, customerId: b.customerId, start }),
                  };
                },
              }
            : {}),
        },
      ],
    },
    (err, r) => {
      if (err) throw err;
      const statusCodes: Record<string, number> = {};
      for (const [code, s] of Object.entries(
        (r as unknown as { statusCodeStats: Record<string, { count: number }> }).statusCodeStats ?? {},
      ))
        statusCodes[code] = s.count;
      const result: LoadResult = {
        requestsPerSecond: r.requests.average,
        requests: r.requests.total,
        latencyMs: {
          p50: r.latency.p50,
          p90: r.latency.p90,
          p99: r.latency.p99,
          max: r.latency.max,
          mean: r.latency.average,
        },
        statusCodes,
        errors: r.errors,
        timeouts: r.timeouts,
        nextIndex: next,
      };
      process.send!(result, () => process.exit(0));
    },
  );
}
