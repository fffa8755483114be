/**
 * `make manifests`: writes the generated CRD and admission policy into `crds/`.
 *
 *   node operator/src/cmd/manifests.ts          regenerate
 *   node operator/src/cmd/manifests.ts --check  exit 1, naming each stale file, when the
 *                                               committed files differ from the sources
 *
 * (kubebuilder's `controller-gen` + the "manifests are up to date" CI check.)
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderManifests } from '../api/crd.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

async function main(args: string[]): Promise<number> {
  const check = args.includes('--check');
  const unknown = args.filter((a) => a !== '--check');
  if (unknown.length > 0) {
    console.error(`usage: manifests.ts [--check] (unknown argument ${unknown[0]})`);
    return 2;
  }
  let stale = 0;
  for (const [file, content] of renderManifests()) {
    const path = resolve(ROOT, file);
    const current = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (current === content) continue;
    if (check) {
      console.error(`${file} is ${current === undefined ? 'missing' : 'stale'}; run make manifests`);
      stale++;
    } else {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
      console.log(`wrote ${file}`);
    }
  }
  return stale > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
