import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdent, quoteLiteral } from '../src/db/identifiers.ts';
import { migratePlatform, migrateTenantSchema } from '../src/db/migrations.ts';
import { createScratchDatabase, uniqueName, withDatabase, type ScratchDatabase } from '../src/db/scratch.ts';
import { tenantDbRef, withTenant, type TenantDbRef } from '../src/db/tenant-db.ts';
import { adminUrl, dropRoles, sqlState } from './support.ts';

// Two tenants in one (shared) database, and the services' NOINHERIT login role.
let db: ScratchDatabase;
let admin: pg.Pool;
let app: pg.Pool;
const login = uniqueName('app_test');
const password = uniqueName('pw');
const suffix = uniqueName('x').slice(2);
const A: TenantDbRef = { name: 'tenant-a', schema: `t_a_${suffix}`, role: `t_a_${suffix}` };
const B: TenantDbRef = { name: 'tenant-b', schema: `t_b_${suffix}`, role: `t_b_${suffix}` };

beforeAll(async () => {
  db = await createScratchDatabase(adminUrl());
  admin = new pg.Pool({ connectionString: db.url, max: 3 });
  await migratePlatform(admin);
  await admin.query(`CREATE ROLE ${quoteIdent(login)} LOGIN NOINHERIT PASSWORD ${quoteLiteral(password)}`);
  for (const t of [A, B]) {
    await admin.query(`CREATE ROLE ${quoteIdent(t.role)} NOLOGIN`);
    await migrateTenantSchema(admin, t);
    await admin.query(`GRANT ${quoteIdent(t.role)} TO ${quoteIdent(login)}`);
  }
  const url = new URL(db.url);
  url.username = login;
  url.password = password;
  app = new pg.Pool({ connectionString: url.toString(), max: 2 });
});

afterAll(async () => {
  await app?.end();
  await admin?.end();
  await db?.drop();
  await dropRoles(adminUrl(), [login, A.role, B.role]);
});

const insertEvent = (c: pg.ClientBase, id: string) =>
  c.query(
    `INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES ('booking', $1, 'io.simptu.booking.created', '\\x00')`,
    [id],
  );

describe('withTenant', () => {
  it('runs as the tenant role with only its schema on the path', async () => {
    const seen = await withTenant(app, A, async (c) => {
      await insertEvent(c, 'a-1');
      const r = await c.query<{ u: string; p: string; t: string }>(
        `SELECT current_user AS u, current_setting('search_path') AS p, current_setting('simptu.tenant') AS t`,
      );
      return r.rows[0];
    });
    expect(seen).toEqual({ u: A.role, p: quoteIdent(A.schema).replace(/"/g, ''), t: 'tenant-a' });
    const { rows } = await admin.query(`SELECT aggregate_id FROM ${quoteIdent(A.schema)}.outbox`);
    expect(rows).toEqual([{ aggregate_id: 'a-1' }]);
  });

  it("can't reach another tenant's schema, even fully qualified", async () => {
    const code = await sqlState(
      withTenant(app, A, (c) => c.query(`SELECT * FROM ${quoteIdent(B.schema)}.outbox`)),
    );
    expect(code).toBe('42501'); // insufficient_privilege
    const code2 = await sqlState(
      withTenant(app, A, (c) =>
        c.query(`SET ROLE ${quoteIdent(login)}; SELECT * FROM ${quoteIdent(B.schema)}.outbox`),
      ),
    );
    expect(code2).toBe('42501'); // back to the login role: still nothing (NOINHERIT)
  });

  it('cannot read the platform registry from inside a tenant transaction', async () => {
    expect(await sqlState(withTenant(app, A, (c) => c.query('SELECT * FROM platform.tenant_keys')))).toBe(
      '42501',
    );
  });

  it('fails closed outside withTenant: the NOINHERIT login role reads no tenant table', async () => {
    for (const t of [A, B]) {
      expect(await sqlState(app.query(`SELECT * FROM ${quoteIdent(t.schema)}.outbox`))).toBe('42501');
    }
    expect(await sqlState(app.query(`SELECT * FROM outbox`))).toBe('42P01'); // not on its search_path either
  });

  it('rolls back on error and leaves the pooled connection clean', async () => {
    await expect(
      withTenant(app, B, async (c) => {
        await insertEvent(c, 'b-rolled-back');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${quoteIdent(B.schema)}.outbox`);
    expect(rows[0].n).toBe(0);
    // every pooled connection is back to the login role with no tenant setting
    const checks = await Promise.all([
      app.query(`SELECT current_user AS u, current_setting('simptu.tenant', true) AS t`),
      app.query(`SELECT current_user AS u, current_setting('simptu.tenant', true) AS t`),
    ]);
    for (const r of checks) {
      expect(r.rows[0].u).toBe(login);
      expect(r.rows[0].t ?? '').toBe(''); // '' after a SET LOCAL ended, NULL if never set
    }
  });

  it('refuses malformed identifiers before touching the database', async () => {
    await expect(withTenant(app, { ...A, role: 'x"; DROP TABLE y; --' }, async () => 1)).rejects.toThrow(
      TypeError,
    );
    expect(tenantDbRef('smile-dental')).toEqual({
      name: 'smile-dental',
      schema: 't_smile_dental',
      role: 't_smile_dental',
    });
    expect(withDatabase('postgres://u:p@h:1/a?sslmode=disable', 'b')).toBe(
      'postgres://u:p@h:1/b?sslmode=disable',
    );
  });
});
