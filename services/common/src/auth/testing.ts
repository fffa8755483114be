/**
 * Test support (not for production code): a local token issuer — a JWKS served by node:http on
 * 127.0.0.1 with real ES256 and RS256 keys — and a helper that signs RFC 9068 access tokens
 * with them. Keys can be added (rotation) and withdrawn from the JWKS, so services' tests can
 * exercise key rotation against the real verifier.
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export type TestKeyAlg = 'ES256' | 'RS256';

export interface TestKey {
  kid: string;
  alg: TestKeyAlg;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function generateTestKey(
  alg: TestKeyAlg,
  kid = `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`,
): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export interface SignOptions {
  /** @default the issuer's first published key */
  key?: TestKey;
  /** override the header `alg` (for negative tests, with a key of that type) */
  alg?: string;
  /** @default 'at+jwt'; `null` omits it */
  typ?: string | null;
  /** @default '5m' (jose time span or seconds since epoch) */
  expiresIn?: string | number;
  /** `nbf` (jose time span from now, or seconds since epoch) */
  notBefore?: string | number;
  /** @default the issuer */
  issuer?: string;
  /** @default the issuer's default audience */
  audience?: string | string[];
  /** `iat`; @default now */
  issuedAt?: number;
}

export interface TestIssuer {
  /** the `iss` it signs with: its base URL */
  readonly issuer: string;
  readonly jwksUri: string;
  readonly audience: string;
  /** currently published keys, newest last */
  readonly keys: readonly TestKey[];
  /** JWKS requests served, to observe caching */
  readonly jwksRequests: number;
  signAccessToken(claims: JWTPayload, opts?: SignOptions): Promise<string>;
  /** Generates and publishes a new key (rotation); it becomes the default signing key. */
  rotate(alg?: TestKeyAlg): Promise<TestKey>;
  /** Stops publishing a key: tokens it signed stop verifying once verifiers refetch. */
  withdraw(kid: string): void;
  close(): Promise<void>;
}

export interface TestIssuerOptions {
  /** @default 'simptu-api' */
  audience?: string;
  /** initial keys; @default one ES256 and one RS256 (ES256 signs by default) */
  algs?: TestKeyAlg[];
}

/**
 * Starts the issuer on a free port. Serves `/.well-known/jwks.json` and a minimal
 * `/.well-known/openid-configuration`.
 */
export async function startTestIssuer(options: TestIssuerOptions = {}): Promise<TestIssuer> {
  const keys: TestKey[] = [];
  for (const alg of options.algs ?? ['ES256', 'RS256']) keys.push(await generateTestKey(alg));
  let defaultKey: TestKey | undefined = keys[0];
  let requests = 0;
  let base = '';
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/jwks.json') {
      requests++;
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
      res.end(JSON.stringify({ keys: keys.map((k) => k.publicJwk) }));
    } else if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/.well-known/jwks.json` }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const audience = options.audience ?? 'simptu-api';

  return {
    issuer: base,
    jwksUri: `${base}/.well-known/jwks.json`,
    audience,
    get keys() {
      return [...keys];
    },
    get jwksRequests() {
      return requests;
    },
    async signAccessToken(claims, opts = {}) {
      const key = opts.key ?? defaultKey;
      if (!key) throw new Error('the test issuer has no key');
      const typ = opts.typ === undefined ? 'at+jwt' : opts.typ;
      const jwt = new SignJWT({ jti: randomUUID(), ...claims })
        .setProtectedHeader({ alg: opts.alg ?? key.alg, kid: key.kid, ...(typ === null ? {} : { typ }) })
        .setIssuer(opts.issuer ?? base)
        .setAudience(opts.audience ?? audience)
        .setIssuedAt(opts.issuedAt)
        .setExpirationTime(opts.expiresIn ?? '5m');
      if (opts.notBefore !== undefined) jwt.setNotBefore(opts.notBefore);
      return jwt.sign(key.privateKey);
    },
    async rotate(alg = 'ES256') {
      const key = await generateTestKey(alg);
      keys.push(key);
      defaultKey = key;
      return key;
    },
    withdraw(kid) {
      const i = keys.findIndex((k) => k.kid === kid);
      if (i >= 0) keys.splice(i, 1);
      if (defaultKey?.kid === kid) defaultKey = keys.at(-1);
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      });
    },
  };
}
