/**
 * The smallest pg surface the library needs; `pg.Pool`, `pg.Client` and `pg.PoolClient` all
 * satisfy it. Functions that need one connection (transactions, SET LOCAL) take a
 * `pg.ClientBase` or a `pg.Pool` instead.
 */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: R[]; rowCount: number | null }>;
}
