import { describe, expect, it } from 'vitest';
import { AUTH_FAILURE_BURST, AUTH_FAILURE_INTERVAL_MS, AuthThrottle } from '../../src/ingest/auth-throttle.js';

describe('auth throttle', () => {
  it('lets a source fail a burst of times, then one more time per interval; other sources are unaffected', () => {
    let nowMs = 0;
    const throttle = new AuthThrottle(() => nowMs);
    const starts: boolean[] = [];
    for (let i = 0; i < AUTH_FAILURE_BURST; i++) {
      expect(throttle.mayTry('10.0.0.1')).toBe(true);
      starts.push(throttle.failed('10.0.0.1'));
    }
    expect(starts.filter(Boolean)).toHaveLength(1); // one warning when throttling starts
    expect(throttle.mayTry('10.0.0.1')).toBe(false);
    expect(throttle.mayTry('10.0.0.2')).toBe(true);
    nowMs += AUTH_FAILURE_INTERVAL_MS - 1;
    expect(throttle.mayTry('10.0.0.1')).toBe(false);
    nowMs += 1;
    expect(throttle.mayTry('10.0.0.1')).toBe(true);
    throttle.failed('10.0.0.1');
    expect(throttle.mayTry('10.0.0.1')).toBe(false);
  });
});
