/**
 * The raw limits of the slowest backend paths a Tenant needs, measured with the operator's own
 * clients and builders but without the operator: how many tenants per second the API server,
 * PostgreSQL and Kafka take when nothing else decides or observes. The operator's throughput is
 * reported as a ratio of the slowest of these.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import { migrateTenantSchema, quoteIdent, tenantId, tenantNamespace } from '@simptu/common';
import type { Tenant } from '../../operator/src/api/types.ts';
import { desiredNamespaceObjects, kubeObjectClient } from '../../operator/src/reconcile/namespace.ts';
import { desiredTopics } from '../../operator/src/reconcile/topics.ts';
import { mapLimit, sleep, timed } from './lib.ts';

/** A Tenant object as the API server returns it (defaults filled in), for the pure builders. */
export function benchTenant(name: string, labels: Record<string, string> = {}): Tenant {
  return {
    apiVersion: 'simptu.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name, labels },
    spec: {
      displayName: `Bench ${name}`,
      businessType: 'dental',
      locale: 'en-US',
      timezone: 'UTC',
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 1, retentionHours: 24 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Delete',
      deletionProtection: false,
      suspended: false,
    },
  };
}

export interface LimitResult {
  path: string;
  /** what one "tenant" is on this path */
  unit: string;
  n: number;
  seconds: number;
  tenantsPerSecond: number;
}

function result(path: string, unit: string, n: number, seconds: number): LimitResult {
  return { path, unit, n, seconds, tenantsPerSecond: n / seconds };
}

/**
 * N namespaces with their children (ResourceQuota, LimitRange, the NetworkPolicies), exactly
 * the objects `namespaceReconciler` applies, with the same server-side apply client, `concurrency`
 * tenants at a time (objects of one tenant in order, as the reconciler does).
 */
export async function namespaceLimit(
  kc: KubeConfig,
  names: readonly string[],
  concurrency: number,
): Promise<LimitResult> {
  const kube = kubeObjectClient(kc, 'simptu-bench');
  const perTenant = desiredNamespaceObjects(benchTenant(names[0]!)).length;
  const { seconds } = await timed(() =>
    mapLimit(names, concurrency, async (name) => {
      for (const obj of desiredNamespaceObjects(benchTenant(name))) await kube.apply(obj);
    }),
  );
  return result('kube-apiserver', `namespace + ${perTenant - 1} children (SSA)`, names.length, seconds);
}

/** Deletes the namespaces `namespaceLimit` created (the namespace controller removes the rest). */
export async function deleteNamespaces(
  kc: KubeConfig,
  names: readonly string[],
  concurrency: number,
): Promise<void> {
  const kube = kubeObjectClient(kc, 'simptu-bench');
  await mapLimit(names, concurrency, (name) =>
    kube.delete({ apiVersion: 'v1', kind: 'Namespace', name: tenantNamespace(name) }),
  );
}

/**
 * N tenant schemas as `databaseReconciler` makes them: CREATE ROLE … NOLOGIN, membership for the
 * services' role, then `migrateTenantSchema` (schema, every tenant migration, grants) — one
 * transaction per tenant, `concurrency` at a time.
 */
export async function postgresLimit(
  pool: pg.Pool,
  names: readonly string[],
  appRole: string,
  concurrency: number,
): Promise<LimitResult> {
  const { seconds } = await timed(() =>
    mapLimit(names, concurrency, async (name) => {
      const id = tenantId(name);
      await pool.query(`CREATE ROLE ${quoteIdent(id)} NOLOGIN`);
      await pool.query(`GRANT ${quoteIdent(id)} TO ${quoteIdent(appRole)}`);
      await migrateTenantSchema(pool, { schema: id, role: id });
    }),
  );
  return result('postgres', 'role + schema + migrations + grants', names.length, seconds);
}

/**
 * N×3 topics with the operator's topic settings (partitions, retention, cleanup policy), created
 * with kafkajs `createTopics` in batches of `batchTenants` tenants (3 topics each), one batch at
 * a time, waiting for leaders as the operator does.
 */
export async function kafkaLimit(
  admin: Admin,
  names: readonly string[],
  batchTenants: number,
): Promise<LimitResult> {
  const batches: string[][] = [];
  for (let i = 0; i < names.length; i += batchTenants) batches.push(names.slice(i, i + batchTenants));
  const { seconds } = await timed(async () => {
    for (const batch of batches) {
      const topics = batch.flatMap((name) =>
        desiredTopics(benchTenant(name)).map((t) => ({
          topic: t.topic,
          numPartitions: t.numPartitions,
          replicationFactor: -1,
          configEntries: Object.entries(t.configs).map(([k, value]) => ({ name: k, value })),
        })),
      );
      await admin.createTopics({ waitForLeaders: false, topics });
      await waitForLeaders(
        admin,
        topics.map((t) => t.topic),
      );
    }
  });
  return result('kafka', `3 topics (batches of ${batchTenants * 3})`, names.length, seconds);
}

/**
 * Diagnostic, not a limit: the topics as `topicsReconciler` creates them — one `createTopics`
 * call per topic with `waitForLeaders`, the three of a tenant in sequence, `concurrency` tenants
 * at a time, on one admin client. Compared with `kafkaLimit` it shows what the operator's access
 * pattern costs.
 */
export async function kafkaPerTopic(
  admin: Admin,
  names: readonly string[],
  concurrency: number,
): Promise<LimitResult> {
  const { seconds } = await timed(() =>
    mapLimit(names, concurrency, async (name) => {
      for (const t of desiredTopics(benchTenant(name))) {
        await admin.createTopics({
          waitForLeaders: true,
          topics: [
            {
              topic: t.topic,
              numPartitions: t.numPartitions,
              replicationFactor: -1,
              configEntries: Object.entries(t.configs).map(([k, value]) => ({ name: k, value })),
            },
          ],
        });
      }
    }),
  );
  return result(
    'kafka (diagnostic)',
    `3 topics, one createTopics call each (the operator's pattern)`,
    names.length,
    seconds,
  );
}

/**
 * What kafkajs' `waitForLeaders` does, tolerant of the transient metadata errors
 * (UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition") a broker
 * answers while the controller is still assigning the new partitions.
 */
async function waitForLeaders(admin: Admin, topics: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const md = await admin.fetchTopicMetadata({ topics });
      if (
        md.topics.length === topics.length &&
        md.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))
      )
        return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline)
      throw new Error(`kafka: no leaders for ${topics.length} new topics after 60 s`);
    await sleep(50);
  }
}
