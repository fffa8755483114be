/** @simptu/agent: the LangGraph agent, its tools, model providers and channel clients. */
export * from './config.ts';
export * from './secrets.ts';
export * from './registry.ts';
export * from './checkpoint.ts';
export * from './graph.ts';
export * from './runtime.ts';
export * from './tools/index.ts';
export * from './model/intents.ts';
export * from './model/builtin.ts';
export * from './model/providers.ts';
export * from './channels/clients.ts';
export * from './channels/outbound.ts';
export * from './channels/email.ts';
