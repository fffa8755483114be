/**
 * The operator's generic controller machinery (DESIGN §5): informers, a rate-limited work
 * queue, controllers, Lease leader election, metrics with controller-runtime's names, health
 * endpoints, server-side apply, status writes and Events. Nothing here knows about Tenants.
 */
export { FakeClock, systemClock, type Clock, type TimerHandle } from './clock.ts';
export {
  kubeRequest,
  kubeWatch,
  metadataAccept,
  microTime,
  resourcePath,
  type Method,
  type RequestOptions,
  type ResourceRef,
  type WatchEvent,
} from './client.ts';
export {
  errorMessage,
  isAlreadyExists,
  isConflict,
  isGone,
  isNotFound,
  statusCode,
  statusReason,
} from './errors.ts';
export { noopLogger, type Logger } from './log.ts';
export {
  BucketRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  WorkQueue,
  defaultControllerRateLimiter,
  type InProgressStats,
  type RateLimiter,
  type RateLimiterOptions,
  type WorkQueueMetrics,
  type WorkQueueOptions,
} from './workqueue.ts';
export {
  LightKubeConfig,
  lightFromKubeconfigFile,
  lightInCluster,
  loadKubeConfig,
  type KubeAccess,
} from './kubeconfig.ts';
export {
  Informer,
  LAST_APPLIED_ANNOTATION,
  SLIM_METADATA_FIELDS,
  objectKey,
  slimObject,
  splitKey,
  type InformerHandlers,
  type InformerOptions,
} from './informer.ts';
export { LeaderElector, defaultIdentity, type LeaderElectionOptions } from './leader.ts';
export { ControllerMetrics, type MetricsOptions, type ReconcileResultLabel } from './metrics.ts';
export { HealthServer, type Check, type HealthServerOptions } from './health.ts';
export {
  Controller,
  mapByLabel,
  type ControllerOptions,
  type Reconcile,
  type Result,
  type Watch,
} from './controller.ts';
export {
  applyStatus,
  objectApi,
  patchStatus,
  serverSideApply,
  type ApplyOptions,
  type ObjectRef,
  type PatchStatusOptions,
  type PatchStatusResult,
} from './apply.ts';
export { EventRecorder, type EventRecorderOptions, type EventType } from './events.ts';
