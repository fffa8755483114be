/**
 * The key-encryption key of the `local` KMS provider (DESIGN §5.2): 256 bits in a Secret of the
 * platform namespace. The operator never invents a KEK in production — losing the Secret must
 * surface as `KekMismatch`, not as silently re-keyed tenants — so creating it is a development
 * switch (`kms.createIfMissing`).
 */
import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { LocalKms, type KmsProvider } from '@simptu/common';

export const KEK_SECRET_KEY = 'kek';

export interface KekOptions {
  namespace: string;
  secretName: string;
  createIfMissing: boolean;
}

const code = (e: unknown) => (e instanceof ApiException ? e.code : undefined);

export async function loadKms(kc: KubeConfig, opts: KekOptions): Promise<KmsProvider> {
  const core = kc.makeApiClient(CoreV1Api);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const secret = await core.readNamespacedSecret({ name: opts.secretName, namespace: opts.namespace });
      const b64 = secret.data?.[KEK_SECRET_KEY];
      if (!b64) throw new Error(`Secret ${opts.namespace}/${opts.secretName} has no '${KEK_SECRET_KEY}' key`);
      return new LocalKms(Buffer.from(b64, 'base64'));
    } catch (e) {
      if (code(e) !== 404) throw e;
      if (!opts.createIfMissing) {
        throw new Error(
          `KEK Secret ${opts.namespace}/${opts.secretName} not found; create it with ` +
            `kubectl -n ${opts.namespace} create secret generic ${opts.secretName} --from-literal=${KEK_SECRET_KEY}=$(openssl rand -base64 32)`,
          { cause: e },
        );
      }
    }
    // Development: create the platform namespace and a fresh KEK; AlreadyExists means another
    // replica won the race, and the next loop reads its key.
    await core.createNamespace({ body: { metadata: { name: opts.namespace } } }).catch((e) => {
      if (code(e) !== 409) throw e;
    });
    await core
      .createNamespacedSecret({
        namespace: opts.namespace,
        body: {
          metadata: { name: opts.secretName, labels: { 'app.kubernetes.io/part-of': 'simptu', 'app.kubernetes.io/component': 'kms' } },
          type: 'Opaque',
          data: { [KEK_SECRET_KEY]: randomBytes(32).toString('base64') },
        },
      })
      .catch((e) => {
        if (code(e) !== 409) throw e;
      });
  }
  throw new Error(`could not load the KEK Secret ${opts.namespace}/${opts.secretName}`);
}
