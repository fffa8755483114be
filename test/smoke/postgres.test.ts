import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireEnv } from '../support/testenv.ts';

describe('test environment: PostgreSQL', () => {
  const pool = new pg.Pool({ connectionString: requireEnv('DATABASE_URL'), max: 2 });
  pool.on('error', () => undefined); // idle clients ended by DROP DATABASE … FORCE
  const table = `smoke_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    await pool.query(`create table ${table} (id int primary key, note text not null)`);
  });
  afterAll(async () => {
    await pool.query(`drop table if exists ${table}`);
    await pool.end();
  });

  it('round-trips rows through a real table, transactionally', async () => {
    await pool.query(`insert into ${table} values ($1, $2), ($3, $4)`, [1, 'one', 2, 'two']);
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query(`insert into ${table} values (3, 'rolled back')`);
      await client.query('rollback');
    } finally {
      client.release();
    }
    const { rows } = await pool.query(`select id, note from ${table} order by id`);
    expect(rows).toEqual([
      { id: 1, note: 'one' },
      { id: 2, note: 'two' },
    ]);
  });

  it('is a real server of version 15 or later with the superuser the contract promises', async () => {
    const { rows } = await pool.query(
      `select current_setting('server_version_num')::int as v, rolsuper from pg_roles where rolname = current_user`,
    );
    expect(rows[0].v).toBeGreaterThanOrEqual(150000);
    expect(rows[0].rolsuper).toBe(true);
  });
});
