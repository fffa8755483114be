/**
 * The tenants this agent serves, from the operator's registry (`platform.tenants`, DESIGN §5.6):
 * pool mode → every active tenant with `agent_isolation = 'shared'`; dedicated mode → exactly
 * the one named by SIMPTU_TENANT. Re-read periodically, so tenants join and leave the pool
 * without a restart.
 */
import type pg from 'pg';
import type { TenantDbRef } from '@simptu/common';
import type { ToolPolicy } from './tools/index.ts';
import type { BusinessType, TenantContext } from './tools/types.ts';

export type ModelProviderName = 'builtin' | 'openai' | 'bedrock' | 'anthropic';

export interface ModelConfig {
  provider: ModelProviderName;
  name?: string;
  baseURL?: string;
  secretRef?: { name: string; namespace?: string };
}

export interface Integrations {
  twilio?: { phoneNumber: string; credentialsSecretRef: { name: string } };
  /** `whatsappPhoneNumberId`: the WhatsApp Cloud API number (channels/outbound.ts) */
  meta?: { pageId: string; whatsappPhoneNumberId?: string; credentialsSecretRef: { name: string } };
  email?: { ingestAddress: string };
}

export interface AgentTenant extends TenantContext {
  ref: TenantDbRef;
  database: string;
  model: ModelConfig;
  tools: ToolPolicy;
  integrations: Integrations;
}

interface Row {
  name: string;
  display_name: string;
  business_type: BusinessType;
  locale: string;
  timezone: string;
  database_name: string;
  schema_name: string;
  agent: { model?: ModelConfig; instructions?: string; tools?: ToolPolicy } | null;
  integrations: Integrations | null;
}

const PROVIDERS: readonly string[] = ['builtin', 'openai', 'bedrock', 'anthropic'];

export function toAgentTenant(r: Row): AgentTenant {
  const model =
    r.agent?.model && PROVIDERS.includes(r.agent.model.provider)
      ? r.agent.model
      : { provider: 'builtin' as const };
  const tools = r.agent?.tools ?? {};
  return {
    name: r.name,
    displayName: r.display_name,
    businessType: r.business_type,
    locale: r.locale,
    timeZone: r.timezone,
    ...(r.agent?.instructions ? { instructions: r.agent.instructions } : {}),
    ref: { name: r.name, schema: r.schema_name, role: r.schema_name },
    database: r.database_name,
    model,
    tools: {
      // an empty allow-list means the business type's defaults (docs/tenant-reference.md), not "none"
      ...(Array.isArray(tools.allow) && tools.allow.length > 0 ? { allow: tools.allow.map(String) } : {}),
      ...(Array.isArray(tools.deny) ? { deny: tools.deny.map(String) } : {}),
      ...(Array.isArray(tools.untrustedAllow) ? { untrustedAllow: tools.untrustedAllow.map(String) } : {}),
    },
    integrations: r.integrations ?? {},
  };
}

export async function loadAgentTenants(
  db: pg.Pool,
  select: { mode: 'pool' } | { mode: 'dedicated'; tenant: string },
): Promise<AgentTenant[]> {
  const { rows } = await db.query<Row>(
    `SELECT name, display_name, business_type, locale, timezone, database_name, schema_name, agent, integrations
       FROM platform.tenants
      WHERE state = 'active' AND ${select.mode === 'pool' ? "agent_isolation = 'shared'" : 'name = $1'}
      ORDER BY name`,
    select.mode === 'pool' ? [] : [select.tenant],
  );
  return rows.map(toAgentTenant);
}
