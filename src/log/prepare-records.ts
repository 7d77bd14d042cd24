import { EdgelogError } from '../errors.js';
import { partitionForKey } from './murmur2.js';
import { encodedSize, type HeaderValue } from './record-codec.js';
import { describe, type TopicConfig } from './topic-config.js';

/** A record given to `append`. */
export interface AppendRecord {
  /** Records with the same key go to the same partition (Kafka's default partitioner). */
  key?: string | Uint8Array | null;
  value: Uint8Array;
  /** The producer's time in ms since the epoch; defaults to the append time. */
  timestamp?: number;
  headers?: Record<string, HeaderValue>;
  /** An explicit partition, overriding the key's. */
  partition?: number;
}

/** A validated record with its partition chosen and its stored size known. */
export interface PreparedRecord {
  partition: number;
  key: string | Uint8Array | null;
  value: Uint8Array;
  timestamp: number | undefined;
  headers: Record<string, HeaderValue> | undefined;
  size: number;
}

const MAX_HEADERS = 1024;
const MAX_HEADER_NAME_BYTES = 255;

/**
 * Validates `records` for a topic and picks each record's partition. Throws an EdgelogError naming
 * the first bad record and field; on error nothing has been queued or changed.
 * `stickyPartition` is where records without key or partition go (one partition per append call,
 * like Kafka's sticky partitioner, so a batch stays together).
 */
export function prepareRecords(
  topic: string,
  config: TopicConfig,
  records: unknown,
  maxRecords: number,
  stickyPartition: number,
): { prepared: PreparedRecord[]; bytes: number } {
  if (!Array.isArray(records)) {
    throw new EdgelogError('INVALID_ARGUMENT', `records must be an array of { key?, value, timestamp?, headers? }, got ${describe(records)}`);
  }
  if (records.length === 0) throw new EdgelogError('INVALID_ARGUMENT', 'records must hold at least one record');
  if (records.length > maxRecords) {
    throw new EdgelogError('INVALID_ARGUMENT', `one append takes at most ${maxRecords} records (maxBatchRecords), got ${records.length}`);
  }
  const prepared: PreparedRecord[] = new Array(records.length);
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    const r = prepareOne(topic, config, records[i], `records[${i}]`, stickyPartition);
    prepared[i] = r;
    bytes += r.size;
  }
  return { prepared, bytes };
}

function prepareOne(topic: string, config: TopicConfig, input: unknown, at: string, sticky: number): PreparedRecord {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new EdgelogError('INVALID_ARGUMENT', `${at} must be an object { key?, value, timestamp?, headers? }, got ${describe(input)}`);
  }
  const r = input as Record<string, unknown>;
  const value = r['value'];
  if (!(value instanceof Uint8Array)) {
    throw new EdgelogError('INVALID_ARGUMENT', `${at}.value must be a Buffer or Uint8Array, got ${describe(value)}`);
  }
  const key = r['key'] ?? null;
  if (key !== null && typeof key !== 'string' && !(key instanceof Uint8Array)) {
    throw new EdgelogError('INVALID_ARGUMENT', `${at}.key must be a string, Buffer or Uint8Array, got ${describe(key)}`);
  }
  const timestamp = r['timestamp'];
  if (timestamp !== undefined && (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || timestamp < 0)) {
    throw new EdgelogError('INVALID_ARGUMENT', `${at}.timestamp must be milliseconds since the epoch (a number ≥ 0), got ${describe(timestamp)}`);
  }
  const headers = r['headers'];
  if (headers !== undefined) checkHeaders(headers, at);
  let partition = r['partition'];
  if (partition === undefined) {
    partition = key === null ? sticky : partitionForKey(typeof key === 'string' ? keyBytes(key) : key, config.partitions);
  } else if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0 || partition >= config.partitions) {
    throw new EdgelogError(
      'UNKNOWN_PARTITION',
      `${at}.partition ${describe(partition)} does not exist: topic '${topic}' has partitions 0 to ${config.partitions - 1}`,
    );
  }
  const size = encodedSize({ key, value, headers: headers as Record<string, HeaderValue> | undefined });
  if (size > config.maxMessageBytes) {
    throw new EdgelogError(
      'RECORD_TOO_LARGE',
      `${at} is ${size} bytes stored, over topic '${topic}' maxMessageBytes of ${config.maxMessageBytes}`,
    );
  }
  return {
    partition: partition as number,
    key,
    value,
    timestamp: timestamp as number | undefined,
    headers: headers as Record<string, HeaderValue> | undefined,
    size,
  };
}

/** Scratch space for hashing string keys without allocating; keys longer than it get their own buffer. */
const keyScratch = Buffer.allocUnsafe(1024);

function keyBytes(key: string): Uint8Array {
  if (key.length * 3 > keyScratch.length) return Buffer.from(key);
  return keyScratch.subarray(0, keyScratch.write(key));
}

function checkHeaders(headers: unknown, at: string): void {
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers) || headers instanceof Uint8Array) {
    throw new EdgelogError('INVALID_ARGUMENT', `${at}.headers must be an object of name → string or bytes, got ${describe(headers)}`);
  }
  let count = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (++count > MAX_HEADERS) throw new EdgelogError('INVALID_ARGUMENT', `${at}.headers has more than ${MAX_HEADERS} entries`);
    const nameBytes = Buffer.byteLength(name);
    if (nameBytes === 0 || nameBytes > MAX_HEADER_NAME_BYTES) {
      throw new EdgelogError('INVALID_ARGUMENT', `${at}.headers names must be 1 to ${MAX_HEADER_NAME_BYTES} bytes, got ${nameBytes}`);
    }
    if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
      throw new EdgelogError('INVALID_ARGUMENT', `${at}.headers['${name}'] must be a string or bytes, got ${describe(value)}`);
    }
  }
}
