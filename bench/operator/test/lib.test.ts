import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  classifyRequest,
  diffCounts,
  imageCommand,
  mapLimit,
  metricBy,
  parsePrometheus,
  percentile,
  readCpuSeconds,
  readRss,
  sumMetric,
  table,
} from '../lib.ts';

describe('parsePrometheus', () => {
  const text = [
    '# HELP apiserver_request_total Counter of apiserver requests',
    '# TYPE apiserver_request_total counter',
    'apiserver_request_total{code="200",resource="namespaces",verb="GET"} 12',
    'apiserver_request_total{code="201",resource="tenants",verb="POST"} 3',
    'simptu_operator_backend_writes_total{backend="status"} 2',
    'simptu_operator_backend_writes_total{backend="kafka"} 4.5 1700000000000',
    'leader_election_master_status{name="bench-x"} 1',
    'process_start_time_seconds 1.7e9',
    'odd{msg="a \\"quoted\\" value, with comma"} 7',
  ].join('\n');
  const samples = parsePrometheus(text);

  it('reads samples with and without labels and timestamps', () => {
    expect(samples).toHaveLength(7);
    expect(sumMetric(samples, 'apiserver_request_total')).toBe(15);
    expect(sumMetric(samples, 'apiserver_request_total', { verb: 'POST' })).toBe(3);
    expect(sumMetric(samples, 'process_start_time_seconds')).toBe(1.7e9);
    expect(samples.find((s) => s.name === 'odd')?.labels.msg).toBe('a "quoted" value, with comma');
  });

  it('groups by a label and diffs counters', () => {
    const by = metricBy(samples, 'simptu_operator_backend_writes_total', 'backend');
    expect(by).toEqual({ status: 2, kafka: 4.5 });
    expect(diffCounts({ status: 5, kafka: 4.5, x: 1 }, by)).toEqual({ status: 3, x: 1 });
  });
});

describe('classifyRequest', () => {
  it.each([
    ['GET', '/api/v1/namespaces', 'LIST namespaces'],
    ['GET', '/api/v1/namespaces/tenant-a', 'GET namespaces'],
    ['PATCH', '/api/v1/namespaces/tenant-a?fieldManager=x&force=true', 'PATCH namespaces'],
    ['GET', '/api/v1/namespaces/tenant-a/resourcequotas/tenant-quota', 'GET resourcequotas'],
    [
      'GET',
      '/apis/networking.k8s.io/v1/networkpolicies?labelSelector=simptu.io%2Ftenant&watch=true',
      'WATCH networkpolicies',
    ],
    ['PUT', '/apis/simptu.io/v1alpha1/tenants/a/status', 'UPDATE tenants/status'],
    ['POST', '/apis/events.k8s.io/v1/namespaces/default/events', 'CREATE events'],
    ['PUT', '/api/v1/namespaces/tenant-a/finalize', 'UPDATE namespaces/finalize'],
    ['GET', '/metrics', 'GET /metrics'],
  ])('%s %s → %s', (method, url, want) => {
    expect(classifyRequest(method, url)).toBe(want);
  });
});

describe('helpers', () => {
  it('percentile uses the nearest rank', () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(xs, 50)).toBe(5);
    expect(percentile(xs, 90)).toBe(9);
    expect(percentile(xs, 100)).toBe(10);
    expect(percentile([], 50)).toBeNaN();
  });

  it('mapLimit keeps order and never exceeds the concurrency', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
      peak = Math.max(peak, ++inFlight);
      await new Promise((r) => setTimeout(r, x));
      inFlight--;
      return x * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });

  it('reads this process’s memory and CPU from /proc', () => {
    const rss = readRss(process.pid);
    expect(rss?.rssMiB).toBeGreaterThan(10);
    expect(rss!.hwmMiB).toBeGreaterThanOrEqual(rss!.rssMiB);
    expect(readCpuSeconds(process.pid)).toBeGreaterThan(0);
    expect(readRss(2 ** 30)).toBeUndefined();
  });

  it('table aligns columns', () => {
    expect(
      table(
        ['a', 'value'],
        [
          ['long name', '1'],
          ['b', '22'],
        ],
      ).split('\n'),
    ).toEqual(['a          value', '---------  -----', 'long name      1', 'b             22']);
  });
});

describe('imageCommand', () => {
  it("reads the final stage's CMD and ENV", () => {
    const dockerfile = [
      'FROM node:22-slim AS deps',
      'ENV STAGE=deps',
      'CMD ["node", "build.js"]',
      'FROM node:22-slim',
      'ENV NODE_ENV=production',
      'HEALTHCHECK --interval=15s \\',
      '  CMD ["node", "-e", "1"]',
      '# comment',
      'CMD ["node", "--max-semi-space-size=2", "operator/src/main.ts"]',
    ].join('\n');
    expect(imageCommand(dockerfile)).toEqual({
      nodeArgs: ['--max-semi-space-size=2', 'operator/src/main.ts'],
      env: { NODE_ENV: 'production' },
    });
  });

  it('refuses a shell-form or non-node CMD', () => {
    expect(() => imageCommand('FROM x\nCMD node main.js')).toThrow();
    expect(() => imageCommand('FROM x\nCMD ["sh", "-c", "node main.js"]')).toThrow(/JSON form/);
  });

  it('matches what operator/Dockerfile runs', () => {
    const { nodeArgs } = imageCommand(
      readFileSync(new URL('../../../operator/Dockerfile', import.meta.url), 'utf8'),
    );
    expect(nodeArgs.at(-1)).toBe('operator/src/main.ts');
  });
});
