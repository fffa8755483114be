import { describe, it, expect } from 'vitest';
import { FakeClock } from './clock.ts';
import { ControllerMetrics } from './metrics.ts';
import { WorkQueue } from './workqueue.ts';

describe('ControllerMetrics', () => {
  it('exposes controller-runtime, workqueue and leader election names and labels', async () => {
    const m = new ControllerMetrics();
    m.initController('tenant', 4);
    m.observeReconcile('tenant', 'success', 0.02);
    m.observeReconcile('tenant', 'error', 0.5);
    m.setLeader('simptu-operator', true);
    const text = await m.registry.metrics();
    expect(text).toContain('controller_runtime_reconcile_total{controller="tenant",result="success"} 1');
    expect(text).toContain('controller_runtime_reconcile_total{controller="tenant",result="error"} 1');
    expect(text).toContain(
      'controller_runtime_reconcile_total{controller="tenant",result="requeue_after"} 0',
    );
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="tenant"} 1');
    expect(text).toContain('controller_runtime_reconcile_time_seconds_count{controller="tenant"} 2');
    expect(text).toContain('controller_runtime_max_concurrent_reconciles{controller="tenant"} 4');
    expect(text).toContain('controller_runtime_active_workers{controller="tenant"} 0');
    expect(text).toContain('leader_election_master_status{name="simptu-operator"} 1');
    expect(text).toContain('process_cpu_user_seconds_total'); // default Node process metrics
  });

  it('records a work queue through its hooks, in-progress gauges computed on scrape', async () => {
    const m = new ControllerMetrics({ defaultMetrics: false });
    const clock = new FakeClock();
    const q = new WorkQueue({ name: 'tenant', clock, metrics: m.workQueue('tenant') });
    q.add('a');
    q.add('b');
    clock.advance(1000);
    await q.get();
    clock.advance(3000);
    q.addRateLimited('c');
    const text = await m.registry.metrics();
    expect(text).toContain('workqueue_adds_total{name="tenant"} 2');
    expect(text).toContain('workqueue_depth{name="tenant"} 1');
    expect(text).toContain('workqueue_retries_total{name="tenant"} 1');
    expect(text).toContain('workqueue_queue_duration_seconds_count{name="tenant"} 1');
    expect(text).toContain('workqueue_queue_duration_seconds_sum{name="tenant"} 1');
    expect(text).toContain('workqueue_unfinished_work_seconds{name="tenant"} 3');
    expect(text).toContain('workqueue_longest_running_processor_seconds{name="tenant"} 3');
    q.done('a');
    const after = await m.registry.metrics();
    expect(after).toContain('workqueue_work_duration_seconds_count{name="tenant"} 1');
    expect(after).toContain('workqueue_unfinished_work_seconds{name="tenant"} 0');
  });
});
