/**
 * Throwaway databases for integration tests and tools: each test file gets its own database
 * on the shared test server, so parallel runs never see each other's schemas.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { quoteIdent } from './identifiers.ts';

export interface ScratchDatabase {
  name: string;
  /** `adminUrl` pointing at the new database */
  url: string;
  drop(): Promise<void>;
}

/** Replaces the database of a connection URL. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

/** Unique, valid identifier: `<prefix>_<12 hex>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

export async function createScratchDatabase(
  adminUrl: string,
  prefix = 'simptu_test',
): Promise<ScratchDatabase> {
  const name = uniqueName(prefix);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: withDatabase(adminUrl, name),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
