/**
 * The operator end to end against the real test environment: every sample kind of tenant reaches
 * Ready and every backend really exists with exactly the intended privileges; a resync of a Ready
 * tenant writes nothing; drift behind the operator's back is repaired; a tenant updated while it
 * is being provisioned converges to its latest generation.
 */
import { CoreV1Api, NetworkingV1Api, AppsV1Api } from '@kubernetes/client-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdent, tenantId, tenantNamespace, tenantTopics, withDatabase } from '@simptu/common';
import { Harness, eventually } from './support/harness.ts';
import type { OperatorHandle } from '../src/manager.ts';

const h = new Harness();
let op: OperatorHandle;

/** A connection as the services' login role (NOINHERIT), as the API and agent will connect. */
async function asApp<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const u = new URL(withDatabase(h.adminUrl, database));
  u.username = h.appRole;
  u.password = `pw-${h.shard}-secret`;
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function fails(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'succeeded',
    (e: Error) => e.message,
  );
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

describe('operator: provisioning', () => {
  const dental = h.name('dental');
  const gym = h.name('gym');
  const hotel = h.name('hotel');

  beforeAll(async () => {
    await h.setup();
    op = await h.start({
      leaderElection: { ...h.config().leaderElection, enabled: false },
      resyncPeriodMs: 1500,
    });
    await h.create('dental', {
      businessType: 'dental',
      kafka: { partitions: 3, retentionHours: 72 },
      frontend: { origins: ['https://smile.example'] },
    });
    await h.create('gym', { businessType: 'gym', isolation: { agent: 'dedicated' }, agent: { replicas: 2 } });
    await h.create('hotel', {
      businessType: 'hotel',
      isolation: { database: 'dedicated' },
      kafka: { partitions: 2 },
    });
  });
  afterAll(() => h.teardown());

  it('brings every kind of tenant to Ready with status filled in', async () => {
    for (const name of [dental, gym, hotel]) {
      const t = await h.ready(name);
      expect(t.status?.phase).toBe('Ready');
      expect(t.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual([
        'NamespaceReady=True',
        'EncryptionKeyReady=True',
        'DatabaseReady=True',
        'TopicsReady=True',
        'AgentReady=True',
        'RegistryReady=True',
        'Ready=True',
      ]);
      expect(t.status?.database?.schema).toBe(tenantId(name));
      expect(t.status?.encryption?.activeKeyVersion).toBe(1);
      expect(t.status?.topics).toEqual(Object.values(tenantTopics(name)));
      expect(t.status?.endpoints?.api).toBe(`http://127.0.0.1:3003/t/${name}`);
      expect(t.metadata.finalizers).toContain('simptu.io/finalizer');
    }
    expect((await h.get(hotel))?.status?.database?.name).toBe(tenantId(hotel));
  });

  it('creates schema and role with exactly the intended privileges', async () => {
    const a = tenantId(dental);
    const b = tenantId(gym);
    const roles = await h.pool.query(
      `SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1`,
      [[a, b]],
    );
    expect(roles.rows).toEqual([
      { rolname: a, rolcanlogin: false },
      { rolname: b, rolcanlogin: false },
    ]);
    await asApp(h.db.name, async (c) => {
      // without switching role the login role sees no tenant table (fail closed)
      expect(await fails(c.query(`SELECT count(*) FROM ${quoteIdent(a)}.outbox`))).toMatch(
        /permission denied/,
      );
      await c.query('BEGIN');
      await c.query(`SET LOCAL ROLE ${quoteIdent(a)}`);
      await c.query(`SET LOCAL search_path TO ${quoteIdent(a)}`);
      await c.query(
        `INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES ('t', '1', 'x', '\\x00')`,
      );
      expect((await c.query(`SELECT count(*)::int AS n FROM outbox`)).rows[0].n).toBe(1);
      // tenant A's role cannot read tenant B's schema, nor the platform registry
      expect(await fails(c.query(`SELECT count(*) FROM ${quoteIdent(b)}.outbox`))).toMatch(
        /permission denied/,
      );
      await c.query('ROLLBACK');
      await c.query('BEGIN');
      await c.query(`SET LOCAL ROLE ${quoteIdent(a)}`);
      expect(await fails(c.query(`SELECT count(*) FROM platform.tenant_keys`))).toMatch(/permission denied/);
      await c.query('ROLLBACK');
      // the login role may switch only into roles it was granted
      expect(await fails(c.query(`SET ROLE postgres`))).toMatch(/permission denied/);
    });
    // the dedicated database exists, and the app role reaches its tenant schema the same way
    await asApp(tenantId(hotel), async (c) => {
      await c.query('BEGIN');
      await c.query(`SET LOCAL ROLE ${quoteIdent(tenantId(hotel))}`);
      expect(
        (await c.query(`SELECT count(*)::int AS n FROM ${quoteIdent(tenantId(hotel))}.outbox`)).rows[0].n,
      ).toBe(0);
      await c.query('ROLLBACK');
    });
  });

  it('registers the tenant and its wrapped key', async () => {
    const reg = await h.pool.query(
      `SELECT name, business_type, state, topics, origins, schema_name FROM platform.tenants WHERE name = ANY($1) ORDER BY name`,
      [[dental, gym, hotel]],
    );
    expect(reg.rows.map((r) => [r.name, r.business_type, r.state])).toEqual(
      [
        [dental, 'dental', 'active'],
        [gym, 'gym', 'active'],
        [hotel, 'hotel', 'active'],
      ].sort((x, y) => (x[0]! < y[0]! ? -1 : 1)),
    );
    expect(reg.rows.find((r) => r.name === dental)?.origins).toEqual(['https://smile.example']);
    const keys = await h.pool.query(
      `SELECT tenant, version, length(wrapped_dek) AS len FROM platform.tenant_keys WHERE tenant = ANY($1)`,
      [[dental, gym, hotel]],
    );
    expect(keys.rows).toHaveLength(3);
    for (const k of keys.rows) {
      expect(k.version).toBe(1);
      expect(k.len).toBeGreaterThan(32); // wrapped, never the raw 32-byte key
    }
  });

  it('creates the three topics with the spec partitions and retention', async () => {
    const admin = h.kafka.admin();
    await admin.connect();
    try {
      const topics = Object.values(tenantTopics(dental));
      const meta = await admin.fetchTopicMetadata({ topics });
      expect(meta.topics.map((t) => t.partitions.length)).toEqual([3, 3, 3]);
      const configs = await admin.describeConfigs({
        includeSynonyms: false,
        resources: topics.map((name) => ({ type: 2, name, configNames: ['retention.ms'] })),
      });
      expect(configs.resources.map((r) => r.configEntries[0]?.configValue)).toEqual([
        '259200000',
        '259200000',
        '259200000',
      ]);
    } finally {
      await admin.disconnect();
    }
  });

  it('creates the namespace objects, and agent objects only for the dedicated agent', async () => {
    const core = h.kc.makeApiClient(CoreV1Api);
    const net = h.kc.makeApiClient(NetworkingV1Api);
    const apps = h.kc.makeApiClient(AppsV1Api);
    for (const name of [dental, gym, hotel]) {
      const ns = tenantNamespace(name);
      expect((await core.readNamespace({ name: ns })).metadata?.labels?.['simptu.io/tenant']).toBe(name);
      expect((await core.listNamespacedResourceQuota({ namespace: ns })).items).toHaveLength(1);
      expect((await core.listNamespacedLimitRange({ namespace: ns })).items).toHaveLength(1);
      const policies = (await net.listNamespacedNetworkPolicy({ namespace: ns })).items;
      const deny = policies.find((p) => (p.spec?.policyTypes ?? []).length === 2 && !p.spec?.ingress?.length);
      expect(deny, 'a default-deny policy').toBeDefined();
    }
    const gymDeploys = (await apps.listNamespacedDeployment({ namespace: tenantNamespace(gym) })).items;
    expect(gymDeploys).toHaveLength(1);
    expect(gymDeploys[0]?.spec?.replicas).toBe(2);
    expect((await core.listNamespacedService({ namespace: tenantNamespace(gym) })).items).toHaveLength(1);
    expect((await apps.listNamespacedDeployment({ namespace: tenantNamespace(dental) })).items).toHaveLength(
      0,
    );
  });

  it('performs no writes when resyncing Ready tenants', async () => {
    await Promise.all([dental, gym, hotel].map((n) => h.ready(n)));
    // let in-flight requeues settle, then take the baseline
    const before = await eventually('a quiet operator', async () => {
      const w1 = JSON.stringify(op.writes());
      await new Promise((r) => setTimeout(r, 2000));
      return JSON.stringify(op.writes()) === w1 ? w1 : undefined;
    });
    // the counter is live: provisioning wrote to every backend
    expect(Object.keys(JSON.parse(before))).toEqual(
      expect.arrayContaining(['postgres', 'kafka', 'namespace', 'agent', 'status']),
    );
    const reconciles = await metric('controller_runtime_reconcile_total');
    // at least two full resync rounds of all three tenants
    await eventually(
      'two resync rounds',
      async () => (await metric('controller_runtime_reconcile_total')) >= reconciles + 6,
      30_000,
    );
    expect(JSON.stringify(op.writes())).toBe(before);
  });

  it('repairs drift: a deleted NetworkPolicy, a topic retention changed, a revoked grant', async () => {
    const net = h.kc.makeApiClient(NetworkingV1Api);
    const ns = tenantNamespace(dental);
    const policies = (await net.listNamespacedNetworkPolicy({ namespace: ns })).items.map(
      (p) => p.metadata!.name!,
    );
    await net.deleteNamespacedNetworkPolicy({ name: policies[0]!, namespace: ns });

    const admin = h.kafka.admin();
    await admin.connect();
    const topic = tenantTopics(dental).inbound;
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: '1000' }] }],
    });

    await h.pool.query(`REVOKE ${quoteIdent(tenantId(dental))} FROM ${quoteIdent(h.appRole)}`);
    await h.pool.query(
      `REVOKE INSERT ON ${quoteIdent(tenantId(dental))}.outbox FROM ${quoteIdent(tenantId(dental))}`,
    );

    try {
      await eventually('the NetworkPolicy to come back', async () =>
        (await net.listNamespacedNetworkPolicy({ namespace: ns })).items.some(
          (p) => p.metadata?.name === policies[0],
        ),
      );
      await eventually('the retention to be reverted', async () => {
        const c = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: 2, name: topic, configNames: ['retention.ms'] }],
        });
        return c.resources[0]?.configEntries[0]?.configValue === '259200000';
      });
      await eventually('the grants to come back', async () => {
        const r = await h.pool.query(
          `SELECT pg_has_role($1, $2, 'MEMBER') AS member, has_table_privilege($2, $3, 'INSERT') AS ins`,
          [h.appRole, tenantId(dental), `${tenantId(dental)}.outbox`],
        );
        return r.rows[0].member && r.rows[0].ins;
      });
    } finally {
      await admin.disconnect();
    }
  });

  it('converges to the latest generation when updated during provisioning', async () => {
    const name = h.name('busy');
    const t = await h.create('busy', { kafka: { partitions: 1 } });
    // immediately, before provisioning can have finished
    await h.patchSpec(name, { displayName: 'Busy Dental, renamed', kafka: { partitions: 4 } });
    const ready = await h.ready(name);
    expect(ready.metadata.generation).toBeGreaterThan(t.metadata.generation ?? 1);
    expect(ready.status?.observedGeneration).toBe(ready.metadata.generation);
    const admin = h.kafka.admin();
    await admin.connect();
    try {
      const meta = await admin.fetchTopicMetadata({ topics: Object.values(tenantTopics(name)) });
      expect(meta.topics.map((x) => x.partitions.length)).toEqual([4, 4, 4]);
    } finally {
      await admin.disconnect();
    }
    const reg = await h.pool.query(`SELECT display_name FROM platform.tenants WHERE name = $1`, [name]);
    expect(reg.rows[0].display_name).toBe('Busy Dental, renamed');
  });

  it('refuses to shrink partitions with a clear condition', async () => {
    // The CRD refuses a decrease on update; a topic grown behind the operator's back is the
    // case the reconciler itself must refuse to "repair" by shrinking.
    const admin = h.kafka.admin();
    await admin.connect();
    try {
      await admin.createPartitions({ topicPartitions: [{ topic: tenantTopics(gym).agent, count: 2 }] });
    } finally {
      await admin.disconnect();
    }
    await h.patchSpec(gym, { displayName: 'Iron Gym (poke)' });
    const t = await eventually('TopicsReady=False', async () => {
      const x = await h.get(gym);
      const c = x?.status?.conditions?.find((c) => c.type === 'TopicsReady');
      return c?.status === 'False' ? x : undefined;
    });
    const c = t.status?.conditions?.find((c) => c.type === 'TopicsReady');
    expect(c?.reason).toBe('PartitionDecreaseRefused');
    expect(t.status?.phase).toBe('Degraded');
    // the admin fixes the spec → Ready again
    await h.patchSpec(gym, { kafka: { partitions: 2 } });
    await h.ready(gym);
  });
});
