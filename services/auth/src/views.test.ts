import { describe, expect, it } from 'vitest';
import { escapeHtml, loginPage } from './views.ts';
import { normalizeLoginEmail, passwordProblem } from './users.ts';
import { tenantOfWebClientId } from './clients.ts';

describe('views', () => {
  it('escapes everything interpolated (tenant names, e-mail echoes, errors)', () => {
    const page = loginPage({
      brand: '<script>alert(1)</script>',
      action: '/interaction/x/login',
      csrf: '"><img src=x>',
      email: 'o\'hara@x.test"',
      forgotUrl: '/t/a/forgot',
      abortUrl: '/interaction/x/abort',
      error: '<b>bad</b>',
    });
    expect(page).not.toContain('<script>');
    expect(page).not.toContain('<img');
    expect(page).not.toContain('<b>');
    expect(page).toContain('&lt;script&gt;');
    expect(escapeHtml(`&<>"'`)).toBe('&amp;&lt;&gt;&quot;&#39;');
  });
});

describe('input rules', () => {
  it('normalizes e-mail addresses and refuses junk', () => {
    expect(normalizeLoginEmail('  Ana@Example.COM ')).toBe('ana@example.com');
    for (const bad of ['', 'no-at', 'a@b', 'a b@c.d', 'x@y\u0000.z', 'a'.repeat(250) + '@x.io'])
      expect(normalizeLoginEmail(bad)).toBeNull();
  });

  it('asks for passwords of 10..256 characters', () => {
    expect(passwordProblem('short')).toMatch(/at least 10/);
    expect(passwordProblem('x'.repeat(257))).toMatch(/at most 256/);
    expect(passwordProblem('long enough pw')).toBeNull();
  });

  it('maps web client ids to tenants', () => {
    expect(tenantOfWebClientId('smile-dental-web')).toBe('smile-dental');
    expect(tenantOfWebClientId('smile-dental')).toBeUndefined();
    expect(tenantOfWebClientId('Bad_Name-web')).toBeUndefined();
    expect(tenantOfWebClientId('-web')).toBeUndefined();
  });
});
