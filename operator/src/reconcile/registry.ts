/**
 * RegistryReady (DESIGN §5.6): the `platform.tenants` row (everything the services need to route
 * and serve the tenant) and the lifecycle events `io.simptu.tenant.provisioned|updated|deleted`
 * on `simptu.platform.tenants`.
 *
 * Level-triggered at-least-once publication, no outbox table needed: the row carries
 * `spec_hash` (hash of its content) and `published_hash` (content last announced). A reconcile
 * 1. computes the row (`desiredRegistryRow`, pure) and upserts it only when `spec_hash` differs;
 * 2. publishes when `published_hash <> spec_hash`, then sets `published_hash = spec_hash`.
 * A crash between 1 and 2 leaves `published_hash` behind, so the next reconcile publishes. The
 * event id is deterministic (tenant, type, hash, row `updated_at`), so a re-publication after a
 * crash carries the same id and idempotent consumers apply it once. A steady state writes
 * nothing and publishes nothing.
 */
import type { Producer, Kafka } from 'kafkajs';
import type pg from 'pg';
import { PLATFORM_TOPIC, tenantId } from '@simptu/common';
import type { AgentToolPolicy, Tenant, TenantStatus } from '../api/types.ts';
import type { BackendReconciler, StepResult, WriteCounter } from './types.ts';
import { stableHash } from './namespace.ts';
import { deterministicEventId, newCloudEvent, toKafkaRecord, type CloudEvent } from '@simptu/common';

/** `source` of every lifecycle event the operator publishes. */
export const OPERATOR_SOURCE = '/simptu/operator';

export type RegistryState = 'active' | 'suspended' | 'archived';
export type TenantEventType =
  'io.simptu.tenant.provisioned' | 'io.simptu.tenant.updated' | 'io.simptu.tenant.deleted';

/** The row's content columns: what `spec_hash` covers. */
export interface RegistryContent {
  name: string;
  tenant_id: string;
  display_name: string;
  business_type: string;
  locale: string;
  timezone: string;
  database_isolation: string;
  agent_isolation: string;
  database_name: string;
  schema_name: string;
  schema_version: number;
  active_key_version: number;
  topics: string[];
  origins: string[];
  redirect_uris: string[];
  integrations: Record<string, unknown>;
  agent: Record<string, unknown>;
  state: RegistryState;
}

export interface RegistryRow extends RegistryContent {
  spec_hash: string;
  /** metadata.generation of the Tenant that last changed the row (not part of the hash) */
  generation: number;
}

/** What earlier backends established (DatabaseReady, EncryptionKeyReady, TopicsReady). */
export interface RegistryFacts {
  databaseName: string;
  schemaName: string;
  schemaVersion: number;
  activeKeyVersion: number;
  topics: string[];
}

/** Facts from the status fields earlier backends report this pass, else from the last status. */
export function registryFacts(
  ...sources: Array<Partial<TenantStatus> | undefined>
): RegistryFacts | undefined {
  const pick = <K extends keyof TenantStatus>(k: K): TenantStatus[K] | undefined =>
    sources.find((s) => s?.[k] !== undefined)?.[k];
  const database = pick('database');
  const encryption = pick('encryption');
  const topics = pick('topics');
  if (!database || !encryption || !topics) return undefined;
  return {
    databaseName: database.name,
    schemaName: database.schema,
    schemaVersion: database.schemaVersion,
    activeKeyVersion: encryption.activeKeyVersion,
    topics: [...topics],
  };
}

export function registryContentHash(content: RegistryContent): string {
  // Normalize through the column list so a row read back from Postgres hashes like the desired one.
  const c: RegistryContent = {
    name: content.name,
    tenant_id: content.tenant_id,
    display_name: content.display_name,
    business_type: content.business_type,
    locale: content.locale,
    timezone: content.timezone,
    database_isolation: content.database_isolation,
    agent_isolation: content.agent_isolation,
    database_name: content.database_name,
    schema_name: content.schema_name,
    schema_version: Number(content.schema_version),
    active_key_version: Number(content.active_key_version),
    topics: [...content.topics],
    origins: [...content.origins],
    redirect_uris: [...content.redirect_uris],
    integrations: content.integrations,
    agent: content.agent,
    state: content.state,
  };
  return stableHash(c);
}

/**
 * `spec.agent.tools` as the agent reads it (`services/agent/src/registry.ts`): each list sorted
 * (they are sets: reordering them is no change), empty lists left out (an empty `allow` means the
 * business type's defaults, and the agent reads a present `allow` as "only these"), and no
 * `tools` key at all without a policy — so rows of tenants without one hash as before.
 */
export function registryToolPolicy(
  policy: AgentToolPolicy | undefined,
): Record<string, string[]> | undefined {
  const out: Record<string, string[]> = {};
  for (const key of ['allow', 'deny', 'untrustedAllow'] as const) {
    const list = policy?.[key];
    if (list && list.length > 0) out[key] = [...new Set<string>(list)].sort();
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Pure: the registry row for a tenant. */
export function desiredRegistryRow(tenant: Tenant, facts: RegistryFacts, state?: RegistryState): RegistryRow {
  const s = tenant.spec;
  const model = s.agent.model;
  const tools = registryToolPolicy(s.agent.tools);
  const content: RegistryContent = {
    name: tenant.metadata.name,
    tenant_id: tenantId(tenant.metadata.name),
    display_name: s.displayName,
    business_type: s.businessType,
    locale: s.locale,
    timezone: s.timezone,
    database_isolation: s.isolation.database,
    agent_isolation: s.isolation.agent,
    database_name: facts.databaseName,
    schema_name: facts.schemaName,
    schema_version: facts.schemaVersion,
    active_key_version: facts.activeKeyVersion,
    topics: [...facts.topics],
    origins: [...(s.frontend?.origins ?? [])],
    redirect_uris: [...(s.frontend?.redirectURIs ?? [])],
    // Secrets by reference only: the spec never holds secret values.
    integrations: JSON.parse(JSON.stringify(s.integrations ?? {})) as Record<string, unknown>,
    agent: {
      replicas: s.agent.replicas,
      model: {
        provider: model.provider,
        ...(model.name ? { name: model.name } : {}),
        ...(model.baseURL ? { baseURL: model.baseURL } : {}),
        ...(model.secretRef ? { secretRef: { ...model.secretRef } } : {}),
      },
      ...(s.agent.instructions !== undefined ? { instructions: s.agent.instructions } : {}),
      ...(tools ? { tools } : {}),
    },
    state: state ?? (s.suspended ? 'suspended' : 'active'),
  };
  return { ...content, spec_hash: registryContentHash(content), generation: tenant.metadata.generation ?? 0 };
}

/** The event payload: the row in camelCase, as services consume it. */
export function registryEventData(
  row: RegistryContent & { spec_hash: string; generation: number | string },
): Record<string, unknown> {
  return {
    name: row.name,
    tenantId: row.tenant_id,
    displayName: row.display_name,
    businessType: row.business_type,
    locale: row.locale,
    timezone: row.timezone,
    isolation: { database: row.database_isolation, agent: row.agent_isolation },
    database: { name: row.database_name, schema: row.schema_name, schemaVersion: Number(row.schema_version) },
    activeKeyVersion: Number(row.active_key_version),
    topics: row.topics,
    origins: row.origins,
    redirectURIs: row.redirect_uris,
    integrations: row.integrations,
    agent: row.agent,
    state: row.state,
    specHash: row.spec_hash,
    generation: Number(row.generation),
  };
}

export interface RegistryDeps {
  /** admin pool on the platform database (the `platform` schema is migrated at start-up) */
  pg: pg.Pool;
  /** a connected idempotent producer (see `createRegistryProducer`) */
  producer: Producer;
  writes: WriteCounter;
  /** status fields earlier backends reported this pass (the controller's `facts`) */
  facts?: Partial<TenantStatus>;
  now?: () => Date;
}

/**
 * The producer for lifecycle events: idempotent (acks=all, broker-side dedup of retries), one
 * request in flight so order per tenant key holds across retries.
 * @see https://kafka.js.org/docs/producing#options
 */
export function createRegistryProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
}

const BACKEND = 'registry';
const COLUMNS = [
  'name',
  'tenant_id',
  'display_name',
  'business_type',
  'locale',
  'timezone',
  'database_isolation',
  'agent_isolation',
  'database_name',
  'schema_name',
  'schema_version',
  'active_key_version',
  'topics',
  'origins',
  'redirect_uris',
  'integrations',
  'agent',
  'state',
  'spec_hash',
  'generation',
] as const;

interface StoredRow extends RegistryContent {
  spec_hash: string | null;
  published_hash: string | null;
  generation: string;
  updated_at: Date;
}

async function readRow(db: pg.Pool, name: string): Promise<StoredRow | undefined> {
  const r = await db.query<StoredRow>(`SELECT * FROM platform.tenants WHERE name = $1`, [name]);
  return r.rows[0];
}

async function upsertRow(db: pg.Pool, row: RegistryRow): Promise<StoredRow> {
  const values = COLUMNS.map((c) =>
    c === 'integrations' || c === 'agent' ? JSON.stringify(row[c]) : row[c],
  );
  const placeholders = COLUMNS.map((_, i) => `$${i + 1}`).join(', ');
  const updates = COLUMNS.filter((c) => c !== 'name')
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ');
  const r = await db.query<StoredRow>(
    `INSERT INTO platform.tenants (${COLUMNS.join(', ')}) VALUES (${placeholders})
     ON CONFLICT (name) DO UPDATE SET ${updates}, updated_at = now()
     RETURNING *`,
    values,
  );
  return r.rows[0]!;
}

async function publish(
  deps: RegistryDeps,
  row: StoredRow,
  type: TenantEventType,
  data: Record<string, unknown>,
): Promise<CloudEvent> {
  const event = newCloudEvent({
    id: deterministicEventId(row.name, type, row.spec_hash ?? '', row.updated_at.toISOString()),
    type,
    source: OPERATOR_SOURCE,
    tenant: row.name,
    subject: row.name,
    data,
    ...(deps.now ? { time: deps.now() } : {}),
  });
  deps.writes.inc('kafka');
  await deps.producer.send({ topic: PLATFORM_TOPIC, acks: -1, messages: [toKafkaRecord(event, row.name)] });
  return event;
}

async function markPublished(db: pg.Pool, name: string, hash: string): Promise<void> {
  // Guarded by spec_hash: if the row changed meanwhile, the next reconcile publishes again.
  await db.query(`UPDATE platform.tenants SET published_hash = $2 WHERE name = $1 AND spec_hash = $2`, [
    name,
    hash,
  ]);
}

async function reconcileRegistry(tenant: Tenant, deps: RegistryDeps): Promise<StepResult> {
  const facts = registryFacts(deps.facts, tenant.status);
  if (!facts) {
    return {
      kind: 'progressing',
      reason: 'WaitingForBackends',
      message: 'database, encryption key and topics must be reported first',
      requeueAfterMs: 5_000,
    };
  }
  const desired = desiredRegistryRow(tenant, facts);
  try {
    let row = await readRow(deps.pg, desired.name);
    const firstPublication = !row || row.published_hash === null || row.state === 'archived';
    if (!row || row.spec_hash !== desired.spec_hash) {
      deps.writes.inc(BACKEND);
      row = await upsertRow(deps.pg, desired);
    }
    if (row.published_hash !== row.spec_hash) {
      const type: TenantEventType = firstPublication
        ? 'io.simptu.tenant.provisioned'
        : 'io.simptu.tenant.updated';
      await publish(deps, row, type, registryEventData({ ...row, spec_hash: row.spec_hash! }));
      deps.writes.inc(BACKEND);
      await markPublished(deps.pg, row.name, row.spec_hash!);
      return { kind: 'ready', reason: 'Registered', message: 'registry row current and published' };
    }
    return {
      kind: 'ready',
      // the state, not this pass's actions (see namespace.ts)
      reason: 'Registered',
      message: 'registry row current and published',
    };
  } catch (err) {
    return {
      kind: 'error',
      reason: 'RegistryWriteFailed',
      message: err instanceof Error ? err.message : String(err),
      error: err,
    };
  }
}

async function finalizeRegistry(tenant: Tenant, deps: RegistryDeps): Promise<StepResult> {
  const name = tenant.metadata.name;
  try {
    const row = await readRow(deps.pg, name);
    if (!row) return { kind: 'ready', reason: 'Unregistered', message: 'no registry row' };

    if (tenant.spec.deletionPolicy === 'Delete') {
      // Publish first, then delete: a crash in between publishes again (same event id) next time.
      const hash = row.spec_hash ?? '';
      await publish(deps, { ...row, spec_hash: `deleted:${hash}` }, 'io.simptu.tenant.deleted', {
        name,
        tenantId: row.tenant_id,
        retained: false,
        state: 'deleted',
      });
      deps.writes.inc(BACKEND);
      await deps.pg.query(`DELETE FROM platform.tenants WHERE name = $1`, [name]);
      return {
        kind: 'ready',
        reason: 'Unregistered',
        message: 'registry row deleted; published io.simptu.tenant.deleted',
      };
    }

    // Retain: keep the row, archived, and announce it once.
    const archived: RegistryContent = { ...row, state: 'archived' };
    const hash = registryContentHash(archived);
    let current = row;
    if (row.spec_hash !== hash || row.state !== 'archived') {
      deps.writes.inc(BACKEND);
      const r = await deps.pg.query<StoredRow>(
        `UPDATE platform.tenants SET state = 'archived', spec_hash = $2, updated_at = now() WHERE name = $1 RETURNING *`,
        [name, hash],
      );
      current = r.rows[0]!;
    }
    if (current.published_hash !== hash) {
      await publish(deps, current, 'io.simptu.tenant.deleted', {
        ...registryEventData({ ...current, spec_hash: hash }),
        retained: true,
      });
      deps.writes.inc(BACKEND);
      await markPublished(deps.pg, name, hash);
    }
    return { kind: 'ready', reason: 'Archived', message: 'registry row archived (deletionPolicy Retain)' };
  } catch (err) {
    return {
      kind: 'error',
      reason: 'RegistryWriteFailed',
      message: err instanceof Error ? err.message : String(err),
      error: err,
    };
  }
}

export const registryReconciler: BackendReconciler<RegistryDeps> = {
  name: BACKEND,
  condition: 'RegistryReady',
  reconcile: reconcileRegistry,
  finalize: finalizeRegistry,
};
