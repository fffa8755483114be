/**
 * The oidc-provider configuration: one issuer for every tenant (DESIGN §7).
 *
 * Tenant isolation: every client acts for exactly one tenant (`ClientResolver`). `findAccount`
 * only ever finds a user of the requesting client's tenant, so
 * - a browser session that belongs to a tenant-A user, arriving at tenant B's client, has no
 *   account there: the `tenant_account` check below forces a fresh login (for a tenant-B user);
 * - refresh, userinfo and token minting for a foreign account fail (`extraTokenClaims` refuses
 *   to mint a token whose user is not of the client's tenant, a second line of defence).
 *
 * Access tokens for the API are RFC 9068 JWTs (`typ: at+jwt`), audience = the API, carrying
 * `tenant`, `roles`, `sub`, `scope`, `client_id` — exactly what `createAccessTokenVerifier`
 * checks. A token request without `resource` (and with `openid`) gets an opaque token for
 * userinfo only, as RFC 8707 and oidc-provider intend.
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md
 * @see https://www.rfc-editor.org/rfc/rfc8707
 */
import type pg from 'pg';
import Provider, {
  errors,
  interactionPolicy,
  type Configuration,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import type { JWK } from 'jose';
import type { Role } from '@simptu/common';
import type { AuthConfig } from './config.ts';
import { adapterFactory } from './adapter.ts';
import { ACCESS_CODE_GRANT, type ClientResolver } from './clients.ts';
import { findUserById, type User } from './users.ts';
import { escapeHtml, layout, messagePage } from './views.ts';
import type { Redis } from 'ioredis';

/** Scopes of the API resource server. */
export const API_SCOPE = 'api';
/** What a patient's access-code token may do: only their own sessions and bookings. */
export const ACCESS_CODE_SCOPES = ['sessions:own', 'bookings:own'];

export interface ProviderDeps {
  config: AuthConfig;
  db: pg.Pool;
  redis: Redis;
  clients: ClientResolver;
  jwks: JWK[];
}

type Ctx = KoaContextWithOIDC;

/** The tenant a client acts for (our `tenant` client metadata property). */
export function clientTenant(
  client: { metadata(): Record<string, unknown> } | undefined,
): string | undefined {
  return tenantOfMetadata(client?.metadata());
}

function tenantOfMetadata(metadata: Record<string, unknown> | undefined): string | undefined {
  const t = metadata?.tenant;
  return typeof t === 'string' ? t : undefined;
}

function rolesOfMetadata(metadata: Record<string, unknown> | undefined): Role[] {
  const r = metadata?.simptu_roles;
  return Array.isArray(r) ? (r as Role[]) : [];
}

/** Users looked up during one request are remembered on the context. */
async function userFor(ctx: Ctx | undefined, db: pg.Pool, id: string): Promise<User | undefined> {
  const cache = ((ctx as unknown as { simptuUsers?: Map<string, User | undefined> } | undefined) ?? {}) as {
    simptuUsers?: Map<string, User | undefined>;
  };
  cache.simptuUsers ??= new Map();
  if (!cache.simptuUsers.has(id)) cache.simptuUsers.set(id, await findUserById(db, id));
  return cache.simptuUsers.get(id);
}

export function buildProvider(deps: ProviderDeps): Provider {
  const { config, db, clients } = deps;
  const api = config.api;

  const basePolicy = interactionPolicy.base();
  // A session whose account is not a user of this client's tenant (findAccount found nothing):
  // log in again, as a user of this tenant.
  basePolicy
    .get('login')!
    .checks.add(
      new interactionPolicy.Check(
        'tenant_account',
        'the signed-in account does not belong to this tenant',
        (ctx) =>
          ctx.oidc.session?.accountId && !ctx.oidc.account
            ? interactionPolicy.Check.REQUEST_PROMPT
            : interactionPolicy.Check.NO_NEED_TO_PROMPT,
      ),
    );

  const resourceServer = {
    scope: [API_SCOPE, ...ACCESS_CODE_SCOPES].join(' '),
    audience: api.audience,
    accessTokenTTL: config.ttl.accessTokenSec,
    accessTokenFormat: 'jwt' as const,
    jwt: { sign: { alg: config.keys.alg } },
  };

  const configuration: Configuration = {
    adapter: adapterFactory({ db, redis: deps.redis, redisPrefix: config.redisPrefix, clients }),
    jwks: { keys: deps.jwks as Configuration['jwks'] extends { keys: infer K } ? K : never },
    cookies: {
      keys: config.cookieKeys,
      names: { session: 'simptu.session', interaction: 'simptu.interaction', resume: 'simptu.resume' },
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    claims: {
      openid: ['sub', 'tenant', 'roles'],
      email: ['email', 'email_verified'],
      profile: [],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', API_SCOPE],
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: config.keys.alg,
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    extraClientMetadata: {
      properties: ['tenant', 'allowed_origins', 'simptu_roles'],
    },
    clientBasedCORS(_ctx, origin, client) {
      const allowed = client.metadata().allowed_origins;
      return Array.isArray(allowed) && allowed.includes(origin);
    },
    responseTypes: ['code'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // A client may introspect or revoke only its own tokens.
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = layout({
            title: 'Sign out',
            body: `${form}<p>Do you want to sign out?</p>
<button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`,
          });
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = messagePage({ title: 'Signed out', message: 'You are signed out.' });
        },
      },
      resourceIndicators: {
        enabled: true,
        async defaultResource(_ctx, _client, oneOf) {
          return oneOf ?? api.resource;
        },
        async useGrantedResource() {
          return false;
        },
        async getResourceServerInfo(_ctx, indicator) {
          if (indicator === api.resource) return resourceServer;
          throw new errors.InvalidTarget();
        },
      },
    },
    async findAccount(ctx, sub) {
      const user = await userFor(ctx, db, sub);
      const tenant = clientTenant(ctx.oidc?.client);
      if (!user || user.status !== 'active' || tenant === undefined || user.tenant !== tenant)
        return undefined;
      return {
        accountId: user.id,
        async claims() {
          return {
            sub: user.id,
            email: user.email,
            email_verified: true,
            tenant: user.tenant,
            roles: user.roles,
          };
        },
      };
    },
    // First-party clients: no consent screen. The grant covers what the client may ask for.
    // @see https://github.com/panva/node-oidc-provider/blob/main/recipes/skip_consent.md
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      if (!oidc.account || !oidc.client) return undefined;
      const grantId = oidc.result?.consent?.grantId ?? oidc.session?.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (grant && grant.accountId !== oidc.account.accountId) grant = undefined;
      grant ??= new oidc.provider.Grant({
        clientId: oidc.client.clientId,
        accountId: oidc.account.accountId,
      });
      const requested = String(oidc.params?.scope ?? '').split(' ');
      const allowed = new Set(String(oidc.client.scope ?? '').split(' '));
      const oidcScopes = requested.filter((s) => allowed.has(s));
      if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
      grant.addOIDCClaims(['sub', 'tenant', 'roles', 'email', 'email_verified']);
      grant.addResourceScope(api.resource, API_SCOPE);
      await grant.save();
      return grant;
    },
    async extraTokenClaims(ctx, token) {
      // `metadata()` rebuilds the whole snake_case metadata object on every call (a few % of
      // the SSO's CPU per client-credentials token when called twice; bench/auth): once here.
      const metadata = ctx.oidc?.client?.metadata();
      const tenant = tenantOfMetadata(metadata);
      if (!tenant) throw new Error('token for a client without a tenant');
      if (token.kind === 'ClientCredentials') return { tenant, roles: rolesOfMetadata(metadata) };
      const t = token as { gty?: string; accountId?: string };
      if (t.gty === ACCESS_CODE_GRANT) return { tenant, roles: ['customer'] };
      const user = t.accountId ? await userFor(ctx, db, t.accountId) : undefined;
      // Never mint a token that names one tenant for a user of another.
      if (!user || user.tenant !== tenant || user.status !== 'active')
        throw new errors.InvalidGrant("the account does not belong to this client's tenant");
      return { tenant, roles: user.roles };
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    interactions: {
      policy: basePolicy,
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessTokenSec,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessTokenSec,
      AuthorizationCode: config.ttl.authorizationCodeSec,
      IdToken: config.ttl.idTokenSec,
      Interaction: config.ttl.interactionSec,
      Session: config.ttl.sessionSec,
      Grant: config.ttl.refreshTokenSec,
      RefreshToken: config.ttl.refreshTokenSec,
    },
    enabledJWA: {
      // Signing only with asymmetric algorithms the common verifier accepts.
      idTokenSigningAlgValues: ['ES256', 'RS256'],
      userinfoSigningAlgValues: ['ES256', 'RS256'],
      introspectionSigningAlgValues: ['ES256', 'RS256'],
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = layout({
        title: 'Something went wrong',
        body: `<p>${escapeHtml(out.error)}${out.error_description ? `: ${escapeHtml(out.error_description)}` : ''}</p>`,
      });
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;
  return provider;
}
