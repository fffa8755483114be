/**
 * The hub's topics (DESIGN §7) and who may join them. The tenant is never part of a topic
 * string: it comes from the verified token, and everything internal is keyed by
 * `<tenant>/<topic>` (`topicKey`), so a client can't even name another tenant's stream.
 */
import type { AccessTokenClaims, Role } from '@simptu/common';

export type TopicKind = 'session' | 'staff_lobby' | 'user';

export type ParsedTopic =
  { kind: 'session'; id: string } | { kind: 'staff_lobby' } | { kind: 'user'; id: string };

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** token subjects: printable, no separators we use in keys */
const SUBJECT_RE = /^[A-Za-z0-9._@:|-]{1,255}$/;

/** Parses a topic; undefined means "unmatched topic" (Phoenix's answer for topics nobody handles). */
export function parseTopic(topic: string): ParsedTopic | undefined {
  if (topic === 'staff:lobby') return { kind: 'staff_lobby' };
  if (topic.startsWith('session:')) {
    const id = topic.slice('session:'.length);
    return UUID_RE.test(id) ? { kind: 'session', id } : undefined;
  }
  if (topic.startsWith('user:')) {
    const id = topic.slice('user:'.length);
    return SUBJECT_RE.test(id) ? { kind: 'user', id } : undefined;
  }
  return undefined;
}

export function topicKind(topic: string): TopicKind | 'unmatched' {
  return parseTopic(topic)?.kind ?? 'unmatched';
}

/** The internal key of a tenant's topic. */
export function topicKey(tenant: string, topic: string): string {
  return `${tenant}/${topic}`;
}

export function splitTopicKey(key: string): { tenant: string; topic: string } {
  const i = key.indexOf('/');
  return { tenant: key.slice(0, i), topic: key.slice(i + 1) };
}

export const STAFF_ROLES: readonly Role[] = ['staff', 'admin', 'owner'];

export function isStaff(claims: Pick<AccessTokenClaims, 'roles'>): boolean {
  return claims.roles.some((r) => STAFF_ROLES.includes(r));
}

/**
 * Authorization that needs no database: `staff:lobby` for staff only, `user:<id>` for that user
 * only. A session needs the database (see `Hub`); here it only says whether the caller is staff
 * (any session of the tenant) or must own it.
 */
export type JoinDecision =
  | { allow: true }
  | { allow: false; reason: 'unauthorized' }
  | { check: 'session'; id: string; staff: boolean };

export function decideJoin(t: ParsedTopic, claims: Pick<AccessTokenClaims, 'sub' | 'roles'>): JoinDecision {
  switch (t.kind) {
    case 'staff_lobby':
      return isStaff(claims) ? { allow: true } : { allow: false, reason: 'unauthorized' };
    case 'user':
      return t.id === claims.sub ? { allow: true } : { allow: false, reason: 'unauthorized' };
    case 'session':
      return { check: 'session', id: t.id, staff: isStaff(claims) };
  }
}

/** Topics whose joiners are tracked in presence (user topics are private). */
export function tracksPresence(t: ParsedTopic): boolean {
  return t.kind !== 'user';
}
