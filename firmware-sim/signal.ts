import { quantize } from '../devices/payload-codec.js';
import type { Reading } from '../devices/payload-codec.js';
import type { DeviceProfile, FieldSpec, StreamSpec } from '../devices/profile.js';
import { deriveSeed, gaussian, mulberry32, uniform } from './prng.js';
import type { Random } from './prng.js';

const MS_PER_DAY = 86_400_000;
const MS_PER_HOUR = 3_600_000;
/** Crystal oscillators of cheap sensors drift by tens of ppm; a skewed device gets up to this much. */
const CLOCK_DRIFT_PPM_MAX = 50;
/** Purposes mixed into the run seed, so each kind of randomness is its own stream. */
export const SEED_PURPOSE = Object.freeze({ signal: 1, clock: 2, burst: 3, network: 4 });

/** What a generator needs besides its profile. */
export interface SignalOptions {
  readonly seed: number;
  readonly deviceIndex: number;
  /** Simulated time of the device's first sample, in ms since the Unix epoch. */
  readonly startTimeMs: number;
  /** Largest clock offset of a device, ± (0: every device clock is exact). */
  readonly clockSkewMaxMs: number;
}

/** One generated reading and the stream it belongs to. */
export interface GeneratedReading {
  readonly stream: StreamSpec;
  readonly reading: Reading;
}

interface FieldState {
  readonly field: FieldSpec;
  /** cycle: this device's base value; battery: its starting charge; counter: its running total. */
  level: number;
  /** cycle: this device's drift per day. */
  readonly driftPerDay: number;
  stuckLeft: number;
  last: number;
}

/**
 * The sensor of one simulated device: turns sample times into readings. A pure function of the
 * profile, the seed, the device index and the sample times, never of network timing, so the same
 * seed gives the same readings (`--seed`).
 */
export class SignalGenerator {
  readonly profile: DeviceProfile;
  private readonly random: Random;
  private readonly states: FieldState[][];
  private readonly startTimeMs: number;
  private readonly clockOffsetMs: number;
  private readonly clockDriftPpm: number;
  private seq = 0;
  private lastNominalMs: number;

  constructor(profile: DeviceProfile, options: SignalOptions) {
    this.profile = profile;
    this.random = mulberry32(deriveSeed(options.seed, options.deviceIndex, SEED_PURPOSE.signal));
    this.startTimeMs = options.startTimeMs;
    this.lastNominalMs = options.startTimeMs;
    const clockRandom = mulberry32(deriveSeed(options.seed, options.deviceIndex, SEED_PURPOSE.clock));
    const skewed = options.clockSkewMaxMs > 0;
    this.clockOffsetMs = skewed ? Math.round(uniform(clockRandom, -options.clockSkewMaxMs, options.clockSkewMaxMs)) : 0;
    this.clockDriftPpm = skewed ? uniform(clockRandom, -CLOCK_DRIFT_PPM_MAX, CLOCK_DRIFT_PPM_MAX) : 0;
    this.states = profile.streams.map((stream) => stream.fields.map((field) => this.initialState(field)));
  }

  private initialState(field: FieldSpec): FieldState {
    const s = field.signal;
    const r = this.random;
    switch (s.kind) {
      case 'cycle':
        return { field, level: s.base + uniform(r, -s.spread, s.spread), driftPerDay: uniform(r, -s.driftPerDay, s.driftPerDay), stuckLeft: 0, last: s.base };
      case 'battery':
        return { field, level: uniform(r, s.startMin, s.startMax), driftPerDay: 0, stuckLeft: 0, last: s.startMax };
      case 'counter':
        return { field, level: uniform(r, field.min, s.startMax), driftPerDay: 0, stuckLeft: 0, last: field.min };
    }
  }

  /** The device clock at true time `nominalMs`: offset plus drift since start. */
  deviceTimeMs(nominalMs: number): number {
    return Math.round(nominalMs + this.clockOffsetMs + ((nominalMs - this.startTimeMs) * this.clockDriftPpm) / 1e6);
  }

  /** Readings generated so far (the next reading's seq). */
  get generated(): number {
    return this.seq;
  }

  /** Samples the next stream in the profile's schedule at true time `nominalMs` (non-decreasing). */
  next(nominalMs: number): GeneratedReading {
    const schedule = this.profile.schedule;
    const streamIndex = schedule[this.seq % schedule.length] as number;
    const stream = this.profile.streams[streamIndex] as StreamSpec;
    const states = this.states[streamIndex] as FieldState[];
    const ts = this.deviceTimeMs(nominalMs);
    const elapsedDays = (nominalMs - this.startTimeMs) / MS_PER_DAY;
    const sinceLastHours = Math.max(nominalMs - this.lastNominalMs, 0) / MS_PER_HOUR;
    this.lastNominalMs = nominalMs;
    const values: Record<string, number> = {};
    for (const state of states) values[state.field.name] = this.sample(state, ts, elapsedDays, sinceLastHours);
    const reading: Reading = { seq: this.seq >>> 0, ts, values };
    this.seq++;
    return { stream, reading };
  }

  private sample(state: FieldState, ts: number, elapsedDays: number, sinceLastHours: number): number {
    const field = state.field;
    const s = field.signal;
    const r = this.random;
    let value: number;
    switch (s.kind) {
      case 'cycle': {
        if (state.stuckLeft > 0) {
          // A stuck sensor repeats its last value: a frozen ADC or a sensor hung on I2C.
          state.stuckLeft--;
          return state.last;
        }
        const hour = (ts / MS_PER_HOUR) % 24;
        value = state.level + state.driftPerDay * elapsedDays + s.dailyAmplitude * Math.cos((2 * Math.PI * (hour - s.peakHourUtc)) / 24) + s.noise * gaussian(r);
        if (s.spikeProbability > 0 && r() < s.spikeProbability) value += (r() < 0.5 ? -1 : 1) * s.spikeMagnitude * uniform(r, 0.5, 1);
        if (s.stuckProbability > 0 && r() < s.stuckProbability) state.stuckLeft = s.stuckSamples;
        break;
      }
      case 'battery':
        value = state.level - s.drainPerDay * elapsedDays - s.drainPerReading * this.seq;
        break;
      case 'counter':
        state.level += Math.max(0, s.ratePerHour * sinceLastHours * (1 + s.noise * gaussian(r)));
        value = state.level;
        break;
    }
    // A real sensor saturates at the ends of its range rather than reporting impossible values.
    state.last = quantize(field, Math.min(Math.max(value, field.min), field.max));
    return state.last;
  }
}
