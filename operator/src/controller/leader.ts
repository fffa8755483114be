/**
 * Lease-based leader election (coordination.k8s.io/v1), following client-go's
 * `tools/leaderelection`: candidates try to acquire every `retryPeriod`; the leader renews every
 * `retryPeriod` and gives up if it could not renew for `renewDeadline`; others take over a lease
 * not renewed for `leaseDuration`. Expiry is judged on the *local* time at which we last saw the
 * lease record change (not on the timestamps in it), so clock skew between replicas is harmless.
 *
 * On graceful stop the leader releases the lease (empty holder) so a successor takes over at
 * once instead of waiting `leaseDuration`. After leadership is lost the elector does not try
 * again: like controller-runtime, the process should exit (`onStoppedLeading`) and restart
 * clean, because in-flight work may have raced with the new leader.
 * @see https://kubernetes.io/docs/concepts/architecture/leases/#leader-election
 * @see https://github.com/kubernetes/client-go/blob/master/tools/leaderelection/leaderelection.go
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { systemClock, type Clock } from './clock.ts';
import { kubeRequest, microTime, resourcePath } from './client.ts';
import { errorMessage, isAlreadyExists, isConflict, isNotFound } from './errors.ts';
import type { KubeAccess } from './kubeconfig.ts';
import { noopLogger, type Logger } from './log.ts';

export interface LeaderElectionOptions {
  /** Lease name, e.g. 'simptu-operator'. Also the `name` label of leader_election_master_status. */
  name: string;
  /** Namespace of the Lease (the operator's namespace). */
  namespace: string;
  /** @default `${hostname}_${pid}_${random}` */
  identity?: string;
  /** @default 15_000 */
  leaseDurationMs?: number;
  /** @default 10_000 */
  renewDeadlineMs?: number;
  /** @default 2_000 */
  retryPeriodMs?: number;
  /** Called once when this replica becomes leader; `signal` aborts when it stops leading. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called once when leadership ends (lost or released). Not called if it never led. */
  onStoppedLeading?(): void;
  /** Called when a different holder is observed. */
  onNewLeader?(identity: string): void;
  /** Metrics hook (`ControllerMetrics.setLeader` fits). */
  metrics?: { setLeader(name: string, leading: boolean): void };
  logger?: Logger;
  clock?: Clock;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

export function defaultIdentity(): string {
  return `${hostname()}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export class LeaderElector {
  readonly identity: string;
  readonly #kc: KubeAccess;
  readonly #opts: LeaderElectionOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #path: string;
  #observedRecord = '';
  #observedTime = 0;
  #observedHolder = '';
  #leading = false;
  #stop = new AbortController();
  #release = true;
  #loop: Promise<void> | undefined;

  constructor(kc: KubeAccess, opts: LeaderElectionOptions) {
    this.#kc = kc;
    this.#opts = opts;
    this.identity = opts.identity ?? defaultIdentity();
    this.#clock = opts.clock ?? systemClock;
    this.#leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.#leaseDurationMs > this.#renewDeadlineMs && this.#renewDeadlineMs > this.#retryPeriodMs)) {
      throw new Error('leader election: need leaseDuration > renewDeadline > retryPeriod');
    }
    this.#path = resourcePath(
      { apiVersion: 'coordination.k8s.io/v1', plural: 'leases', namespace: opts.namespace },
      opts.name,
    );
    this.#log = (opts.logger ?? noopLogger).child({
      lease: `${opts.namespace}/${opts.name}`,
      identity: this.identity,
    });
  }

  /** Starts campaigning in the background. */
  start(): void {
    if (this.#loop) return;
    this.#opts.metrics?.setLeader(this.#opts.name, false);
    this.#loop = this.#run(this.#stop.signal).catch((err: unknown) => {
      this.#log.error({ err: errorMessage(err) }, 'leader election loop failed');
    });
  }

  isLeader(): boolean {
    return this.#leading;
  }

  /**
   * Stops campaigning / leading. With `release` (default) a leader empties the Lease holder so a
   * successor takes over immediately; `release: false` abandons it (as a crash would).
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.#release = opts.release ?? true;
    this.#stop.abort();
    await this.#loop;
  }

  async #run(stop: AbortSignal): Promise<void> {
    // Campaign.
    while (!stop.aborted) {
      if (await this.#tryAcquireOrRenew()) break;
      await this.#sleep(this.#retryPeriodMs * (1 + Math.random() * 0.2), stop);
    }
    if (stop.aborted) return;

    this.#leading = true;
    this.#opts.metrics?.setLeader(this.#opts.name, true);
    this.#log.info({}, 'became leader');
    const leadership = new AbortController();
    void Promise.resolve()
      .then(() => this.#opts.onStartedLeading(leadership.signal))
      .catch((err: unknown) => this.#log.error({ err: errorMessage(err) }, 'onStartedLeading failed'));

    // Renew until stopped or the renew deadline passes without a successful renewal.
    let lastRenew = this.#clock.now();
    while (!stop.aborted) {
      await this.#sleep(this.#retryPeriodMs, stop);
      if (stop.aborted) break;
      if (await this.#tryAcquireOrRenew()) {
        lastRenew = this.#clock.now();
      } else if (this.#clock.now() - lastRenew >= this.#renewDeadlineMs) {
        this.#log.warn({}, 'failed to renew the lease within the renew deadline; leadership lost');
        break;
      }
    }

    this.#leading = false;
    leadership.abort(new Error('leadership ended'));
    if (stop.aborted && this.#release) await this.#releaseLease();
    this.#opts.metrics?.setLeader(this.#opts.name, false);
    this.#opts.onStoppedLeading?.();
  }

  /** One attempt; true when we hold the lease afterwards. Never throws. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = this.#clock.now();
    const signal = AbortSignal.timeout(this.#renewDeadlineMs);
    try {
      let lease: Lease;
      try {
        lease = await kubeRequest<Lease>(this.#kc, this.#path, { signal });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        const spec: LeaseSpec = {
          holderIdentity: this.identity,
          leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000),
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        };
        const body: Lease = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.#opts.name, namespace: this.#opts.namespace },
          spec,
        };
        await kubeRequest(this.#kc, this.#path.replace(/\/[^/]+$/, ''), { method: 'POST', body, signal });
        this.#observe(spec, now);
        return true;
      }

      const spec = lease.spec ?? {};
      this.#observe(spec, now);
      const holder = spec.holderIdentity ?? '';
      const durationMs = (spec.leaseDurationSeconds ?? 0) * 1000;
      if (holder && holder !== this.identity && this.#observedTime + durationMs > now) return false;

      const mine = holder === this.identity;
      const next: LeaseSpec = {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000),
        renewTime: microTime(now),
        acquireTime: mine && spec.acquireTime ? spec.acquireTime : microTime(now),
        leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      };
      // PUT with the read resourceVersion: if another candidate wrote first we get 409.
      await kubeRequest(this.#kc, this.#path, { method: 'PUT', body: { ...lease, spec: next }, signal });
      this.#observe(next, now);
      return true;
    } catch (err) {
      if (isConflict(err) || isAlreadyExists(err)) return false; // lost a race; normal
      this.#log.warn({ err: errorMessage(err) }, 'lease acquire/renew failed');
      return false;
    }
  }

  #observe(spec: LeaseSpec, now: number): void {
    const record = JSON.stringify(spec);
    if (record !== this.#observedRecord) {
      this.#observedRecord = record;
      this.#observedTime = now;
    }
    const holder = spec.holderIdentity ?? '';
    if (holder && holder !== this.#observedHolder) {
      this.#observedHolder = holder;
      if (holder !== this.identity) this.#opts.onNewLeader?.(holder);
    }
  }

  /** Empties the holder if we still hold the lease (client-go's ReleaseOnCancel). */
  async #releaseLease(): Promise<void> {
    const now = this.#clock.now();
    try {
      const lease = await kubeRequest<Lease>(this.#kc, this.#path, {
        signal: AbortSignal.timeout(this.#renewDeadlineMs),
      });
      if (lease.spec?.holderIdentity !== this.identity) return;
      const spec: LeaseSpec = {
        ...lease.spec,
        holderIdentity: '',
        leaseDurationSeconds: 1,
        renewTime: microTime(now),
        acquireTime: microTime(now),
      };
      await kubeRequest(this.#kc, this.#path, {
        method: 'PUT',
        body: { ...lease, spec },
        signal: AbortSignal.timeout(this.#renewDeadlineMs),
      });
      this.#log.info({}, 'released the lease');
    } catch (err) {
      this.#log.warn(
        { err: errorMessage(err) },
        'failed to release the lease; the successor waits for it to expire',
      );
    }
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        this.#clock.clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.#clock.setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
