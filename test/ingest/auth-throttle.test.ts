import { describe, expect, it } from 'vitest';
import { AUTH_FAILURE_BURST, AUTH_FAILURE_INTERVAL_MS, AuthThrottle, type AuthAttempt } from '../../src/ingest/auth-throttle.js';

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

  it('starts no more concurrent checks than the failures a source may still make: guesses sent at once get a burst of checks', async () => {
    const throttle = new AuthThrottle(() => 0);
    const started: AuthAttempt[] = [];
    const refused: null[] = [];
    // Three bursts of guesses arrive before any check finishes (each check is a queued scrypt run).
    const pending = Array.from({ length: 3 * AUTH_FAILURE_BURST }, () => throttle.begin('10.0.0.1').then((a) => (a === null ? refused.push(null) : started.push(a))));
    await settle();
    expect(started).toHaveLength(AUTH_FAILURE_BURST);
    expect(refused).toHaveLength(0); // the rest wait: the checks under way may yet succeed
    expect(await throttle.begin('10.0.0.2')).not.toBeNull();
    const warnings = started.map((a) => a.failed()).filter(Boolean);
    await Promise.all(pending);
    expect(warnings).toHaveLength(1); // one warning when throttling starts
    expect(started).toHaveLength(AUTH_FAILURE_BURST);
    expect(refused).toHaveLength(2 * AUTH_FAILURE_BURST);
    expect(await throttle.begin('10.0.0.1')).toBeNull();
  });

  it('lets every right login of a burst from one address through, a burst at a time, and counts none of them', async () => {
    const throttle = new AuthThrottle(() => 0);
    let checking = 0;
    let checkingMax = 0;
    // A site's devices behind one NAT address, all reconnecting at once: each check takes a while and succeeds.
    const logins = Array.from({ length: 5 * AUTH_FAILURE_BURST }, async () => {
      const attempt = await throttle.begin('10.0.0.3');
      expect(attempt).not.toBeNull();
      checking += 1;
      checkingMax = Math.max(checkingMax, checking);
      await settle();
      checking -= 1;
      attempt!.succeeded();
      attempt!.failed(); // settling twice counts once
    });
    await Promise.all(logins);
    expect(checkingMax).toBe(AUTH_FAILURE_BURST);
    // None counted: the address still has its whole burst of failures.
    for (let i = 0; i < AUTH_FAILURE_BURST; i++) {
      expect(throttle.mayTry('10.0.0.3')).toBe(true);
      throttle.failed('10.0.0.3');
    }
    expect(throttle.mayTry('10.0.0.3')).toBe(false);
  });
});

/** Lets pending promise callbacks run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
