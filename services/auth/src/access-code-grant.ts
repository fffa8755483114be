/**
 * The patient access-code grant (DESIGN §7): a tenant's browser client exchanges a code staff
 * handed the customer, plus a second factor the customer knows (birth date, phone or e-mail on
 * file), for a narrow, short-lived token — `sub` = the customer id, `roles: [customer]`, scope
 * limited to their own sessions and bookings, no refresh token.
 *
 *     POST /token
 *     grant_type=urn:simptu:params:oauth:grant-type:access-code
 *     &client_id=<tenant>-web&code=ABCD-EFGH&birth_date=1990-04-01   (or phone=… / email=…)
 *
 * The code is checked by `verifyAccessCode` (common domain) inside the tenant's transaction,
 * which counts wrong second factors and locks the code at its limit; the transaction COMMITs
 * whatever the outcome so a failed attempt is never rolled back. Unknown codes count against
 * the caller's IP (Redis), so guessing codes is throttled too.
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md#registergranttype
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.5 (extension grants)
 */
import type pg from 'pg';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { verifyAccessCode, type SecondFactor } from '@simptu/common';
import type { AuthConfig } from './config.ts';
import { ACCESS_CODE_GRANT, type ClientResolver } from './clients.ts';
import { audit } from './db.ts';
import { ACCESS_CODE_SCOPES, clientTenant } from './provider.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { TenantDatabases } from './tenant-db.ts';

export const ACCESS_CODE_PARAMS = ['code', 'birth_date', 'phone', 'email'];

export interface AccessCodeGrantDeps {
  config: AuthConfig;
  db: pg.Pool;
  clients: ClientResolver;
  tenants: TenantDatabases;
  limiter: RateLimiter;
  clientIp: (ctx: KoaContextWithOIDC) => string;
}

class TooManyAttempts extends errors.CustomOIDCProviderError {
  constructor(retryAfterSec: number) {
    super('slow_down', `too many access-code attempts, retry in ${retryAfterSec} s`);
    this.status = 429;
    this.statusCode = 429;
  }
}

function secondFactor(params: Record<string, unknown>): SecondFactor | undefined {
  const pick = (k: string) =>
    typeof params[k] === 'string' && params[k] !== '' ? (params[k] as string) : undefined;
  const birthDate = pick('birth_date');
  const phone = pick('phone');
  const email = pick('email');
  const given = [birthDate, phone, email].filter((v) => v !== undefined);
  if (given.length !== 1) return undefined;
  if (birthDate !== undefined) return /^\d{4}-\d{2}-\d{2}$/.test(birthDate) ? { birthDate } : undefined;
  if (phone !== undefined) return { phone };
  return { email: email! };
}

export function registerAccessCodeGrant(provider: Provider, deps: AccessCodeGrantDeps): void {
  const { config } = deps;
  const resourceServer = {
    identifier: () => config.api.resource,
    audience: config.api.audience,
    scope: ACCESS_CODE_SCOPES.join(' '),
    accessTokenTTL: config.ttl.accessCodeTokenSec,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: config.keys.alg } },
  };

  provider.registerGrantType(
    ACCESS_CODE_GRANT,
    async (ctx: KoaContextWithOIDC) => {
      const client = ctx.oidc.client!;
      const params = ctx.oidc.params as Record<string, unknown>;
      const ip = deps.clientIp(ctx);
      const tenantName = clientTenant(client);
      const tenant = tenantName ? await deps.clients.tenant(tenantName) : undefined;
      if (!tenant) throw new errors.InvalidClient('the client has no active tenant');

      const perIp = await deps.limiter.hit(
        'access-code-ip',
        ip,
        config.accessCode.maxAttemptsPerIp,
        config.accessCode.windowSec,
      );
      if (!perIp.allowed) {
        if (perIp.count === config.accessCode.maxAttemptsPerIp + 1)
          await audit(deps.db, {
            event: 'access_code.ip_limited',
            tenant: tenant.name,
            clientId: client.clientId,
            ip,
          });
        throw new TooManyAttempts(perIp.retryAfterSec);
      }
      const code = typeof params.code === 'string' ? params.code : '';
      const factor = secondFactor(params);
      if (!code) throw new errors.InvalidRequest('missing required parameter: code');
      if (!factor)
        throw new errors.InvalidRequest(
          'exactly one second factor is required: birth_date (YYYY-MM-DD), phone or email',
        );

      const result = await deps.tenants.run(tenant, (dctx) =>
        verifyAccessCode(dctx, code, { secondFactor: factor }),
      );
      if (!result.ok) {
        if (result.reason === 'second_factor_mismatch' && result.attemptsRemaining === 0)
          await audit(deps.db, {
            event: 'access_code.locked',
            tenant: tenant.name,
            clientId: client.clientId,
            ip,
            details: { accessCodeId: result.accessCodeId },
          });
        const description: Record<typeof result.reason, string> = {
          invalid: 'the access code or the second factor is wrong',
          second_factor_mismatch: 'the access code or the second factor is wrong',
          expired: 'the access code has expired',
          revoked: 'the access code was revoked',
          used: 'the access code was already used',
          locked: 'the access code is locked after too many attempts; ask for a new one',
        };
        // The remaining attempts tell the app whether asking again makes sense.
        const left =
          result.attemptsRemaining !== undefined && result.reason === 'second_factor_mismatch'
            ? ` (${result.attemptsRemaining} attempt${result.attemptsRemaining === 1 ? '' : 's'} left)`
            : '';
        throw new errors.CustomOIDCProviderError('invalid_grant', `${description[result.reason]}${left}`);
      }

      // No grant behind it: the token is not refreshable and lives minutes (its revocation is
      // the access code's revocation before use).
      const token = new ctx.oidc.provider.AccessToken({
        accountId: result.customerId,
        client,
        gty: ACCESS_CODE_GRANT,
        scope: ACCESS_CODE_SCOPES.join(' '),
      } as ConstructorParameters<typeof ctx.oidc.provider.AccessToken>[0]);
      (token as unknown as { resourceServer: unknown }).resourceServer = resourceServer;
      ctx.oidc.entity('AccessToken', token);
      const value = await token.save();
      await audit(deps.db, {
        event: 'access_code.exchanged',
        tenant: tenant.name,
        subject: result.customerId,
        clientId: client.clientId,
        ip,
        details: { accessCodeId: result.accessCodeId },
      });
      ctx.body = {
        access_token: value,
        token_type: 'Bearer',
        expires_in: token.expiration,
        scope: token.scope,
      };
    },
    ACCESS_CODE_PARAMS,
  );
}
