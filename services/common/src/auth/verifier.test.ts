import { base64url, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommonErrors, UnauthorizedError, type UnauthorizedReason } from '../errors.ts';
import { startTestIssuer, type TestIssuer } from './testing.ts';
import { bearerToken, createAccessTokenVerifier, type AccessTokenVerifier } from './verifier.ts';

let issuer: TestIssuer;
let verifier: AccessTokenVerifier;
const claims = {
  sub: 'user-1',
  tenant: 'smile-dental',
  roles: ['staff'],
  scope: 'bookings:read bookings:write',
};

beforeAll(async () => {
  issuer = await startTestIssuer();
  verifier = createAccessTokenVerifier({
    issuer: issuer.issuer,
    audience: issuer.audience,
    jwksUri: issuer.jwksUri,
    jwksCooldownMs: 0, // refetch at once on an unknown kid (the default is 30 s)
  });
});
afterAll(() => issuer?.close());

async function reason(token: string, v = verifier): Promise<UnauthorizedReason> {
  try {
    await v.verify(token);
  } catch (err) {
    if (err instanceof UnauthorizedError) return err.reason;
    throw err;
  }
  throw new Error('token was accepted');
}

describe('access token verifier', () => {
  it('accepts a valid ES256 and RS256 token and returns the principal', async () => {
    for (const key of issuer.keys) {
      const got = await verifier.verify(
        await issuer.signAccessToken({ ...claims, client_id: 'web' }, { key }),
      );
      expect(got).toMatchObject({
        tenant: 'smile-dental',
        sub: 'user-1',
        roles: ['staff'],
        scope: ['bookings:read', 'bookings:write'],
        clientId: 'web',
      });
      expect(got.expiresAt).toBeGreaterThan(Date.now() / 1000);
    }
    // roles and scope are optional (client-credentials tokens)
    const svc = await verifier.verify(await issuer.signAccessToken({ sub: 'svc', tenant: 'smile-dental' }));
    expect(svc).toMatchObject({ roles: [], scope: [] });
  });

  it("refuses alg none and an HS256 token keyed with the issuer's public key", async () => {
    const none = new UnsecuredJWT({ ...claims })
      .setIssuer(issuer.issuer)
      .setAudience(issuer.audience)
      .setExpirationTime('5m')
      .encode();
    expect(await reason(none)).toBe('algorithm_not_allowed');
    // The classic confusion attack: HMAC with the public key's bytes as the secret.
    const rsa = issuer.keys.find((k) => k.alg === 'RS256')!;
    const secret = new TextEncoder().encode(JSON.stringify(rsa.publicJwk));
    const hs = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: rsa.kid })
      .setIssuer(issuer.issuer)
      .setAudience(issuer.audience)
      .setExpirationTime('5m')
      .sign(secret);
    expect(await reason(hs)).toBe('algorithm_not_allowed');
    expect(() =>
      createAccessTokenVerifier({
        issuer: 'x',
        audience: 'y',
        jwksUri: issuer.jwksUri,
        algorithms: ['HS256' as 'ES256'],
      }),
    ).toThrow(/not allowed/);
  });

  it('refuses wrong audience, issuer and typ', async () => {
    expect(await reason(await issuer.signAccessToken(claims, { audience: 'another-api' }))).toBe(
      'invalid_audience',
    );
    expect(await reason(await issuer.signAccessToken(claims, { issuer: 'https://evil.example' }))).toBe(
      'invalid_issuer',
    );
    expect(await reason(await issuer.signAccessToken(claims, { typ: 'JWT' }))).toBe('invalid_type'); // e.g. an ID token
    expect(await reason(await issuer.signAccessToken(claims, { typ: null }))).toBe('invalid_type');
    // application/at+jwt is the same media type (RFC 9068 §4)
    await expect(
      verifier.verify(await issuer.signAccessToken(claims, { typ: 'application/at+jwt' })),
    ).resolves.toBeDefined();
  });

  it('refuses expired and not-yet-valid tokens, within the clock tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await reason(await issuer.signAccessToken(claims, { expiresIn: now - 60 }))).toBe('token_expired');
    await expect(
      verifier.verify(await issuer.signAccessToken(claims, { expiresIn: now - 5 })),
    ).resolves.toBeDefined(); // 30 s tolerance
    expect(await reason(await issuer.signAccessToken(claims, { notBefore: now + 120 }))).toBe(
      'token_not_yet_valid',
    );
  });

  it('checks claim shapes: tenant, subject, roles, scope', async () => {
    const { tenant: _, ...noTenant } = claims;
    expect(await reason(await issuer.signAccessToken(noTenant))).toBe('missing_tenant');
    expect(await reason(await issuer.signAccessToken({ ...claims, tenant: 'Smile_Dental' }))).toBe(
      'invalid_tenant',
    );
    expect(await reason(await issuer.signAccessToken({ ...claims, tenant: ['smile-dental'] }))).toBe(
      'invalid_tenant',
    );
    expect(await reason(await issuer.signAccessToken({ ...claims, roles: ['staff', 'superuser'] }))).toBe(
      'invalid_roles',
    );
    expect(await reason(await issuer.signAccessToken({ ...claims, roles: 'admin' }))).toBe('invalid_roles');
    expect(await reason(await issuer.signAccessToken({ ...claims, scope: ['a'] }))).toBe('invalid_scope');
    expect(await reason(await issuer.signAccessToken({ ...claims, sub: '' }))).toBe('invalid_subject');
    const { sub: __, ...noSub } = claims;
    expect(await reason(await issuer.signAccessToken(noSub))).toBe('missing_claim');
  });

  it('refuses garbage, tampered signatures and unknown keys', async () => {
    expect(await reason('')).toBe('missing_token');
    expect(await reason('not.a.jwt!')).toBe('malformed');
    expect(await reason('a.b.c')).toBe('malformed');
    const t = await issuer.signAccessToken(claims);
    const [h, p, s] = t.split('.');
    const forged = base64url.encode(
      JSON.stringify({
        ...claims,
        tenant: 'other-tenant',
        iss: issuer.issuer,
        aud: issuer.audience,
        exp: 9999999999,
      }),
    );
    expect(await reason(`${h}.${forged}.${s}`)).toBe('invalid_signature');
    expect(await reason(`${h}.${p}.${s!.slice(0, -4)}AAAA`)).toBe('invalid_signature');
    // a key the issuer never published
    const { privateKey } = await generateKeyPair('ES256');
    const foreign = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'not-published' })
      .setIssuer(issuer.issuer)
      .setAudience(issuer.audience)
      .setExpirationTime('5m')
      .sign(privateKey);
    expect(await reason(foreign)).toBe('unknown_key');
  });

  it('picks up a rotated key without restart; old keys verify while published', async () => {
    const old = issuer.keys[0]!;
    const oldToken = await issuer.signAccessToken(claims, { key: old });
    await verifier.verify(oldToken); // JWKS cached now
    const before = issuer.jwksRequests;
    const fresh = await issuer.rotate('ES256');
    const newToken = await issuer.signAccessToken(claims);
    expect(newToken.split('.')[0]).toBe(
      base64url.encode(JSON.stringify({ alg: 'ES256', kid: fresh.kid, typ: 'at+jwt' })),
    );
    await expect(verifier.verify(newToken)).resolves.toMatchObject({ sub: 'user-1' });
    expect(issuer.jwksRequests).toBe(before + 1); // the unknown kid caused one refetch
    await expect(verifier.verify(oldToken)).resolves.toBeDefined(); // still published
    issuer.withdraw(old.kid);
    // A verifier with a fresh cache (or after cacheMaxAge) no longer accepts it.
    const v2 = createAccessTokenVerifier({
      issuer: issuer.issuer,
      audience: issuer.audience,
      jwksUri: issuer.jwksUri,
    });
    expect(await reason(oldToken, v2)).toBe('unknown_key');
    await expect(v2.verify(newToken)).resolves.toBeDefined();
  });

  it('reports an unreachable JWKS as unavailable (503), not as a bad token', async () => {
    const dead = await startTestIssuer();
    const token = await dead.signAccessToken(claims);
    const v = createAccessTokenVerifier({
      issuer: dead.issuer,
      audience: dead.audience,
      jwksUri: dead.jwksUri,
      jwksTimeoutMs: 1000,
    });
    await dead.close();
    await expect(v.verify(token)).rejects.toBeInstanceOf(CommonErrors.AUTH_UNAVAILABLE);
  });

  it('parses bearer headers', async () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer abc')).toBe('abc');
    for (const h of [undefined, '', 'Basic dXNlcg==', 'Bearer', 'Bearer a b', ['Bearer a', 'Bearer b']]) {
      expect(() => bearerToken(h)).toThrow(UnauthorizedError);
    }
  });
});
