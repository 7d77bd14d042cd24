import { resolve } from 'node:path';
import { EdgelogError } from '../../errors.js';
import { validateTopicName } from '../../log/topic-config.js';

/**
 * The `connectors:` section of the gateway config: file connectors in the manner of Kafka
 * Connect's FileStreamSource and FileStreamSink (docs/connectors.md). Parsed and validated here,
 * once, with refusals that name the key path and what is allowed (STYLE.md §6); src/config.ts
 * calls {@link parseConnectors} from its validate().
 */

export type ConnectorType = 'file-source' | 'file-sink';

export interface FileSourceOptions {
  /** Every line's record key (all lines then go to that key's partition); null for none (partition 0). */
  key: string | null;
  /** How often the file is checked when no change event arrives (fs.watch can miss events on network and overlay filesystems). */
  pollIntervalMs: number;
}

export type SinkFormat = 'value' | 'json';

export interface FileSinkOptions {
  /** `value`: the record's value and a newline. `json`: one JSON object per line with partition, offset, timestamp, key and value. */
  format: SinkFormat;
  /** Records written per write + fsync + offset commit. */
  batchRecords: number;
}

interface ConnectorBase {
  /** Names the connector in logs, its consumer group and its state store (`connect.<name>`). */
  name: string;
  /** The file, as written in the config (resolved against the working directory at start). */
  file: string;
  topic: string;
}

export interface FileSourceConfig extends ConnectorBase {
  type: 'file-source';
  options: FileSourceOptions;
}

export interface FileSinkConfig extends ConnectorBase {
  type: 'file-sink';
  options: FileSinkOptions;
}

export type ConnectorConfig = FileSourceConfig | FileSinkConfig;

/** Each connector holds an open file, a directory watch and a timer: a bound on those. */
export const MAX_CONNECTORS = 64;
/** Names become `connect.<name>` group ids and store names (at most 249 characters of a-z A-Z 0-9 . _ -); 64 is plenty for a name. */
export const CONNECTOR_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const CONNECTOR_NAME_RULE = '1 to 64 of a-z A-Z 0-9 . _ -';
/** A record key is metadata, not payload: the same bound as a state store key. */
export const MAX_SOURCE_KEY_BYTES = 1024;
/** Below 100 ms polling costs CPU for nothing (fs.watch is the fast path); above a minute a missed event stalls a tail too long. */
export const POLL_INTERVAL_MS_MIN = 100;
export const POLL_INTERVAL_MS_MAX = 60_000;
export const DEFAULT_POLL_INTERVAL_MS = 1000;
/** One batch is one fsync of the file and one offset commit: 500 records amortise both; the log reads at most 10,000 per call. */
export const DEFAULT_SINK_BATCH_RECORDS = 500;
export const SINK_BATCH_RECORDS_MAX = 10_000;

const TYPES: readonly ConnectorType[] = ['file-source', 'file-sink'];
const TOP_KEYS = ['name', 'type', 'file', 'topic', 'options'];
const OPTION_KEYS: Record<ConnectorType, readonly string[]> = {
  'file-source': ['key', 'pollIntervalMs'],
  'file-sink': ['format', 'batchRecords'],
};
const FORMATS: readonly SinkFormat[] = ['value', 'json'];

/** The consumer group and state store of a connector. */
export function connectorGroup(name: string): string {
  return `connect.${name}`;
}

function refuse(path: string, message: string): never {
  throw new EdgelogError('INVALID_CONFIG', `config key '${path}' ${message}`);
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (Array.isArray(v)) return 'a list';
  if (v === null || v === undefined) return String(v);
  return typeof v === 'object' ? 'a mapping' : String(v);
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(path: string, value: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) refuse(`${path}.${k}`, `is not known: allowed ${what} are ${allowed.join(', ')}`);
  }
}

function nonEmptyString(path: string, v: unknown, what: string): string {
  if (typeof v !== 'string' || v.trim() === '') refuse(path, `must be ${what}, got ${show(v)}`);
  return v;
}

function integer(path: string, v: unknown, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) refuse(path, `must be an integer from ${min} to ${max}, got ${show(v)}`);
  return v;
}

/**
 * Validates the `connectors` config value and returns it with every option filled in. Throws
 * INVALID_CONFIG naming the key path (`connectors[1].options.format`) and what is allowed.
 */
export function parseConnectors(value: unknown): ConnectorConfig[] {
  // `connectors:` with nothing under it (every entry commented out) reads as null: no connectors.
  if (value === null) return [];
  if (!Array.isArray(value) || value.length > MAX_CONNECTORS) {
    refuse('connectors', `must be a list of at most ${MAX_CONNECTORS} connectors { name, type, file, topic, options }, got ${show(value)}`);
  }
  const names = new Map<string, number>();
  const files = new Map<string, number>();
  return value.map((entry: unknown, i) => {
    const at = `connectors[${i}]`;
    const c = parseOne(at, entry);
    const sameName = names.get(c.name);
    if (sameName !== undefined) refuse(`${at}.name`, `repeats the name ${show(c.name)} of connectors[${sameName}]: names must be unique (each has its own offsets and state)`);
    names.set(c.name, i);
    // Two connectors on one file would feed a sink back into a source, or two sinks into each other's truncation on restart.
    const path = resolve(c.file);
    const sameFile = files.get(path);
    if (sameFile !== undefined) refuse(`${at}.file`, `names the file of connectors[${sameFile}] (${path}): each file may belong to one connector`);
    files.set(path, i);
    return c;
  });
}

function parseOne(at: string, entry: unknown): ConnectorConfig {
  if (!isMapping(entry)) refuse(at, `must be a mapping { name, type, file, topic, options }, got ${show(entry)}`);
  checkKeys(at, entry, TOP_KEYS, 'keys of a connector');
  const name = entry['name'];
  if (typeof name !== 'string' || !CONNECTOR_NAME_PATTERN.test(name)) refuse(`${at}.name`, `must be ${CONNECTOR_NAME_RULE}, got ${show(name)}`);
  const type = entry['type'];
  if (!TYPES.includes(type as ConnectorType)) refuse(`${at}.type`, `must be one of ${TYPES.join(', ')}, got ${show(type)}`);
  const file = nonEmptyString(`${at}.file`, entry['file'], 'the path of a file');
  const topicValue = nonEmptyString(`${at}.topic`, entry['topic'], 'a topic name');
  try {
    validateTopicName(topicValue);
  } catch (error) {
    refuse(`${at}.topic`, `is not a valid topic name: ${(error as Error).message}`);
  }
  const options = entry['options'] ?? {};
  if (!isMapping(options)) refuse(`${at}.options`, `must be a mapping, got ${show(options)}`);
  checkKeys(`${at}.options`, options, OPTION_KEYS[type as ConnectorType], `options of a ${type as string}`);
  const base = { name, file, topic: topicValue };
  if (type === 'file-source') return { ...base, type, options: sourceOptions(`${at}.options`, options) };
  return { ...base, type: 'file-sink', options: sinkOptions(`${at}.options`, options) };
}

function sourceOptions(at: string, o: Record<string, unknown>): FileSourceOptions {
  const key = o['key'] ?? null;
  if (key !== null && (typeof key !== 'string' || key === '' || Buffer.byteLength(key) > MAX_SOURCE_KEY_BYTES)) {
    refuse(`${at}.key`, `must be a non-empty string of at most ${MAX_SOURCE_KEY_BYTES} bytes, or left out for no key, got ${show(key)}`);
  }
  return { key, pollIntervalMs: integer(`${at}.pollIntervalMs`, o['pollIntervalMs'], POLL_INTERVAL_MS_MIN, POLL_INTERVAL_MS_MAX, DEFAULT_POLL_INTERVAL_MS) };
}

function sinkOptions(at: string, o: Record<string, unknown>): FileSinkOptions {
  const format = o['format'] ?? 'value';
  if (!FORMATS.includes(format as SinkFormat)) refuse(`${at}.format`, `must be one of ${FORMATS.join(', ')}, got ${show(format)}`);
  return {
    format: format as SinkFormat,
    batchRecords: integer(`${at}.batchRecords`, o['batchRecords'], 1, SINK_BATCH_RECORDS_MAX, DEFAULT_SINK_BATCH_RECORDS),
  };
}
