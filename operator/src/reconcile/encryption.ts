/**
 * EncryptionKeyReady (DESIGN §5.2): every tenant has a data key (DEK), wrapped by the KMS's
 * key-encryption key and stored in `platform.tenant_keys`.
 *
 * Invariants this file exists to keep:
 * - an existing key version is NEVER regenerated or overwritten — that would make every
 *   ciphertext of the tenant unreadable. Versions are only ever added with
 *   `INSERT … ON CONFLICT DO NOTHING`, and the stored row is read back afterwards, so a racing
 *   operator or a crash between generating and inserting can't replace a key;
 * - rotation adds version N+1; old versions stay for decryption until re-encryption finishes;
 * - `deletionPolicy: Delete` destroys every wrapped key (crypto-shredding), `Retain` keeps them.
 */
import { dekWrapAad, generateDek, type KmsProvider } from '@simptu/common';
import type pg from 'pg';
import type { Tenant } from '../api/types.ts';
import type { BackendReconciler, StepResult, WriteCounter } from './types.ts';

export interface EncryptionDeps {
  /** admin connection to the platform database */
  pg: pg.Pool;
  adminUrl: string;
  kms: KmsProvider;
  appRole: string;
  writes: WriteCounter;
  now?: () => Date;
}

/** `kubectl annotate tenant x simptu.io/rotate-key=$(date -u +%FT%TZ)` rotates now. */
export const ROTATE_KEY_ANNOTATION = 'simptu.io/rotate-key';
const DAY_MS = 86_400_000;
/** Re-check at least hourly, so a rotation is at most an hour late even without events. */
export const MAX_ENCRYPTION_REQUEUE_MS = 3_600_000;

export interface StoredKey {
  version: number;
  kekId: string;
  createdAt: Date;
}

export async function readTenantKeys(db: pg.Pool | pg.ClientBase, tenant: string): Promise<StoredKey[]> {
  const { rows } = await db.query<{ version: number; kek_id: string; created_at: Date }>(
    'SELECT version, kek_id, created_at FROM platform.tenant_keys WHERE tenant = $1 ORDER BY version',
    [tenant],
  );
  return rows.map((r) => ({ version: r.version, kekId: r.kek_id, createdAt: r.created_at }));
}

export type RotationDecision =
  | { rotate: false; nextDueAt: Date }
  | { rotate: true; why: 'age' | 'annotation' }
  | { rotate: false; invalidAnnotation: string };

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Pure: is a new key version due? */
export function rotationDecision(tenant: Tenant, active: StoredKey, now: Date): RotationDecision {
  const raw = tenant.metadata.annotations?.[ROTATE_KEY_ANNOTATION];
  if (raw !== undefined && raw !== '') {
    // RFC 3339 only (Date.parse alone accepts "1" as the year 2001), and never in the future:
    // a future timestamp would stay newer than every key created until then.
    const requested = RFC3339.test(raw) ? Date.parse(raw) : Number.NaN;
    if (Number.isNaN(requested) || requested > now.getTime())
      return { rotate: false, invalidAnnotation: raw };
    if (requested > active.createdAt.getTime()) return { rotate: true, why: 'annotation' };
  }
  const nextDueAt = new Date(active.createdAt.getTime() + tenant.spec.encryption.rotationDays * DAY_MS);
  if (now.getTime() >= nextDueAt.getTime()) return { rotate: true, why: 'age' };
  return { rotate: false, nextDueAt };
}

/** Generates, wraps and inserts `version` unless it already exists. Returns whether this call stored it. */
async function addKeyVersion(
  deps: EncryptionDeps,
  tenant: string,
  version: number,
  now: Date,
): Promise<boolean> {
  const dek = generateDek();
  const wrapped = await deps.kms.wrap(dek, dekWrapAad(tenant, version));
  dek.fill(0); // the plaintext DEK is not needed here; the services unwrap their own copy
  const r = await deps.pg.query(
    // created_at from the operator's clock, the same clock rotation is judged by.
    `INSERT INTO platform.tenant_keys (tenant, version, wrapped_dek, kek_id, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (tenant, version) DO NOTHING`,
    [tenant, version, wrapped, deps.kms.kekId, now],
  );
  deps.writes.inc('postgres');
  return (r.rowCount ?? 0) > 0;
}

function errorResult(reason: string, err: unknown): StepResult {
  return { kind: 'error', reason, message: err instanceof Error ? err.message : String(err), error: err };
}

async function reconcile(tenant: Tenant, deps: EncryptionDeps): Promise<StepResult> {
  const name = tenant.metadata.name;
  const now = (deps.now ?? (() => new Date()))();
  try {
    let keys = await readTenantKeys(deps.pg, name);
    if (keys.length === 0) {
      await addKeyVersion(deps, name, 1, now);
      keys = await readTenantKeys(deps.pg, name); // whoever won the race, this is THE key
    }
    const foreign = keys.filter((k) => k.kekId !== deps.kms.kekId);
    if (foreign.length > 0) {
      return {
        kind: 'blocked',
        reason: 'KekMismatch',
        message:
          `key version(s) ${foreign.map((k) => k.version).join(', ')} were wrapped by KEK ${foreign[0]!.kekId}, ` +
          `but the configured KMS holds ${deps.kms.kekId}; configure the original KEK (the data key is never regenerated)`,
        requeueAfterMs: MAX_ENCRYPTION_REQUEUE_MS,
      };
    }
    let active = keys[keys.length - 1]!;
    const decision = rotationDecision(tenant, active, now);
    if ('invalidAnnotation' in decision) {
      return {
        kind: 'blocked',
        reason: 'InvalidRotateKeyAnnotation',
        message: `annotation ${ROTATE_KEY_ANNOTATION}=${JSON.stringify(decision.invalidAnnotation)} is not an RFC 3339 timestamp in the past (use e.g. $(date -u +%FT%TZ))`,
        status: {
          encryption: { activeKeyVersion: active.version, rotatedAt: active.createdAt.toISOString() },
        },
      };
    }
    if (decision.rotate) {
      await addKeyVersion(deps, name, active.version + 1, now);
      keys = await readTenantKeys(deps.pg, name);
      active = keys[keys.length - 1]!;
    }
    const next = rotationDecision(tenant, active, now);
    const dueIn = 'nextDueAt' in next ? next.nextDueAt.getTime() - now.getTime() : 0;
    return {
      kind: 'ready',
      reason: decision.rotate ? 'KeyRotated' : 'KeyAvailable',
      message: `data key version ${active.version} active${keys.length > 1 ? `, ${keys.length - 1} older version(s) kept for decryption` : ''}`,
      status: { encryption: { activeKeyVersion: active.version, rotatedAt: active.createdAt.toISOString() } },
      requeueAfterMs: Math.max(1000, Math.min(MAX_ENCRYPTION_REQUEUE_MS, dueIn)),
    };
  } catch (err) {
    return errorResult('KeyStoreUnavailable', err);
  }
}

async function finalize(tenant: Tenant, deps: EncryptionDeps): Promise<StepResult> {
  const name = tenant.metadata.name;
  if (tenant.spec.deletionPolicy !== 'Delete') {
    return {
      kind: 'ready',
      reason: 'KeysRetained',
      message: 'deletionPolicy Retain: wrapped data keys kept',
    };
  }
  try {
    const r = await deps.pg.query('DELETE FROM platform.tenant_keys WHERE tenant = $1', [name]);
    if ((r.rowCount ?? 0) > 0) deps.writes.inc('postgres');
    return {
      kind: 'ready',
      reason: 'KeysDestroyed',
      message: `wrapped data keys destroyed (${r.rowCount ?? 0} version(s)): the tenant's ciphertexts are unreadable everywhere`,
    };
  } catch (err) {
    return errorResult('KeyStoreUnavailable', err);
  }
}

export const encryptionReconciler: BackendReconciler<EncryptionDeps> = {
  name: 'encryption',
  condition: 'EncryptionKeyReady',
  reconcile,
  finalize,
};
