/**
 * A diagnostic for the auth benchmark, started by `bench/auth/run.ts` as a child process: the
 * least a token endpoint can do over HTTP — node:http, read the form body, compare the HTTP
 * Basic credentials, sign an ES256 JWT with jose `SignJWT` (the SSO token's header and claim
 * set), answer JSON. Hammered by the same autocannon settings as the SSO, it shows how much of
 * the gap between the SSO and a bare `SignJWT` is HTTP itself on this machine, and how much is
 * the SSO (oidc-provider, client lookup, Koa).
 *
 * Input (environment): BARE_SIGNER_SPEC = JSON {authorization, header, claims, ttlSec}.
 * Output: one stdout line `{"port": <n>}` once it listens on 127.0.0.1. Stops on SIGTERM.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, SignJWT, type JWTHeaderParameters, type JWTPayload } from 'jose';

interface Spec {
  /** the exact `authorization` header a client must send */
  authorization: string;
  header: JWTHeaderParameters;
  /** claims besides jti/iat/exp */
  claims: JWTPayload;
  ttlSec: number;
}

const spec = JSON.parse(process.env.BARE_SIGNER_SPEC ?? '') as Spec;
const { privateKey } = await generateKeyPair('ES256');

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
      });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.headers.authorization !== spec.authorization)
      return reply(401, { error: 'invalid_client' });
    if (form.get('grant_type') !== 'client_credentials')
      return reply(400, { error: 'unsupported_grant_type' });
    const now = Math.floor(Date.now() / 1000);
    new SignJWT({ ...spec.claims, jti: randomUUID(), iat: now, exp: now + spec.ttlSec })
      .setProtectedHeader(spec.header)
      .sign(privateKey)
      .then(
        (token) =>
          reply(200, {
            access_token: token,
            expires_in: spec.ttlSec,
            token_type: 'Bearer',
            scope: spec.claims.scope,
          }),
        () => reply(500, { error: 'server_error' }),
      );
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
