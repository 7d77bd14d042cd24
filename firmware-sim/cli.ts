#!/usr/bin/env node
import { existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ProfileError } from '../devices/errors.js';
import { PAYLOAD_FORMATS, loadProfile } from '../devices/profile.js';
import type { PayloadFormat } from '../devices/profile.js';
import { AckLog } from './ack-log.js';
import { Fleet } from './fleet.js';
import { InvalidOptionError } from './options.js';
import type { FleetOptions } from './options.js';
import { formatStatusLine, formatSummary } from './status-line.js';

/** Exit codes: 2 for a usage error (bad option), 1 for a run that could not do its job. */
const EXIT_USAGE = 2;
const EXIT_FAILED = 1;
const STATUS_INTERVAL_MS = 1_000;

const HELP = `firmware-sim: a fleet of simulated sensors that publish to a gateway like real firmware.

Usage:
  firmware-sim [--gateway URL] [--devices N] [--rate R] [--duration S] [--qos 0|1]
               [--profile FILE]... [--seed N] [--report FILE] [more options below]

Each device is its own connection: MQTT 3.1.1 (client id and username device-0001, device-0002,
..., publishing to devices/{deviceId}/{stream}), or the gateway's WebSocket ingest (an auth frame
with the device id, then publish frames; docs/ws-ingest.md). It keeps unsent readings in a bounded
buffer while the gateway is unreachable (dropping the oldest when full, and counting the drops),
reconnects with exponential backoff and jitter, and sends the buffer oldest-first when back.

Run:
  --gateway URL         mqtt://HOST:PORT (mqtts:// for TLS), ws://HOST:PORT/mqtt for MQTT over
                        WebSocket, or ws://HOST:PORT/ingest for the gateway's WebSocket ingest
                        (wss:// for TLS) (default mqtt://127.0.0.1:1883)
  --devices N           number of devices, 1 to 20000 (default 10)
  --rate R              readings per second per device, up to 1000; 0.1 is one every 10 s (default 1)
  --duration S          seconds each device samples for (default 60); the run also ramps up
                        first and drains its buffers at the end
  --qos Q               MQTT QoS of every publish: 0 or 1 (default 1); WebSocket ingest acks
                        every reading, like QoS 1
  --seed N              integer 0 to 4294967295; the same seed gives the same readings (default: random,
                        printed in the summary and the report)
  --start-time T        simulated time of the first sample, ISO 8601 or ms since the epoch (default now);
                        with --seed it makes the timestamps reproducible too
  --report FILE         write a JSON report: counts sent, acknowledged, dropped, duplicated on purpose,
                        refused and dead-lettered by the gateway (WebSocket ingest), and the ack
                        latency histogram
  --ack-log FILE        append one JSON line {"device":ID,"stream":S,"seq":N} per acknowledged
                        reading (written at least every second and at exit), so a test can check
                        that every acknowledged reading was stored
  --log-level LEVEL     fatal, error, warn, info, debug or silent; logs go to stderr (default warn)
  -h, --help            show this help

Devices:
  --profile FILE        a device profile (devices/profiles/*.json); repeat to mix profiles, devices
                        take them in turn (default: every shipped profile)
  --format F            send every payload as json or edgebin, whatever the profile says
  --id-prefix P         client id prefix (default device-), letters, digits, '_', '.', '-'
  --password P          MQTT password of every device; {deviceId} is replaced by the device id
  --token T             WebSocket ingest token of every device; {deviceId} is replaced by the device
                        id; leave it out for anonymous devices
  --buffer N            readings a device buffers while it cannot send them (default 500)
  --inflight N          unacknowledged publishes per device at once, 1 to 1000 (default 16); over
                        WebSocket ingest the readings ready at once go out as one batch frame
  --ramp N              new connections per second while the fleet starts (default 500)
  --reconnect-min-ms MS first reconnect delay before jitter (default 1000)
  --reconnect-max-ms MS longest reconnect delay before jitter (default 30000)
  --connect-timeout-ms MS  give up a connection attempt after this (default 10000)
  --keepalive-s S       MQTT keep-alive, or WebSocket ping interval, in seconds; 0 to disable (default 60)
  --drain-timeout-ms MS how long the end of the run waits for buffers to empty (default 10000)

Fault injection (all off by default; P is a probability from 0 to 1):
  --fault-malformed P   per reading, also publish a corrupted payload (truncated JSON, bad edgebin)
  --fault-oversize P    per reading, also publish an oversize payload of --oversize-bytes
  --oversize-bytes N    size of an oversize payload (default 1048576)
  --fault-duplicate P   per reading, publish it twice with the same seq
  --fault-burst P       per reading, emit --burst-size extra readings at once
  --burst-size N        readings in a burst (default 20)
  --fault-flap P        per connected device per second, drop the connection and reconnect
  --fault-clock-skew-s S  skew each device clock by up to ±S seconds (and ±50 ppm drift)

While it runs on a terminal, one status line on stderr shows devices connected, readings/s sent and
acknowledged, ack latency p50/p99, errors and readings buffered. Ctrl-C stops early and still
prints the summary and writes the report.

Examples:
  firmware-sim --gateway mqtt://127.0.0.1:1883 --devices 500 --rate 2 --duration 60 --qos 1 --report run.json
  firmware-sim --gateway ws://127.0.0.1:8080/ingest --devices 100 --token 'secret-{deviceId}'
`;

const OPTIONS = {
  gateway: { type: 'string' },
  devices: { type: 'string' },
  rate: { type: 'string' },
  duration: { type: 'string' },
  qos: { type: 'string' },
  seed: { type: 'string' },
  'start-time': { type: 'string' },
  report: { type: 'string' },
  'ack-log': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  profile: { type: 'string', multiple: true },
  format: { type: 'string' },
  'id-prefix': { type: 'string' },
  password: { type: 'string' },
  token: { type: 'string' },
  buffer: { type: 'string' },
  inflight: { type: 'string' },
  ramp: { type: 'string' },
  'reconnect-min-ms': { type: 'string' },
  'reconnect-max-ms': { type: 'string' },
  'connect-timeout-ms': { type: 'string' },
  'keepalive-s': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  'fault-malformed': { type: 'string' },
  'fault-oversize': { type: 'string' },
  'oversize-bytes': { type: 'string' },
  'fault-duplicate': { type: 'string' },
  'fault-burst': { type: 'string' },
  'burst-size': { type: 'string' },
  'fault-flap': { type: 'string' },
  'fault-clock-skew-s': { type: 'string' },
} as const;

/** Maps a library option (as InvalidOptionError names it) back to the flag the user typed. */
const FLAG_OF: Readonly<Record<string, string>> = {
  gateway: '--gateway', devices: '--devices', ratePerSecond: '--rate', durationS: '--duration', qos: '--qos', seed: '--seed',
  startTimeMs: '--start-time', format: '--format', idPrefix: '--id-prefix', bufferReadings: '--buffer', inflightMax: '--inflight',
  rampPerSecond: '--ramp', 'backoff.initialMs': '--reconnect-min-ms', 'backoff.maxMs': '--reconnect-max-ms',
  connectTimeoutMs: '--connect-timeout-ms', keepaliveS: '--keepalive-s', drainTimeoutMs: '--drain-timeout-ms',
  'faults.malformed': '--fault-malformed', 'faults.oversize': '--fault-oversize', 'faults.oversizeBytes': '--oversize-bytes',
  'faults.duplicate': '--fault-duplicate', 'faults.burst': '--fault-burst', 'faults.burstSize': '--burst-size',
  'faults.flap': '--fault-flap', 'faults.clockSkewMs': '--fault-clock-skew-s', profiles: '--profile',
  password: '--password', token: '--token',
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

class UsageError extends Error {
  override name = 'UsageError';
}

function numberFlag(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  // Number('') is 0 and Number('0x10') is 16: accept plain decimal numbers only.
  if (!/^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text.trim())) throw new UsageError(`${flag}: '${text}' is not a number`);
  return Number(text);
}

function startTimeFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new UsageError(`--start-time: '${text}' is neither an ISO 8601 time (2026-01-31T08:00:00Z) nor ms since the epoch`);
  return ms;
}

/** Turns argv into Fleet options; throws UsageError with a message that names the flag. */
export function parseCommandLine(
  argv: readonly string[],
): { help: true } | { help: false; options: FleetOptions; reportFile: string | undefined; ackLogFile: string | undefined; logLevel: string } {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true; allowPositionals: false }>>['values'];
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(rephraseParseError(error as Error & { code?: string }));
  }
  if (values.help === true) return { help: true };
  const logLevel = values['log-level'] ?? 'warn';
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level: must be one of ${LOG_LEVELS.join(', ')}, got '${logLevel}'`);
  const qos = values.qos === undefined ? undefined : numberFlag('--qos', values.qos);
  if (qos !== undefined && qos !== 0 && qos !== 1) throw new UsageError(`--qos: must be 0 or 1, got '${values.qos}'`);
  const format = values.format;
  if (format !== undefined && !(PAYLOAD_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--format: must be one of ${PAYLOAD_FORMATS.join(', ')}, got '${format}'`);
  }
  const reportFile = values.report;
  if (reportFile !== undefined) {
    const dir = dirname(resolve(reportFile));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--report: folder '${dir}' does not exist`);
  }
  const ackLogFile = values['ack-log'];
  if (ackLogFile !== undefined) {
    const dir = dirname(resolve(ackLogFile));
    if (ackLogFile === '') throw new UsageError('--ack-log: needs a file name');
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--ack-log: folder '${dir}' does not exist`);
    if (existsSync(ackLogFile) && statSync(ackLogFile).isDirectory()) throw new UsageError(`--ack-log: '${ackLogFile}' is a folder, not a file`);
  }
  const profiles = values.profile?.map((file) => {
    try {
      return loadProfile(file);
    } catch (error) {
      if (error instanceof ProfileError) throw new UsageError(`--profile: ${error.message}`);
      throw error;
    }
  });
  const skewS = numberFlag('--fault-clock-skew-s', values['fault-clock-skew-s']);
  const n = (flag: keyof typeof OPTIONS): number | undefined => numberFlag(`--${flag}`, values[flag] as string | undefined);
  const options: FleetOptions = {
    gateway: values.gateway ?? 'mqtt://127.0.0.1:1883',
    devices: n('devices') ?? 10,
    ratePerSecond: n('rate') ?? 1,
    durationS: n('duration') ?? 60,
    ...(qos !== undefined && { qos: qos as 0 | 1 }),
    ...(profiles !== undefined && { profiles }),
    ...(format !== undefined && { format: format as PayloadFormat }),
    ...defined('seed', n('seed')),
    ...defined('startTimeMs', startTimeFlag(values['start-time'])),
    ...defined('idPrefix', values['id-prefix']),
    ...defined('password', values.password),
    ...defined('token', values.token),
    ...defined('bufferReadings', n('buffer')),
    ...defined('inflightMax', n('inflight')),
    ...defined('rampPerSecond', n('ramp')),
    ...defined('connectTimeoutMs', n('connect-timeout-ms')),
    ...defined('keepaliveS', n('keepalive-s')),
    ...defined('drainTimeoutMs', n('drain-timeout-ms')),
    backoff: { ...defined('initialMs', n('reconnect-min-ms')), ...defined('maxMs', n('reconnect-max-ms')) },
    faults: {
      ...defined('malformed', n('fault-malformed')),
      ...defined('oversize', n('fault-oversize')),
      ...defined('oversizeBytes', n('oversize-bytes')),
      ...defined('duplicate', n('fault-duplicate')),
      ...defined('burst', n('fault-burst')),
      ...defined('burstSize', n('burst-size')),
      ...defined('flap', n('fault-flap')),
      ...defined('clockSkewMs', skewS === undefined ? undefined : Math.round(skewS * 1000)),
    },
  };
  return { help: false, options, reportFile, ackLogFile, logLevel };
}

function defined<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function rephraseParseError(error: Error & { code?: string }): string {
  const unknown = /Unknown option '([^']+)'/.exec(error.message);
  if (unknown !== null) return `unknown option '${unknown[1]}'; see firmware-sim --help for the options`;
  const missing = /Option '(-\w, )?(--[\w-]+)[^']*' argument missing/.exec(error.message);
  if (missing !== null) return `${missing[2]}: needs a value`;
  const ambiguous = /Option '(-\w, )?(--[\w-]+)[^']*' argument is ambiguous/.exec(error.message);
  if (ambiguous !== null) return `${ambiguous[2]}: needs a value (a value starting with '-' is written ${ambiguous[2]}=-VALUE)`;
  const positional = /Unexpected argument '([^']+)'/.exec(error.message);
  if (positional !== null) return `unexpected argument '${positional[1]}': options are written --name value; see firmware-sim --help`;
  return error.message;
}

function writeReport(file: string, report: unknown): void {
  // Write then rename, so a reader never sees half a report.
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(tmp, file);
}

/** Runs the command line; returns the exit code. Never throws for a user's mistake. */
export async function main(argv: readonly string[]): Promise<number> {
  let parsed: ReturnType<typeof parseCommandLine>;
  let fleet: Fleet;
  let ackLog: AckLog | undefined;
  try {
    parsed = parseCommandLine(argv);
    if (parsed.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const logger = pino({ level: parsed.logLevel, base: { component: 'firmware-sim' } }, pino.destination(2));
    // The fleet validates its options before the ack log truncates a file; nothing is acked before start.
    const onAck = parsed.ackLogFile === undefined ? undefined : (device: string, stream: string, seq: number) => ackLog?.record(device, stream, seq);
    fleet = new Fleet({ ...parsed.options, logger, ...(onAck !== undefined && { onAck }) });
    if (parsed.ackLogFile !== undefined) ackLog = openAckLog(parsed.ackLogFile);
  } catch (error) {
    if (error instanceof UsageError) return usage(error.message);
    if (error instanceof InvalidOptionError) return usage(`${FLAG_OF[error.option] ?? error.option}: ${error.detail}`);
    if (error instanceof ProfileError) return usage(error.message);
    throw error;
  }
  const live = process.stderr.isTTY === true;
  let statusTimer: NodeJS.Timeout | undefined;
  let last = fleet.snapshot();
  if (live) {
    statusTimer = setInterval(() => {
      const now = fleet.snapshot();
      process.stderr.write(`\r\x1b[K${formatStatusLine(last, now, fleet.stats.takeInterval())}`);
      last = now;
    }, STATUS_INTERVAL_MS);
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143); // a second Ctrl-C means now
    process.stderr.write(`\n${signal}: stopping, press Ctrl-C again to quit at once\n`);
    void fleet.close();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const report = await fleet.run();
  ackLog?.close();
  clearInterval(statusTimer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (live) process.stderr.write('\r\x1b[K');
  process.stdout.write(formatSummary(report));
  if (parsed.reportFile !== undefined) {
    writeReport(parsed.reportFile, report);
    process.stdout.write(`report written to ${parsed.reportFile}\n`);
  }
  if (report.readings.generated > 0 && report.readings.sent === 0) {
    const codes = Object.keys(report.connections.errorsByCode).join(', ') || 'no answer';
    process.stderr.write(`firmware-sim: no device could send to ${report.settings.gateway} (${codes})\n`);
    return EXIT_FAILED;
  }
  return signals > 0 ? 130 : 0;
}

/** Opens the --ack-log file; a file that cannot be written is the user's mistake, said in one line. */
function openAckLog(file: string): AckLog {
  try {
    return new AckLog(file);
  } catch (error) {
    throw new UsageError(`--ack-log: cannot write '${file}' (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

function usage(message: string): number {
  process.stderr.write(`firmware-sim: ${message}\n`);
  return EXIT_USAGE;
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      // Not a usage error: a bug or an unexpected failure. Say what it was, without a stack trace by default.
      process.stderr.write(`firmware-sim: ${(error as Error).message ?? String(error)}\n`);
      process.exitCode = EXIT_FAILED;
    },
  );
}
