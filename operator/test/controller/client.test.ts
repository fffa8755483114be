import diagnostics_channel from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { kubeRequest, kubeWatch } from '../../src/controller/client.ts';
import { LightKubeConfig, loadKubeConfig } from '../../src/controller/kubeconfig.ts';
import { NS, kubeConfig } from './support.ts';

describe('kubeRequest (real kube-apiserver)', () => {
  it.each([
    ['client-node KubeConfig', async () => kubeConfig()],
    ['LightKubeConfig (what loadKubeConfig gives for the test environment)', () => loadKubeConfig()],
  ])('reuses connections: one pool, not a TLS handshake per request (%s)', async (_what, load) => {
    const kc = await load();
    let connects = 0;
    const onConnect = () => connects++;
    diagnostics_channel.subscribe('undici:client:connected', onConnect);
    try {
      for (let i = 0; i < 20; i++) await kubeRequest(kc, `/api/v1/namespaces/${NS}`);
      // A watch runs beside the requests on a connection of its own.
      await kubeWatch(kc, `/api/v1/namespaces/${NS}/configmaps`, { timeoutSeconds: 1 }, () => undefined);
      for (let i = 0; i < 20; i++) await kubeRequest(kc, `/api/v1/namespaces/${NS}`);
    } finally {
      diagnostics_channel.unsubscribe('undici:client:connected', onConnect);
    }
    // client-node alone opens one per request (41 here); a dropped keep-alive may cost one more
    expect(connects).toBeGreaterThan(0);
    expect(connects).toBeLessThanOrEqual(3);
  });

  it('loadKubeConfig reads the test environment without client-node: CA, token, and an error as client-node raises it', async () => {
    const kc = await loadKubeConfig();
    expect(kc).toBeInstanceOf(LightKubeConfig);
    expect(await kubeRequest(kc, `/api/v1/namespaces/${NS}`)).toMatchObject({ metadata: { name: NS } });
    await expect(kubeRequest(kc, `/api/v1/namespaces/${NS}/configmaps/no-such-thing`)).rejects.toMatchObject({
      code: 404,
    });
  });
});
