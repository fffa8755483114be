/** The Tenant API: types (the contract), TypeBox schemas (the source), CRD and policy builders. */
export * from './types.ts';
export * from './schema.ts';
export * from './crd.ts';
