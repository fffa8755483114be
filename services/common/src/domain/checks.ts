/**
 * Field checks the catalog and membership plans share: each adds an issue (our 400 details) for
 * a bad value and returns nothing, so a caller collects every problem of an input at once.
 */
import type { Issues } from './errors.ts';

const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

/** A display name: 1..200 characters, not blank. */
export function checkName(issues: Issues, v: unknown, path = 'name'): void {
  if (typeof v !== 'string' || v.trim().length < 1 || v.length > 200)
    issues.add(path, 'must be 1..200 characters');
}

/** An optional free-text description (null or absent is fine). */
export function checkDescription(issues: Issues, v: unknown): void {
  if (v != null && (typeof v !== 'string' || v.length > 4000))
    issues.add('description', 'must be at most 4000 characters');
}

/** A price in minor units (cents), 0 or more. */
export function checkPriceCents(issues: Issues, v: unknown): void {
  if (!Number.isSafeInteger(v) || (v as number) < 0)
    issues.add('priceCents', 'must be a non-negative integer');
}

/** An ISO 4217 currency code the runtime knows. */
export function checkCurrency(issues: Issues, v: unknown): void {
  if (typeof v !== 'string' || !/^[A-Z]{3}$/.test(v) || !CURRENCIES.has(v))
    issues.add('currency', 'must be an ISO 4217 code such as EUR');
}

/** An optional `active` flag (absent is fine). */
export function checkActive(issues: Issues, v: unknown): void {
  if (v !== undefined && typeof v !== 'boolean') issues.add('active', 'must be a boolean');
}
