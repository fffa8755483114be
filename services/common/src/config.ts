/**
 * Configuration validated once at start-up and passed in (CONVENTIONS 11): one TypeBox schema
 * with defaults; unknown keys are errors; every bad field is reported at once, by path, in one
 * `ConfigError`, and values are never echoed (they may be secrets).
 *
 * Environment variables map onto the schema by path: `database.poolMax` ← `<PREFIX>DATABASE_POOL_MAX`.
 * Arrays take comma-separated values (or JSON), numbers/booleans are converted by TypeBox.
 * @see https://github.com/sinclairzx81/typebox/tree/0.34.x#values
 * @see https://github.com/fastify/fastify/blob/main/build/build-validation.js
 */
import {
  Kind,
  OptionalKind,
  type Static,
  type TObject,
  type TProperties,
  type TSchema,
  Type,
} from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export interface ConfigIssue {
  /** dotted path, e.g. `database.url` */
  path: string;
  message: string;
  /** the environment variable it came from, when loaded from the environment */
  env?: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(
      `invalid configuration:\n` +
        issues.map((i) => `  - ${i.path || '(root)'}${i.env ? ` (${i.env})` : ''}: ${i.message}`).join('\n'),
    );
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** `Type.Object` with `additionalProperties: false`, the shape every config (sub)object should have. */
export function ConfigObject<P extends TProperties>(
  properties: P,
  options: { description?: string } = {},
): TObject<P> {
  return Type.Object(properties, { ...options, additionalProperties: false });
}

function pointerToPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

function checkClosed(schema: TSchema, path: string, out: string[]): void {
  if (schema[Kind] !== 'Object') return;
  if (schema.additionalProperties !== false) out.push(path || '(root)');
  for (const [k, sub] of Object.entries((schema as TObject).properties))
    checkClosed(sub, path ? `${path}.${k}` : k, out);
}

/**
 * Validates `input` against `schema`: fills defaults, converts strings where the schema wants
 * numbers/booleans, then checks. Throws `ConfigError` listing every issue. `input` is not
 * modified. Objects in the schema must be closed (`additionalProperties: false`, see
 * `ConfigObject`), so a typo is an error rather than a silently ignored key.
 */
export function loadConfig<T extends TSchema>(
  schema: T,
  input: unknown,
  envNames?: ReadonlyMap<string, string>,
): Static<T> {
  const open: string[] = [];
  checkClosed(schema, '', open);
  if (open.length > 0)
    throw new TypeError(`config schema objects must set additionalProperties: false: ${open.join(', ')}`);
  let value: unknown = Value.Clone(input ?? {});
  value = Value.Default(schema, value);
  value = Value.Convert(schema, value);
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const e of Value.Errors(schema, value)) {
    const path = pointerToPath(e.path);
    // One line per path: TypeBox may report a union member several times.
    if (seen.has(path)) continue;
    seen.add(path);
    const env = envNames?.get(path);
    issues.push({ path, message: e.message, ...(env ? { env } : {}) });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return value as Static<T>;
}

/** `poolMax` → `POOL_MAX` */
function envSegment(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]/g, '_')
    .toUpperCase();
}

function leafValue(schema: TSchema, raw: string): unknown {
  if (schema[Kind] === 'Array') {
    const t = raw.trim();
    if (t.startsWith('[')) {
      try {
        return JSON.parse(t);
      } catch {
        return raw; // reported by validation as "expected array"
      }
    }
    return t === '' ? [] : t.split(',').map((s) => s.trim());
  }
  if (schema[Kind] === 'Record' || (schema[Kind] === 'Object' && !(schema as TObject).properties)) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

export interface EnvMapping {
  /** the nested object to validate */
  value: Record<string, unknown>;
  /** config path → env var name, for error messages */
  names: Map<string, string>;
  /** variables with the prefix that match no config field (typos) */
  unknown: string[];
}

/**
 * Builds the config object from environment variables named after the schema's paths:
 * `{database: {url}}` with prefix `SIMPTU_` reads `SIMPTU_DATABASE_URL`. Only variables that
 * are set are taken, so schema defaults apply to the rest.
 */
export function envToConfig(
  schema: TObject,
  env: Record<string, string | undefined>,
  prefix = '',
): EnvMapping {
  const names = new Map<string, string>();
  const known = new Set<string>();
  const walk = (s: TObject, path: string[], envPrefix: string): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [key, sub] of Object.entries(s.properties)) {
      const name = `${envPrefix}${envSegment(key)}`;
      const p = [...path, key];
      if (sub[Kind] === 'Object' && (sub as TObject).properties) {
        const nested = walk(sub as TObject, p, `${name}_`);
        // A required section is always present, so its missing fields are reported by their
        // own paths (and env names); an optional one only when something in it is set.
        if (sub[OptionalKind] !== 'Optional' || Object.keys(nested).length > 0) out[key] = nested;
        continue;
      }
      names.set(p.join('.'), name);
      known.add(name);
      const raw = env[name];
      if (raw !== undefined) out[key] = leafValue(sub, raw);
    }
    return out;
  };
  const value = walk(schema, [], prefix);
  const unknown = prefix
    ? Object.keys(env)
        .filter((k) => k.startsWith(prefix) && !known.has(k))
        .sort()
    : [];
  return { value, names, unknown };
}

/**
 * `loadConfig` from the environment. With a `prefix`, a variable carrying it but matching no
 * field is an error too (a misspelt `SIMPTU_DATABSE_URL` must not fall back to the default).
 */
export function loadConfigFromEnv<T extends TObject>(
  schema: T,
  env: Record<string, string | undefined> = process.env,
  options: { prefix?: string } = {},
): Static<T> {
  const { value, names, unknown } = envToConfig(schema, env, options.prefix ?? '');
  let parsed: Static<T> | undefined;
  const issues: ConfigIssue[] = unknown.map((name) => ({
    path: '',
    env: name,
    message: 'unknown variable: no config field has this name',
  }));
  try {
    parsed = loadConfig(schema, value, names);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    issues.push(...err.issues);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return parsed as Static<T>;
}
