import { describe, expect, it } from 'vitest';
import { currentContext, currentRequestId, requireTenant, runWithContext } from './context.ts';
import { CommonErrors, SimptuError } from './errors.ts';

describe('tenant context', () => {
  it('is visible across awaits and isolated between concurrent runs', async () => {
    const seen = await Promise.all(
      ['alpha-one', 'beta-two'].map((tenant) =>
        runWithContext({ tenant, requestId: `r-${tenant}` }, async () => {
          await new Promise((r) => setTimeout(r, 5));
          return [requireTenant(), currentRequestId()];
        }),
      ),
    );
    expect(seen).toEqual([
      ['alpha-one', 'r-alpha-one'],
      ['beta-two', 'r-beta-two'],
    ]);
  });

  it('fails closed without a tenant', () => {
    expect(currentContext()).toBeUndefined();
    expect(() => requireTenant()).toThrow(CommonErrors.TENANT_CONTEXT_MISSING);
    runWithContext({}, () => {
      expect(currentContext()?.requestId).toMatch(/^[0-9a-f-]{36}$/);
      try {
        requireTenant();
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(SimptuError);
        expect((err as SimptuError).code).toBe('SIMPTU_ERR_TENANT_CONTEXT_MISSING');
      }
    });
  });

  it('refuses a malformed tenant name and freezes the context', () => {
    expect(() => runWithContext({ tenant: 'Bad_Name' }, () => 1)).toThrow(TypeError);
    runWithContext({ tenant: 'alpha-one', principal: { sub: 'u1', roles: ['staff'], scope: [] } }, () => {
      const ctx = currentContext()!;
      expect(Object.isFrozen(ctx)).toBe(true);
      expect(Object.isFrozen(ctx.principal)).toBe(true);
    });
  });

  it('nests: the inner context wins, the outer comes back', () => {
    runWithContext({ tenant: 'alpha-one' }, () => {
      runWithContext({ tenant: 'beta-two' }, () => expect(requireTenant()).toBe('beta-two'));
      expect(requireTenant()).toBe('alpha-one');
    });
  });
});
