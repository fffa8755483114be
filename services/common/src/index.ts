export * from './names.ts';

export * from './crypto/kms.ts';
export * from './crypto/envelope.ts';
export * from './crypto/keyring-cache.ts';

export type * from './db/queryable.ts';
export * from './db/identifiers.ts';
export * from './db/inline.ts';
export * from './db/migrations.ts';
export * from './db/tenant-db.ts';
export * from './db/scratch.ts';

export * from './config.ts';
export * from './errors.ts';
export * from './context.ts';
export * from './logger.ts';
export * from './metrics.ts';
export * from './health.ts';

export * from './events/cloudevents.ts';
export * from './events/producer.ts';
export * from './events/outbox.ts';
export * from './events/consumer.ts';

export * from './auth/verifier.ts';
// Test support (a local JWKS issuer); used by other packages' tests.
export * from './auth/testing.ts';
export * from './domain/index.ts';
