/**
 * Helm template placeholders. The chart generator (`chart.ts`) synthesizes the very constructs
 * the app uses, but with placeholder values where a chart value goes; after synthesis every
 * placeholder is replaced by its `{{ .Values.<path> }}` expression. Strings become tokens like
 * `__HV7__` (possibly inside a longer string: `https://api.__HV0__`), integers become sentinels
 * above `NUMBER_BASE` (they only ever appear as whole numbers).
 *
 * Constructs must let placeholders through their validation (`isPlaceholder`), because a chart's
 * value is only known when Helm renders it; `values.schema.json` validates it then.
 */

import { createHash } from 'node:crypto';

const STRING_RE = /__HV(\d+)__/;
const NUMBER_BASE = 900_000_000;

export type PlaceholderKind = 'string' | 'integer' | 'boolean' | 'expression';

export interface Placeholder {
  /** dotted path under `.Values`, e.g. `api.replicas` */
  readonly path: string;
  readonly kind: PlaceholderKind;
  /** the value written to values.yaml */
  readonly default: unknown;
  /** one line for the values table in docs/install.md and the comment in values.yaml */
  readonly description: string;
}

/** True for a string that contains a placeholder token, or a number that is a sentinel. */
export function isPlaceholder(v: unknown): boolean {
  if (typeof v === 'string') return STRING_RE.test(v);
  if (typeof v === 'number') return Number.isInteger(v) && v >= NUMBER_BASE && v < NUMBER_BASE + 100_000;
  return false;
}

/** `String(n)` that keeps an integer placeholder a placeholder (as its string token). */
export function intToString(n: number): string {
  return isPlaceholder(n) ? `__HV${n - NUMBER_BASE}__` : String(n);
}

/**
 * Issues placeholders and remembers what they stand for. One instance per chart generation.
 */
export class Placeholders {
  readonly #all: Placeholder[] = [];
  readonly #byPath = new Map<string, number>();

  /** Every placeholder issued, in order (index = token number). */
  get all(): readonly Placeholder[] {
    return this.#all;
  }

  #issue(path: string, kind: PlaceholderKind, def: unknown, description: string): number {
    if (!/^[a-zA-Z][a-zA-Z0-9]*(\.[a-zA-Z][a-zA-Z0-9]*)*$/.test(path)) {
      throw new TypeError(`placeholder path ${JSON.stringify(path)} must be dotted camelCase identifiers`);
    }
    const seen = this.#byPath.get(path);
    if (seen !== undefined) {
      const p = this.#all[seen]!;
      if (p.kind !== kind) throw new TypeError(`placeholder ${path} issued as ${p.kind} and ${kind}`);
      return seen;
    }
    this.#all.push({ path, kind, default: def, description });
    this.#byPath.set(path, this.#all.length - 1);
    return this.#all.length - 1;
  }

  /** A string value (`{{ .Values.path }}`), default `def`. */
  str(path: string, def: string, description: string): string {
    return `__HV${this.#issue(path, 'string', def, description)}__`;
  }

  /** An integer value. */
  int(path: string, def: number, description: string): number {
    return NUMBER_BASE + this.#issue(path, 'integer', def, description);
  }

  /**
   * A boolean value that decides structure (which templates render): not substituted into a
   * manifest but registered for values.yaml and the docs; returns the path.
   */
  bool(path: string, def: boolean, description: string): string {
    this.#issue(path, 'boolean', def, description);
    return path;
  }

  /** Declares a value used only inside `expr` expressions, so it lands in values.yaml. */
  declare(path: string, kind: 'string' | 'integer' | 'boolean', def: unknown, description: string): string {
    this.#issue(path, kind, def, description);
    return path;
  }

  /**
   * A template expression that is not a value, e.g. `.Release.Namespace`; not in values.yaml.
   * The expression is used as is (a pipeline in parentheses works inside longer strings).
   */
  expr(expression: string): string {
    const path = `expr${createHash('sha256').update(expression).digest('hex').slice(0, 12)}`;
    return `__HV${this.#issue(path, 'expression', expression, 'template expression')}__`;
  }

  /** The placeholder a token/sentinel stands for. */
  lookup(v: string | number): Placeholder | undefined {
    if (typeof v === 'number') return isPlaceholder(v) ? this.#all[v - NUMBER_BASE] : undefined;
    const m = STRING_RE.exec(v);
    return m ? this.#all[Number(m[1])] : undefined;
  }

  /**
   * Replaces every placeholder in a JSON value with a marker `{{ … }}` expression, returned as
   * raw template text by `toTemplateYaml`. Whole-string placeholders are quoted by Helm (`| quote`)
   * so a value such as `1.0` stays a string; placeholders inside a longer string are spliced into
   * it and the whole scalar is quoted.
   */
  expressionFor(v: string | number): string | undefined {
    if (typeof v === 'number') {
      const p = this.lookup(v);
      return p ? `{{ ${ref(p)} }}` : undefined;
    }
    if (!STRING_RE.test(v)) return undefined;
    const whole = /^__HV(\d+)__$/.exec(v);
    if (whole) return `{{ ${ref(this.#all[Number(whole[1])]!)} | quote }}`;
    // A string with placeholders inside: build it with printf so the result is quoted once.
    const parts: string[] = [];
    const args: string[] = [];
    let rest = v;
    for (let m = STRING_RE.exec(rest); m; m = STRING_RE.exec(rest)) {
      parts.push(rest.slice(0, m.index).replaceAll('%', '%%'));
      parts.push('%v');
      args.push(ref(this.#all[Number(m[1])]!));
      rest = rest.slice(m.index + m[0].length);
    }
    parts.push(rest.replaceAll('%', '%%'));
    return `{{ printf ${JSON.stringify(parts.join(''))} ${args.join(' ')} | quote }}`;
  }
}

function ref(p: Placeholder): string {
  return p.kind === 'expression' ? `(${String(p.default)})` : `.Values.${p.path}`;
}
