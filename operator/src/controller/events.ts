/**
 * Kubernetes Events (events.k8s.io/v1) for what an admin must see (`kubectl describe`,
 * `kubectl events`), with client-go's series aggregation so a hot reconcile loop cannot spam
 * the API server:
 *
 * - an event identical to one recorded within `aggregationWindowMs` (same object, type,
 *   reason, action and note) does not create a new Event: it increments `series.count`;
 * - series updates of one Event are coalesced: at most one write in flight and one per
 *   `minPatchIntervalMs`; a burst of N identical events costs one create and a few patches;
 * - events about cluster-scoped objects (a Tenant) go to namespace `default`, as client-go does.
 *
 * Recording never throws and never blocks the reconcile: failures are logged and dropped
 * (events are best-effort by design).
 * @see https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/
 * @see https://github.com/kubernetes/client-go/blob/master/tools/events/event_broadcaster.go
 */
import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import { kubeRequest, microTime } from './client.ts';
import { errorMessage, isNotFound } from './errors.ts';
import type { KubeAccess } from './kubeconfig.ts';
import { noopLogger, type Logger } from './log.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  /** e.g. 'simptu.io/operator' */
  reportingController: string;
  /** e.g. the pod name / leader identity. @default hostname-less random id */
  reportingInstance?: string;
  /** Identical events within this window join a series. @default 360_000 (6 min, client-go) */
  aggregationWindowMs?: number;
  /** Minimum time between two writes of one Event's series. @default 30_000 */
  minPatchIntervalMs?: number;
  /** Series remembered at most (oldest dropped first). @default 4096 */
  maxSeries?: number;
  logger?: Logger;
  clock?: Clock;
}

interface Series {
  name: string;
  namespace: string;
  body: Record<string, unknown>;
  count: number;
  written: number;
  created: boolean;
  firstSeen: number;
  lastObserved: number;
  lastWriteAt: number;
  scheduled: boolean;
  timer: TimerHandle | undefined;
  chain: Promise<void>;
}

const NOTE_MAX = 1024; // the API server rejects longer notes

export class EventRecorder {
  readonly #kc: KubeAccess;
  readonly #opts: EventRecorderOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #instance: string;
  readonly #series = new Map<string, Series>();
  /** Writes done, for tests and debugging. */
  readonly stats = { creates: 0, patches: 0, failures: 0 };

  constructor(kc: KubeAccess, opts: EventRecorderOptions) {
    this.#kc = kc;
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = (opts.logger ?? noopLogger).child({ component: 'events' });
    this.#instance =
      opts.reportingInstance ??
      `${opts.reportingController.replace(/[^a-z0-9.-]/gi, '-')}-${randomBytes(4).toString('hex')}`;
  }

  /**
   * Records an event about `regarding` (which needs kind, apiVersion, metadata.name and
   * ideally uid). `reason` is CamelCase ('ProvisioningFailed'); `action` what we were doing
   * ('Reconcile', 'Provision'); `note` a human message.
   */
  record(regarding: KubernetesObject, type: EventType, reason: string, action: string, note: string): void {
    const now = this.#clock.now();
    const meta = regarding.metadata ?? {};
    const key = JSON.stringify([
      meta.uid ?? '',
      regarding.kind,
      meta.namespace ?? '',
      meta.name,
      type,
      reason,
      action,
      note,
    ]);
    const existing = this.#series.get(key);
    const window = this.#opts.aggregationWindowMs ?? 360_000;
    if (existing && now - existing.lastObserved <= window) {
      existing.count++;
      existing.lastObserved = now;
      // Refresh insertion order: the map's first entries are the least recently used.
      this.#series.delete(key);
      this.#series.set(key, existing);
      this.#kick(existing);
      return;
    }
    if (existing?.timer) this.#clock.clearTimeout(existing.timer);
    const namespace = meta.namespace || 'default';
    const name = `${(meta.name ?? 'unknown').slice(0, 200)}.${now.toString(16)}${randomBytes(4).toString('hex')}`;
    const s: Series = {
      name,
      namespace,
      body: {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name, namespace },
        eventTime: microTime(now),
        reportingController: this.#opts.reportingController,
        reportingInstance: this.#instance,
        type,
        reason,
        action,
        note: note.length > NOTE_MAX ? `${note.slice(0, NOTE_MAX - 3)}...` : note,
        regarding: {
          apiVersion: regarding.apiVersion,
          kind: regarding.kind,
          name: meta.name,
          ...(meta.namespace ? { namespace: meta.namespace } : {}),
          ...(meta.uid ? { uid: meta.uid } : {}),
        },
      },
      count: 1,
      written: 0,
      created: false,
      firstSeen: now,
      lastObserved: now,
      lastWriteAt: 0,
      scheduled: false,
      timer: undefined,
      chain: Promise.resolve(),
    };
    this.#series.delete(key);
    this.#series.set(key, s);
    this.#evict(now, window);
    this.#kick(s);
  }

  /** Writes pending series updates now and waits for every write in flight. */
  async flush(): Promise<void> {
    for (const s of this.#series.values()) {
      if (s.timer) {
        this.#clock.clearTimeout(s.timer);
        s.timer = undefined;
        s.chain = s.chain.then(() => this.#write(s));
      }
    }
    await Promise.all([...this.#series.values()].map((s) => s.chain));
  }

  #kick(s: Series): void {
    if (s.scheduled) return;
    s.scheduled = true;
    const interval = this.#opts.minPatchIntervalMs ?? 30_000;
    const wait = s.created ? Math.max(0, s.lastWriteAt + interval - this.#clock.now()) : 0;
    if (wait === 0) {
      s.chain = s.chain.then(() => this.#write(s));
    } else {
      s.timer = this.#clock.setTimeout(() => {
        s.timer = undefined;
        s.chain = s.chain.then(() => this.#write(s));
      }, wait);
    }
  }

  async #write(s: Series): Promise<void> {
    s.scheduled = false;
    const count = s.count;
    if (s.created && count <= s.written) return;
    const series = count > 1 ? { count, lastObservedTime: microTime(s.lastObserved) } : undefined;
    const path = `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(s.namespace)}/events`;
    try {
      if (s.created) {
        try {
          await kubeRequest(this.#kc, `${path}/${encodeURIComponent(s.name)}`, {
            method: 'PATCH',
            contentType: 'application/merge-patch+json',
            body: { series },
          });
          this.stats.patches++;
        } catch (err) {
          // Events expire (the API server's event TTL, 1 h by default); start a fresh one.
          if (!isNotFound(err)) throw err;
          s.created = false;
        }
      }
      if (!s.created) {
        await kubeRequest(this.#kc, path, {
          method: 'POST',
          body: { ...s.body, ...(series ? { series } : {}) },
        });
        s.created = true;
        this.stats.creates++;
      }
      s.written = count;
      s.lastWriteAt = this.#clock.now();
    } catch (err) {
      this.stats.failures++;
      this.#log.warn(
        { event: `${s.namespace}/${s.name}`, reason: s.body.reason, err: errorMessage(err) },
        'failed to write event',
      );
    }
  }

  #evict(now: number, window: number): void {
    const max = this.#opts.maxSeries ?? 4096;
    for (const [key, s] of this.#series) {
      if (this.#series.size <= max && now - s.lastObserved <= window) break;
      if (s.scheduled) continue; // let pending writes finish
      this.#series.delete(key);
    }
  }
}
