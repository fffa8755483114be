export * from './tenant-agent.ts';
