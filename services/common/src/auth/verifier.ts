/**
 * Access-token verification for every service (DESIGN §7, §10: the token is where tenant
 * isolation starts). JWT access tokens per RFC 9068, checked against the issuer's published
 * JWKS:
 * - signature with an asymmetric algorithm from an allow-list (never `none`, never HS*: a
 *   verifier holding only public keys must not accept a MAC made with a public key);
 * - `typ` header `at+jwt` (so an ID token can't be replayed as an access token), issuer,
 *   audience, `exp`/`nbf` with a small clock tolerance;
 * - claim shapes: `tenant` a valid tenant name, `sub` a non-empty string, `roles` a subset of
 *   owner/admin/staff/customer, `scope` a space-separated string.
 * The JWKS is fetched on demand and cached; a token with an unknown `kid` triggers a refetch
 * (at most once per cooldown), so a rotated key is picked up without a restart, and a key
 * still published keeps verifying. Every failure is an `UnauthorizedError` with a reason code;
 * a JWKS that can't be fetched is a 503 (`AUTH_UNAVAILABLE`), not the client's fault.
 * @see https://www.rfc-editor.org/rfc/rfc9068
 * @see https://www.rfc-editor.org/rfc/rfc8725 (JWT best current practices)
 * @see https://github.com/panva/jose/blob/main/docs/jwks/remote/functions/createRemoteJWKSet.md
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { isRole, type Principal, type Role } from '../context.ts';
import { CommonErrors, UnauthorizedError, type UnauthorizedReason } from '../errors.ts';
import { isValidTenantName } from '../names.ts';

/** Asymmetric JWS algorithms we accept (RFC 7518 §3.1 minus HS*, plus EdDSA). */
export const ASYMMETRIC_ALGORITHMS = [
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

export interface VerifierOptions {
  /** expected `iss`, e.g. `https://auth.simptu.io` */
  issuer: string;
  /** expected `aud` (one of) */
  audience: string | string[];
  /** the issuer's JWKS URL */
  jwksUri: string | URL;
  /** @default ['ES256', 'RS256'] */
  algorithms?: AsymmetricAlgorithm[];
  /** expected `typ` header; @default 'at+jwt' (RFC 9068 §2.1) */
  typ?: string;
  /** seconds of clock skew tolerated for exp/nbf; @default 30 */
  clockToleranceSec?: number;
  /** minimum time between JWKS refetches triggered by an unknown kid; @default 30_000 */
  jwksCooldownMs?: number;
  /** JWKS refetched when older than this even if every kid is known; @default 600_000 */
  jwksMaxAgeMs?: number;
  /** @default 5000 */
  jwksTimeoutMs?: number;
  /** a key source instead of the remote JWKS (tests of this module only) */
  keys?: JWTVerifyGetKey;
}

/** What a verified token says. */
export interface AccessTokenClaims extends Principal {
  tenant: string;
  /** `exp`, seconds since the epoch (the realtime hub closes sockets then) */
  expiresAt: number;
  /** `client_id` (RFC 9068), when present */
  clientId?: string;
}

export interface AccessTokenVerifier {
  verify(token: string): Promise<AccessTokenClaims>;
}

const REASON_MESSAGES: Record<UnauthorizedReason, string> = {
  missing_token: 'An access token is required',
  malformed: 'The access token is malformed',
  algorithm_not_allowed: 'The access token uses an algorithm that is not accepted',
  unknown_key: 'The access token was signed with an unknown key',
  invalid_signature: 'The access token signature is invalid',
  invalid_type: 'The token is not an access token',
  invalid_issuer: 'The access token was issued by another issuer',
  invalid_audience: 'The access token is not meant for this service',
  token_expired: 'The access token has expired',
  token_not_yet_valid: 'The access token is not valid yet',
  missing_claim: 'The access token lacks a required claim',
  missing_tenant: 'The access token names no tenant',
  invalid_tenant: 'The access token names an invalid tenant',
  invalid_subject: 'The access token has an invalid subject',
  invalid_roles: 'The access token has invalid roles',
  invalid_scope: 'The access token has an invalid scope',
  invalid_token: 'The access token is invalid',
};

export function unauthorized(reason: UnauthorizedReason): UnauthorizedError {
  return new UnauthorizedError(reason, REASON_MESSAGES[reason]);
}

/** Maps a jose error to our reason; undefined when it is not the token's fault. */
function reasonOf(err: unknown): UnauthorizedReason | undefined {
  if (err instanceof errors.JWTExpired) return 'token_expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return 'missing_claim';
    switch (err.claim) {
      case 'typ':
        return 'invalid_type';
      case 'iss':
        return 'invalid_issuer';
      case 'aud':
        return 'invalid_audience';
      case 'nbf':
        return 'token_not_yet_valid';
      default:
        return 'invalid_token';
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported)
    return 'algorithm_not_allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'invalid_signature';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
    return 'unknown_key';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed';
  return undefined;
}

/** Claim shapes beyond what jose checks. */
export function claimsFromPayload(payload: JWTPayload): AccessTokenClaims {
  const tenant = payload.tenant;
  if (tenant === undefined) throw unauthorized('missing_tenant');
  if (typeof tenant !== 'string' || !isValidTenantName(tenant)) throw unauthorized('invalid_tenant');
  if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > 255)
    throw unauthorized('invalid_subject');
  const rawRoles = payload.roles ?? [];
  if (!Array.isArray(rawRoles) || !rawRoles.every(isRole) || new Set(rawRoles).size !== rawRoles.length)
    throw unauthorized('invalid_roles');
  const rawScope = payload.scope ?? '';
  if (typeof rawScope !== 'string') throw unauthorized('invalid_scope');
  if (typeof payload.exp !== 'number') throw unauthorized('missing_claim');
  const clientId = payload.client_id;
  if (clientId !== undefined && typeof clientId !== 'string') throw unauthorized('invalid_token');
  return {
    tenant,
    sub: payload.sub,
    roles: rawRoles as Role[],
    scope: rawScope.split(' ').filter((s) => s !== ''),
    expiresAt: payload.exp,
    ...(clientId !== undefined ? { clientId } : {}),
  };
}

export function createAccessTokenVerifier(options: VerifierOptions): AccessTokenVerifier {
  const algorithms = options.algorithms ?? ['ES256', 'RS256'];
  for (const alg of algorithms) {
    // Also guards plain-JS callers and configs cast from strings.
    if (!(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg))
      throw new TypeError(`algorithm ${alg} is not allowed`);
  }
  if (algorithms.length === 0) throw new TypeError('at least one algorithm is required');
  const keys =
    options.keys ??
    createRemoteJWKSet(new URL(options.jwksUri), {
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: options.jwksMaxAgeMs ?? 600_000,
      timeoutDuration: options.jwksTimeoutMs ?? 5000,
    });
  const typ = options.typ ?? 'at+jwt';
  const clockTolerance = options.clockToleranceSec ?? 30;

  return {
    async verify(token: string): Promise<AccessTokenClaims> {
      if (typeof token !== 'string' || token === '') throw unauthorized('missing_token');
      // Compact JWS only: three base64url parts (a JWE or JSON serialization is refused early).
      if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) throw unauthorized('malformed');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: options.issuer,
          audience: options.audience,
          algorithms,
          typ,
          clockTolerance,
          requiredClaims: ['exp', 'sub'],
        }));
      } catch (err) {
        const reason = reasonOf(err);
        if (reason) throw unauthorized(reason);
        // JWKS unreachable, timed out, or not a JWKS: the issuer's problem, not the client's.
        throw new CommonErrors.AUTH_UNAVAILABLE({ cause: err });
      }
      return claimsFromPayload(payload);
    },
  };
}

/** The token of an `Authorization: Bearer <token>` header; throws `missing_token`/`malformed`. */
export function bearerToken(header: string | string[] | undefined): string {
  if (header === undefined || header === '') throw unauthorized('missing_token');
  if (Array.isArray(header)) throw unauthorized('malformed');
  const m = /^Bearer +([^\s]+) *$/i.exec(header);
  if (!m) throw unauthorized('malformed');
  return m[1]!;
}
