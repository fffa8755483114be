/**
 * Every name the platform derives from a tenant, in one place (DESIGN §3), so the operator,
 * the services and the tests always agree.
 */
export const TENANT_NAME_PATTERN = '^[a-z]([a-z0-9-]*[a-z0-9])?$';
export const TENANT_NAME_RE = new RegExp(TENANT_NAME_PATTERN);
export const TENANT_NAME_MIN = 3;
export const TENANT_NAME_MAX = 40;

export const PLATFORM_NAMESPACE = 'simptu-system';
export const PLATFORM_TOPIC = 'simptu.platform.tenants';
export const PLATFORM_SCHEMA = 'platform';
export const FINALIZER = 'simptu.io/finalizer';
export const FIELD_MANAGER = 'simptu-operator';
export const TENANT_LABEL = 'simptu.io/tenant';

export function isValidTenantName(name: string): boolean {
  return name.length >= TENANT_NAME_MIN && name.length <= TENANT_NAME_MAX && TENANT_NAME_RE.test(name);
}

function assertTenantName(name: string): void {
  if (!isValidTenantName(name)) throw new TypeError(`invalid tenant name ${JSON.stringify(name)}`);
}

/** `smile-dental` → `t_smile_dental`: the schema, role and (dedicated) database name. */
export function tenantId(name: string): string {
  assertTenantName(name);
  return `t_${name.replace(/-/g, '_')}`;
}

/** `smile-dental` → `tenant-smile-dental` */
export function tenantNamespace(name: string): string {
  assertTenantName(name);
  return `tenant-${name}`;
}

export interface TenantTopics {
  inbound: string;
  agent: string;
  domain: string;
}

export function tenantTopics(name: string): TenantTopics {
  assertTenantName(name);
  const base = `simptu.t.${name}`;
  return { inbound: `${base}.inbound`, agent: `${base}.agent`, domain: `${base}.domain` };
}

/** Standard labels for everything the platform creates for a tenant. */
export function tenantLabels(name: string, component?: string): Record<string, string> {
  return {
    'app.kubernetes.io/part-of': 'simptu',
    'app.kubernetes.io/managed-by': 'simptu-operator',
    ...(component ? { 'app.kubernetes.io/component': component } : {}),
    [TENANT_LABEL]: name,
  };
}
