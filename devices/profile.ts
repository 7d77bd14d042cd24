import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SUBSCRIBE, allowedFilterError } from './acl.js';
import { ProfileError } from './errors.js';

/** Payload formats a profile may name; `edgebin` is defined in devices/README.md. */
export const PAYLOAD_FORMATS = ['json', 'edgebin'] as const;
export type PayloadFormat = (typeof PAYLOAD_FORMATS)[number];

/** How a field's value is stored in an `edgebin` payload: an integer count of `resolution`, or a float32. */
export const BINARY_TYPES = ['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'float32'] as const;
export type BinaryType = (typeof BINARY_TYPES)[number];

/** Size in bytes and integer range of each binary type (float32 has no integer range). */
export const BINARY_TYPE_INFO: Readonly<Record<BinaryType, { bytes: number; min: number; max: number }>> = {
  int8: { bytes: 1, min: -128, max: 127 },
  uint8: { bytes: 1, min: 0, max: 255 },
  int16: { bytes: 2, min: -32768, max: 32767 },
  uint16: { bytes: 2, min: 0, max: 65535 },
  int32: { bytes: 4, min: -2147483648, max: 2147483647 },
  uint32: { bytes: 4, min: 0, max: 4294967295 },
  float32: { bytes: 4, min: -3.4e38, max: 3.4e38 },
};

/** A value that follows the time of day, with per-device offset, noise, slow drift and rare anomalies. */
export interface CycleSignal {
  readonly kind: 'cycle';
  readonly base: number;
  /** Each device's own base is `base ± spread` (uniform), so a fleet does not report identical values. */
  readonly spread: number;
  readonly dailyAmplitude: number;
  readonly peakHourUtc: number;
  /** Standard deviation of the Gaussian noise added to each sample. */
  readonly noise: number;
  /** Largest drift per day; each device drifts at its own rate in ±driftPerDay. */
  readonly driftPerDay: number;
  readonly spikeProbability: number;
  readonly spikeMagnitude: number;
  readonly stuckProbability: number;
  /** How many samples a stuck sensor repeats the same value for. */
  readonly stuckSamples: number;
}

/** A battery level in percent that drains with time and with every reading sent. */
export interface BatterySignal {
  readonly kind: 'battery';
  readonly startMin: number;
  readonly startMax: number;
  readonly drainPerDay: number;
  readonly drainPerReading: number;
}

/** A monotonically increasing counter (an energy meter), starting anywhere in [0, startMax]. */
export interface CounterSignal {
  readonly kind: 'counter';
  readonly startMax: number;
  readonly ratePerHour: number;
  /** Relative noise on each increment (0.1 = ±10 % standard deviation); increments never go negative. */
  readonly noise: number;
}

export type Signal = CycleSignal | BatterySignal | CounterSignal;

export interface FieldSpec {
  readonly name: string;
  readonly unit: string;
  readonly min: number;
  readonly max: number;
  /** Smallest step of the value; readings are rounded to it in every format. */
  readonly resolution: number;
  /** Decimal places of `resolution`, used to print and to round decoded values. */
  readonly decimals: number;
  readonly binary: BinaryType;
  readonly signal: Signal;
}

export interface StreamSpec {
  readonly name: string;
  /** Index of the stream in the profile; `edgebin` payloads carry it. */
  readonly index: number;
  /** Relative share of the device's readings that belong to this stream. */
  readonly share: number;
  readonly fields: readonly FieldSpec[];
}

/** A validated, frozen device profile. */
export interface DeviceProfile {
  readonly name: string;
  readonly description: string;
  readonly payloadFormat: PayloadFormat;
  readonly streams: readonly StreamSpec[];
  /** Stream indexes in the order a device cycles through them, expanded from the shares. */
  readonly schedule: readonly number[];
  /**
   * MQTT topic filters a device of this profile may subscribe to, `{deviceId}` standing for its own
   * id (devices/acl.ts); {@link DEFAULT_SUBSCRIBE} when the file has none.
   */
  readonly subscribe: readonly string[];
}

// Names become MQTT topic levels and JSON keys: no '/', '+', '#' or spaces (MQTT-4.7.1).
const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/** An edgebin header has one byte for the stream index. */
const MAX_STREAMS = 255;
/** Bounds a single payload and the schedule: a real sensor reports a handful of quantities per message. */
const MAX_FIELDS_PER_STREAM = 32;
const MAX_SHARE = 100;
const MAX_DECIMALS = 6;
/** Bounds the work of each SUBSCRIBE check: a device needs a handful of command and config topics. */
const MAX_SUBSCRIBE_FILTERS = 32;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class Reader {
  constructor(readonly source: string) {}

  fail(path: string, detail: string): never {
    throw new ProfileError(this.source, path, detail);
  }

  object(value: unknown, path: string): Json {
    if (!isObject(value)) this.fail(path, 'must be an object');
    return value;
  }

  string(obj: Json, key: string, path: string, fallback?: string): string {
    const value = obj[key] ?? fallback;
    if (typeof value !== 'string') this.fail(`${path}.${key}`, 'must be a string');
    return value;
  }

  name(obj: Json, key: string, path: string): string {
    const value = this.string(obj, key, path);
    if (!NAME_PATTERN.test(value)) {
      this.fail(`${path}.${key}`, `'${value}' must start with a letter and use only letters, digits, '_' or '-' (at most 64)`);
    }
    return value;
  }

  number(obj: Json, key: string, path: string, range: { min?: number; max?: number; fallback?: number } = {}): number {
    const value = obj[key] ?? range.fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(`${path}.${key}`, 'must be a finite number');
    if (range.min !== undefined && value < range.min) this.fail(`${path}.${key}`, `must be at least ${range.min}, got ${value}`);
    if (range.max !== undefined && value > range.max) this.fail(`${path}.${key}`, `must be at most ${range.max}, got ${value}`);
    return value;
  }

  oneOf<T extends string>(obj: Json, key: string, path: string, allowed: readonly T[], fallback?: T): T {
    const value = obj[key] ?? fallback;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.fail(`${path}.${key}`, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`);
    }
    return value as T;
  }
}

function decimalsOf(resolution: number): number {
  for (let decimals = 0; decimals <= MAX_DECIMALS; decimals++) {
    const scaled = resolution * 10 ** decimals;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9) return decimals;
  }
  return MAX_DECIMALS + 1;
}

function parseSignal(r: Reader, obj: Json, path: string, field: { min: number; max: number }): Signal {
  const kind = r.oneOf(obj, 'kind', path, ['cycle', 'battery', 'counter'] as const, 'cycle');
  const p = (key: string, fallback = 0): number => r.number(obj, key, path, { min: 0, fallback });
  switch (kind) {
    case 'cycle': {
      const base = r.number(obj, 'base', path, { min: field.min, max: field.max });
      const peakHourUtc = r.number(obj, 'peakHourUtc', path, { min: 0, max: 24, fallback: 12 });
      const spikeProbability = r.number(obj, 'spikeProbability', path, { min: 0, max: 1, fallback: 0 });
      const stuckProbability = r.number(obj, 'stuckProbability', path, { min: 0, max: 1, fallback: 0 });
      return {
        kind, base, peakHourUtc, spikeProbability, stuckProbability,
        spread: p('spread'), dailyAmplitude: p('dailyAmplitude'), noise: p('noise'), driftPerDay: p('driftPerDay'),
        spikeMagnitude: p('spikeMagnitude'), stuckSamples: Math.round(r.number(obj, 'stuckSamples', path, { min: 0, max: 100_000, fallback: 0 })),
      };
    }
    case 'battery': {
      const startMin = r.number(obj, 'startMin', path, { min: field.min, max: field.max, fallback: field.max });
      const startMax = r.number(obj, 'startMax', path, { min: startMin, max: field.max, fallback: field.max });
      return { kind, startMin, startMax, drainPerDay: p('drainPerDay'), drainPerReading: p('drainPerReading') };
    }
    case 'counter':
      return { kind, startMax: r.number(obj, 'startMax', path, { min: field.min, max: field.max, fallback: field.min }), ratePerHour: p('ratePerHour'), noise: p('noise') };
  }
}

function parseField(r: Reader, value: unknown, path: string): FieldSpec {
  const obj = r.object(value, path);
  const name = r.name(obj, 'name', path);
  const unit = r.string(obj, 'unit', path, '');
  const min = r.number(obj, 'min', path);
  const max = r.number(obj, 'max', path, { min });
  const resolution = r.number(obj, 'resolution', path, { fallback: 0.01 });
  if (resolution <= 0) r.fail(`${path}.resolution`, 'must be greater than 0');
  const decimals = decimalsOf(resolution);
  if (decimals > MAX_DECIMALS) r.fail(`${path}.resolution`, `must have at most ${MAX_DECIMALS} decimal places`);
  const binary = r.oneOf(obj, 'binary', path, BINARY_TYPES, 'float32');
  const info = BINARY_TYPE_INFO[binary];
  if (binary !== 'float32' && (Math.round(min / resolution) < info.min || Math.round(max / resolution) > info.max)) {
    r.fail(`${path}.binary`, `${binary} cannot hold [${min}, ${max}] in steps of ${resolution}; use a wider type or a coarser resolution`);
  }
  const signal = parseSignal(r, r.object(obj['signal'] ?? {}, `${path}.signal`), `${path}.signal`, { min, max });
  return { name, unit, min, max, resolution, decimals, binary, signal };
}

function parseStream(r: Reader, value: unknown, path: string, index: number): StreamSpec {
  const obj = r.object(value, path);
  const name = r.name(obj, 'name', path);
  const share = r.number(obj, 'share', path, { min: 1, max: MAX_SHARE, fallback: 1 });
  if (!Number.isInteger(share)) r.fail(`${path}.share`, 'must be a whole number');
  const fields = obj['fields'];
  if (!Array.isArray(fields) || fields.length === 0 || fields.length > MAX_FIELDS_PER_STREAM) {
    r.fail(`${path}.fields`, `must be an array of 1 to ${MAX_FIELDS_PER_STREAM} fields`);
  }
  const parsed = fields.map((f, i) => parseField(r, f, `${path}.fields[${i}]`));
  const seen = new Set<string>();
  for (const [i, f] of parsed.entries()) {
    if (seen.has(f.name)) r.fail(`${path}.fields[${i}].name`, `'${f.name}' is used twice`);
    // 'seq' and 'ts' are the envelope of a JSON payload.
    if (f.name === 'seq' || f.name === 'ts') r.fail(`${path}.fields[${i}].name`, `'${f.name}' is reserved`);
    seen.add(f.name);
  }
  return { name, index, share, fields: parsed };
}

/**
 * Validates a parsed profile document and returns it frozen. `source` names it in errors.
 * Throws {@link ProfileError} naming the JSON path of the first problem.
 */
export function parseProfile(document: unknown, source = 'inline'): DeviceProfile {
  // Annotated so TypeScript treats r.fail() as ending control flow (it returns never).
  const r: Reader = new Reader(source);
  const obj = r.object(document, '$');
  const name = r.name(obj, 'name', '$');
  const description = r.string(obj, 'description', '$', '');
  const payloadFormat = r.oneOf(obj, 'payloadFormat', '$', PAYLOAD_FORMATS, 'json');
  const streams = obj['streams'];
  if (!Array.isArray(streams) || streams.length === 0 || streams.length > MAX_STREAMS) {
    r.fail('$.streams', `must be an array of 1 to ${MAX_STREAMS} streams`);
  }
  const parsed = streams.map((s, i) => parseStream(r, s, `$.streams[${i}]`, i));
  const names = new Set<string>();
  for (const s of parsed) {
    if (names.has(s.name)) r.fail(`$.streams[${s.index}].name`, `'${s.name}' is used twice`);
    names.add(s.name);
  }
  const schedule = interleave(parsed);
  const subscribe = parseSubscribe(r, obj['subscribe']);
  return deepFreeze({ name, description, payloadFormat, streams: parsed, schedule, subscribe });
}

function parseSubscribe(r: Reader, value: unknown): string[] {
  if (value === undefined) return [...DEFAULT_SUBSCRIBE];
  if (!Array.isArray(value) || value.length > MAX_SUBSCRIBE_FILTERS) {
    r.fail('$.subscribe', `must be an array of 0 to ${MAX_SUBSCRIBE_FILTERS} MQTT topic filters (like "devices/{deviceId}/commands/#")`);
  }
  return value.map((filter, i) => {
    if (typeof filter !== 'string') r.fail(`$.subscribe[${i}]`, 'must be a string');
    const error = allowedFilterError(filter);
    if (error !== undefined) r.fail(`$.subscribe[${i}]`, `'${filter}' is not a valid topic filter: ${error}`);
    return filter;
  });
}

/** Spreads each stream's share evenly over one cycle (shares 3 and 1 give a a b a, not a a a b). */
function interleave(streams: readonly StreamSpec[]): number[] {
  const total = streams.reduce((sum, s) => sum + s.share, 0);
  const slots: { at: number; index: number }[] = [];
  for (const s of streams) {
    for (let k = 0; k < s.share; k++) slots.push({ at: (k + 0.5) / s.share, index: s.index });
  }
  slots.sort((a, b) => a.at - b.at || a.index - b.index);
  const schedule = slots.map((slot) => slot.index);
  if (schedule.length !== total) throw new Error('edgelog invariant violated: schedule length is the sum of shares');
  return schedule;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Reads and validates one profile file. */
export function loadProfile(file: string): DeviceProfile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ProfileError(file, '$', `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { cause: error });
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new ProfileError(file, '$', `is not valid JSON (${(error as Error).message})`, { cause: error });
  }
  return parseProfile(document, file);
}

/** Loads every `*.json` profile in `dir`, sorted by file name. */
export function loadProfiles(dir: string = defaultProfilesDir()): DeviceProfile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => loadProfile(join(dir, f)));
}

/**
 * The shipped devices/profiles folder. This module runs from devices/ (tsx) or from dist/devices/
 * (compiled), and tsc does not copy JSON, so look in both places.
 */
export function defaultProfilesDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'profiles'), resolve(here, '..', '..', 'devices', 'profiles')];
  const found = candidates.find((dir) => existsSync(dir));
  if (found === undefined) throw new ProfileError(candidates[0] ?? here, '$', 'the shipped profiles folder is missing');
  return found;
}

/** The stream of `profile` called `name`, or undefined. */
export function findStream(profile: DeviceProfile, name: string): StreamSpec | undefined {
  return profile.streams.find((s) => s.name === name);
}
