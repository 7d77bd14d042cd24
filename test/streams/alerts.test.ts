import { describe, expect, it } from 'vitest';
import { nextAlertLevel, type AlertLevel } from '../../src/streams/alerts.js';

/** The transitions a sequence of values makes, as "from→to@threshold". */
function run(values: number[], spec: Parameters<typeof nextAlertLevel>[2]): string[] {
  let level: AlertLevel = 'ok';
  const out: string[] = [];
  for (const v of values) {
    const t = nextAlertLevel(level, v, spec);
    if (t) {
      out.push(`${level}→${t.level}@${t.threshold}`);
      level = t.level;
    }
  }
  return out;
}

describe('alert hysteresis', () => {
  const both = { high: { above: 25, clearBelow: 15 }, low: { below: 2, clearAbove: 4 } };

  it('raises above the high threshold and clears only below the clear threshold', () => {
    expect(run([10, 25, 26, 20, 24, 15, 14.9, 26], { high: { above: 25, clearBelow: 15 }, low: null })).toEqual(['ok→high@25', 'high→ok@15', 'ok→high@25']);
  });

  it('raises below the low threshold and clears only above its clear threshold', () => {
    expect(run([10, 2, 1.9, 3, 4, 4.1, 0], { high: null, low: { below: 2, clearAbove: 4 } })).toEqual(['ok→low@2', 'low→ok@4', 'ok→low@2']);
  });

  it('moves straight between high and low when a value crosses both', () => {
    expect(run([10, 26, 20, 14, 1, 3, 5, 30, 1, 26], both)).toEqual(['ok→high@25', 'high→ok@15', 'ok→low@2', 'low→ok@4', 'ok→high@25', 'high→low@2', 'low→high@25']);
  });

  it('makes one alert for a value hovering around a threshold', () => {
    expect(run([24, 26, 24, 26, 24, 26, 16, 26], { high: { above: 25, clearBelow: 15 }, low: null })).toEqual(['ok→high@25']);
    // Without hysteresis (clear = raise) the same values flap.
    expect(run([24, 26, 24, 26], { high: { above: 25, clearBelow: 25 }, low: null })).toEqual(['ok→high@25', 'high→ok@25', 'ok→high@25']);
  });
});
