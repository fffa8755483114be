/**
 * Statements with their values inlined, for a multi-statement simple-protocol query (which takes
 * no parameters): e.g. a last write sent together with COMMIT (tenant-db.ts `withCommit`).
 */
import pg from 'pg';

/**
 * `text` with its `$n` parameters replaced by literals: strings (and the JSON of objects) quoted
 * by the driver's `escapeLiteral`, bytes as `decode('<hex>', 'hex')`, finite numbers and booleans
 * as they are, null/undefined as NULL. The statement's own casts apply as they do to parameters;
 * an unknown-typed literal is resolved from its context like a parameter.
 */
export function inlineParams(text: string, values: readonly unknown[]): string {
  return text.replace(/\$(\d+)\b/g, (_, n: string) => {
    const i = Number(n) - 1;
    if (i < 0 || i >= values.length) throw new Error(`inlineParams: no value for $${n}`);
    return sqlLiteral(values[i]);
  });
}

function sqlLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`inlineParams: ${v} is not a finite number`);
    return String(v);
  }
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v instanceof Uint8Array)
    return `decode('${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}', 'hex')`;
  if (typeof v === 'string') return pg.escapeLiteral(v);
  return pg.escapeLiteral(JSON.stringify(v));
}
