import { describe, expect, it } from 'vitest';
import { backoffDelayMs, DEFAULT_BACKOFF } from '../../firmware-sim/backoff.js';
import { mulberry32 } from '../../firmware-sim/prng.js';

describe('backoffDelayMs', () => {
  it('grows exponentially to the cap with equal jitter', () => {
    const policy = { initialMs: 100, maxMs: 1_000, multiplier: 2 };
    expect(backoffDelayMs(0, policy, () => 0)).toBe(50);
    expect(backoffDelayMs(0, policy, () => 0.999999)).toBe(100);
    expect(backoffDelayMs(2, policy, () => 0)).toBe(200);
    expect(backoffDelayMs(10, policy, () => 0.999999)).toBe(1_000);
    expect(backoffDelayMs(1e9, policy, () => 0)).toBe(500);
    const random = mulberry32(1);
    const delays = Array.from({ length: 1000 }, () => backoffDelayMs(3, DEFAULT_BACKOFF, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(4_000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(8_000);
    expect(new Set(delays).size).toBeGreaterThan(500); // spread, not a herd
  });
});
