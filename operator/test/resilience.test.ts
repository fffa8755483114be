/**
 * Crash safety, fail-over and deletion, with the operator as a real process
 * (`node operator/src/main.ts`): killed at every step of provisioning it converges after a
 * restart without duplicating anything or ever replacing a data key; with two replicas only the
 * leader reconciles and the other takes over when it dies; deletion honours the policy.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdent, tenantId, tenantNamespace } from '@simptu/common';
import { FAULT_EXIT_CODE } from '../src/manager.ts';
import { kubeRequest } from '../src/controller/index.ts';
import { Harness, SHARD_LABEL, eventually } from './support/harness.ts';

const h = new Harness();

const FAULT_POINTS = [
  'finalizer:after',
  'namespace:after',
  'encryption:after',
  'database:before',
  'database:after',
  'topics:after',
  'agent:after',
  'registry:before',
  'registry:after',
];

async function keyRows(pool: pg.Pool, tenant: string) {
  return (
    await pool.query(
      `SELECT version, encode(wrapped_dek, 'hex') AS dek FROM platform.tenant_keys WHERE tenant = $1 ORDER BY version`,
      [tenant],
    )
  ).rows as { version: number; dek: string }[];
}

async function leaseHolder(name: string): Promise<string | undefined> {
  const lease = await kubeRequest<{ spec?: { holderIdentity?: string } }>(
    h.kc,
    `/apis/coordination.k8s.io/v1/namespaces/simptu-system/leases/${name}`,
  ).catch(() => undefined);
  return lease?.spec?.holderIdentity || undefined;
}

describe('operator: resilience', () => {
  beforeAll(() => h.setup());
  afterAll(() => h.teardown());

  it('converges after being killed at every step of provisioning, and never replaces a data key', async () => {
    const keysAtCrash = new Map<string, string | undefined>();
    for (const point of FAULT_POINTS) {
      const base = `crash-${point.replace(':', '-')}`;
      const name = h.name(base);
      // this process sees only its own tenant, so the fault hits exactly there
      const child = h.spawn({
        SIMPTU_FAULT_POINT: point,
        SIMPTU_LEADER_ELECTION: 'false',
        SIMPTU_TENANT_SELECTOR: `${SHARD_LABEL}=${h.shard},simptu.io/test-case=${base}`,
      });
      await h.create(base, { isolation: { agent: 'dedicated' } }, { 'simptu.io/test-case': base });
      const code = await Promise.race([
        child.exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000)),
      ]);
      expect(code, `operator should exit at ${point}`).toBe(FAULT_EXIT_CODE);
      keysAtCrash.set(name, (await keyRows(h.pool, name))[0]?.dek);
    }
    // a clean operator picks every half-provisioned tenant up
    const op = await h.start({ leaderElection: { ...h.config().leaderElection, enabled: false } });
    for (const point of FAULT_POINTS) {
      const name = h.name(`crash-${point.replace(':', '-')}`);
      await h.ready(name);
      const keys = await keyRows(h.pool, name);
      expect(
        keys.map((k) => k.version),
        `one key for ${point}`,
      ).toEqual([1]);
      const before = keysAtCrash.get(name);
      if (before) expect(keys[0]?.dek, `key kept across the crash at ${point}`).toBe(before);
      const reg = await h.pool.query(`SELECT count(*)::int AS n FROM platform.tenants WHERE name = $1`, [
        name,
      ]);
      expect(reg.rows[0].n).toBe(1);
      expect(await h.topicsOf(name)).toHaveLength(3);
    }
    // the crash after encryption really happened with a key stored: the comparison above was not vacuous
    expect(keysAtCrash.get(h.name('crash-encryption-after'))).toBeDefined();
    await op.stop();
    h.handles.splice(h.handles.indexOf(op), 1);
  }, 300_000);

  it('with two replicas only the leader reconciles, and the other takes over when it dies', async () => {
    const lease = h.config().leaderElection.leaseName;
    const a = h.spawn();
    const b = h.spawn();
    const first = await eventually('a leader', () => leaseHolder(lease), 30_000);
    await h.create('failover-1');
    await h.ready(h.name('failover-1'));
    // find the leader's process: its log says it became leader
    const outputs = () => [a, b].map((c) => (c as unknown as { output(): string }).output());
    const leaderIdx = outputs().findIndex((o) => o.includes('became leader'));
    expect(leaderIdx).toBeGreaterThanOrEqual(0);
    expect(outputs().filter((o) => o.includes('became leader'))).toHaveLength(1);
    const [leader, standby] = leaderIdx === 0 ? [a, b] : [b, a];
    // only the leader reconciled
    expect((standby as unknown as { output(): string }).output()).not.toContain('tenant phase changed');

    leader.kill('SIGKILL'); // no graceful release: the standby must wait out the lease
    const second = await eventually(
      'a new leader',
      async () => {
        const holder = await leaseHolder(lease);
        return holder && holder !== first ? holder : undefined;
      },
      30_000,
    );
    expect(second).not.toBe(first);
    await h.create('failover-2');
    await h.ready(h.name('failover-2'));
    expect((standby as unknown as { output(): string }).output()).toContain('became leader');

    // graceful stop releases the lease at once
    standby.kill('SIGTERM');
    expect(await standby.exited).toBe(0);
    expect(await leaseHolder(lease)).toBeUndefined();
  }, 120_000);

  describe('deletion', () => {
    let stop: () => Promise<void>;
    beforeAll(async () => {
      const op = await h.start({ leaderElection: { ...h.config().leaderElection, enabled: false } });
      stop = async () => {
        await op.stop();
        h.handles.splice(h.handles.indexOf(op), 1);
      };
    });
    afterAll(() => stop());

    it('deletionPolicy Delete removes schema, role, topics, keys (crypto-shredding), registry row and namespace', async () => {
      const name = h.name('del');
      await h.create('del', { deletionPolicy: 'Delete', isolation: { agent: 'dedicated' } });
      await h.ready(name);
      await h.delete(name);
      await h.gone(name);
      const id = tenantId(name);
      const schema = await h.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [id]);
      const role = await h.pool.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [id]);
      expect(schema.rowCount).toBe(0);
      expect(role.rowCount).toBe(0);
      expect(await keyRows(h.pool, name)).toEqual([]);
      expect((await h.pool.query(`SELECT 1 FROM platform.tenants WHERE name = $1`, [name])).rowCount).toBe(0);
      expect(await h.topicsOf(name)).toEqual([]);
      await eventually(
        'the namespace to be gone',
        async () => !(await h.namespaceExists(tenantNamespace(name))),
      );
      h.created.delete(name);
    });

    it('deletionPolicy Retain keeps data and keys and archives the tenant', async () => {
      const name = h.name('keep');
      await h.create('keep', { deletionPolicy: 'Retain', isolation: { database: 'dedicated' } });
      await h.ready(name);
      const keysBefore = await keyRows(h.pool, name);
      await h.delete(name);
      await h.gone(name);
      h.created.delete(name);
      expect(await keyRows(h.pool, name)).toEqual(keysBefore);
      const reg = await h.pool.query(`SELECT state FROM platform.tenants WHERE name = $1`, [name]);
      expect(reg.rows[0]?.state).toBe('archived');
      const db = await h.pool.query(`SELECT 1 FROM pg_database WHERE datname = $1`, [tenantId(name)]);
      expect(db.rowCount).toBe(1);
      expect(await h.topicsOf(name)).toHaveLength(3);
      // clean up what Retain deliberately left
      await h.pool.query(`DROP DATABASE ${quoteIdent(tenantId(name))} WITH (FORCE)`);
      await h.pool.query(`DROP ROLE IF EXISTS ${quoteIdent(tenantId(name))}`).catch(() => undefined);
      const admin = h.kafka.admin();
      await admin.connect();
      await admin.deleteTopics({ topics: await h.topicsOf(name) });
      await admin.disconnect();
    });

    it('deletionProtection blocks the delete until it is switched off', async () => {
      const name = h.name('prot');
      await h.create('prot', { deletionProtection: true });
      await h.ready(name);
      const refused = await kubeRequest(h.kc, `/apis/simptu.io/v1alpha1/tenants/${name}`, {
        method: 'DELETE',
      }).then(
        () => undefined,
        (e: { code?: number; body?: unknown }) => e,
      );
      expect(refused?.code).toBe(403);
      expect(JSON.stringify(refused?.body)).toContain('deletionProtection');
      expect((await h.get(name))?.metadata.deletionTimestamp).toBeUndefined();
      await h.patchSpec(name, { deletionProtection: false });
      await h.delete(name);
      await h.gone(name);
      h.created.delete(name);
    });

    it('suspended tenants scale the dedicated agent to zero and are marked suspended', async () => {
      const name = h.name('susp');
      await h.create('susp', { isolation: { agent: 'dedicated' } });
      await h.ready(name);
      await h.patchSpec(name, { suspended: true });
      await eventually('phase Suspended', async () => (await h.get(name))?.status?.phase === 'Suspended');
      const dep = await kubeRequest<{ spec: { replicas: number } }>(
        h.kc,
        `/apis/apps/v1/namespaces/${tenantNamespace(name)}/deployments`,
      ).then((l) => (l as unknown as { items: { spec: { replicas: number } }[] }).items[0]);
      expect(dep?.spec.replicas).toBe(0);
      const reg = await h.pool.query(`SELECT state FROM platform.tenants WHERE name = $1`, [name]);
      expect(reg.rows[0]?.state).toBe('suspended');
    });
  });
});
