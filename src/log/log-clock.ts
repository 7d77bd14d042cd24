/**
 * The log's clock for append times and time retention: the wall clock, less the steps it made
 * while the log was open.
 *
 * Retention keeps a record for `retentionMs` after it was appended (docs/api.md). A gateway's wall
 * clock steps: a Raspberry Pi without a real-time clock boots at the time it last saved (or at
 * 1970) and NTP moves it by hours or years once the network is up; a wrong clock is corrected
 * backwards. Kafka compares record times with the broker's clock, so a step forward of 30 days
 * would delete, at the next retention run, records stored a minute ago that no consumer or bridge
 * has read yet: fresh data lost to a clock correction. Here a step is not age. Each reading
 * compares how far the wall clock moved with how far the monotonic clock (which NTP never steps)
 * moved; a difference past STEP_TOLERANCE_MS is a step, added to `offsetMs`, and the log's time is
 * `wall − offsetMs`: it advances with the monotonic clock while the log is open, and with the wall
 * clock across restarts (downtime counts as age), but never goes back past the last append (a
 * clock found behind at open continues from there). The offset is stored in the log, so a restart
 * after a step keeps its records' ages. Record timestamps and everything shown to people stay on
 * the wall clock.
 */

/** Wall and monotonic clocks may drift apart by slewing (at most 500 ppm) and rounding; a step is more than this. */
export const STEP_TOLERANCE_MS = 1000;

/** One reading of the clocks. */
export interface ClockReading {
  /** The wall clock, ms since the epoch: record timestamps, commit times. */
  wallMs: number;
  /** The log's time, ms since the epoch: append times and retention. */
  logMs: number;
}

export class LogClock {
  private lastWallMs: number;
  private lastMonoMs: number;
  /** The offset last written to the log, to tell whether it changed since. */
  private storedOffsetMs: number;

  /**
   * @param offsetMs the offset stored in the log (0 for a new log)
   * @param lastAppendMs the latest append time in the log, in log time (−Infinity for none)
   * @param onStep told of each step, for one log line per step
   */
  constructor(
    private readonly wall: () => number,
    private readonly mono: () => number,
    private offsetMs: number,
    lastAppendMs: number,
    private readonly onStep: (stepMs: number, offsetMs: number) => void,
  ) {
    this.storedOffsetMs = offsetMs;
    this.lastWallMs = wall();
    this.lastMonoMs = mono();
    // The wall clock went back while the log was closed: continue from the last append instead.
    const behindMs = lastAppendMs - (this.lastWallMs - offsetMs);
    if (behindMs > 0) {
      this.offsetMs -= behindMs;
      if (behindMs > STEP_TOLERANCE_MS) onStep(-behindMs, this.offsetMs);
    }
  }

  /** Reads both clocks, taking in a step of the wall clock since the last reading. */
  read(): ClockReading {
    const wallMs = this.wall();
    const monoMs = this.mono();
    const stepMs = wallMs - this.lastWallMs - (monoMs - this.lastMonoMs);
    this.lastWallMs = wallMs;
    this.lastMonoMs = monoMs;
    if (Math.abs(stepMs) > STEP_TOLERANCE_MS) {
      this.offsetMs += stepMs;
      this.onStep(stepMs, this.offsetMs);
    }
    return { wallMs, logMs: wallMs - this.offsetMs };
  }

  /** The offset to write to the log when it changed since it was last written, else undefined. */
  unstoredOffset(): number | undefined {
    return this.offsetMs === this.storedOffsetMs ? undefined : this.offsetMs;
  }

  /** Records that `offsetMs` (from {@link unstoredOffset}) is durable in the log. */
  stored(offsetMs: number): void {
    this.storedOffsetMs = offsetMs;
  }
}
