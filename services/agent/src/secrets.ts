/**
 * Where tenant credentials come from. Tenants reference Kubernetes Secrets by name
 * (`integrations.twilio.credentialsSecretRef.name`, `agent.model.secretRef.name`); the services
 * never hold them in the registry. Two sources, first hit wins:
 *  - a directory of mounted Secrets: `<dir>/<secret name>/<key>` (how a Secret volume looks);
 *  - a JSON map `{"<secret name>": {"<key>": "<value>"}}` (development and tests).
 * @see https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SecretSource {
  /** the value of `key` in Secret `name`, or undefined */
  get(name: string, key: string): string | undefined;
}

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function secretSource(options: { dir?: string | undefined; json?: string | undefined }): SecretSource {
  let map: Record<string, Record<string, string>> = {};
  if (options.json) {
    const parsed: unknown = JSON.parse(options.json);
    if (!parsed || typeof parsed !== 'object')
      throw new TypeError('secrets JSON must be an object of objects');
    map = parsed as Record<string, Record<string, string>>;
  }
  return {
    get(name, key) {
      const v = map[name]?.[key];
      if (typeof v === 'string') return v;
      if (!options.dir || !NAME_RE.test(name) || !/^[-._a-zA-Z0-9]+$/.test(key)) return undefined;
      try {
        return readFileSync(join(options.dir, name, key), 'utf8').trim();
      } catch {
        return undefined;
      }
    },
  };
}
