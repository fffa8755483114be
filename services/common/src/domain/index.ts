/**
 * The tenant domain (DESIGN §6, §7): one implementation of catalog, customers, availability,
 * bookings, memberships and chat sessions for the API and the agent's tools. Every repository
 * function takes a `DomainContext` whose client is already inside `withTenant`.
 */
export * from './context.ts';
export * from './errors.ts';
export * from './time.ts';
export * from './catalog.ts';
export * from './customers.ts';
export * from './availability.ts';
export * from './bookings.ts';
export * from './sessions.ts';
export * from './invitations.ts';
export * from './ratings.ts';
export * from './access-codes.ts';
export * from './memberships.ts';
