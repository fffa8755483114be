/**
 * The environment the constructs give each container is exactly what the service's own config
 * loader accepts: every variable known (the loaders refuse unknown `SIMPTU_<SERVICE>_*` names),
 * every required field present. Secret references are filled with sample values, as the kubelet
 * would.
 */
import { describe, expect, it } from 'vitest';
import { ENVIRONMENTS, synthPlatform, type Manifest } from '@simptu/cdk8s';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { loadRealtimeConfig } from '../../services/realtime/src/config.ts';
import { fromEnv, parseConfig } from '../../operator/src/config.ts';

const SAMPLE: Record<string, string> = {
  'admin-url': 'postgres://postgres:pw@db:5432/simptu',
  'app-url': 'postgres://simptu_app:pw@db:5432/simptu',
  'app-password': 'app-password-1',
  url: 'redis://redis:6379',
  'kek-base64': Buffer.alloc(32, 7).toString('base64'),
  'cookie-keys': 'cookie-key-0123456789abcdef0123456789',
  // by `<secret>/<key>` where the key alone is ambiguous
  'simptu-smtp/url': 'smtp://mailer:secret@smtp.example.com:587',
};

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}

function containerEnv(docs: Manifest[], name: string): Record<string, string> {
  const d = docs.find((m) => m.kind === 'Deployment' && m.metadata.name === name);
  if (!d) throw new Error(`no Deployment ${name}`);
  const env = (d.spec as { template: { spec: { containers: Array<{ env: EnvVar[] }> } } }).template.spec
    .containers[0]!.env;
  return Object.fromEntries(
    env.map((e) => {
      if (e.value !== undefined) return [e.name, e.value];
      if (e.valueFrom?.secretKeyRef) {
        const { name, key } = e.valueFrom.secretKeyRef;
        return [e.name, SAMPLE[`${name}/${key}`] ?? SAMPLE[key] ?? `missing sample ${key}`];
      }
      return [e.name, 'pod-name-0'];
    }),
  );
}

describe.each(Object.keys(ENVIRONMENTS))('%s', (env) => {
  const docs = synthPlatform(ENVIRONMENTS[env]!);

  it('the API accepts its environment', () => {
    const config = loadApiConfig(containerEnv(docs, 'simptu-api'));
    expect(config.port).toBe(3003);
    expect(config.kek).toBe(SAMPLE['kek-base64']);
    expect(config.databaseUrl).toBe(SAMPLE['app-url']);
    expect(config.auth.issuer).toMatch(/^https?:\/\/auth\./);
  });

  it('the SSO accepts its environment', async () => {
    const authConfig = '../../services/auth/src/config.ts';
    const { loadAuthConfig } = (await import(authConfig)) as {
      loadAuthConfig: (env: Record<string, string>) => {
        port: number;
        issuer: string;
        kek: string;
        cookieKeys: string[];
      };
    };
    const config = loadAuthConfig(containerEnv(docs, 'simptu-auth'));
    expect(config.port).toBe(3001);
    expect(config.issuer).toMatch(/^https?:\/\/auth\./);
    expect(config.kek).toBe(SAMPLE['kek-base64']);
    expect(config.cookieKeys).toEqual([SAMPLE['cookie-keys']]);
  });

  it('the realtime hub accepts its environment', () => {
    const config = loadRealtimeConfig(containerEnv(docs, 'simptu-realtime'));
    expect(config.port).toBe(4000);
    expect(config.instanceId).toBe('pod-name-0');
    expect(config.kekBase64).toBe(SAMPLE['kek-base64']);
  });

  it('the pooled agent accepts its environment', async () => {
    // test/tsconfig.json does not reference services/agent yet: loaded by path, typed here.
    const agentConfig = '../../services/agent/src/config.ts';
    const { loadAgentConfig } = (await import(agentConfig)) as {
      loadAgentConfig: (env: Record<string, string>) => {
        mode: string;
        metricsPort: number;
        kek: string;
        channels: { smtpUrl?: string };
      };
    };
    const config = loadAgentConfig(containerEnv(docs, 'simptu-agent-pool'));
    expect(config.mode).toBe('pool');
    expect(config.metricsPort).toBe(8080);
    expect(config.kek).toBe(SAMPLE['kek-base64']);
    expect(config.channels.smtpUrl).toBe(SAMPLE['simptu-smtp/url']);
  });

  it('the operator accepts its environment', () => {
    const config = parseConfig(fromEnv(containerEnv(docs, 'simptu-operator')));
    expect(config.databaseUrl).toBe(SAMPLE['admin-url']);
    expect(config.appRolePassword).toBe(SAMPLE['app-password']);
    expect(config.leaderElection.enabled).toBe(true);
    expect(config.metricsPort).toBe(8080);
    expect(config.probePort).toBe(8081);
    expect(config.kms.createIfMissing).toBe(false);
    // Every SIMPTU_* variable the construct sets is one fromEnv reads.
    const known = JSON.stringify(fromEnv.toString());
    for (const name of Object.keys(containerEnv(docs, 'simptu-operator')).filter((n) =>
      n.startsWith('SIMPTU_'),
    ))
      expect(known, name).toContain(name);
  });
});
