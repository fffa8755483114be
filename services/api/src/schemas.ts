/**
 * Shared TypeBox schemas for every route (CONVENTIONS 9): the one error body (DESIGN §7), ids,
 * cursor pagination. Route files import these so the OpenAPI document names them once.
 * @see https://github.com/sinclairzx81/typebox/tree/0.34.x
 */
import { Type } from '@sinclair/typebox';
import type { Static, TObject, TSchema } from '@sinclair/typebox';

/** `{error: {code, message, details?}}` — the single error format (see plugins/errors.ts). */
export const ErrorResponse = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.String({ description: 'stable machine code, e.g. SIMPTU_ERR_NOT_FOUND' }),
        message: Type.String(),
        details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
      },
      { additionalProperties: false },
    ),
  },
  { title: 'ErrorResponse', additionalProperties: false },
);
export type ErrorResponseT = Static<typeof ErrorResponse>;

export const Uuid = Type.String({ format: 'uuid', description: 'UUID' });

/** Opaque cursor returned as `nextCursor`; clients pass it back unchanged. */
export const Cursor = Type.String({
  minLength: 1,
  maxLength: 512,
  description: 'opaque cursor from `nextCursor`',
});

export const PageQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);
export type PageQueryT = Static<typeof PageQuery>;

/** Extends PageQuery with route-specific filters: `PageQueryWith({state: Type.Optional(...)})`. */
export function PageQueryWith<P extends Record<string, TSchema>>(props: P) {
  return Type.Object({ ...PageQuery.properties, ...props }, { additionalProperties: false });
}

/** `{items, nextCursor}`; `nextCursor` is null on the last page. */
export function Paginated<T extends TSchema>(item: T) {
  return Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) });
}

export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export type IdParamsT = Static<typeof IdParams>;

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 422 | 429 | 500 | 503;

/**
 * Response schemas for the error statuses a route can answer:
 * `response: { 200: Thing, ...errorResponses(400, 401, 403, 404) }`.
 * 401, 429 and 500 are possible on every authenticated route; list them so OpenAPI shows them.
 */
export function errorResponses<const S extends readonly ErrorStatus[]>(
  ...statuses: S
): { [K in S[number]]: typeof ErrorResponse } {
  const out: Partial<Record<ErrorStatus, typeof ErrorResponse>> = {};
  for (const s of statuses) out[s] = ErrorResponse;
  return out as { [K in S[number]]: typeof ErrorResponse };
}

/** The statuses every authenticated route can answer, besides its own. */
export const AUTHENTICATED_ERRORS = [400, 401, 403, 429, 500] as const;

/** `{}` for 204-less deletes etc. — an empty JSON object. */
export const Empty = Type.Object({}, { additionalProperties: false });

export type { Static, TObject, TSchema };
