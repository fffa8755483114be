/**
 * Relying-party set-ups the SSO tests share (openid-client v6 against the fixture's issuer over
 * plain HTTP): the tenant's public web client, a confidential client by its secret, a new
 * service client, and authorization URLs with a throw-away PKCE challenge.
 */
import * as oidc from 'openid-client';
import { createServiceClient, webClientId, type ServiceClientInput } from '../src/clients.ts';
import type { AuthFixture, FixtureTenant } from './support.ts';

const overHttp = { execute: [oidc.allowInsecureRequests] };

/** The tenant's public web client (PKCE, no secret). */
export function webClientConfig(f: AuthFixture, t: FixtureTenant): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(f.issuer), webClientId(t.name), undefined, oidc.None(), overHttp);
}

/** A confidential client authenticating with `secret` (client_secret_basic). */
export function secretClientConfig(
  f: AuthFixture,
  clientId: string,
  secret: string,
): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(f.issuer), clientId, undefined, oidc.ClientSecretBasic(secret), overHttp);
}

/** Registers a service client of `tenant` with `roles`; returns it and its configuration. */
export async function serviceClient(
  f: AuthFixture,
  input: ServiceClientInput,
): Promise<{ svc: { clientId: string; clientSecret: string }; config: oidc.Configuration }> {
  const svc = await createServiceClient(f.service.db, f.kms, input);
  return { svc, config: await secretClientConfig(f, svc.clientId, svc.clientSecret) };
}

/**
 * An authorization URL with a fresh S256 challenge whose verifier is thrown away: for requests
 * that stop at a login form or an error, never redeemed.
 */
export async function pkceAuthorizationUrl(
  config: oidc.Configuration,
  redirectUri: string,
  scope: string,
): Promise<string> {
  return oidc
    .buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    })
    .toString();
}
