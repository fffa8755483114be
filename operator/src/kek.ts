/**
 * The key-encryption key of the `local` KMS provider (DESIGN §5.2): 256 bits in a Secret of the
 * platform namespace. The operator never invents a KEK in production — losing the Secret must
 * surface as `KekMismatch`, not as silently re-keyed tenants — so creating it is a development
 * switch (`kms.createIfMissing`).
 */
import { randomBytes } from 'node:crypto';
import { kubeRequest } from './controller/client.ts';
import { statusCode } from './controller/errors.ts';
import type { KubeAccess } from './controller/kubeconfig.ts';
import { LocalKms, type KmsProvider } from '@simptu/common';

/** the 32 raw key bytes (what `--from-file=kek=<(openssl rand 32)` stores) */
export const KEK_SECRET_KEY = 'kek';
/** the same key as base64 text, for services that take it from an environment variable */
export const KEK_SECRET_BASE64_KEY = 'kek-base64';

/**
 * The KEK from a Secret's data (values base64-encoded by Kubernetes): `kek` holding 32 raw
 * bytes, or — a common mistake made easy to recover from — `kek` holding the base64 text of
 * 32 bytes; else `kek-base64`. Anything else is refused rather than guessed.
 */
export function kekFromSecretData(data: Record<string, string> | undefined): Buffer | undefined {
  const candidates = [data?.[KEK_SECRET_KEY], data?.[KEK_SECRET_BASE64_KEY]].filter((v): v is string => !!v);
  for (const b64 of candidates) {
    const bytes = Buffer.from(b64, 'base64');
    if (bytes.length === 32) return bytes;
    const text = bytes.toString('utf8').trim();
    if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return Buffer.from(text, 'base64');
  }
  return undefined;
}

export interface KekOptions {
  namespace: string;
  secretName: string;
  createIfMissing: boolean;
}

const code = statusCode;

export async function loadKms(kc: KubeAccess, opts: KekOptions): Promise<KmsProvider> {
  const secrets = `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/secrets`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const secret = await kubeRequest<{ data?: Record<string, string> }>(
        kc,
        `${secrets}/${encodeURIComponent(opts.secretName)}`,
      );
      const kek = kekFromSecretData(secret.data);
      if (!kek)
        throw new Error(
          `Secret ${opts.namespace}/${opts.secretName} holds no 256-bit key under '${KEK_SECRET_KEY}' or '${KEK_SECRET_BASE64_KEY}'`,
        );
      return new LocalKms(kek);
    } catch (e) {
      if (code(e) !== 404) throw e;
      if (!opts.createIfMissing) {
        throw new Error(
          `KEK Secret ${opts.namespace}/${opts.secretName} not found; create it with ` +
            `K=$(openssl rand -base64 32); kubectl -n ${opts.namespace} create secret generic ${opts.secretName} --from-file=${KEK_SECRET_KEY}=<(echo "$K" | base64 -d) --from-literal=${KEK_SECRET_BASE64_KEY}="$K"`,
          { cause: e },
        );
      }
    }
    // Development: create the platform namespace and a fresh KEK; AlreadyExists means another
    // replica won the race, and the next loop reads its key.
    await kubeRequest(kc, '/api/v1/namespaces', {
      method: 'POST',
      body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: opts.namespace } },
    }).catch((e: unknown) => {
      if (code(e) !== 409) throw e;
    });
    await kubeRequest(kc, secrets, {
      method: 'POST',
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: opts.secretName,
          labels: { 'app.kubernetes.io/part-of': 'simptu', 'app.kubernetes.io/component': 'kms' },
        },
        type: 'Opaque',
        data: (() => {
          const key = randomBytes(32);
          return {
            [KEK_SECRET_KEY]: key.toString('base64'),
            [KEK_SECRET_BASE64_KEY]: Buffer.from(key.toString('base64')).toString('base64'),
          };
        })(),
      },
    }).catch((e: unknown) => {
      if (code(e) !== 409) throw e;
    });
  }
  throw new Error(`could not load the KEK Secret ${opts.namespace}/${opts.secretName}`);
}
