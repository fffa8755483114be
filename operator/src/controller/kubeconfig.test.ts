import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RequestContext, HttpMethod } from '@kubernetes/client-node/dist/gen/http/http.js';
import { describe, expect, it } from 'vitest';
import { LightKubeConfig, lightFromKubeconfigFile, lightInCluster, loadKubeConfig } from './kubeconfig.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
  const path = join(dir, 'config');
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'other', cluster: { server: 'https://other:6443' } },
        { name: 'c', cluster: { server: 'https://api.example:6443', ...cluster } },
      ],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'ctx',
    }),
  );
  return path;
}

async function headers(kc: { applySecurityAuthentication(ctx: RequestContext): Promise<void> }) {
  const ctx = new RequestContext('https://api.example:6443/api', HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  return { headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher() };
}

describe('LightKubeConfig', () => {
  it("reads the current context's cluster and bearer token, with one pool for every request", async () => {
    const kc = lightFromKubeconfigFile(
      kubeconfig({ token: 'tok' }, { 'certificate-authority-data': b64('CA') }),
    )!;
    expect(kc).toBeInstanceOf(LightKubeConfig);
    expect(kc.getCurrentCluster()).toEqual({ server: 'https://api.example:6443' });
    const a = await headers(kc);
    const b = await headers(kc);
    expect(a.headers.Authorization).toBe('Bearer tok');
    expect(a.dispatcher).toBeDefined();
    expect(b.dispatcher).toBe(a.dispatcher);
  });

  it('reads a token file, client certificate files relative to the kubeconfig, and basic auth', async () => {
    const path = kubeconfig({
      tokenFile: 'token',
      'client-certificate': 'crt',
      'client-key': '/nonexistent/key',
    });
    writeFileSync(join(path, '..', 'token'), 'from-file\n');
    writeFileSync(join(path, '..', 'crt'), 'CERT');
    // the key file is missing: a start-up error, not a failure on the first request
    expect(() => lightFromKubeconfigFile(path)).toThrow(/nonexistent\/key/);

    writeFileSync(join(path, '..', 'key'), 'KEY');
    const ok = kubeconfig({ tokenFile: join(path, '..', 'token'), 'client-key': join(path, '..', 'key') });
    expect((await headers(lightFromKubeconfigFile(ok)!)).headers.Authorization).toBe('Bearer from-file');
    const basic = lightFromKubeconfigFile(kubeconfig({ username: 'ann', password: 'pw' }))!;
    expect((await headers(basic)).headers.Authorization).toBe(`Basic ${b64('ann:pw')}`);
  });

  it('leaves exec and auth-provider plugins, proxies and impersonation to client-node', () => {
    expect(lightFromKubeconfigFile(kubeconfig({ exec: { command: 'aws' } }))).toBeUndefined();
    expect(lightFromKubeconfigFile(kubeconfig({ 'auth-provider': { name: 'oidc' } }))).toBeUndefined();
    expect(lightFromKubeconfigFile(kubeconfig({ as: 'admin', token: 't' }))).toBeUndefined();
    expect(lightFromKubeconfigFile(kubeconfig({}, { 'proxy-url': 'http://proxy:3128' }))).toBeUndefined();
  });

  it('refuses plain HTTP unless TLS verification is off, as client-node does', () => {
    expect(() => lightFromKubeconfigFile(kubeconfig({}, { server: 'http://127.0.0.1:8080' }))).toThrow(
      /HTTP/,
    );
    const kc = lightFromKubeconfigFile(
      kubeconfig({}, { server: 'http://127.0.0.1:8080', 'insecure-skip-tls-verify': true }),
    )!;
    expect(kc.getCurrentCluster().server).toBe('http://127.0.0.1:8080');
  });

  it('in cluster: the ServiceAccount token and CA, the token read again when it rotates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sa-'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'token'), 'one');
    writeFileSync(join(dir, 'ca.crt'), 'CA');
    const kc = lightInCluster({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir);
    expect(kc.getCurrentCluster().server).toBe('https://[fd00::1]:443');
    expect((await headers(kc)).headers.Authorization).toBe('Bearer one');
    writeFileSync(join(dir, 'token'), 'two');
    expect((await headers(kc)).headers.Authorization).toBe('Bearer one'); // until the reload interval
  });
});

describe('loadKubeConfig', () => {
  it('$KUBECONFIG first, then ~/.kube/config, then the ServiceAccount; client-node for the rest', async () => {
    const file = kubeconfig({ token: 't' });
    expect(await loadKubeConfig({ KUBECONFIG: file }, '/nonexistent')).toBeInstanceOf(LightKubeConfig);
    const home = mkdtempSync(join(tmpdir(), 'home-'));
    mkdirSync(join(home, '.kube'));
    writeFileSync(join(home, '.kube', 'config'), JSON.stringify({ 'current-context': 'x' }));
    // ~/.kube/config is taken (and its missing context reported) before the ServiceAccount
    await expect(loadKubeConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }, home)).rejects.toThrow(/context/);
    const plugin = kubeconfig({ exec: { command: 'aws', apiVersion: 'client.authentication.k8s.io/v1' } });
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = plugin;
    try {
      const kc = await loadKubeConfig({ KUBECONFIG: plugin }, '/nonexistent');
      expect(kc).not.toBeInstanceOf(LightKubeConfig);
      expect(kc.getCurrentCluster()?.server).toBe('https://api.example:6443');
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    }
  });
});
