/** The API as a library: build it (tests, tools) or run `main.ts`. */
export { buildApp, type AppDeps } from './app.ts';
export {
  loadApiConfig,
  ApiConfigSchema,
  ENV_PREFIX,
  platformDatabaseName,
  tenantDatabaseUrl,
  type ApiConfig,
} from './config.ts';
export { ApiErrors, API_EVENT_SOURCE, customerScope, isStaff } from './plugins/auth.ts';
export { PgTenantRegistry } from './plugins/registry.ts';
export { AgentRepliesConsumer, agentMessageHandler, AGENT_MESSAGE_TYPE } from './consumers/agent-replies.ts';
export type * from './types.ts';
export * from './schemas.ts';
