/**
 * JWT signing keys (DESIGN §7: JWKS with key rotation). Private JWKs are stored in
 * `auth.signing_keys` encrypted with the platform KEK (`KmsProvider.wrap`, AAD binding the blob
 * to its kid, so a blob copied onto another row fails to open). Exactly one key is active (a
 * partial unique index enforces it); it signs everything. Rotation inserts a new active key and
 * retires the previous one, which stays published in the JWKS until every token it signed has
 * expired (`publish_until` = retirement + the longest token lifetime + clock skew), so tokens
 * issued just before a rotation keep verifying, and verifiers that meet the new `kid` refetch
 * the JWKS (see `createAccessTokenVerifier`).
 * @see https://www.rfc-editor.org/rfc/rfc7517
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md#jwks
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type pg from 'pg';
import type { KmsProvider } from '@simptu/common';

export type SigningAlg = 'ES256' | 'RS256';

/** Tolerance added to `publish_until` for verifiers' clock skew (the common verifier allows 30 s). */
export const KEY_PUBLISH_SKEW_SEC = 120;

export function signingKeyAad(kid: string): string {
  return `simptu.auth.signing-key.v1|${kid}`;
}

export interface StoredKey {
  kid: string;
  alg: string;
  createdAt: Date;
  retiredAt: Date | null;
  publishUntil: Date | null;
}

export interface LoadedKeys {
  /** private JWKs for the provider's keystore, the active key first */
  jwks: JWK[];
  /** kid of the active key */
  activeKid: string;
  /** changes whenever the published set changes (kids in order) */
  fingerprint: string;
}

async function newKey(alg: SigningAlg): Promise<{ kid: string; privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS256' ? { modulusLength: 2048 } : {}),
  });
  const pub = await exportJWK(publicKey);
  // RFC 7638 thumbprint: a kid that is derived from the key and can't collide by accident.
  const kid = await calculateJwkThumbprint(pub, 'sha256');
  const meta = { kid, alg, use: 'sig' };
  return { kid, privateJwk: { ...(await exportJWK(privateKey)), ...meta }, publicJwk: { ...pub, ...meta } };
}

export interface RotateOptions {
  alg: SigningAlg;
  /** seconds the retired key stays published: the longest lifetime of a token it signed */
  maxTokenLifetimeSec: number;
}

export interface RotateResult {
  kid: string;
  retired: string[];
  pruned: string[];
}

/**
 * Adds a new active key and retires the current one (published until its tokens expire);
 * deletes keys whose publication window has ended. One transaction under an advisory lock, so
 * concurrent rotations serialize.
 */
export async function rotateSigningKeys(
  pool: pg.Pool,
  kms: KmsProvider,
  opts: RotateOptions,
): Promise<RotateResult> {
  const key = await newKey(opts.alg);
  const wrapped = await kms.wrap(Buffer.from(JSON.stringify(key.privateJwk)), signingKeyAad(key.kid));
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    try {
      await c.query(`SELECT pg_advisory_xact_lock(hashtext('simptu.auth.keys'))`);
      const retired = await c.query<{ kid: string }>(
        `UPDATE auth.signing_keys SET retired_at = clock_timestamp(),
                publish_until = clock_timestamp() + make_interval(secs => $1)
          WHERE retired_at IS NULL RETURNING kid`,
        [opts.maxTokenLifetimeSec + KEY_PUBLISH_SKEW_SEC],
      );
      await c.query(
        `INSERT INTO auth.signing_keys (kid, alg, public_jwk, wrapped_jwk, kek_id) VALUES ($1, $2, $3, $4, $5)`,
        [key.kid, opts.alg, key.publicJwk, wrapped, kms.kekId],
      );
      const pruned = await c.query<{ kid: string }>(
        `DELETE FROM auth.signing_keys WHERE publish_until <= clock_timestamp() RETURNING kid`,
      );
      await c.query('COMMIT');
      return { kid: key.kid, retired: retired.rows.map((r) => r.kid), pruned: pruned.rows.map((r) => r.kid) };
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  } finally {
    c.release();
  }
}

/** Creates the first key when there is no active one (start-up of a fresh installation). */
export async function ensureActiveKey(pool: pg.Pool, kms: KmsProvider, opts: RotateOptions): Promise<void> {
  const { rowCount } = await pool.query(`SELECT 1 FROM auth.signing_keys WHERE retired_at IS NULL`);
  if (rowCount) return;
  try {
    await rotateSigningKeys(pool, kms, opts);
  } catch (err) {
    // Another replica created it first (signing_keys_one_active).
    if ((err as { code?: string }).code !== '23505') throw err;
  }
}

/** Deletes keys whose tokens have all expired. */
export async function pruneSigningKeys(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ kid: string }>(
    `DELETE FROM auth.signing_keys WHERE publish_until <= clock_timestamp() RETURNING kid`,
  );
  return rows.map((r) => r.kid);
}

export async function listSigningKeys(pool: pg.Pool): Promise<StoredKey[]> {
  const { rows } = await pool.query<{
    kid: string;
    alg: string;
    created_at: Date;
    retired_at: Date | null;
    publish_until: Date | null;
  }>(
    `SELECT kid, alg, created_at, retired_at, publish_until FROM auth.signing_keys ORDER BY created_at DESC`,
  );
  return rows.map((r) => ({
    kid: r.kid,
    alg: r.alg,
    createdAt: r.created_at,
    retiredAt: r.retired_at,
    publishUntil: r.publish_until,
  }));
}

/** The keys to publish (active first, then retired ones still inside their window), decrypted. */
export async function loadSigningKeys(pool: pg.Pool, kms: KmsProvider): Promise<LoadedKeys> {
  const { rows } = await pool.query<{
    kid: string;
    wrapped_jwk: Buffer;
    kek_id: string;
    retired_at: Date | null;
  }>(
    `SELECT kid, wrapped_jwk, kek_id, retired_at FROM auth.signing_keys
      WHERE retired_at IS NULL OR publish_until > clock_timestamp()
      ORDER BY retired_at IS NULL DESC, created_at DESC`,
  );
  const active = rows[0];
  if (!active || active.retired_at !== null) throw new Error('no active signing key: run `rotate-keys`');
  const jwks: JWK[] = [];
  for (const r of rows) {
    if (r.kek_id !== kms.kekId)
      throw new Error(
        `signing key ${r.kid} was wrapped by KEK ${r.kek_id}, the configured KMS holds ${kms.kekId}`,
      );
    const plain = await kms.unwrap(r.wrapped_jwk, signingKeyAad(r.kid));
    jwks.push(JSON.parse(plain.toString('utf8')) as JWK);
  }
  return { jwks, activeKid: active.kid, fingerprint: rows.map((r) => r.kid).join(',') };
}
