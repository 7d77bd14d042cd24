/**
 * The frames of the producer protocol at `/produce` (docs/consume.md, "The producer protocol"):
 * parsing what a client sends, field by field, with messages that name what is wrong and what is
 * allowed. Records use the same field encoding as /consume's records frames (consume-frames.ts
 * `toWire`): text as is, bytes as base64. Pure functions: no sockets, no log.
 */
import type { AppendRecord } from '../log/prepare-records.js';
import { describe } from '../log/topic-config.js';
import { MAX_FRAME_ID_CHARS, type FrameId } from './consume-frames.js';

export type { FrameId };

/** A produce frame, checked and decoded: its records are ready for `log.append`. */
export interface ProduceFrame {
  type: 'produce';
  id: FrameId | undefined;
  topic: string;
  records: AppendRecord[];
}

/** A frame that could not be understood; `message` names what is wrong and what is allowed. */
export interface InvalidProduceFrame {
  type: 'invalid';
  /** The frame's id when it had a valid one, so the answer can echo it. */
  id: FrameId | undefined;
  message: string;
}

export const PRODUCE_FRAME_SHAPE =
  '{"type":"produce","id"?,"topic":"…","records":[{"key"?|"keyBase64"?,"value"|"valueBase64","headers"?:{"name":"text"|{"base64":"…"}},"timestamp"?:MS,"partition"?:N}]}';
const FRAME_KEYS = ['type', 'id', 'topic', 'records'];
const RECORD_KEYS = ['key', 'keyBase64', 'value', 'valueBase64', 'headers', 'timestamp', 'partition'];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Room for a frame's JSON around the base64 of its largest record. */
const FRAME_SLACK_BYTES = 64 * 1024;
/** A frame may carry this many records of the largest size (maxMessageBytes), base64-encoded... */
const FRAME_BATCH_ALLOWANCE = 4;
/** ...but is never larger than this (unless one record needs more): ws holds a frame whole in memory while it arrives. */
const FRAME_BYTES_CAP = 16 * 1024 * 1024;

/**
 * The largest WebSocket message accepted on /produce (the route's maxPayloadBytes; ws closes the
 * connection with 1009 past it): {@link FRAME_BATCH_ALLOWANCE} records of `maxMessageBytes` as
 * base64, capped at 16 MiB, and never less than one such record. The same rule as /ingest
 * (ws-ingest.ts), so a record that fits one endpoint fits the other. 5.6 MiB with 1 MiB records.
 */
export function produceFrameBytesMax(maxMessageBytes: number): number {
  const oneRecord = Math.ceil(maxMessageBytes / 3) * 4 + FRAME_SLACK_BYTES;
  return Math.max(oneRecord, Math.min(FRAME_BATCH_ALLOWANCE * oneRecord, FRAME_BYTES_CAP));
}

class Invalid extends Error {}

/**
 * Parses one text frame from a producer. Never throws: what cannot be understood is an
 * {@link InvalidProduceFrame}. `maxRecords` is the log's batch limit: one frame is one append.
 */
export function parseProduceFrame(text: string, maxRecords: number): ProduceFrame | InvalidProduceFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { type: 'invalid', id: undefined, message: `a frame must be a JSON object, got text that is not JSON: ${clip(text)}` };
  }
  if (!isObject(value)) return { type: 'invalid', id: undefined, message: `a frame must be a JSON object ${PRODUCE_FRAME_SHAPE}, got ${describe(value)}` };
  if (value['type'] !== 'produce') {
    return { type: 'invalid', id: undefined, message: `unknown frame type ${describe(value['type'])}; the only type is 'produce': ${PRODUCE_FRAME_SHAPE}` };
  }
  let id: FrameId | undefined;
  try {
    id = frameId(value['id']);
    keys(value, FRAME_KEYS, 'the frame');
    const topic = value['topic'];
    if (typeof topic !== 'string') throw new Invalid(`"topic" must be a topic name, got ${describe(topic)}`);
    const records = value['records'];
    if (!Array.isArray(records) || records.length === 0 || records.length > maxRecords) {
      throw new Invalid(`"records" must be a list of 1 to ${maxRecords} records (one frame is one append), got ${records === undefined ? 'nothing' : describe(records)}${Array.isArray(records) ? ` of ${records.length}` : ''}`);
    }
    return { type: 'produce', id, topic, records: records.map((r: unknown, i) => parseRecord(r, `records[${i}]`)) };
  } catch (error) {
    if (error instanceof Invalid) return { type: 'invalid', id, message: `${error.message}; a produce frame is ${PRODUCE_FRAME_SHAPE}` };
    throw error;
  }
}

function parseRecord(input: unknown, at: string): AppendRecord {
  if (!isObject(input)) throw new Invalid(`${at} must be an object {"value"|"valueBase64", "key"?, "headers"?, "timestamp"?, "partition"?}, got ${describe(input)}`);
  keys(input, RECORD_KEYS, at);
  const record: AppendRecord = { value: bytesField(input, 'value', 'valueBase64', at, true) as Buffer };
  const key = bytesField(input, 'key', 'keyBase64', at, false);
  if (key !== undefined) record.key = key;
  const timestamp = input['timestamp'];
  if (timestamp !== undefined) {
    if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
      throw new Invalid(`${at}.timestamp must be milliseconds since the epoch (a whole number ≥ 0), got ${describe(timestamp)}`);
    }
    record.timestamp = timestamp;
  }
  const partition = input['partition'];
  if (partition !== undefined) {
    // The log checks it against the topic's partitions and names them (UNKNOWN_PARTITION).
    if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0) throw new Invalid(`${at}.partition must be a whole number ≥ 0, got ${describe(partition)}`);
    record.partition = partition;
  }
  const headers = input['headers'];
  if (headers !== undefined) record.headers = parseHeaders(headers, `${at}.headers`);
  return record;
}

/**
 * A field that is text (`name`) or bytes (`base64Name`), never both. Text is stored as its UTF-8
 * bytes for a value, and as a string key for a key (a string key and its UTF-8 bytes partition alike).
 */
function bytesField(r: Record<string, unknown>, name: string, base64Name: string, at: string, required: boolean): string | Buffer | null | undefined {
  const text = r[name];
  const b64 = r[base64Name];
  if (text !== undefined && b64 !== undefined) throw new Invalid(`${at} has both "${name}" and "${base64Name}": give one (text, or bytes as base64)`);
  if (b64 !== undefined) return base64(b64, `${at}.${base64Name}`);
  if (text === undefined) {
    if (required) throw new Invalid(`${at} needs "${name}" (UTF-8 text) or "${base64Name}" (bytes as base64)`);
    return undefined;
  }
  if (name === 'key' && text === null) return null;
  if (typeof text !== 'string') throw new Invalid(`${at}.${name} must be text (a string${name === 'key' ? ' or null' : ''}); send bytes as "${base64Name}", got ${describe(text)}`);
  return name === 'value' ? Buffer.from(text, 'utf8') : text;
}

function parseHeaders(headers: unknown, at: string): Record<string, string | Buffer> {
  if (!isObject(headers)) throw new Invalid(`${at} must be an object of name → "text" or {"base64":"…"}, got ${describe(headers)}`);
  const out: Record<string, string | Buffer> = {};
  for (const [name, v] of Object.entries(headers)) {
    // The log bounds the number of headers and their names (prepare-records.ts) and names the bad one.
    if (typeof v === 'string') out[name] = v;
    else if (isObject(v) && Object.keys(v).length === 1 && 'base64' in v) out[name] = base64(v['base64'], `${at}['${clip(name)}'].base64`);
    else throw new Invalid(`${at}['${clip(name)}'] must be text or {"base64":"…"}, got ${describe(v)}`);
  }
  return out;
}

function base64(v: unknown, at: string): Buffer {
  // Buffer.from skips characters that are not base64; a typo must not silently change the bytes.
  if (typeof v !== 'string' || !BASE64.test(v)) throw new Invalid(`${at} must be base64 text (A-Z a-z 0-9 + / and = padding), got ${describe(v)}`);
  return Buffer.from(v, 'base64');
}

function keys(f: Record<string, unknown>, allowed: readonly string[], what: string): void {
  const unknown = Object.keys(f).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw new Invalid(`unknown key ${unknown.map((k) => `"${clip(k)}"`).join(', ')} in ${what}; allowed are ${allowed.map((k) => `"${k}"`).join(', ')}`);
}

function frameId(v: unknown): FrameId | undefined {
  if (v === undefined) return undefined;
  if ((typeof v === 'string' && v.length > 0 && v.length <= MAX_FRAME_ID_CHARS) || (typeof v === 'number' && Number.isFinite(v))) return v;
  throw new Invalid(`"id" must be a string of 1 to ${MAX_FRAME_ID_CHARS} characters or a number, got ${describe(v)}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}
