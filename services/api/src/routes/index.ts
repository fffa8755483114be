/**
 * Registers every route file in this folder under `/v1`: each `<name>.ts` (not `index.ts`, not
 * `*.test.ts`) default-exports a fastify plugin. Loading by readdir means the engineers writing
 * route files never edit a shared list. Files are loaded in name order so the OpenAPI document
 * is stable.
 * @see https://fastify.dev/docs/latest/Reference/Plugins/ (encapsulation: each file its own context)
 */
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The route modules' file names, sorted (exported for tests). */
export async function routeFiles(dir = here): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter(
      (e) =>
        e.isFile() &&
        /\.(ts|js)$/.test(e.name) &&
        !/\.d\.ts$/.test(e.name) &&
        !/\.test\.(ts|js)$/.test(e.name) &&
        !/^index\.(ts|js)$/.test(e.name),
    )
    .map((e) => e.name)
    .sort();
}

export default async function routes(app: FastifyInstance): Promise<void> {
  for (const file of await routeFiles()) {
    const mod = (await import(pathToFileURL(path.join(here, file)).href)) as { default?: unknown };
    if (typeof mod.default !== 'function')
      throw new TypeError(`routes/${file} must default-export a fastify plugin`);
    await app.register(mod.default as FastifyPluginAsync, { prefix: '/v1' });
  }
}
