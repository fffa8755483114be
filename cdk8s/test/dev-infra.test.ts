import { describe, expect, it } from 'vitest';
import { DevKafka, DevPostgres, DevRedis } from '../src/index.ts';
import { container, envOf, find, synth, type Obj } from './support.ts';

function statefulOk(objs: Obj[], uid: number, storage: string): void {
  const sts = find(objs, 'StatefulSet');
  expect(sts.spec.replicas).toBe(1);
  expect(sts.spec.template.spec.securityContext).toMatchObject({
    runAsNonRoot: true,
    runAsUser: uid,
    fsGroup: uid,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  const c = sts.spec.template.spec.containers[0];
  expect(c.securityContext).toMatchObject({
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  expect(c.resources.requests).toBeDefined();
  expect(c.resources.limits).toBeDefined();
  expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe(storage);
  const np = find(objs, 'NetworkPolicy').spec;
  expect(np.ingress[0].from[1]).toEqual({
    namespaceSelector: { matchExpressions: [{ key: 'simptu.io/tenant', operator: 'Exists' }] },
  });
}

describe('DevPostgres', () => {
  it('StatefulSet, Service and the simptu-database Secret with every key the platform reads', () => {
    const objs = synth((s) => new DevPostgres(s, 'pg', { namespace: 'dev' }));
    statefulOk(objs, 999, '2Gi');
    expect(find(objs, 'Secret').stringData).toEqual({
      'postgres-password': 'simptu-dev',
      'admin-url': 'postgres://postgres:simptu-dev@simptu-postgres.dev.svc:5432/simptu',
      'app-url': 'postgres://simptu_app:simptu-app-dev@simptu-postgres.dev.svc:5432/simptu',
      'app-password': 'simptu-app-dev',
    });
    expect(envOf(container(objs, 'StatefulSet'))).toMatchObject({
      POSTGRES_PASSWORD: 'secret:simptu-database/postgres-password',
      POSTGRES_DB: 'simptu',
      PGDATA: '/var/lib/postgresql/data/pgdata',
    });
    expect(find(objs, 'Service').spec.ports[0].port).toBe(5432);
  });

  it('options and validation', () => {
    const objs = synth(
      (s) =>
        new DevPostgres(s, 'pg', {
          password: 'supersecret',
          appPassword: 'appsecret1',
          database: 'db1',
          secretName: 'dbs',
          storage: '5Gi',
          storageClassName: 'fast',
          image: 'postgres:17',
        }),
    );
    expect(find(objs, 'Secret').metadata.name).toBe('dbs');
    expect(find(objs, 'Secret').stringData['app-url']).toBe(
      'postgres://simptu_app:appsecret1@simptu-postgres.simptu-system.svc:5432/db1',
    );
    const sts = find(objs, 'StatefulSet');
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({
      storageClassName: 'fast',
      resources: { requests: { storage: '5Gi' } },
    });
    expect(container(objs, 'StatefulSet').image).toBe('postgres:17');
    expect(() => synth((s) => new DevPostgres(s, 'pg', { password: 'a@b/c' }))).toThrow(/URL-safe/);
    expect(() => synth((s) => new DevPostgres(s, 'pg', { database: 'Bad-Name' }))).toThrow(/database/);
    expect(() => synth((s) => new DevPostgres(s, 'pg', { storage: 'big' }))).toThrow(/storage/);
  });
});

describe('DevRedis', () => {
  it('append-only Redis and the simptu-redis Secret', () => {
    const objs = synth((s) => new DevRedis(s, 'r'));
    statefulOk(objs, 999, '1Gi');
    expect(find(objs, 'Secret').stringData).toEqual({ url: 'redis://simptu-redis.simptu-system.svc:6379' });
    expect(container(objs, 'StatefulSet').args).toContain('--appendonly');
    expect(
      synth((s) => new DevRedis(s, 'r', { secretName: 'cache' })).find((o) => o.kind === 'Secret')!.metadata
        .name,
    ).toBe('cache');
  });
});

describe('DevKafka', () => {
  it('KRaft combined mode from a ConfigMap, advertised at the Service', () => {
    const objs = synth((s) => new DevKafka(s, 'k', { namespace: 'dev', numPartitions: 6 }));
    statefulOk(objs, 1000, '4Gi');
    const props = find(objs, 'ConfigMap').data['server.properties'] as string;
    expect(props).toContain('process.roles=broker,controller');
    expect(props).toContain('controller.quorum.voters=1@localhost:9093');
    expect(props).toContain('advertised.listeners=PLAINTEXT://simptu-kafka.dev.svc:9092');
    expect(props).toContain('num.partitions=6');
    expect(props).toContain('auto.create.topics.enable=false');
    const c = container(objs, 'StatefulSet');
    expect(c.args[0]).toContain('kafka-storage.sh format --ignore-formatted');
    expect(envOf(c).CLUSTER_ID).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(find(objs, 'StatefulSet').spec.template.metadata.annotations['simptu.io/config-sha256']).toMatch(
      /^[0-9a-f]{64}$/,
    );
    expect(() => synth((s) => new DevKafka(s, 'k', { clusterId: 'short' }))).toThrow(/clusterId/);
    expect(() => synth((s) => new DevKafka(s, 'k', { numPartitions: 0 }))).toThrow(/numPartitions/);
  });
});
