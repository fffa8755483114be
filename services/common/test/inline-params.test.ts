/**
 * `inlineParams` (common db/inline.ts): the checkpoint write and the reply's outbox row deferred to COMMIT is sent as a statement
 * without parameters; every kind of value the saver writes must come back exactly as the same
 * statement with parameters would store it (real Postgres).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inlineParams } from '../src/db/inline.ts';
import { adminUrl } from './support.ts';

let pool: pg.Pool;
beforeAll(() => {
  pool = new pg.Pool({ connectionString: adminUrl(), max: 1 });
  pool.on('error', () => undefined);
});
afterAll(async () => {
  await pool?.end();
});

describe('inlineParams', () => {
  it('inlines text, bytes, JSON, numbers, booleans and NULL as the parameters would be read', async () => {
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 39, 92]); // NUL, quote and backslash bytes
    const values = [
      "it's a \\ back'slash; DROP TABLE x; --",
      new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      { channel_versions: { messages: '00000003.0.1' }, quote: "o'k", nested: [1, null, 'x'] },
      9,
      true,
      null,
      undefined,
      '',
    ];
    const text = `SELECT $1::text AS a, $2::bytea AS b, $3::jsonb AS c, $4::int AS d, $5::boolean AS e,
                         $6::text AS f, $7::text AS g, $8::text AS h, $9::text AS i, $10::text AS j`;
    const all = [...values, 'unused', 'ten'];
    const withParams = await pool.query(text, all);
    const inlined = inlineParams(text, all);
    expect(inlined).not.toMatch(/\$\d/);
    const withLiterals = await pool.query(inlined);
    expect(withLiterals.rows).toEqual(withParams.rows);
    expect(withLiterals.rows[0].b).toEqual(bytes);
    expect(() => inlineParams('SELECT $3', [1, 2])).toThrow(/no value for \$3/);
    expect(() => inlineParams('SELECT $1', [Number.NaN])).toThrow(/not a finite number/);
  });
});
