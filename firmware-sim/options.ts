import { pino } from 'pino';
import type { Logger } from 'pino';
import { PAYLOAD_FORMATS, loadProfiles } from '../devices/profile.js';
import type { DeviceProfile, PayloadFormat } from '../devices/profile.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import type { BackoffPolicy } from './backoff.js';

/**
 * An option of the simulator is missing, malformed or contradicts another; `option` names it.
 * firmware-sim depends on devices/ only, never on the gateway's src/ (DESIGN.md, layout).
 */
export class InvalidOptionError extends Error {
  override name = 'InvalidOptionError';
  readonly code = 'INVALID_OPTION';
  readonly option: string;
  readonly detail: string;
  constructor(option: string, detail: string) {
    super(`${option}: ${detail}`);
    this.option = option;
    this.detail = detail;
  }
}

/** Fault injection, each off (0) by default. Probabilities are in [0, 1]. */
export interface FaultOptions {
  /** Per reading: also publish a corrupted copy (truncated JSON, bad edgebin header). */
  readonly malformed: number;
  /** Per reading: also publish a payload of `oversizeBytes`. */
  readonly oversize: number;
  readonly oversizeBytes: number;
  /** Per reading: publish it twice (same seq), as firmware that retries too eagerly does. */
  readonly duplicate: number;
  /** Per reading: emit `burstSize` extra readings at once, as a device dumping a backlog does. */
  readonly burst: number;
  readonly burstSize: number;
  /** Per connected device per second: drop the connection (a flaky radio link). */
  readonly flap: number;
  /** Largest device clock offset, ±, in ms; each device also drifts up to ±50 ppm. 0: exact clocks. */
  readonly clockSkewMs: number;
}

/** How devices reach the gateway: MQTT 3.1.1 (TCP, TLS or WebSocket), or edgelog's WebSocket ingest (JSON frames, docs/ws-ingest.md). */
export type Transport = 'mqtt' | 'ws-ingest';

/** Options of {@link Fleet}; only `gateway`, `devices`, `ratePerSecond` and `durationS` are required. */
export interface FleetOptions {
  /** mqtt://HOST:PORT, ws://HOST:PORT/mqtt for MQTT over WebSocket, or ws://HOST:PORT/ingest for the gateway's WebSocket ingest (wss:// for TLS). */
  readonly gateway: string;
  readonly devices: number;
  /** Readings per second per device. */
  readonly ratePerSecond: number;
  /** Seconds each device samples for; the run also ramps up first and drains at the end. */
  readonly durationS: number;
  /** MQTT QoS; WebSocket ingest acknowledges every reading, so only 1 goes with it. */
  readonly qos?: 0 | 1;
  /** Devices take these profiles in turn (device i gets profiles[i % n]); default: every shipped profile. */
  readonly profiles?: readonly DeviceProfile[];
  /** Overrides every profile's payload format. */
  readonly format?: PayloadFormat;
  /** Makes readings reproducible; default: a random seed, written to the report. */
  readonly seed?: number;
  /** Simulated wall-clock time of the run's start (ms since epoch); default now. Fix it with the seed to reproduce timestamps too. */
  readonly startTimeMs?: number;
  /** Client ids and usernames are `${idPrefix}${n}`, n from 1, zero-padded to at least 4 digits. */
  readonly idPrefix?: string;
  /** MQTT password of every device; `{deviceId}` is replaced with the device's id. Default: none. */
  readonly password?: string;
  /** WebSocket ingest token of every device; `{deviceId}` is replaced with the device's id. Default: none (anonymous). */
  readonly token?: string;
  /** Readings a device keeps while it cannot send them; the oldest is dropped when full. */
  readonly bufferReadings?: number;
  /** Publishes a device has outstanding (unacknowledged) at once; over WebSocket ingest they go out as batch frames. */
  readonly inflightMax?: number;
  /** New connections per second while the fleet starts. */
  readonly rampPerSecond?: number;
  readonly backoff?: Partial<BackoffPolicy>;
  readonly connectTimeoutMs?: number;
  /** MQTT keep-alive; over WebSocket ingest, the interval of the pings that detect a dead connection. */
  readonly keepaliveS?: number;
  /** How long the end of a run waits for buffered readings to be sent. */
  readonly drainTimeoutMs?: number;
  readonly faults?: Partial<FaultOptions>;
  readonly logger?: Logger;
  /** Called once per acknowledged reading (QoS 1 PUBACK or WebSocket ingest ack); `--ack-log` writes these. */
  readonly onAck?: AckListener;
}

/** Hears of each acknowledged reading: the device, the stream (its topic level) and the reading's `seq`. */
export type AckListener = (device: string, stream: string, seq: number) => void;

/** Validated, frozen options with every default filled in. */
export interface FleetConfig {
  readonly gateway: string;
  readonly transport: Transport;
  readonly devices: number;
  readonly ratePerSecond: number;
  readonly durationS: number;
  readonly qos: 0 | 1;
  readonly profiles: readonly DeviceProfile[];
  readonly format: PayloadFormat | undefined;
  readonly seed: number;
  readonly startTimeMs: number | undefined;
  readonly idPrefix: string;
  readonly password: string | undefined;
  readonly token: string | undefined;
  readonly bufferReadings: number;
  readonly inflightMax: number;
  readonly rampPerSecond: number;
  readonly backoff: BackoffPolicy;
  readonly connectTimeoutMs: number;
  readonly keepaliveS: number;
  readonly drainTimeoutMs: number;
  readonly faults: FaultOptions;
  readonly samplesPerDevice: number;
  readonly logger: Logger;
  readonly onAck: AckListener | undefined;
}

/** One process holds this many devices: 20,000 sockets stay under common fd limits (ulimit -n) with room to spare. */
export const MAX_DEVICES = 20_000;
/** Faster than this is not a sensor but a load generator; use more devices instead. */
export const MAX_RATE_PER_SECOND = 1_000;
export const MAX_DURATION_S = 7 * 86_400;
/** About 8 minutes of readings at 1/s: a typical sensor's RAM buffer, and 5,000 full buffers stay under ~0.5 GB. */
export const DEFAULT_BUFFER_READINGS = 500;
export const MAX_BUFFER_READINGS = 1_000_000;
/** Enough to keep a loopback link busy without letting one device hog the gateway's in-flight window. */
export const DEFAULT_INFLIGHT_MAX = 16;
/** MQTT packet ids are 16-bit; mqtt.js allocates them per client. Also the gateway's readings per WebSocket ingest frame. */
export const MAX_INFLIGHT = 1_000;
/** Fast enough to start 5,000 devices in 10 s, slow enough that a gateway's accept queue keeps up. */
export const DEFAULT_RAMP_PER_SECOND = 500;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_KEEPALIVE_S = 60;
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
export const DEFAULT_OVERSIZE_BYTES = 1024 * 1024;
/** MQTT's own limit on a packet's remaining length is 256 MB; stay well below what a broker would let us allocate. */
export const MAX_OVERSIZE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_BURST_SIZE = 20;
export const MAX_BURST_SIZE = 10_000;
export const MAX_CLOCK_SKEW_MS = 365 * 86_400_000;

export const DEFAULT_FAULTS: FaultOptions = Object.freeze({
  malformed: 0, oversize: 0, oversizeBytes: DEFAULT_OVERSIZE_BYTES, duplicate: 0, burst: 0, burstSize: DEFAULT_BURST_SIZE, flap: 0, clockSkewMs: 0,
});

function checkNumber(option: string, value: unknown, min: number, max: number, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new InvalidOptionError(option, `must be a number, got ${JSON.stringify(value)}`);
  if (integer && !Number.isInteger(value)) throw new InvalidOptionError(option, `must be a whole number, got ${value}`);
  if (value < min || value > max) throw new InvalidOptionError(option, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

/**
 * Checks a gateway URL: mqtt(s)://HOST:PORT, ws(s)://HOST:PORT/mqtt (MQTT over WebSocket) or
 * ws(s)://HOST:PORT/ingest (the gateway's WebSocket ingest), and says which transport it means.
 */
export function checkGatewayUrl(gateway: string): { url: URL; transport: Transport } {
  let url: URL;
  try {
    url = new URL(gateway);
  } catch {
    throw new InvalidOptionError('gateway', `'${gateway}' is not a URL; use mqtt://HOST:PORT (for example mqtt://127.0.0.1:1883)`);
  }
  if (url.protocol === 'mqtt:' || url.protocol === 'mqtts:') {
    if (url.pathname !== '' && url.pathname !== '/') throw new InvalidOptionError('gateway', `an ${url.protocol}// URL has no path, got '${url.pathname}'`);
    return { url, transport: 'mqtt' };
  }
  if (url.protocol === 'ws:' || url.protocol === 'wss:') {
    if (url.pathname === '/mqtt') return { url, transport: 'mqtt' };
    if (url.pathname === '/ingest') return { url, transport: 'ws-ingest' };
    throw new InvalidOptionError(
      'gateway',
      `'${gateway}' is a WebSocket URL with path '${url.pathname}'; use ${url.protocol}//${url.host}/ingest for the gateway's WebSocket ingest ` +
        `or ${url.protocol}//${url.host}/mqtt for MQTT over WebSocket`,
    );
  }
  throw new InvalidOptionError('gateway', `protocol '${url.protocol}' is not supported; use mqtt://HOST:PORT, ws://HOST:PORT/ingest or ws://HOST:PORT/mqtt`);
}

/** Validates `options` and fills in defaults; throws {@link InvalidOptionError} naming the first bad option. */
export function resolveFleetOptions(options: FleetOptions): FleetConfig {
  if (typeof options.gateway !== 'string') throw new InvalidOptionError('gateway', 'is required (mqtt://HOST:PORT)');
  const { transport } = checkGatewayUrl(options.gateway);
  const devices = checkNumber('devices', options.devices, 1, MAX_DEVICES, true);
  const ratePerSecond = checkNumber('ratePerSecond', options.ratePerSecond, 0.0001, MAX_RATE_PER_SECOND, false);
  const durationS = checkNumber('durationS', options.durationS, 0.001, MAX_DURATION_S, false);
  const samplesPerDevice = Math.round(durationS * ratePerSecond);
  if (samplesPerDevice < 1) {
    throw new InvalidOptionError('durationS', `${durationS} s at ${ratePerSecond} readings/s is less than one reading; raise the duration or the rate`);
  }
  const qos = options.qos ?? 1;
  if (qos !== 0 && qos !== 1) throw new InvalidOptionError('qos', `must be 0 or 1, got ${JSON.stringify(qos)}`);
  if (transport === 'ws-ingest' && qos !== 1) {
    throw new InvalidOptionError('qos', 'is an MQTT setting: WebSocket ingest (/ingest) acknowledges every reading once it is durable, so leave it out or use 1');
  }
  if (transport === 'ws-ingest' && options.password !== undefined) {
    throw new InvalidOptionError('password', 'is the MQTT password; WebSocket ingest (/ingest) devices authenticate with a token');
  }
  if (transport === 'mqtt' && options.token !== undefined) {
    throw new InvalidOptionError('token', 'is for WebSocket ingest (ws://HOST:PORT/ingest); MQTT devices authenticate with a password');
  }
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token === '')) {
    throw new InvalidOptionError('token', 'must be a non-empty string (leave it out for anonymous devices)');
  }
  if (options.format !== undefined && !PAYLOAD_FORMATS.includes(options.format)) {
    throw new InvalidOptionError('format', `must be one of ${PAYLOAD_FORMATS.join(', ')}, got ${JSON.stringify(options.format)}`);
  }
  const profiles = options.profiles ?? loadProfiles();
  if (profiles.length === 0) throw new InvalidOptionError('profiles', 'needs at least one profile');
  const seed = options.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : checkNumber('seed', options.seed, 0, 2 ** 32 - 1, true);
  const startTimeMs = options.startTimeMs === undefined ? undefined : checkNumber('startTimeMs', options.startTimeMs, 0, 2 ** 48 - 1, true);
  const idPrefix = options.idPrefix ?? 'device-';
  // Client ids become topic levels: no '/', '+', '#' (MQTT-4.7.1) and short enough for MQTT 3.1 brokers' 23-byte limit.
  if (!/^[A-Za-z0-9_.-]{0,16}$/.test(idPrefix)) throw new InvalidOptionError('idPrefix', `'${idPrefix}' may use only letters, digits, '_', '.', '-' (at most 16)`);
  const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  checkNumber('backoff.initialMs', backoff.initialMs, 1, 3_600_000, false);
  checkNumber('backoff.maxMs', backoff.maxMs, backoff.initialMs, 3_600_000, false);
  checkNumber('backoff.multiplier', backoff.multiplier, 1, 10, false);
  const faults = { ...DEFAULT_FAULTS, ...options.faults };
  for (const key of ['malformed', 'oversize', 'duplicate', 'burst', 'flap'] as const) checkNumber(`faults.${key}`, faults[key], 0, 1, false);
  checkNumber('faults.oversizeBytes', faults.oversizeBytes, 1, MAX_OVERSIZE_BYTES, true);
  checkNumber('faults.burstSize', faults.burstSize, 1, MAX_BURST_SIZE, true);
  checkNumber('faults.clockSkewMs', faults.clockSkewMs, 0, MAX_CLOCK_SKEW_MS, true);
  return Object.freeze({
    gateway: options.gateway,
    transport,
    devices,
    ratePerSecond,
    durationS,
    qos,
    profiles: Object.freeze([...profiles]),
    format: options.format,
    seed,
    startTimeMs,
    idPrefix,
    password: options.password,
    token: options.token,
    bufferReadings: checkNumber('bufferReadings', options.bufferReadings ?? DEFAULT_BUFFER_READINGS, 1, MAX_BUFFER_READINGS, true),
    inflightMax: checkNumber('inflightMax', options.inflightMax ?? DEFAULT_INFLIGHT_MAX, 1, MAX_INFLIGHT, true),
    rampPerSecond: checkNumber('rampPerSecond', options.rampPerSecond ?? DEFAULT_RAMP_PER_SECOND, 1, 1_000_000, false),
    backoff: Object.freeze(backoff),
    connectTimeoutMs: checkNumber('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, 100, 600_000, true),
    keepaliveS: checkNumber('keepaliveS', options.keepaliveS ?? DEFAULT_KEEPALIVE_S, 0, 65_535, true),
    drainTimeoutMs: checkNumber('drainTimeoutMs', options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS, 0, 3_600_000, true),
    faults: Object.freeze(faults),
    samplesPerDevice,
    logger: options.logger ?? pino({ level: 'silent' }),
    onAck: options.onAck,
  });
}

/** The id of device `index` (0-based): device-0001, device-0002, ... */
export function deviceId(config: Pick<FleetConfig, 'idPrefix' | 'devices'>, index: number): string {
  const width = Math.max(4, String(config.devices).length);
  return `${config.idPrefix}${String(index + 1).padStart(width, '0')}`;
}
