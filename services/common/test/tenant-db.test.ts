import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdent, quoteLiteral } from '../src/db/identifiers.ts';
import { migratePlatform, migrateTenantSchema } from '../src/db/migrations.ts';
import { createScratchDatabase, uniqueName, withDatabase, type ScratchDatabase } from '../src/db/scratch.ts';
import {
  afterCommit,
  TENANT_PREAMBLE_RESULTS,
  tenantDbRef,
  tenantTransaction,
  withTenant,
  type TenantDbRef,
} from '../src/db/tenant-db.ts';
import { adminUrl, dropRoles, sqlState } from './support.ts';

// Two tenants in one (shared) database, and the services' NOINHERIT login role.
let db: ScratchDatabase;
let admin: pg.Pool;
let app: pg.Pool;
let appUrl: string;
const login = uniqueName('app_test');
const password = uniqueName('pw');
const suffix = uniqueName('x').slice(2);
const A: TenantDbRef = { name: 'tenant-a', schema: `t_a_${suffix}`, role: `t_a_${suffix}` };
const B: TenantDbRef = { name: 'tenant-b', schema: `t_b_${suffix}`, role: `t_b_${suffix}` };

beforeAll(async () => {
  db = await createScratchDatabase(adminUrl());
  admin = new pg.Pool({ connectionString: db.url, max: 3 });
  admin.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
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
  appUrl = url.toString();
  app = new pg.Pool({ connectionString: appUrl, max: 2 });
  app.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
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

  it('sends the preamble as ONE query, and fails closed when the role switch is refused', async () => {
    // Count what each pooled client is asked to run.
    const sent: string[] = [];
    const spy = (client: pg.PoolClient) => {
      const original = client.query.bind(client) as (...a: unknown[]) => unknown;
      (client as unknown as { query: unknown }).query = (...a: unknown[]) => {
        sent.push(typeof a[0] === 'string' ? a[0] : String((a[0] as { text?: string }).text));
        return original(...a);
      };
    };
    const pool = new pg.Pool({ connectionString: appUrl, max: 1 });
    pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
    pool.on('connect', spy);
    try {
      await withTenant(pool, A, (c) => c.query('SELECT 1'));
      expect(sent).toHaveLength(3); // preamble, the work, COMMIT
      expect(sent[0]).toMatch(
        /^BEGIN; SET LOCAL ROLE "t_a_[^"]+"; SET LOCAL search_path TO "t_a_[^"]+"; SELECT set_config\('simptu\.tenant', 'tenant-a', true\)$/,
      );
      expect(sent[2]).toBe('COMMIT');

      // A role the login role is not a member of: the preamble fails, fn never runs.
      const stranger = uniqueName('t_stranger');
      await admin.query(`CREATE ROLE ${quoteIdent(stranger)} NOLOGIN`);
      try {
        let ran = false;
        const code = await sqlState(
          withTenant(pool, { ...A, role: stranger }, async () => {
            ran = true;
          }),
        );
        expect(code).toBe('42501'); // permission denied to set role
        expect(ran).toBe(false);
        // the connection went back clean: the login role, no tenant, no open transaction
        const r = await pool.query(`SELECT current_user AS u, current_setting('simptu.tenant', true) AS t`);
        expect(r.rows[0]).toMatchObject({ u: login });
        expect(r.rows[0].t ?? '').toBe('');
      } finally {
        await dropRoles(adminUrl(), [stranger]);
      }
    } finally {
      await pool.end();
    }
  });

  it('deferBegin: the preamble opens the first query; nothing runs as the tenant before it', async () => {
    const sent: string[] = [];
    const pool = new pg.Pool({ connectionString: appUrl, max: 1 });
    pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
    pool.on('connect', (client) => {
      const original = client.query.bind(client) as (...a: unknown[]) => unknown;
      (client as unknown as { query: unknown }).query = (...a: unknown[]) => {
        sent.push(typeof a[0] === 'string' ? a[0] : String((a[0] as { text?: string }).text));
        return original(...a);
      };
    });
    const clean = async () => {
      const r = await pool.query(`SELECT current_user AS u, current_setting('simptu.tenant', true) AS t`);
      expect(r.rows[0].u).toBe(login);
      expect(r.rows[0].t ?? '').toBe('');
    };
    try {
      // Taken into the function's own multi-statement query: one round trip, then COMMIT.
      const id = uniqueName('deferred');
      const who = await withTenant(
        pool,
        A,
        async (c) => {
          const begin = tenantTransaction(c)!.takeBegin();
          expect(begin).toMatch(/^BEGIN; SET LOCAL ROLE /);
          expect(tenantTransaction(c)!.takeBegin()).toBe(''); // once
          const results = (await c.query(
            `${begin}INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES ('booking', ${quoteLiteral(id)}, 'x', '\\x00'); SELECT current_user AS u`,
          )) as unknown as pg.QueryResult[];
          expect(results).toHaveLength(TENANT_PREAMBLE_RESULTS + 2);
          return results[TENANT_PREAMBLE_RESULTS + 1]!.rows[0].u as string;
        },
        { deferBegin: true },
      );
      expect(who).toBe(A.role);
      expect(sent).toHaveLength(2);
      expect(sent[1]).toBe('COMMIT');
      const { rows } = await admin.query(
        `SELECT count(*)::int AS n FROM ${quoteIdent(A.schema)}.outbox WHERE aggregate_id = $1`,
        [id],
      );
      expect(rows[0].n).toBe(1);

      // A query sent before the preamble runs as the NOINHERIT login role: fails closed.
      const code = await sqlState(
        withTenant(pool, A, (c) => c.query(`SELECT * FROM ${quoteIdent(A.schema)}.outbox`), {
          deferBegin: true,
        }),
      );
      expect(code).toBe('42501');
      await clean();

      // ensureBegun sends it on its own; a throw after it rolls back.
      sent.length = 0;
      await expect(
        withTenant(
          pool,
          A,
          async (c) => {
            await tenantTransaction(c)!.ensureBegun();
            await insertEvent(c, 'deferred-rolled-back');
            throw new Error('boom');
          },
          { deferBegin: true },
        ),
      ).rejects.toThrow('boom');
      expect(sent[0]).toMatch(/^BEGIN; /);
      expect(sent.at(-1)).toBe('ROLLBACK');
      const { rows: none } = await admin.query(
        `SELECT count(*)::int AS n FROM ${quoteIdent(A.schema)}.outbox WHERE aggregate_id = 'deferred-rolled-back'`,
      );
      expect(none[0].n).toBe(0);
      await clean();

      // Only last statements: the preamble, they and COMMIT in ONE round trip; after-commit hooks
      // get that round trip's results.
      sent.length = 0;
      const seen: pg.QueryResult[][] = [];
      await withTenant(
        pool,
        A,
        async (c) => {
          tenantTransaction(c)!.withCommit(`SELECT current_user AS only_last`);
          afterCommit(c, (results) => void seen.push([...results]));
        },
        { deferBegin: true },
      );
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatch(/^BEGIN; SET LOCAL ROLE .*;\nSELECT current_user AS only_last;\nCOMMIT$/s);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toHaveLength(TENANT_PREAMBLE_RESULTS + 2);
      expect(seen[0]![TENANT_PREAMBLE_RESULTS]!.rows).toEqual([{ only_last: A.role }]);
      await clean();

      // Never sent: no transaction was opened, nothing to commit.
      sent.length = 0;
      expect(await withTenant(pool, A, async () => 'nothing', { deferBegin: true })).toBe('nothing');
      expect(sent).toEqual([]);
    } finally {
      await pool.end();
    }
  });

  it('withCommit: a last statement goes with COMMIT; when it fails everything rolls back', async () => {
    const id = uniqueName('with-commit');
    const insert = (aggregate: string) =>
      `INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES ('booking', ${quoteLiteral(aggregate)}, 'x', '\\x00')`;
    const count = async (aggregate: string) => {
      const { rows } = await admin.query(
        `SELECT count(*)::int AS n FROM ${quoteIdent(A.schema)}.outbox WHERE aggregate_id = $1`,
        [aggregate],
      );
      return rows[0].n as number;
    };
    await withTenant(app, A, async (c) => {
      await insertEvent(c, `${id}-a`);
      tenantTransaction(c)!.withCommit(insert(`${id}-b`));
    });
    expect([await count(`${id}-a`), await count(`${id}-b`)]).toEqual([1, 1]);
    // A failing last statement: the earlier write goes too, and withTenant rejects.
    const code = await sqlState(
      withTenant(app, A, async (c) => {
        await insertEvent(c, `${id}-c`);
        tenantTransaction(c)!.withCommit(`SELECT * FROM ${quoteIdent(B.schema)}.outbox`);
      }),
    );
    expect(code).toBe('42501');
    expect(await count(`${id}-c`)).toBe(0);
  });

  it('quotes the tenant name as a literal in the one-query preamble', async () => {
    const odd: TenantDbRef = { ...A, name: "it's; DROP TABLE outbox; --" };
    const seen = await withTenant(app, odd, async (c) => {
      const r = await c.query<{ t: string }>(`SELECT current_setting('simptu.tenant') AS t`);
      return r.rows[0]!.t;
    });
    expect(seen).toBe(odd.name);
    const { rows } = await admin.query(`SELECT to_regclass($1) AS t`, [`${A.schema}.outbox`]);
    expect(rows[0].t).not.toBeNull();
  });

  it('runs after-commit hooks after COMMIT (the data is visible to others), never after ROLLBACK', async () => {
    const log: string[] = [];
    const id = uniqueName('hook');
    await withTenant(app, A, async (c) => {
      expect(tenantTransaction(c)?.tenant).toEqual(A);
      expect(tenantTransaction(c)?.pool).toBe(app);
      await insertEvent(c, id);
      expect(
        afterCommit(c, async () => {
          // another connection sees the committed row
          const { rows } = await admin.query(
            `SELECT count(*)::int AS n FROM ${quoteIdent(A.schema)}.outbox WHERE aggregate_id = $1`,
            [id],
          );
          log.push(`after commit: ${rows[0].n}`);
        }),
      ).toBe(true);
      afterCommit(c, () => {
        throw new Error('a failing hook does not fail the committed transaction');
      });
      log.push('in transaction');
    });
    expect(log).toEqual(['in transaction', 'after commit: 1']);

    await expect(
      withTenant(app, A, async (c) => {
        afterCommit(c, () => log.push('must not run'));
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(log).toHaveLength(2);
    // outside withTenant there is no transaction to wait for
    const plain = await app.connect();
    try {
      expect(tenantTransaction(plain)).toBeUndefined();
      expect(afterCommit(plain, () => undefined)).toBe(false);
    } finally {
      plain.release();
    }
  });
});
