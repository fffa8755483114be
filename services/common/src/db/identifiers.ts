/**
 * SQL identifiers built from tenant names. Postgres can't bind identifiers as parameters, so
 * every one is validated against a strict pattern AND quoted with pg's `escapeIdentifier`
 * (belt and braces: the pattern keeps names portable and below NAMEDATALEN).
 * @see https://www.postgresql.org/docs/15/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS
 */
import pg from 'pg';

/** Lower-case, starts with a letter or `_`, at most 63 bytes (NAMEDATALEN - 1). */
export const IDENTIFIER_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export function isValidIdentifier(name: string): boolean {
  return IDENTIFIER_RE.test(name);
}

export function assertIdentifier(name: string, what = 'identifier'): string {
  if (!isValidIdentifier(name)) throw new TypeError(`invalid SQL ${what} ${JSON.stringify(name)}`);
  return name;
}

/** Validated and double-quoted: `t_smile_dental` → `"t_smile_dental"`. */
export function quoteIdent(name: string, what?: string): string {
  return pg.escapeIdentifier(assertIdentifier(name, what));
}

/** `schema.table`, both parts validated and quoted. */
export function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema, 'schema')}.${quoteIdent(name)}`;
}

/** A string literal, for the few statements that take no parameters (e.g. `CREATE ROLE … PASSWORD`). */
export function quoteLiteral(value: string): string {
  return pg.escapeLiteral(value);
}
