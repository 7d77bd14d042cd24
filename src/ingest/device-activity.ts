/**
 * What each device has sent lately: last seen, reading rate, dead letters and refusals, for the
 * dashboard, /api/devices and the metrics. An operator's first question about a fleet is which
 * devices went quiet; the log cannot answer it cheaply (a device's readings are spread over
 * partitions and topics), so the intake tells this table as readings pass.
 */

/** Devices tracked at once. Past it the least recently seen is forgotten (counted): ~300 bytes each, so ~15 MB at most. */
export const DEFAULT_MAX_TRACKED_DEVICES = 50_000;

/** The rate is a moving average over about this long, so a device's usual rate shows within a minute of it starting. */
const RATE_WINDOW_MS = 60_000;

/** Longest refusal or dead-letter reason kept per device. */
const MAX_REASON_CHARS = 300;

/** One device's activity, as reported. */
export interface DeviceReport {
  deviceId: string;
  /** Milliseconds since the epoch; null for a registered device not seen since the gateway started. */
  firstSeenMs: number | null;
  lastSeenMs: number | null;
  /** Readings stored in their topic. */
  readings: number;
  /** Readings stored in the dead-letter topic (did not decode or validate). */
  deadLetters: number;
  /** Readings refused (not stored): not authorized, log full, ... */
  refusals: number;
  /** Readings per second, a moving average over about a minute, decayed to now. */
  ratePerSecond: number;
  /** The latest dead-letter or refusal reason. */
  lastError: { code: string; reason: string; atMs: number } | null;
  /** Silent for quietAfterMs or more (or never seen). */
  quiet: boolean;
}

/** Times named `...Ms` are the wall clock (shown to people); `...MonoMs` the monotonic clock (quiet and rate math). */
interface Entry {
  firstSeenMs: number;
  lastSeenMs: number;
  firstSeenMonoMs: number;
  lastSeenMonoMs: number;
  readings: number;
  deadLetters: number;
  refusals: number;
  /** Events per ms, as of rateAtMonoMs. */
  rate: number;
  rateAtMonoMs: number;
  lastError: DeviceReport['lastError'];
}

export interface DeviceActivityOptions {
  /** A device silent this long is quiet (config devices.quietAfterMs). */
  quietAfterMs: number;
  maxDevices?: number;
  /** The wall clock, ms since the epoch: the first and last seen times shown. */
  now?: () => number;
  /**
   * The monotonic clock, ms: silence and rates, so a step of the wall clock neither shows every
   * device quiet nor hides a silent one for as long as the step. Default performance.now(); `now`
   * when only that is given.
   */
  monotonicNow?: () => number;
}

/** Per-device activity of the readings that reach the intake; bounded (see DEFAULT_MAX_TRACKED_DEVICES). */
export class DeviceActivity {
  /** Map order is recency order: each event moves its device to the end, so the first is the least recently seen. */
  private readonly entries = new Map<string, Entry>();
  private readonly maxDevices: number;
  private readonly now: () => number;
  private readonly monotonicNow: () => number;
  private forgotten = 0;

  constructor(readonly opts: DeviceActivityOptions) {
    this.maxDevices = opts.maxDevices ?? DEFAULT_MAX_TRACKED_DEVICES;
    this.now = opts.now ?? Date.now;
    this.monotonicNow = opts.monotonicNow ?? opts.now ?? (() => performance.now());
  }

  /** A reading of the device stored in its topic. */
  stored(deviceId: string): void {
    this.touch(deviceId).readings += 1;
  }

  /** A reading of the device stored in the dead-letter topic, with why. */
  deadLettered(deviceId: string, reason: string): void {
    const entry = this.touch(deviceId);
    entry.deadLetters += 1;
    entry.lastError = { code: 'INVALID_PAYLOAD', reason: reason.slice(0, MAX_REASON_CHARS), atMs: entry.lastSeenMs };
  }

  /** A reading of the device refused with `code`. The device was heard from, so it counts as seen. */
  refused(deviceId: string, code: string, reason: string): void {
    const entry = this.touch(deviceId);
    entry.refusals += 1;
    entry.lastError = { code, reason: reason.slice(0, MAX_REASON_CHARS), atMs: entry.lastSeenMs };
  }

  /** Whether the device sent anything since the gateway started (and is still tracked). */
  has(deviceId: string): boolean {
    return this.entries.has(deviceId);
  }

  /** The monotonic clock's now: pass it to {@link report} and {@link quietCount} to judge many devices at one instant. */
  monotonicNowMs(): number {
    return this.monotonicNow();
  }

  /** Devices tracked now. */
  get size(): number {
    return this.entries.size;
  }

  /** Devices forgotten to keep the bound since start. */
  get forgottenDevices(): number {
    return this.forgotten;
  }

  /** One device's report, or a never-seen report when it sent nothing since the gateway started; `monoNowMs` is the monotonic clock's now. */
  report(deviceId: string, monoNowMs = this.monotonicNow()): DeviceReport {
    const entry = this.entries.get(deviceId);
    if (entry === undefined) {
      return { deviceId, firstSeenMs: null, lastSeenMs: null, readings: 0, deadLetters: 0, refusals: 0, ratePerSecond: 0, lastError: null, quiet: true };
    }
    return {
      deviceId,
      firstSeenMs: entry.firstSeenMs,
      lastSeenMs: entry.lastSeenMs,
      readings: entry.readings,
      deadLetters: entry.deadLetters,
      refusals: entry.refusals,
      ratePerSecond: rateNow(entry, monoNowMs) * 1000,
      lastError: entry.lastError,
      quiet: monoNowMs - entry.lastSeenMonoMs >= this.opts.quietAfterMs,
    };
  }

  /** Ids of the devices seen, most recently seen last. */
  seenIds(): IterableIterator<string> {
    return this.entries.keys();
  }

  /** How many tracked devices are quiet now: a walk from the least recently seen that stops at the first one that is not. */
  quietCount(monoNowMs = this.monotonicNow()): number {
    let quiet = 0;
    for (const entry of this.entries.values()) {
      if (monoNowMs - entry.lastSeenMonoMs < this.opts.quietAfterMs) break;
      quiet++;
    }
    return quiet;
  }

  private touch(deviceId: string): Entry {
    const nowMs = this.now();
    const monoMs = this.monotonicNow();
    let entry = this.entries.get(deviceId);
    if (entry === undefined) {
      if (this.entries.size >= this.maxDevices) {
        const oldest = this.entries.keys().next().value as string;
        this.entries.delete(oldest);
        this.forgotten++;
      }
      entry = { firstSeenMs: nowMs, lastSeenMs: nowMs, firstSeenMonoMs: monoMs, lastSeenMonoMs: monoMs, readings: 0, deadLetters: 0, refusals: 0, rate: 0, rateAtMonoMs: monoMs, lastError: null };
    } else {
      this.entries.delete(deviceId);
    }
    this.entries.set(deviceId, entry);
    // Exponentially weighted: decay what was, add this event's share of the window.
    entry.rate = decayed(entry, monoMs) + 1 / RATE_WINDOW_MS;
    entry.rateAtMonoMs = monoMs;
    entry.lastSeenMs = nowMs;
    entry.lastSeenMonoMs = monoMs;
    return entry;
  }
}

/**
 * The moving average, corrected for its start: a device seen for less than the window would
 * otherwise show a fraction of its rate (the average starts at 0). Divides by the weight the
 * window has had, as bias-corrected moving averages do; at least a second of it.
 */
function rateNow(entry: Entry, monoNowMs: number): number {
  const ageMs = Math.max(1000, monoNowMs - entry.firstSeenMonoMs);
  return decayed(entry, monoNowMs) / (1 - Math.exp(-ageMs / RATE_WINDOW_MS));
}

function decayed(entry: Entry, monoNowMs: number): number {
  return entry.rate * Math.exp(-Math.max(0, monoNowMs - entry.rateAtMonoMs) / RATE_WINDOW_MS);
}
