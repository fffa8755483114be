import { describe, expect, it } from 'vitest';
import { Value } from '@sinclair/typebox/value';
import { isValidTenantName } from '@simptu/common';
import {
  DEFAULTS,
  EMAIL_PATTERN,
  LOCALE_PATTERN,
  ORIGIN_PATTERN,
  REDIRECT_URI_PATTERN,
  TIMEZONE_PATTERN,
  TenantSchema,
  TenantStatusSchema,
  checkTenant,
} from './schema.ts';
import { ACCEPTED, REFUSED, loadSamples, minimalTenant } from '../../test/api/cases.ts';

describe('samples', () => {
  const samples = loadSamples();

  it('has one dental, one gym and one hotel', () => {
    expect(samples.map((s) => s.manifest.spec.businessType).sort()).toEqual(['dental', 'gym', 'hotel']);
  });

  it.each(samples.map((s) => [s.file, s.manifest] as const))(
    '%s is valid and named as its file',
    (file, manifest) => {
      const result = checkTenant(manifest);
      expect(result.ok ? [] : result.errors).toEqual([]);
      expect(isValidTenantName(manifest.metadata.name)).toBe(true);
      expect(`${manifest.metadata.name}.yaml`).toBe(file);
      // checkTenant does not touch its input
      expect(manifest).not.toHaveProperty('status');
    },
  );

  it('cover the isolation modes and integrations the brief asks for', () => {
    const byName = new Map(samples.map((s) => [s.manifest.metadata.name, s.manifest.spec]));
    expect(byName.get('smile-dental')).toMatchObject({
      isolation: { database: 'shared', agent: 'shared' },
      integrations: { email: {} },
      frontend: { origins: expect.any(Array), redirectURIs: expect.any(Array) },
    });
    expect(byName.get('iron-gym')).toMatchObject({
      isolation: { database: 'shared', agent: 'dedicated' },
      agent: { replicas: 1 },
      integrations: { twilio: { credentialsSecretRef: { name: expect.any(String) } } },
    });
    expect(byName.get('harbor-hotel')).toMatchObject({
      isolation: { database: 'dedicated', agent: 'shared' },
      integrations: { meta: {} },
      deletionPolicy: 'Delete',
      agent: { tools: { deny: ['cancel_reservation'] } },
    });
  });
});

describe('checkTenant', () => {
  it('fills every default the CRD declares', () => {
    const result = checkTenant(minimalTenant('smile-dental'));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.tenant.spec).toEqual({
      displayName: 'Case Study Clinic',
      businessType: 'dental',
      locale: DEFAULTS.locale,
      timezone: DEFAULTS.timezone,
      isolation: { database: 'shared', agent: 'shared' },
      agent: { replicas: 1, model: { provider: 'builtin' } },
      kafka: { partitions: 3, retentionHours: 168 },
      encryption: { rotationDays: 90 },
      deletionPolicy: 'Retain',
      deletionProtection: false,
      suspended: false,
    });
  });

  it('keeps values that are set', () => {
    const m = minimalTenant('iron-gym');
    m.spec.kafka = { partitions: 12 };
    const result = checkTenant(m);
    expect(result.ok && result.tenant.spec.kafka).toEqual({ partitions: 12, retentionHours: 168 });
  });

  it.each(REFUSED.filter((c) => c.offline && !c.update).map((c) => [c.title, c] as const))(
    'refuses %s',
    (_title, c) => {
      const result = checkTenant(c.create('offline-case'));
      expect(result.ok).toBe(false);
    },
  );

  // CEL and transition rules are the API server's job; offline they pass, which is why
  // crd.test.ts runs every case against the real kube-apiserver.
  it.each(REFUSED.filter((c) => !c.offline).map((c) => [c.title, c] as const))(
    'leaves %s to CEL',
    (_title, c) => {
      const result = checkTenant(c.create('offline-case'));
      expect(result.ok ? [] : result.errors).toEqual([]);
    },
  );

  it.each(ACCEPTED.map((c) => [c.title, c] as const))('accepts %s', (_title, c) => {
    const result = checkTenant(c.create('offline-case'));
    expect(result.ok ? [] : result.errors).toEqual([]);
  });

  it('names the failing field', () => {
    const m = minimalTenant('smile-dental');
    m.spec.timezone = 'Europe Bucharest';
    const result = checkTenant(m);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.join('\n')).toContain('/spec/timezone');
  });
});

describe('patterns', () => {
  const table: [string, string, string[], string[]][] = [
    [
      'timezone',
      TIMEZONE_PATTERN,
      ['UTC', 'Europe/Bucharest', 'America/Argentina/Buenos_Aires', 'America/Port-au-Prince', 'Etc/GMT+2'],
      ['', 'utc', 'Europe', 'Europe/', 'europe/bucharest', 'Mars/Olympus Mons', '../etc/passwd'],
    ],
    [
      'locale',
      LOCALE_PATTERN,
      ['en', 'en-US', 'ro-RO', 'zh-Hant-TW', 'es-419', 'de-CH-1996'],
      ['', 'e', 'english', 'en_US', 'en-', 'en-US-'],
    ],
    [
      'origin',
      ORIGIN_PATTERN,
      ['https://smile-dental.example', 'http://localhost:5173', 'http://127.0.0.1:8080', 'http://[::1]:3000'],
      [
        'https://smile-dental.example/',
        'https://a.example/path',
        'ftp://a.example',
        'https://',
        'HTTPS://A.EXAMPLE',
      ],
    ],
    [
      'redirect URI',
      REDIRECT_URI_PATTERN,
      ['https://a.example/callback', 'http://localhost:5173/cb?x=1', 'io.simptu.app:/oauth2redirect'],
      ['/callback', 'https://a.example/cb#frag', 'https://a.example/with space', ''],
    ],
    [
      'e-mail',
      EMAIL_PATTERN,
      ['bookings@smile-dental.example', "o'brien+front.desk@mail.clinic.example"],
      ['bookings', 'bookings@', '@clinic.example', 'a@b', 'a b@c.example'],
    ],
  ];
  it.each(table)('%s', (_name, pattern, good, bad) => {
    const re = new RegExp(pattern);
    for (const v of good) expect(re.test(v), v).toBe(true);
    for (const v of bad) expect(re.test(v), v).toBe(false);
  });
});

describe('status schema', () => {
  it('accepts a status as the operator writes it', () => {
    const status = {
      phase: 'Ready',
      observedGeneration: 3,
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'AllBackendsReady',
          message: 'namespace, key, database, topics, agent and registry are ready',
          observedGeneration: 3,
          lastTransitionTime: '2025-01-02T03:04:05Z',
        },
      ],
      database: { name: 'simptu', schema: 't_smile_dental', schemaVersion: 7 },
      encryption: { activeKeyVersion: 2, rotatedAt: '2025-01-01T00:00:00Z' },
      topics: [
        'simptu.t.smile-dental.inbound',
        'simptu.t.smile-dental.agent',
        'simptu.t.smile-dental.domain',
      ],
      endpoints: {
        api: 'http://localhost:3003',
        websocket: 'ws://localhost:4000/socket',
        issuer: 'http://localhost:3001',
      },
    };
    expect([...Value.Errors(TenantStatusSchema, status)]).toEqual([]);
    const bad = structuredClone(status);
    bad.conditions[0]!.lastTransitionTime = 'yesterday';
    expect(Value.Check(TenantStatusSchema, bad)).toBe(false);
  });

  it('is part of the whole-object schema', () => {
    expect(Value.Check(TenantSchema, { ...checkTenantOk(), status: { phase: 'Unknown' } })).toBe(false);
  });
});

function checkTenantOk() {
  const r = checkTenant(minimalTenant('smile-dental'));
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.tenant;
}
