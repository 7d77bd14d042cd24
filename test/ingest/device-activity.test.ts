import { describe, expect, it } from 'vitest';
import { DeviceActivity } from '../../src/ingest/device-activity.js';

/** A clock the test moves by hand. */
function clock(startMs = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void; at: () => number } {
  let t = startMs;
  return { now: () => t, advance: (ms) => void (t += ms), at: () => t };
}

function activity(opts: { quietAfterMs?: number; maxDevices?: number } = {}) {
  const c = clock();
  const a = new DeviceActivity({ quietAfterMs: opts.quietAfterMs ?? 60_000, now: c.now, ...(opts.maxDevices === undefined ? {} : { maxDevices: opts.maxDevices }) });
  return { a, c };
}

describe('DeviceActivity rate', () => {
  it('shows about one reading per second for a device publishing once a second, and decays when it goes silent', () => {
    const { a, c } = activity();
    // Five minutes of one reading a second: five of the rate's one-minute windows, so it has settled.
    for (let s = 0; s < 300; s++) {
      a.stored('sensor-1');
      c.advance(1000);
    }
    const steady = a.report('sensor-1').ratePerSecond;
    expect(steady).toBeGreaterThan(0.95);
    expect(steady).toBeLessThan(1.05);
    expect(a.report('sensor-1').readings).toBe(300);

    // Silent: the rate falls at every look, without a new event, and is near zero after a few minutes.
    const afterMinute = a.report('sensor-1', c.at() + 60_000).ratePerSecond;
    const afterFive = a.report('sensor-1', c.at() + 300_000).ratePerSecond;
    expect(afterMinute).toBeLessThan(steady * 0.5);
    expect(afterMinute).toBeGreaterThan(steady * 0.2);
    expect(afterFive).toBeLessThan(0.02);
    // Looking does not change the state: the rate now is still the steady one.
    expect(a.report('sensor-1').ratePerSecond).toBe(steady);
  });

  it('shows the rate of a device seen for less than the window, not a fraction of it', () => {
    const { a, c } = activity();
    // Eight seconds at two a second: without the start correction the average would show ~0.25/s.
    for (let i = 0; i < 16; i++) {
      if (i > 0) c.advance(500);
      a.stored('new');
    }
    const rate = a.report('new').ratePerSecond;
    expect(rate).toBeGreaterThan(1.8);
    expect(rate).toBeLessThan(2.4);
  });

  it('shows a faster device with a proportionally higher rate', () => {
    const { a, c } = activity();
    for (let i = 0; i < 1500; i++) {
      a.stored('fast');
      if (i % 5 === 0) a.stored('slow');
      c.advance(200);
    }
    const fast = a.report('fast').ratePerSecond;
    const slow = a.report('slow').ratePerSecond;
    expect(fast).toBeGreaterThan(4.75);
    expect(fast).toBeLessThan(5.25);
    expect(slow).toBeGreaterThan(0.95);
    expect(slow).toBeLessThan(1.05);
  });

  it('counts dead letters and refusals in the rate too: the device was heard from', () => {
    const { a, c } = activity();
    a.stored('d');
    c.advance(100);
    a.deadLettered('d', 'bad payload');
    c.advance(100);
    a.refused('d', 'LOG_FULL', 'the log is full');
    expect(a.report('d')).toMatchObject({ readings: 1, deadLetters: 1, refusals: 1, lastSeenMs: c.at() });
    expect(a.report('d').ratePerSecond).toBeGreaterThan(a.report('d', c.at() + 1).ratePerSecond);
  });
});

describe('DeviceActivity quiet devices', () => {
  it('is quiet at exactly quietAfterMs of silence, not a millisecond before', () => {
    const { a, c } = activity({ quietAfterMs: 5000 });
    a.stored('d');
    const seen = c.at();
    expect(a.report('d', seen).quiet).toBe(false);
    expect(a.report('d', seen + 4999).quiet).toBe(false);
    expect(a.report('d', seen + 5000).quiet).toBe(true);
    expect(a.quietCount(seen + 4999)).toBe(0);
    expect(a.quietCount(seen + 5000)).toBe(1);
    // A new reading makes it active again.
    c.advance(6000);
    expect(a.report('d').quiet).toBe(true);
    a.stored('d');
    expect(a.report('d').quiet).toBe(false);
    expect(a.report('d')).toMatchObject({ firstSeenMs: seen, lastSeenMs: seen + 6000, readings: 2 });
  });

  it('reports a device never seen as quiet with nothing counted', () => {
    const { a } = activity();
    expect(a.has('ghost')).toBe(false);
    expect(a.report('ghost')).toEqual({
      deviceId: 'ghost',
      firstSeenMs: null,
      lastSeenMs: null,
      readings: 0,
      deadLetters: 0,
      refusals: 0,
      ratePerSecond: 0,
      lastError: null,
      quiet: true,
    });
    expect(a.size).toBe(0);
  });

  it('quietCount walks from the least recently seen and follows each new reading', () => {
    const { a, c } = activity({ quietAfterMs: 1000 });
    a.stored('a'); // t=0
    c.advance(400);
    a.stored('b'); // t=400
    c.advance(400);
    a.stored('c'); // t=800
    const t0 = c.at() - 800;
    expect(a.quietCount(t0 + 999)).toBe(0);
    expect(a.quietCount(t0 + 1000)).toBe(1); // a
    expect(a.quietCount(t0 + 1400)).toBe(2); // a, b
    expect(a.quietCount(t0 + 1800)).toBe(3);
    expect([...a.seenIds()]).toEqual(['a', 'b', 'c']);

    // a speaks again: it moves to the end, so the walk now starts at b.
    c.advance(400); // t=1200
    a.stored('a');
    expect([...a.seenIds()]).toEqual(['b', 'c', 'a']);
    expect(a.quietCount(t0 + 1400)).toBe(1); // b only; a is fresh
    expect(a.quietCount(t0 + 1800)).toBe(2); // b, c
    expect(a.quietCount(t0 + 2199)).toBe(2);
    expect(a.quietCount(t0 + 2200)).toBe(3);
    // The count agrees with the per-device reports.
    for (const nowMs of [t0 + 1000, t0 + 1400, t0 + 1800, t0 + 2200]) {
      expect(a.quietCount(nowMs)).toBe([...a.seenIds()].filter((id) => a.report(id, nowMs).quiet).length);
    }
  });
});

describe('DeviceActivity bound', () => {
  it('forgets the least recently seen device past maxDevices and counts it', () => {
    const { a, c } = activity({ maxDevices: 3 });
    for (const id of ['a', 'b', 'c']) {
      a.stored(id);
      c.advance(10);
    }
    a.stored('a'); // a is now the most recent: b is the least recently seen
    c.advance(10);
    expect(a.forgottenDevices).toBe(0);
    a.stored('d');
    expect(a.size).toBe(3);
    expect(a.forgottenDevices).toBe(1);
    expect(a.has('b')).toBe(false);
    expect([...a.seenIds()]).toEqual(['c', 'a', 'd']);
    expect(a.report('b').lastSeenMs).toBeNull();

    // Each refusal and dead letter of a new device counts against the bound the same way.
    c.advance(10);
    a.refused('e', 'NOT_AUTHORIZED', 'no');
    c.advance(10);
    a.deadLettered('f', 'bad');
    expect([...a.seenIds()]).toEqual(['d', 'e', 'f']);
    expect(a.forgottenDevices).toBe(3);
    // A forgotten device that comes back starts afresh.
    a.stored('b');
    expect(a.report('b')).toMatchObject({ readings: 1, firstSeenMs: c.at() });
    expect(a.forgottenDevices).toBe(4);
    expect(a.size).toBe(3);
  });
});

describe('DeviceActivity errors', () => {
  it('keeps the latest dead-letter or refusal reason, cut to 300 characters', () => {
    const { a, c } = activity();
    a.deadLettered('d', 'first reason');
    const firstAt = c.at();
    expect(a.report('d').lastError).toEqual({ code: 'INVALID_PAYLOAD', reason: 'first reason', atMs: firstAt });
    c.advance(1000);
    const long = `${'x'.repeat(299)}yz and more`;
    a.refused('d', 'LOG_FULL', long);
    expect(a.report('d').lastError).toEqual({ code: 'LOG_FULL', reason: `${'x'.repeat(299)}y`, atMs: firstAt + 1000 });
    c.advance(1000);
    a.deadLettered('d', long);
    expect(a.report('d').lastError).toEqual({ code: 'INVALID_PAYLOAD', reason: `${'x'.repeat(299)}y`, atMs: firstAt + 2000 });
    // A stored reading counts but leaves the last error as it was.
    c.advance(1000);
    a.stored('d');
    expect(a.report('d')).toMatchObject({ readings: 1, deadLetters: 2, refusals: 1, lastError: { code: 'INVALID_PAYLOAD', atMs: firstAt + 2000 } });
  });
});
