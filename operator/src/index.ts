/**
 * The operator as a library: what other packages (tests of the services, benchmarks, the
 * platform constructs) reuse — the Tenant API, the backend reconcilers and the manager.
 */
export * from './api/types.ts';
export * from './api/tools.ts';
export { parseConfig, fromEnv, type OperatorConfig } from './config.ts';
export { startOperator, loadKubeConfig, type OperatorHandle, type StartOptions } from './manager.ts';
export { databaseReconciler, ensureAppRole, type DatabaseDeps } from './reconcile/database.ts';
export { encryptionReconciler, type EncryptionDeps } from './reconcile/encryption.ts';
export { topicsReconciler, ensurePlatformTopic, type TopicsDeps } from './reconcile/topics.ts';
export { registryReconciler, createRegistryProducer, type RegistryDeps } from './reconcile/registry.ts';
export type { StepResult, WriteCounter, BackendReconciler } from './reconcile/types.ts';
