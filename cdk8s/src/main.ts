/**
 * `node cdk8s/src/main.ts [env…]` (`make synth`): synthesizes each environment of
 * environments.ts into `dist/<env>/simptu.yaml` (git-ignored), ready for
 * `kubectl apply --server-side -f dist/<env>/`. No argument: every environment.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Yaml } from 'cdk8s';
import { ENVIRONMENTS } from './environments.ts';
import { synthPlatform } from './synth.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const names = process.argv.slice(2);
for (const n of names) {
  if (!ENVIRONMENTS[n]) {
    process.stderr.write(
      `unknown environment ${JSON.stringify(n)}; known: ${Object.keys(ENVIRONMENTS).join(', ')}\n`,
    );
    process.exit(2);
  }
}
for (const name of names.length > 0 ? names : Object.keys(ENVIRONMENTS)) {
  const docs = synthPlatform(ENVIRONMENTS[name]!);
  const dir = resolve(ROOT, 'dist', name);
  mkdirSync(dir, { recursive: true });
  const file = resolve(dir, 'simptu.yaml');
  writeFileSync(file, Yaml.stringify(...docs));
  process.stdout.write(`${name}: ${docs.length} objects → ${file}\n`);
}
