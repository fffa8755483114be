export * from './names.ts';

export * from './crypto/kms.ts';
export * from './crypto/envelope.ts';
export * from './crypto/keyring-cache.ts';

export type * from './db/queryable.ts';
export * from './db/identifiers.ts';
export * from './db/migrations.ts';
export * from './db/tenant-db.ts';
export * from './db/scratch.ts';
