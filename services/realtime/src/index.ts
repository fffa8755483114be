/** The realtime hub (DESIGN §7): Phoenix Channels V2 over `ws`. See docs/realtime.md. */
export * from './protocol.ts';
export * from './topics.ts';
export * from './events.ts';
export * from './outbound.ts';
export * from './streams.ts';
export * from './presence.ts';
export * from './registry.ts';
export * from './inbound.ts';
export * from './ingest.ts';
export * from './entry.ts';
export * from './metrics.ts';
export * from './config.ts';
export { Hub, recoveryParams, type HubOptions, type HubLimits } from './hub.ts';
export { startRealtime, type RealtimeApp, type StartOptions } from './app.ts';
