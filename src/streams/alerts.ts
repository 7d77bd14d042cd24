import type { AlertStep } from './config.js';

/**
 * Alert levels with hysteresis (pure). An alert raises 'high' when the value goes above `above`
 * and clears only once it falls below `clearBelow`; 'low' mirrors it with `below` and
 * `clearAbove`. Between the two thresholds the level stays as it was, so a value hovering around
 * a threshold makes one alert, not one per reading.
 */
export type AlertLevel = 'ok' | 'high' | 'low';

export interface AlertTransition {
  level: AlertLevel;
  /** The threshold that was crossed. */
  threshold: number;
}

/** The level after `value`, with the threshold crossed, or null when the level does not change. */
export function nextAlertLevel(current: AlertLevel, value: number, spec: Pick<AlertStep, 'high' | 'low'>): AlertTransition | null {
  const { high, low } = spec;
  if (current === 'high') {
    if (!high || value >= high.clearBelow) return null;
    // The config keeps below ≤ clearBelow, so a fall straight past `below` clears and raises low at once.
    if (low && value < low.below) return { level: 'low', threshold: low.below };
    return { level: 'ok', threshold: high.clearBelow };
  }
  if (current === 'low') {
    if (!low || value <= low.clearAbove) return null;
    if (high && value > high.above) return { level: 'high', threshold: high.above };
    return { level: 'ok', threshold: low.clearAbove };
  }
  if (high && value > high.above) return { level: 'high', threshold: high.above };
  if (low && value < low.below) return { level: 'low', threshold: low.below };
  return null;
}
