import { describe, expect, it } from 'vitest';
import { backoffMs, patternToRegExp, ruleFor, SyncWindow } from '../../bridges/bridge-rules.js';

describe('bridge topic rules', () => {
  it('matches names and * patterns, nothing else being special', () => {
    expect(patternToRegExp('alerts').test('alerts')).toBe(true);
    expect(patternToRegExp('alerts').test('alerts-2')).toBe(false);
    expect(patternToRegExp('climate-*').test('climate-1m')).toBe(true);
    expect(patternToRegExp('climate-*').test('climate')).toBe(false);
    expect(patternToRegExp('*').test('_deadletter')).toBe(true);
    // '.' is a literal dot in a topic name, not "any character".
    expect(patternToRegExp('a.b').test('axb')).toBe(false);
  });

  it('takes the first matching rule, as ingest topic rules do', () => {
    const rules = [{ match: 'alerts', id: 1 }, { match: '*', id: 2 }];
    const compiled = rules.map((r) => patternToRegExp(r.match));
    expect(ruleFor(rules, compiled, 'alerts')?.id).toBe(1);
    expect(ruleFor(rules, compiled, 'climate')?.id).toBe(2);
    expect(ruleFor([rules[0]!], [compiled[0]!], 'climate')).toBeUndefined();
  });
});

describe('sync windows', () => {
  it('is open during the minutes a five-field expression matches, whatever the seconds', () => {
    const w = new SyncWindow('* 1-4 * * *');
    try {
      expect(w.isOpen(new Date(2026, 10, 22, 1, 30, 17, 500).getTime())).toBe(true);
      expect(w.isOpen(new Date(2026, 10, 22, 4, 59, 59).getTime())).toBe(true);
      expect(w.isOpen(new Date(2026, 10, 22, 5, 0, 0).getTime())).toBe(false);
      expect(w.isOpen(new Date(2026, 10, 22, 0, 59, 59).getTime())).toBe(false);
    } finally {
      w.close();
    }
  });

  it('is open during the seconds a six-field expression matches', () => {
    const w = new SyncWindow('*/10 * * * * *');
    try {
      expect(w.isOpen(new Date(2026, 10, 22, 1, 30, 10, 900).getTime())).toBe(true);
      expect(w.isOpen(new Date(2026, 10, 22, 1, 30, 11).getTime())).toBe(false);
    } finally {
      w.close();
    }
  });
});

describe('reconnect backoff', () => {
  it('doubles from the initial delay up to the cap, with half of each delay random', () => {
    const low = () => 0;
    const high = () => 1;
    expect([1, 2, 3, 4].map((a) => backoffMs(a, 100, 1000, high))).toEqual([100, 200, 400, 800]);
    expect([1, 2, 3, 4].map((a) => backoffMs(a, 100, 1000, low))).toEqual([50, 100, 200, 400]);
    expect(backoffMs(50, 100, 1000, high)).toBe(1000);
    expect(backoffMs(5000, 100, 1000, low)).toBe(500);
  });
});
