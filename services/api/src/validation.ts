/**
 * Request validation: fastify's own Ajv compiler (@fastify/ajv-compiler, the one fastify uses
 * by default, with ajv-formats), built TWICE per schema set:
 *   - querystring, params and headers are strings on the wire, so they are validated with
 *     `coerceTypes: 'array'` (`?limit=10` is the integer 10; `?state=a` is `['a']` where an
 *     array is expected);
 *   - JSON bodies are validated WITHOUT coercion: `{"score": "5"}` is a 400 where a number is
 *     required — JSON has types, and quietly turning `"5"`, `""` or `"true"` into other values
 *     hides client bugs (and would make `""` a valid 0).
 * Everything else (allErrors, no removal of unknown properties, defaults) is the same for both.
 * Plugged in through the `schemaController.compilersFactory.buildValidator` server option, so
 * every route (and every encapsulated context) gets it.
 * @see https://fastify.dev/docs/latest/Reference/Server/#schemacontroller
 * @see https://fastify.dev/docs/latest/Reference/Validation-and-Serialization/#validator-compiler
 * @see https://ajv.js.org/coercion.html
 */
import AjvCompiler, { type Options as AjvOptions } from '@fastify/ajv-compiler';

/** The Ajv options of both instances, except `coerceTypes`. */
export const AJV_OPTIONS: AjvOptions = {
  // Report every problem, and refuse unknown properties instead of silently dropping them.
  allErrors: true,
  removeAdditional: false,
  useDefaults: true,
};

/** HTTP parts whose values arrive as strings and are coerced to the schema's types. */
export const COERCED_PARTS: ReadonlySet<string> = new Set(['querystring', 'params', 'headers']);

type BuildCompilerFromPool = ReturnType<typeof AjvCompiler>;

/**
 * A `compilersFactory.buildValidator`: fastify calls it with the shared schemas and the `ajv`
 * server option; the returned compiler picks the coercing or the strict instance per part.
 */
export function buildValidatorFactory(): BuildCompilerFromPool {
  const pool = AjvCompiler();
  const factory = (
    externalSchemas: Parameters<BuildCompilerFromPool>[0],
    ajv: Parameters<BuildCompilerFromPool>[1],
  ) => {
    const make = (coerceTypes: AjvOptions['coerceTypes']) =>
      pool(externalSchemas, {
        ...(ajv ?? {}),
        customOptions: {
          ...AJV_OPTIONS,
          ...((ajv?.customOptions as AjvOptions | undefined) ?? {}),
          coerceTypes,
        },
      } as Parameters<BuildCompilerFromPool>[1]);
    const coercing = make('array');
    const strict = make(false);
    return ((route: { httpPart?: string }) =>
      (route.httpPart !== undefined && COERCED_PARTS.has(route.httpPart) ? coercing : strict)(
        route as Parameters<typeof coercing>[0],
      )) as ReturnType<BuildCompilerFromPool>;
  };
  return factory as BuildCompilerFromPool;
}
