/**
 * TopicsReady (DESIGN §5.4): the tenant's three topics (`tenantTopics(name)`), with
 * `numPartitions = spec.kafka.partitions`, `retention.ms = retentionHours × 3 600 000`,
 * `cleanup.policy = delete`.
 *
 * Observe first (listTopics, fetchTopicMetadata, describeConfigs — reads only), then write only
 * what differs: create a missing topic, revert config drift, grow partitions. A steady state does
 * zero writes. Kafka cannot remove partitions (and the CRD's CEL rule forbids asking), so a spec
 * below the current count is `blocked` with `PartitionDecreaseRefused`, never "fixed" by
 * recreating the topic (that would lose its data).
 *
 * Drift: every dynamic topic-level override (configSource TOPIC_CONFIG) is ours. kafkajs speaks the
 * non-incremental AlterConfigs API, which replaces the topic's whole override set — so a revert
 * writes exactly the desired set and thereby also drops overrides someone added behind our back,
 * which is what "config drift is reverted" means here.
 * @see https://kafka.apache.org/documentation/#topicconfigs
 */
import kafkajs, { type Admin, type ConfigResourceTypes, type DescribeConfigResponse } from 'kafkajs';
import { PLATFORM_TOPIC, tenantTopics } from '@simptu/common';
import type { Tenant } from '../api/types.ts';
import type { BackendReconciler, StepResult, WriteCounter } from './types.ts';

// kafkajs is CommonJS: its runtime enums live on the default export.
const TOPIC_RESOURCE: ConfigResourceTypes = kafkajs.ConfigResourceTypes.TOPIC;
/** ConfigSource.TOPIC_CONFIG: a dynamic per-topic override (DescribeConfigs v1+). */
const SOURCE_TOPIC_CONFIG = 1;

export const HOUR_MS = 3_600_000;

export interface DesiredTopic {
  topic: string;
  numPartitions: number;
  configs: Record<string, string>;
}

/** Pure: the tenant's topics as they should be. */
export function desiredTopics(tenant: Tenant): DesiredTopic[] {
  const { partitions, retentionHours } = tenant.spec.kafka;
  const configs = { 'cleanup.policy': 'delete', 'retention.ms': String(retentionHours * HOUR_MS) };
  return Object.values(tenantTopics(tenant.metadata.name)).map((topic) => ({
    topic,
    numPartitions: partitions,
    configs: { ...configs },
  }));
}

export interface ObservedTopic {
  topic: string;
  /** undefined when the topic does not exist */
  partitions?: number;
  /** dynamic topic-level overrides */
  overrides?: Record<string, string>;
}

export type TopicAction =
  | { kind: 'create'; topic: DesiredTopic }
  | { kind: 'alterConfigs'; topic: string; configs: Record<string, string>; drift: string[] }
  | { kind: 'createPartitions'; topic: string; from: number; to: number };

export interface TopicPlan {
  actions: TopicAction[];
  /** topics whose spec asks for fewer partitions than exist */
  refusedShrinks: Array<{ topic: string; have: number; want: number }>;
}

/** Pure: what to do to get from observed to desired. */
export function planTopics(
  desired: readonly DesiredTopic[],
  observed: ReadonlyMap<string, ObservedTopic>,
): TopicPlan {
  const plan: TopicPlan = { actions: [], refusedShrinks: [] };
  for (const d of desired) {
    const o = observed.get(d.topic);
    if (o?.partitions === undefined) {
      plan.actions.push({ kind: 'create', topic: d });
      continue;
    }
    const overrides = o.overrides ?? {};
    const drift = [
      ...Object.entries(d.configs)
        .filter(([k, v]) => overrides[k] !== v)
        .map(([k, v]) => `${k}=${overrides[k] ?? '(default)'}, want ${v}`),
      ...Object.keys(overrides)
        .filter((k) => !(k in d.configs))
        .map((k) => `${k}=${overrides[k]}, want (default)`),
    ];
    if (drift.length > 0)
      plan.actions.push({ kind: 'alterConfigs', topic: d.topic, configs: { ...d.configs }, drift });
    if (o.partitions < d.numPartitions)
      plan.actions.push({
        kind: 'createPartitions',
        topic: d.topic,
        from: o.partitions,
        to: d.numPartitions,
      });
    else if (o.partitions > d.numPartitions)
      plan.refusedShrinks.push({ topic: d.topic, have: o.partitions, want: d.numPartitions });
  }
  return plan;
}

export interface TopicsDeps {
  /** a connected kafkajs admin client */
  admin: Admin;
  writes: WriteCounter;
  /** replication factor of new topics @default -1 (the broker's default.replication.factor) */
  replicationFactor?: number;
}

const BACKEND = 'topics';
const WRITE_KEY = 'kafka';

/**
 * Partition counts of those of `topics` that exist, asking for these topics only (the admin
 * client never auto-creates topics) — for topics expected to exist: a missing one fails the
 * whole request (and kafkajs logs an error), so then each is asked for alone.
 */
export async function existingTopics(admin: Admin, topics: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (topics.length === 0) return out; // no topics = every topic, to the Metadata API
  const fetch = async (names: string[]): Promise<boolean> => {
    try {
      const meta = await admin.fetchTopicMetadata({ topics: names });
      for (const t of meta.topics) out.set(t.name, t.partitions.length);
      return true;
    } catch (err) {
      if (kafkaErrorType(err) === 'UNKNOWN_TOPIC_OR_PARTITION') return false;
      throw err;
    }
  };
  if (await fetch([...topics])) return out;
  for (const t of topics) await fetch([t]);
  return out;
}

/**
 * Reads partitions and dynamic overrides of the given topics (only those that exist).
 * `expectExisting`: the tenant's status already lists them (they were created), so they are
 * looked up by name; otherwise (a new tenant) every topic of the cluster is listed — looking up
 * names that don't exist yet would have kafkajs log an error per topic. Listing is work and
 * garbage growing with the tenant count (three topics each), hence only then.
 */
export async function observeTopics(
  admin: Admin,
  topics: readonly string[],
  opts: { expectExisting?: boolean } = {},
): Promise<Map<string, ObservedTopic>> {
  const partitions = opts.expectExisting
    ? await existingTopics(admin, topics)
    : await listedTopics(admin, topics);
  const present = topics.filter((t) => partitions.has(t));
  const out = new Map<string, ObservedTopic>(
    topics.map((t) => [t, partitions.has(t) ? { topic: t, partitions: partitions.get(t) } : { topic: t }]),
  );
  if (present.length === 0) return out;
  const described: DescribeConfigResponse = await admin.describeConfigs({
    resources: present.map((name) => ({ type: TOPIC_RESOURCE, name })),
    includeSynonyms: false,
  });
  for (const r of described.resources) {
    if (r.errorCode !== 0)
      throw new Error(
        `describeConfigs ${r.resourceName}: error ${r.errorCode} ${r.errorMessage ?? ''}`.trim(),
      );
    const overrides = Object.fromEntries(
      r.configEntries
        .filter((e) => Number(e.configSource) === SOURCE_TOPIC_CONFIG)
        .map((e) => [e.configName, e.configValue]),
    );
    const prev = out.get(r.resourceName);
    if (prev) out.set(r.resourceName, { ...prev, overrides });
  }
  return out;
}

/** `existingTopics` by listing every topic of the cluster (for names that may not exist). */
async function listedTopics(admin: Admin, topics: readonly string[]): Promise<Map<string, number>> {
  const listed = new Set(await admin.listTopics());
  const present = topics.filter((t) => listed.has(t));
  if (present.length === 0) return new Map();
  return existingTopics(admin, present);
}

function kafkaErrorType(err: unknown): string | undefined {
  const e = err as { type?: unknown; errors?: Array<{ type?: unknown }> } | null;
  if (typeof e?.type === 'string') return e.type;
  const nested = e?.errors?.map((x) => x.type).filter((t): t is string => typeof t === 'string');
  return nested && nested.length > 0 && nested.every((t) => t === nested[0]) ? nested[0] : undefined;
}

/** Creates missing topics in one request (a tenant's three topics are usually created together). */
async function createTopics(
  creates: Array<Extract<TopicAction, { kind: 'create' }>>,
  deps: TopicsDeps,
): Promise<void> {
  if (creates.length === 0) return;
  deps.writes.inc(WRITE_KEY, creates.length);
  try {
    // resolves false when a topic already exists (a concurrent create): that is success
    await deps.admin.createTopics({
      waitForLeaders: true,
      topics: creates.map((a) => ({
        topic: a.topic.topic,
        numPartitions: a.topic.numPartitions,
        replicationFactor: deps.replicationFactor ?? -1,
        configEntries: Object.entries(a.topic.configs).map(([name, value]) => ({ name, value })),
      })),
    });
  } catch (err) {
    if (kafkaErrorType(err) !== 'TOPIC_ALREADY_EXISTS') throw err;
  }
}

async function applyAction(a: Exclude<TopicAction, { kind: 'create' }>, deps: TopicsDeps): Promise<void> {
  switch (a.kind) {
    case 'alterConfigs':
      deps.writes.inc(WRITE_KEY);
      await deps.admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: TOPIC_RESOURCE,
            name: a.topic,
            configEntries: Object.entries(a.configs).map(([name, value]) => ({ name, value })),
          },
        ],
      });
      return;
    case 'createPartitions':
      deps.writes.inc(WRITE_KEY);
      await deps.admin.createPartitions({
        validateOnly: false,
        topicPartitions: [{ topic: a.topic, count: a.to }],
      });
      return;
  }
}

async function reconcileTopics(tenant: Tenant, deps: TopicsDeps): Promise<StepResult> {
  const desired = desiredTopics(tenant);
  const status = { topics: desired.map((d) => d.topic) };
  try {
    const names = desired.map((d) => d.topic);
    const known = tenant.status?.topics ?? [];
    const observed = await observeTopics(deps.admin, names, {
      expectExisting: names.every((n) => known.includes(n)),
    });
    const plan = planTopics(desired, observed);
    await createTopics(
      plan.actions.filter((a) => a.kind === 'create'),
      deps,
    );
    for (const a of plan.actions) if (a.kind !== 'create') await applyAction(a, deps);
    if (plan.refusedShrinks.length > 0) {
      const which = plan.refusedShrinks.map((s) => `${s.topic} has ${s.have}`).join(', ');
      const want = plan.refusedShrinks[0]!.want;
      return {
        kind: 'blocked',
        reason: 'PartitionDecreaseRefused',
        message: `spec.kafka.partitions is ${want} but ${which}: Kafka cannot remove partitions; set spec.kafka.partitions back to at least ${Math.max(...plan.refusedShrinks.map((s) => s.have))}`,
        status,
      };
    }
    return {
      kind: 'ready',
      // the state, not this pass's actions (see namespace.ts)
      reason: 'TopicsReady',
      message: `${desired.length} topics with the spec's partitions and retention`,
      status,
    };
  } catch (err) {
    return {
      kind: 'error',
      reason: 'KafkaError',
      message: err instanceof Error ? err.message : String(err),
      error: err,
    };
  }
}

async function finalizeTopics(tenant: Tenant, deps: TopicsDeps): Promise<StepResult> {
  if (tenant.spec.deletionPolicy !== 'Delete') {
    return { kind: 'ready', reason: 'TopicsRetained', message: 'deletionPolicy Retain: topics kept' };
  }
  try {
    // Listed: after the first pass the topics are gone, and later passes must not log errors.
    const wanted = new Set(Object.values(tenantTopics(tenant.metadata.name)));
    const present = (await deps.admin.listTopics()).filter((t) => wanted.has(t));
    if (present.length > 0) {
      deps.writes.inc(WRITE_KEY);
      try {
        await deps.admin.deleteTopics({ topics: present });
      } catch (err) {
        // already being deleted by an earlier pass: that is what we want
        if (kafkaErrorType(err) !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
      }
    }
    return {
      kind: 'ready',
      reason: 'TopicsDeleted',
      message: present.length > 0 ? `deleted ${present.join(', ')}` : 'no topics left',
    };
  } catch (err) {
    return {
      kind: 'error',
      reason: 'KafkaError',
      message: err instanceof Error ? err.message : String(err),
      error: err,
    };
  }
}

export const topicsReconciler: BackendReconciler<TopicsDeps> = {
  name: BACKEND,
  condition: 'TopicsReady',
  reconcile: reconcileTopics,
  finalize: finalizeTopics,
};

export interface PlatformTopicOptions {
  /** @default 3 */
  numPartitions?: number;
  /** @default -1 (broker default) */
  replicationFactor?: number;
}

/**
 * Creates `simptu.platform.tenants` if it is missing (run once at operator start, before the
 * registry reconciler publishes). Compacted+deleted: consumers rebuild the tenant list from it,
 * and key = tenant name, so compaction keeps each tenant's latest event. Returns true if created.
 */
export async function ensurePlatformTopic(admin: Admin, opts: PlatformTopicOptions = {}): Promise<boolean> {
  const existing = await admin.listTopics();
  if (existing.includes(PLATFORM_TOPIC)) return false;
  try {
    return await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: PLATFORM_TOPIC,
          numPartitions: opts.numPartitions ?? 3,
          replicationFactor: opts.replicationFactor ?? -1,
          configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
        },
      ],
    });
  } catch (err) {
    if (kafkaErrorType(err) === 'TOPIC_ALREADY_EXISTS') return false;
    throw err;
  }
}
