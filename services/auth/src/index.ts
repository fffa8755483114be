export { createAuthService, maxTokenLifetimeSec, type AuthService, type AuthServiceDeps } from './app.ts';
export { loadAuthConfig, AuthConfigSchema, ENV_PREFIX, type AuthConfig } from './config.ts';
export {
  ACCESS_CODE_GRANT,
  ClientResolver,
  createServiceClient,
  tenantOfWebClientId,
  webClientId,
  type ServiceClientInput,
  type TenantInfo,
} from './clients.ts';
export { API_SCOPE, ACCESS_CODE_SCOPES } from './provider.ts';
export { migrateAuth, audit, AUTH_SCHEMA } from './db.ts';
export {
  rotateSigningKeys,
  loadSigningKeys,
  pruneSigningKeys,
  listSigningKeys,
  ensureActiveKey,
} from './keys.ts';
export {
  createUser,
  findUserByEmail,
  findUserById,
  checkPassword,
  hashPassword,
  type User,
} from './users.ts';
export { createMailer, type Mailer, type MailMessage } from './mail.ts';
export { runCli } from './cli.ts';
