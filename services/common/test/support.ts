/** Shared set-up for this package's integration tests: a real PostgreSQL 15 from the test environment. */
import pg from 'pg';
import { quoteIdent } from '../src/db/identifiers.ts';

export function adminUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url)
    throw new Error("DATABASE_URL is not set: run the tests through 'make test' (or 'make testenv-up')");
  return url;
}

/** Connects a single client; the caller ends it. */
export async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

/** Drops roles (cluster-global) created by a test, after revoking what they hold in `url`'s database. */
export async function dropRoles(url: string, roles: string[]): Promise<void> {
  const c = await connect(url);
  try {
    for (const r of roles) {
      const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [r]);
      if (exists.rowCount === 0) continue;
      await c.query(`DROP OWNED BY ${quoteIdent(r)}`);
      await c.query(`DROP ROLE ${quoteIdent(r)}`);
    }
  } finally {
    await c.end();
  }
}

/** The SQLSTATE of a rejected promise (e.g. 42501 insufficient_privilege). */
export async function sqlState(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? `not a pg error: ${String(err)}`;
  }
}
