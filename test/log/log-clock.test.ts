import { describe, expect, it } from 'vitest';
import { LogClock, STEP_TOLERANCE_MS } from '../../src/log/log-clock.js';
import { bytes, openTestLog } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const T0 = 1_700_000_000_000;

/** A wall clock and a monotonic clock the test moves: `elapse` moves both, `step` the wall clock only (NTP). */
function clocks(startWallMs = T0): { wall: () => number; mono: () => number; elapse: (ms: number) => void; step: (ms: number) => void } {
  let wallMs = startWallMs;
  let monoMs = 5_000;
  return {
    wall: () => wallMs,
    mono: () => monoMs,
    elapse: (ms) => {
      wallMs += ms;
      monoMs += ms;
    },
    step: (ms) => void (wallMs += ms),
  };
}

describe('the log clock', () => {
  it('follows elapsed time and leaves wall-clock steps out, both ways', () => {
    const c = clocks();
    const steps: number[] = [];
    const clock = new LogClock(c.wall, c.mono, 0, Number.NEGATIVE_INFINITY, (stepMs) => steps.push(stepMs));
    expect(clock.read()).toEqual({ wallMs: T0, logMs: T0 });
    c.elapse(10_000);
    c.step(30 * DAY_MS);
    c.elapse(500);
    expect(clock.read()).toEqual({ wallMs: T0 + 10_500 + 30 * DAY_MS, logMs: T0 + 10_500 });
    c.step(-2 * 60 * 60 * 1000);
    c.elapse(1000);
    expect(clock.read().logMs).toBe(T0 + 11_500);
    expect(steps).toEqual([30 * DAY_MS, -2 * 60 * 60 * 1000]);
    expect(clock.unstoredOffset()).toBe(30 * DAY_MS - 2 * 60 * 60 * 1000);
    clock.stored(30 * DAY_MS - 2 * 60 * 60 * 1000);
    expect(clock.unstoredOffset()).toBeUndefined();
  });

  it('passes differences within the tolerance through (slewing), and continues from the last append when the clock is behind at open', () => {
    const c = clocks();
    const steps: number[] = [];
    const clock = new LogClock(c.wall, c.mono, 0, Number.NEGATIVE_INFINITY, (stepMs) => steps.push(stepMs));
    c.step(STEP_TOLERANCE_MS);
    expect(clock.read().logMs).toBe(T0 + STEP_TOLERANCE_MS);
    expect(steps).toEqual([]);
    // A Pi booting at 1970 with a log whose last append is T0: its time goes on from T0.
    const boot = clocks(0);
    const reopened = new LogClock(boot.wall, boot.mono, 0, T0, (stepMs) => steps.push(stepMs));
    expect(reopened.read().logMs).toBe(T0);
    expect(steps).toEqual([-T0]);
    expect(reopened.unstoredOffset()).toBe(-T0);
  });
});

describe('retention across wall-clock steps', () => {
  it('deletes nothing for a step of 30 days forward, before or after a restart, and still deletes what is really old', async () => {
    const c = clocks();
    const dir = tempDir();
    let log = await openTestLog({ dir, now: c.wall, monotonicNow: c.mono });
    await log.createTopic('t', { retentionMs: 7 * DAY_MS });
    await log.append('t', [{ value: bytes('before the step') }]);
    c.elapse(1000);
    c.step(30 * DAY_MS); // NTP at boot: the clock was a month behind
    expect(await log.enforceRetention()).toMatchObject({ deletedRecords: 0 });
    await log.append('t', [{ value: bytes('after the step') }]);
    await log.close();

    // The step is stored: after a restart the first record is still a second old, not a month.
    log = await openTestLog({ dir, now: c.wall, monotonicNow: c.mono });
    expect(await log.enforceRetention()).toMatchObject({ deletedRecords: 0 });
    c.elapse(7 * DAY_MS + 1);
    expect(await log.enforceRetention()).toMatchObject({ deletedRecords: 2 });
    expect(log.describeTopic('t').partitions[0]).toMatchObject({ startOffset: 2, highWatermark: 2 });
  });

  it('stamps record timestamps with the wall clock, stepped or not', async () => {
    const c = clocks();
    const log = await openTestLog({ now: c.wall, monotonicNow: c.mono });
    await log.createTopic('t');
    c.step(DAY_MS);
    await log.append('t', [{ value: bytes('x') }]);
    const [record] = log.read('t', 0, 0).records;
    expect(record!.timestamp).toBe(T0 + DAY_MS);
    expect(record!.appendTime).toBe(T0);
  });
});
