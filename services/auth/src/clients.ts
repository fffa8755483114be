/**
 * OAuth clients, resolved on demand (never cached beyond oidc-provider's own cache, which is
 * keyed by the metadata's hash — so a changed registry row is a new client at once, no restart):
 *
 * - `<tenant>-web`: the tenant's public browser client (authorization code + PKCE, refresh,
 *   the access-code grant), built from its `platform.tenants` row: `redirect_uris`, `origins`
 *   (CORS and post-logout redirects), `display_name`. A suspended or archived tenant has no client.
 * - anything else: a confidential service client from `auth.clients` (client credentials),
 *   bound to one tenant with fixed roles; its secret is stored wrapped by the KEK.
 *
 * The tenant a client acts for is the `tenant` metadata property; every token is minted for
 * that tenant only (see provider.ts), which is what keeps a tenant-A user out of tenant B.
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md#extraclientmetadata
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { isRole, isValidTenantName, type KmsProvider, type Role } from '@simptu/common';

export const ACCESS_CODE_GRANT = 'urn:simptu:params:oauth:grant-type:access-code';
export const WEB_CLIENT_SUFFIX = '-web';
/** OIDC scopes a browser client may ask for, plus the API's. */
export const WEB_CLIENT_SCOPES = 'openid email profile offline_access api';

export interface TenantInfo {
  name: string;
  displayName: string;
  state: string;
  timezone: string;
  databaseIsolation: 'shared' | 'dedicated';
  databaseName: string;
  redirectUris: string[];
  origins: string[];
}

/** `smile-dental-web` → `smile-dental`; undefined when it is not a web client id. */
export function tenantOfWebClientId(clientId: string): string | undefined {
  if (!clientId.endsWith(WEB_CLIENT_SUFFIX)) return undefined;
  const tenant = clientId.slice(0, -WEB_CLIENT_SUFFIX.length);
  return isValidTenantName(tenant) ? tenant : undefined;
}

export function webClientId(tenant: string): string {
  return `${tenant}${WEB_CLIENT_SUFFIX}`;
}

export function serviceSecretAad(clientId: string): string {
  return `simptu.auth.client-secret.v1|${clientId}`;
}

/** Client metadata as oidc-provider takes it (snake_case), with our extra properties. */
export type ClientMetadata = Record<string, unknown> & { client_id: string; tenant: string };

export class ClientResolver {
  readonly #db: pg.Pool;
  readonly #kms: KmsProvider;

  constructor(db: pg.Pool, kms: KmsProvider) {
    this.#db = db;
    this.#kms = kms;
  }

  /** The registry row of an active tenant, or undefined. */
  async tenant(name: string): Promise<TenantInfo | undefined> {
    if (!isValidTenantName(name)) return undefined;
    const { rows } = await this.#db.query<{
      name: string;
      display_name: string;
      state: string;
      timezone: string;
      database_isolation: 'shared' | 'dedicated';
      database_name: string;
      redirect_uris: string[];
      origins: string[];
    }>(
      `SELECT name, display_name, state, timezone, database_isolation, database_name, redirect_uris, origins
         FROM platform.tenants WHERE name = $1`,
      [name],
    );
    const r = rows[0];
    if (!r || r.state !== 'active') return undefined;
    return {
      name: r.name,
      displayName: r.display_name,
      state: r.state,
      timezone: r.timezone,
      databaseIsolation: r.database_isolation,
      databaseName: r.database_name,
      redirectUris: r.redirect_uris,
      origins: r.origins,
    };
  }

  async find(clientId: string): Promise<ClientMetadata | undefined> {
    if (typeof clientId !== 'string' || clientId.length > 100) return undefined;
    const tenantName = tenantOfWebClientId(clientId);
    if (tenantName) {
      const t = await this.tenant(tenantName);
      if (!t || t.redirectUris.length === 0) return undefined;
      return {
        client_id: clientId,
        client_name: t.displayName,
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token', ACCESS_CODE_GRANT],
        response_types: ['code'],
        redirect_uris: [...t.redirectUris].sort(),
        // After logout the browser may return to the app's callback or any of its origins.
        post_logout_redirect_uris: [...new Set([...t.redirectUris, ...t.origins.map((o) => `${o}/`)])].sort(),
        scope: WEB_CLIENT_SCOPES,
        tenant: t.name,
        allowed_origins: [...t.origins].sort(),
        simptu_roles: [],
      };
    }
    const { rows } = await this.#db.query<{
      client_id: string;
      tenant: string;
      wrapped_secret: Buffer;
      kek_id: string;
      roles: string[];
      scopes: string[];
    }>(
      `SELECT c.client_id, c.tenant, c.wrapped_secret, c.kek_id, c.roles, c.scopes
         FROM auth.clients c JOIN platform.tenants t ON t.name = c.tenant AND t.state = 'active'
        WHERE c.client_id = $1 AND c.disabled_at IS NULL`,
      [clientId],
    );
    const r = rows[0];
    if (!r) return undefined;
    if (r.kek_id !== this.#kms.kekId)
      throw new Error(`client ${clientId}'s secret was wrapped by another KEK`);
    const secret = (await this.#kms.unwrap(r.wrapped_secret, serviceSecretAad(r.client_id))).toString('utf8');
    return {
      client_id: r.client_id,
      client_secret: secret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: r.scopes.join(' '),
      tenant: r.tenant,
      allowed_origins: [],
      simptu_roles: r.roles,
    };
  }
}

export interface ServiceClientInput {
  clientId: string;
  tenant: string;
  roles?: Role[];
  /** @default ['api'] */
  scopes?: string[];
  description?: string;
}

/** Registers a service client; returns its secret (shown once). */
export async function createServiceClient(
  db: pg.Pool,
  kms: KmsProvider,
  input: ServiceClientInput,
): Promise<{ clientId: string; clientSecret: string }> {
  const roles = input.roles ?? ['staff'];
  if (!roles.every(isRole)) throw new TypeError('roles must be owner, admin, staff or customer');
  if (!isValidTenantName(input.tenant)) throw new TypeError(`invalid tenant ${JSON.stringify(input.tenant)}`);
  const secret = randomBytes(32).toString('base64url');
  const wrapped = await kms.wrap(Buffer.from(secret, 'utf8'), serviceSecretAad(input.clientId));
  await db.query(
    `INSERT INTO auth.clients (client_id, tenant, wrapped_secret, kek_id, roles, scopes, description)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      input.clientId,
      input.tenant,
      wrapped,
      kms.kekId,
      roles,
      input.scopes ?? ['api'],
      input.description ?? null,
    ],
  );
  return { clientId: input.clientId, clientSecret: secret };
}
