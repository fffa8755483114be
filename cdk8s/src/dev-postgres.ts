/**
 * `DevPostgres`: PostgreSQL for a kind cluster (one pod, one volume) plus the `simptu-database`
 * Secret the operator and services read (backends.ts). Development only: the passwords are
 * props with well-known defaults. Production: a managed PostgreSQL or CloudNativePG.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { DATABASE_SECRET } from './backends.ts';
import { checkDevCommon, devStateful, type DevStatefulCommonProps } from './dev-stateful.ts';
import { checkSecretName, fail, platformLabels } from './util.ts';
import { isPlaceholder } from './placeholders.ts';

export const DEV_POSTGRES_NAME = 'simptu-postgres';
export const DEV_POSTGRES_PORT = 5432;

export interface DevPostgresProps extends DevStatefulCommonProps {
  /** Superuser (`postgres`) password. @default 'simptu-dev' */
  readonly password?: string;
  /** Password of the services' login role `simptu_app` (the operator creates the role). @default 'simptu-app-dev' */
  readonly appPassword?: string;
  /** @default 'simptu' */
  readonly database?: string;
  /** Name of the Secret with admin-url, app-url, app-password. @default 'simptu-database' */
  readonly secretName?: string;
}

export class DevPostgres extends Construct {
  readonly statefulSet: k8s.KubeStatefulSet;
  readonly service: k8s.KubeService;
  readonly networkPolicy: k8s.KubeNetworkPolicy;
  readonly secret: k8s.KubeSecret;
  /** In-cluster host name of the Service. */
  readonly host: string;

  constructor(scope: Construct, id: string, props: DevPostgresProps = {}) {
    super(scope, id);
    checkDevCommon('DevPostgres', props);
    checkSecretName('DevPostgres', 'secretName', props.secretName);
    const database = props.database ?? 'simptu';
    if (!isPlaceholder(database) && !/^[a-z_][a-z0-9_]{0,62}$/.test(database))
      fail('DevPostgres', `database ${JSON.stringify(database)} is not a plain PostgreSQL identifier`);
    for (const [what, pw] of [
      ['password', props.password],
      ['appPassword', props.appPassword],
    ] as const) {
      // They go into URLs unescaped; keep them URL-safe.
      if (pw !== undefined && !isPlaceholder(pw) && !/^[A-Za-z0-9._~-]{8,}$/.test(pw))
        fail('DevPostgres', `${what} must be at least 8 URL-safe characters ([A-Za-z0-9._~-])`);
    }
    const password = props.password ?? 'simptu-dev';
    const appPassword = props.appPassword ?? 'simptu-app-dev';

    const o = devStateful(this, props, {
      name: DEV_POSTGRES_NAME,
      component: 'postgres',
      image: 'postgres:16',
      uid: 999, // `postgres` in the Debian-based image
      port: DEV_POSTGRES_PORT,
      portName: 'postgres',
      dataPath: '/var/lib/postgresql/data',
      storage: '2Gi',
      defaultResources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } },
      scratch: { '/var/run/postgresql': 'run' },
      container: {
        env: [
          {
            name: 'POSTGRES_PASSWORD',
            valueFrom: {
              secretKeyRef: { name: props.secretName ?? DATABASE_SECRET, key: 'postgres-password' },
            },
          },
          { name: 'POSTGRES_DB', value: database },
          // A subdirectory: the volume's root holds lost+found on some provisioners.
          { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
        ],
        readinessProbe: {
          exec: { command: ['pg_isready', '-U', 'postgres', '-h', '127.0.0.1'] },
          periodSeconds: 5,
          timeoutSeconds: 3,
        },
        livenessProbe: {
          exec: { command: ['pg_isready', '-U', 'postgres', '-h', '127.0.0.1'] },
          periodSeconds: 20,
          timeoutSeconds: 5,
          failureThreshold: 6,
        },
      },
    });
    this.statefulSet = o.statefulSet;
    this.service = o.service;
    this.networkPolicy = o.networkPolicy;
    this.host = `${DEV_POSTGRES_NAME}.${o.namespace}.svc`;
    const at = `${this.host}:${DEV_POSTGRES_PORT}/${database}`;
    this.secret = new k8s.KubeSecret(this, 'secret', {
      metadata: {
        name: props.secretName ?? DATABASE_SECRET,
        namespace: o.namespace,
        labels: platformLabels(DEV_POSTGRES_NAME, 'postgres'),
      },
      type: 'Opaque',
      stringData: {
        'postgres-password': password,
        'admin-url': `postgres://postgres:${password}@${at}`,
        'app-url': `postgres://simptu_app:${appPassword}@${at}`,
        'app-password': appPassword,
      },
    });
  }
}
