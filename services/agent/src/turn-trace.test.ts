import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TurnTrace } from './turn-trace.ts';

describe('TurnTrace', () => {
  it('keeps the first time of each stage per record and writes them as JSON', () => {
    const t = new TurnTrace();
    const key = TurnTrace.key('simptu.t.smile.inbound', 2, '41');
    expect(key).toBe('simptu.t.smile.inbound/2/41');
    t.mark(key, 'produced', 1000);
    t.mark(key, 'slot', 1010);
    t.mark(key, 'slot', 1500); // a retry: the first acquisition stays
    t.mark(key, 'token');
    expect(t.size).toBe(1);
    const dir = mkdtempSync(join(tmpdir(), 'turn-trace-'));
    try {
      t.write(join(dir, 'trace.json'));
      const rows = JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8')) as Array<
        [string, Record<string, number>]
      >;
      expect(rows).toHaveLength(1);
      const [k, stages] = rows[0]!;
      expect(k).toBe(key);
      expect(stages).toMatchObject({ produced: 1000, slot: 1010 });
      expect(stages.token).toBeGreaterThan(1_700_000_000_000); // wall clock, ms
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
