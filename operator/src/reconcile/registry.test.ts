import { describe, it, expect } from 'vitest';
import type { Tenant } from '../api/types.ts';
import {
  desiredRegistryRow,
  registryContentHash,
  registryEventData,
  registryFacts,
  registryToolPolicy,
  type RegistryFacts,
} from './registry.ts';

function tenant(patch: Partial<Tenant['spec']> = {}): Tenant {
  return {
    apiVersion: 'simptu.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 'smile-dental', generation: 4 },
    spec: {
      displayName: 'Smile Dental Clinic',
      businessType: 'dental',
      locale: 'ro-RO',
      timezone: 'Europe/Bucharest',
      isolation: { database: 'dedicated', agent: 'shared' },
      agent: {
        replicas: 1,
        model: { provider: 'openai', name: 'gpt', secretRef: { name: 's' } },
        instructions: 'hi',
      },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: 90 },
      frontend: { origins: ['https://a.example'], redirectURIs: ['https://a.example/cb'] },
      integrations: {
        email: { ingestAddress: 'b@a.example' },
        twilio: { phoneNumber: '+40700', credentialsSecretRef: { name: 'tw' } },
      },
      deletionPolicy: 'Retain',
      deletionProtection: false,
      suspended: false,
      ...patch,
    },
  };
}

const facts: RegistryFacts = {
  databaseName: 't_smile_dental',
  schemaName: 't_smile_dental',
  schemaVersion: 7,
  activeKeyVersion: 2,
  topics: ['a', 'b', 'c'],
};

describe('desiredRegistryRow', () => {
  it('maps spec and facts onto the columns', () => {
    const row = desiredRegistryRow(tenant(), facts);
    expect(row).toMatchObject({
      name: 'smile-dental',
      tenant_id: 't_smile_dental',
      display_name: 'Smile Dental Clinic',
      business_type: 'dental',
      locale: 'ro-RO',
      timezone: 'Europe/Bucharest',
      database_isolation: 'dedicated',
      agent_isolation: 'shared',
      database_name: 't_smile_dental',
      schema_name: 't_smile_dental',
      schema_version: 7,
      active_key_version: 2,
      topics: ['a', 'b', 'c'],
      origins: ['https://a.example'],
      redirect_uris: ['https://a.example/cb'],
      integrations: {
        email: { ingestAddress: 'b@a.example' },
        twilio: { phoneNumber: '+40700', credentialsSecretRef: { name: 'tw' } },
      },
      agent: {
        replicas: 1,
        model: { provider: 'openai', name: 'gpt', secretRef: { name: 's' } },
        instructions: 'hi',
      },
      state: 'active',
      generation: 4,
    });
    expect(row.spec_hash).toBe(registryContentHash(row));
  });

  it('suspended → state suspended; the hash follows content, not generation', () => {
    expect(desiredRegistryRow(tenant({ suspended: true }), facts).state).toBe('suspended');
    const a = desiredRegistryRow(tenant(), facts);
    const b = desiredRegistryRow({ ...tenant(), metadata: { name: 'smile-dental', generation: 9 } }, facts);
    expect(b.spec_hash).toBe(a.spec_hash);
    expect(desiredRegistryRow(tenant(), { ...facts, schemaVersion: 8 }).spec_hash).not.toBe(a.spec_hash);
    expect(desiredRegistryRow(tenant({ deletionPolicy: 'Delete' }), facts).spec_hash).toBe(a.spec_hash);
  });

  it('writes spec.agent.tools into the agent JSON: sorted sets, empty lists left out', () => {
    const plain = desiredRegistryRow(tenant(), facts);
    expect(plain.agent).not.toHaveProperty('tools');
    const agent = (tools: NonNullable<Tenant['spec']['agent']['tools']>) =>
      tenant({ agent: { ...tenant().spec.agent, tools } });

    const row = desiredRegistryRow(
      agent({ allow: [], deny: ['send_message', 'book_appointment'], untrustedAllow: ['identify_customer'] }),
      facts,
    );
    expect(row.agent).toEqual({
      ...plain.agent,
      tools: { deny: ['book_appointment', 'send_message'], untrustedAllow: ['identify_customer'] },
    });
    expect(row.spec_hash).not.toBe(plain.spec_hash);
    // a set reordered is the same content; an empty policy is no policy (no rewrite of old rows)
    expect(
      desiredRegistryRow(
        agent({ deny: ['book_appointment', 'send_message'], untrustedAllow: ['identify_customer'] }),
        facts,
      ).spec_hash,
    ).toBe(row.spec_hash);
    expect(desiredRegistryRow(agent({}), facts).spec_hash).toBe(plain.spec_hash);
    expect(desiredRegistryRow(agent({ allow: [], deny: [] }), facts).spec_hash).toBe(plain.spec_hash);
    expect(desiredRegistryRow(agent({ deny: ['send_message'] }), facts).spec_hash).not.toBe(row.spec_hash);
    expect(registryToolPolicy(undefined)).toBeUndefined();
    expect(registryToolPolicy({ allow: ['search_faq'] })).toEqual({ allow: ['search_faq'] });
  });

  it('hashes a row read back from Postgres (bigint as string, extra columns) like the desired one', () => {
    const row = desiredRegistryRow(tenant(), facts);
    const fromDb = {
      ...row,
      schema_version: '7' as unknown as number,
      published_hash: null,
      created_at: new Date(),
    };
    expect(registryContentHash(fromDb)).toBe(row.spec_hash);
  });

  it('event data is the row in camelCase', () => {
    const data = registryEventData(desiredRegistryRow(tenant(), facts));
    expect(data).toMatchObject({
      tenantId: 't_smile_dental',
      isolation: { database: 'dedicated', agent: 'shared' },
      database: { schemaVersion: 7 },
      redirectURIs: ['https://a.example/cb'],
      state: 'active',
    });
  });
});

describe('registryFacts', () => {
  it('prefers this pass facts, falls back to status, needs all three', () => {
    const status = {
      database: { name: 'd', schema: 's', schemaVersion: 1 },
      encryption: { activeKeyVersion: 1, rotatedAt: 'x' },
      topics: ['t'],
    };
    expect(registryFacts({ database: { name: 'd2', schema: 's', schemaVersion: 2 } }, status)).toEqual({
      databaseName: 'd2',
      schemaName: 's',
      schemaVersion: 2,
      activeKeyVersion: 1,
      topics: ['t'],
    });
    expect(registryFacts({ topics: ['t'] }, undefined)).toBeUndefined();
  });
});
