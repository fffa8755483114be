/**
 * Operator commands for the SSO service, with the same configuration as the server:
 *
 *     node services/auth/src/cli.ts migrate
 *     node services/auth/src/cli.ts rotate-keys        # new active key; the old one stays published until its tokens expire
 *     node services/auth/src/cli.ts prune-keys         # delete keys whose tokens have all expired
 *     node services/auth/src/cli.ts list-keys
 *     node services/auth/src/cli.ts create-client <client-id> <tenant> [role,role] [scope,scope]
 *
 * Running servers pick a rotated key up within `SIMPTU_AUTH_KEYS_REFRESH_MS` (no restart).
 */
import pg from 'pg';
import { ConfigError, isRole, LocalKms, type Role } from '@simptu/common';
import { maxTokenLifetimeSec } from './app.ts';
import { createServiceClient } from './clients.ts';
import { loadAuthConfig, type AuthConfig } from './config.ts';
import { migrateAuth } from './db.ts';
import { listSigningKeys, pruneSigningKeys, rotateSigningKeys } from './keys.ts';

export const USAGE = `usage: cli.ts <migrate | rotate-keys | prune-keys | list-keys | create-client <id> <tenant> [roles] [scopes]>`;

export async function runCli(
  argv: string[],
  config: AuthConfig,
  out: (line: string) => void,
): Promise<number> {
  const [cmd, ...args] = argv;
  const db = new pg.Pool({ connectionString: config.databaseUrl, max: 2 });
  const kms = LocalKms.fromBase64(config.kek);
  try {
    switch (cmd) {
      case 'migrate': {
        const r = await migrateAuth(db);
        out(`auth schema at version ${r.version} (applied: ${r.applied.join(', ') || 'none'})`);
        return 0;
      }
      case 'rotate-keys': {
        await migrateAuth(db);
        const r = await rotateSigningKeys(db, kms, {
          alg: config.keys.alg,
          maxTokenLifetimeSec: maxTokenLifetimeSec(config),
        });
        out(`new signing key ${r.kid} (${config.keys.alg}) is active`);
        for (const kid of r.retired) out(`retired ${kid}: published until its tokens expire`);
        for (const kid of r.pruned) out(`deleted ${kid}: its tokens have all expired`);
        return 0;
      }
      case 'prune-keys': {
        for (const kid of await pruneSigningKeys(db)) out(`deleted ${kid}`);
        return 0;
      }
      case 'list-keys': {
        for (const k of await listSigningKeys(db))
          out(
            `${k.kid} ${k.alg} created ${k.createdAt.toISOString()} ${k.retiredAt ? `retired, published until ${k.publishUntil!.toISOString()}` : 'ACTIVE'}`,
          );
        return 0;
      }
      case 'create-client': {
        const [clientId, tenant, roles = 'staff', scopes = 'api'] = args;
        if (!clientId || !tenant) {
          out(USAGE);
          return 2;
        }
        const roleList = roles.split(',');
        if (!roleList.every(isRole)) {
          out('roles must be owner, admin, staff or customer');
          return 2;
        }
        const c = await createServiceClient(db, kms, {
          clientId,
          tenant,
          roles: roleList as Role[],
          scopes: scopes.split(','),
        });
        out(`client_id=${c.clientId}`);
        out(`client_secret=${c.clientSecret}`);
        return 0;
      }
      default:
        out(USAGE);
        return 2;
    }
  } finally {
    await db.end();
  }
}

if (import.meta.main) {
  try {
    const config = loadAuthConfig();
    process.exitCode = await runCli(process.argv.slice(2), config, (l) => process.stdout.write(`${l}\n`));
  } catch (err) {
    process.stderr.write(
      `${err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  }
}
