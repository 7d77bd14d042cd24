/**
 * Records as the client hands them to applications and takes them from them, and their wire
 * encoding (docs/consume.md): text as is, bytes as base64 (`keyBase64`, `valueBase64`,
 * `{"base64":…}` header values). The client's own small types: it shares no code with the gateway.
 */
import { EdgelogClientError } from './errors.js';

/** A partition of a topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A record read from the log. */
export interface ConsumerRecord {
  topic: string;
  partition: number;
  offset: number;
  /** The producer's time, ms since the epoch. */
  timestamp: number;
  /** A text key as a string, a bytes key as a Buffer, or null. */
  key: string | Buffer | null;
  value: Buffer;
  /** Text header values as strings, bytes as Buffers. */
  headers: Record<string, string | Buffer>;
}

/** The records of one partition, in offset order, as one records frame brought them. */
export interface Batch {
  topic: string;
  partition: number;
  records: ConsumerRecord[];
  /** The offset the partition's next record will get: `highWatermark − last offset − 1` is the lag. */
  highWatermark: number;
}

/** A record to produce. */
export interface ProducerRecord {
  /** Records with the same key go to the same partition (Kafka's default partitioner). */
  key?: string | Uint8Array | null;
  /** A string is stored as its UTF-8 bytes. */
  value: string | Uint8Array;
  headers?: Record<string, string | Uint8Array>;
  /** The producer's time in ms since the epoch; default the gateway's append time. */
  timestamp?: number;
  /** An explicit partition, overriding the key's. */
  partition?: number;
}

/** Where a produced record went. */
export interface ProduceResult {
  partition: number;
  offset: number;
}

type WireHeaders = Record<string, string | { base64: string }>;

/** Decodes one record of a records frame; throws PROTOCOL_ERROR on a record this client cannot read. */
export function fromWire(topic: string, partition: number, r: unknown): ConsumerRecord {
  const w = r as { offset?: unknown; timestamp?: unknown; key?: unknown; keyBase64?: unknown; valueBase64?: unknown; headers?: unknown };
  if (typeof w?.offset !== 'number' || typeof w.timestamp !== 'number' || typeof w.valueBase64 !== 'string') {
    throw new EdgelogClientError('PROTOCOL_ERROR', `a record from the gateway lacks offset, timestamp or valueBase64 (${topic}/${partition}); is the gateway's version a match for this client?`);
  }
  const headers: Record<string, string | Buffer> = {};
  for (const [name, v] of Object.entries((w.headers ?? {}) as WireHeaders)) headers[name] = typeof v === 'string' ? v : Buffer.from(v.base64, 'base64');
  const key = typeof w.keyBase64 === 'string' ? Buffer.from(w.keyBase64, 'base64') : typeof w.key === 'string' ? w.key : null;
  return { topic, partition, offset: w.offset, timestamp: w.timestamp, key, value: Buffer.from(w.valueBase64, 'base64'), headers };
}

/** Encodes one record for a produce frame; throws INVALID_ARGUMENT naming the field a type is wrong in. */
export function toWire(r: ProducerRecord, at: string): Record<string, unknown> {
  if (typeof r !== 'object' || r === null) throw invalid(`${at} must be an object { value, key?, headers?, timestamp?, partition? }`);
  const out: Record<string, unknown> = {};
  if (typeof r.value === 'string') out['value'] = r.value;
  else if (r.value instanceof Uint8Array) out['valueBase64'] = base64(r.value);
  else throw invalid(`${at}.value must be a string or bytes (Buffer, Uint8Array)`);
  if (typeof r.key === 'string') out['key'] = r.key;
  else if (r.key instanceof Uint8Array) out['keyBase64'] = base64(r.key);
  else if (r.key !== undefined && r.key !== null) throw invalid(`${at}.key must be a string, bytes or null`);
  if (r.headers !== undefined) {
    if (typeof r.headers !== 'object' || r.headers === null) throw invalid(`${at}.headers must be an object of name → string or bytes`);
    const headers: WireHeaders = {};
    for (const [name, v] of Object.entries(r.headers)) {
      if (typeof v === 'string') headers[name] = v;
      else if (v instanceof Uint8Array) headers[name] = { base64: base64(v) };
      else throw invalid(`${at}.headers['${name}'] must be a string or bytes`);
    }
    out['headers'] = headers;
  }
  // The gateway checks the numbers' ranges and names what is allowed.
  if (r.timestamp !== undefined) out['timestamp'] = r.timestamp;
  if (r.partition !== undefined) out['partition'] = r.partition;
  return out;
}

/** "topic/partition": the key of per-partition state. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function invalid(message: string): EdgelogClientError {
  return new EdgelogClientError('INVALID_ARGUMENT', message);
}
