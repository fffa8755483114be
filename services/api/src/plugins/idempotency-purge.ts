/**
 * The purge job of `idempotency_keys` (src/idempotency.ts, docs/api.md "Idempotency"): every
 * `idempotency.purgeIntervalSec` (0: never; the first run at a random point of the first
 * interval, so instances started together spread out), for each ACTIVE tenant of the registry,
 * rows older than `idempotency.retentionHours` are deleted in batches of `PURGE_BATCH`, each in
 * its own short tenant transaction. Instances don't duplicate the work: a tenant being purged by
 * another process is skipped (advisory lock). A failing tenant is logged and the others go on.
 * Runs don't overlap in one process.
 *
 * Metrics: `simptu_api_idempotency_keys_purged_total` (rows deleted) and
 * `simptu_api_idempotency_purge_runs_total{outcome="ok"|"failed"}` (a run fails when any tenant
 * failed). `app.idempotencyPurge.runNow()` runs one pass (tests, tools).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { withTenant } from '@simptu/common';
import { PURGE_BATCH, purgeIdempotencyKeys } from '../idempotency.ts';

export interface IdempotencyPurgeOptions {
  retentionHours: number;
  /** 0 disables the timer (`runNow` still works) */
  intervalSec: number;
}

export interface PurgeRun {
  tenants: number;
  deleted: number;
  /** tenants skipped because another process was purging them */
  skipped: number;
  failed: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    idempotencyPurge: {
      /** one pass over every active tenant now; resolves with what it did */
      runNow(): Promise<PurgeRun>;
    };
  }
}

export default fp(
  async (app: FastifyInstance, opts: IdempotencyPurgeOptions) => {
    const purged = app.metrics.counter({
      name: 'api_idempotency_keys_purged_total',
      help: 'idempotency_keys rows deleted by the retention purge',
    });
    const runs = app.metrics.counter({
      name: 'api_idempotency_purge_runs_total',
      help: 'Idempotency-key purge passes by outcome',
      labelNames: ['outcome'],
    });
    let running: Promise<PurgeRun> | undefined;
    let timer: NodeJS.Timeout | undefined;
    let closing = false;

    const pass = async (): Promise<PurgeRun> => {
      const run: PurgeRun = { tenants: 0, deleted: 0, skipped: 0, failed: 0 };
      for (const t of await app.tenantRegistry.active()) {
        if (closing) break;
        run.tenants++;
        const ref = { name: t.name, schema: t.schema, role: t.role };
        try {
          for (;;) {
            const n = await withTenant(app.dbFor(t), ref, (client) =>
              purgeIdempotencyKeys({ client }, opts.retentionHours),
            );
            if (n === null) {
              run.skipped++;
              break;
            }
            run.deleted += n;
            purged.inc(n);
            if (n < PURGE_BATCH || closing) break;
          }
        } catch (err) {
          run.failed++;
          app.log.warn({ err, tenant: t.name }, 'idempotency key purge failed for a tenant');
        }
      }
      runs.inc({ outcome: run.failed > 0 ? 'failed' : 'ok' });
      if (run.deleted > 0) app.log.info(run, 'idempotency keys purged');
      return run;
    };

    const runNow = (): Promise<PurgeRun> => {
      running ??= pass()
        .catch((err: unknown) => {
          // The registry itself failed: nothing was purged.
          runs.inc({ outcome: 'failed' });
          throw err;
        })
        .finally(() => (running = undefined));
      return running;
    };
    app.decorate('idempotencyPurge', { runNow });

    const schedule = (delayMs: number) => {
      timer = setTimeout(() => {
        runNow()
          .catch((err: unknown) => app.log.warn({ err }, 'idempotency key purge failed'))
          .finally(() => {
            if (!closing) schedule(opts.intervalSec * 1000);
          });
      }, delayMs);
      timer.unref();
    };
    if (opts.intervalSec > 0)
      app.addHook('onReady', async () => schedule(Math.random() * opts.intervalSec * 1000));
    app.addHook('onClose', async () => {
      closing = true;
      clearTimeout(timer);
      await running?.catch(() => undefined);
    });
  },
  {
    name: 'simptu-idempotency-purge',
    fastify: '5.x',
    dependencies: ['simptu-db', 'simptu-registry', 'simptu-observability'],
  },
);
