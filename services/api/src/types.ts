/**
 * The contract between the API's plugins and its routes: what the plugins decorate the fastify
 * instance and requests with. Routes only use these; plugins provide them (CONVENTIONS 8).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { AccessTokenClaims, DomainContext, FieldCipher, Role } from '@simptu/common';
import type { ApiConfig } from './config.ts';

/** What the API knows about a tenant, from the operator's registry (`platform.tenants`). */
export interface TenantInfo {
  name: string;
  displayName: string;
  businessType: 'dental' | 'gym' | 'hotel';
  locale: string;
  timezone: string;
  /** connection routing: shared tenants live in the platform database, dedicated ones in `database` */
  database: string;
  schema: string;
  role: string;
  origins: string[];
  state: 'active' | 'suspended' | 'archived';
}

export interface TenantRegistry {
  /** undefined when the tenant is unknown or archived; cached briefly */
  get(name: string): Promise<TenantInfo | undefined>;
  invalidate(name: string): void;
}

/** Runs `fn` in the tenant's transaction (SET LOCAL ROLE + search_path) with its cipher and zone. */
export type WithTenant = <T>(fn: (ctx: DomainContext) => Promise<T>) => Promise<T>;

declare module 'fastify' {
  interface FastifyInstance {
    /** the validated configuration the app was built with (cache TTLs, limits, …) */
    config: ApiConfig;
    /** pool of the services' NOINHERIT login role on the platform database */
    db: pg.Pool;
    /** pool for a tenant's database (the platform pool for shared tenants) */
    dbFor(tenant: TenantInfo): pg.Pool;
    registry: TenantRegistry;
    /** the tenant's FieldCipher (active key + older versions for decryption) */
    cipherFor(tenant: string): Promise<FieldCipher>;
    redis: Redis;
    /** preHandler: 401 without a valid token; sets request.auth and request.tenant */
    authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void>;
    /** preHandler factory: 403 unless the principal has one of the roles */
    requireRole(...roles: Role[]): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
  interface FastifyRequest {
    /** the verified access token's claims (after `authenticate`) */
    auth: AccessTokenClaims;
    /** the caller's tenant, from the token only — never from the URL or body */
    tenant: TenantInfo;
    /** run in the caller's tenant transaction (after `authenticate`) */
    withTenant: WithTenant;
  }
}

export type App = FastifyInstance;
