/**
 * The frames of the consumer protocol at `/consume` (docs/consume.md): parsing what a client
 * sends, field by field, with messages that name what is wrong and what is allowed, and encoding
 * records for the wire. Pure functions: no sockets, no log, no coordinator.
 */
import type { StoredRecord } from '../log/record-codec.js';
import { MAX_SUBSCRIBED_TOPICS } from '../groups/join-request.js';
import { MAX_OFFSET_COMMITS, type OffsetCommit } from '../log/offsets.js';

/** Credit one frame may add, and the most a connection may hold: bounds what the gateway sends unasked. */
export const MAX_CREDIT_RECORDS = 100_000;
export const MAX_CREDIT_BYTES = 64 * 1024 * 1024;
/** A frame id is echoed in its answer, so it is bounded like any other input. */
export const MAX_FRAME_ID_CHARS = 128;

export type FrameId = string | number;
export type SeekTarget = 'earliest' | 'latest' | { offset: number } | { timestamp: number };

export interface TopicPartitionRef {
  topic: string;
  partition: number;
}

export type ConsumeFrame =
  | {
      type: 'join';
      group: string;
      clientId: string;
      topics: string[];
      strategy: 'round-robin' | 'sticky' | undefined;
      sessionTimeoutMs: number | undefined;
      offsetReset: 'earliest' | 'latest' | undefined;
    }
  | { type: 'credit'; records: number; bytes: number }
  | { type: 'commit'; id: FrameId | undefined; generation: number; offsets: OffsetCommit[] }
  | { type: 'seek'; id: FrameId | undefined; topic: string; partition: number; to: SeekTarget }
  | { type: 'pause' | 'resume'; partitions: TopicPartitionRef[] }
  | { type: 'heartbeat' }
  | { type: 'leave' }
  | { type: 'invalid'; id: FrameId | undefined; message: string };

const SHAPES: Record<string, string> = {
  join: '{"type":"join","group":"…","topics":["…"],"clientId"?,"strategy"?:"sticky"|"round-robin","sessionTimeoutMs"?,"offsetReset"?:"earliest"|"latest"}',
  credit: '{"type":"credit","records":N,"bytes":N}',
  commit: '{"type":"commit","id"?,"generation":N,"offsets":[{"topic","partition","offset","metadata"?}]}',
  seek: '{"type":"seek","id"?,"topic","partition","to":"earliest"|"latest"|{"offset":N}|{"timestamp":MS}}',
  pause: '{"type":"pause","partitions":[{"topic","partition"}]}',
  resume: '{"type":"resume","partitions":[{"topic","partition"}]}',
  heartbeat: '{"type":"heartbeat"}',
  leave: '{"type":"leave"}',
};
const TYPES = Object.keys(SHAPES).map((t) => `'${t}'`).join(', ');

class Invalid extends Error {}

/** Parses one text frame from a consumer. Never throws: what cannot be understood is an `invalid` frame. */
export function parseConsumeFrame(text: string): ConsumeFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { type: 'invalid', id: undefined, message: `a frame must be a JSON object, got text that is not JSON: ${clip(text)}` };
  }
  if (!isObject(value)) return { type: 'invalid', id: undefined, message: `a frame must be a JSON object with a "type" (${TYPES}), got ${describe(value)}` };
  const type = value['type'];
  if (typeof type !== 'string' || !(type in SHAPES)) {
    return { type: 'invalid', id: undefined, message: `unknown frame type ${describe(type)}; the types are ${TYPES}` };
  }
  let id: FrameId | undefined;
  try {
    id = frameId(value['id']);
    return parseTyped(type, value, id);
  } catch (error) {
    if (error instanceof Invalid) return { type: 'invalid', id, message: `${error.message}; a ${type} frame is ${SHAPES[type]}` };
    throw error;
  }
}

function parseTyped(type: string, f: Record<string, unknown>, id: FrameId | undefined): ConsumeFrame {
  switch (type) {
    case 'join': {
      keys(f, ['type', 'group', 'clientId', 'topics', 'strategy', 'sessionTimeoutMs', 'offsetReset']);
      const topics = f['topics'];
      if (!Array.isArray(topics) || topics.length === 0 || topics.length > MAX_SUBSCRIBED_TOPICS || !topics.every((t) => typeof t === 'string')) {
        throw new Invalid(`"topics" must be a list of 1 to ${MAX_SUBSCRIBED_TOPICS} topic names, got ${describe(topics)}`);
      }
      const strategy = oneOf(f, 'strategy', ['round-robin', 'sticky']);
      const offsetReset = oneOf(f, 'offsetReset', ['earliest', 'latest']);
      const timeout = f['sessionTimeoutMs'];
      if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isInteger(timeout))) throw new Invalid(`"sessionTimeoutMs" must be a whole number of ms, got ${describe(timeout)}`);
      const clientId = f['clientId'] ?? 'consumer';
      if (typeof f['group'] !== 'string') throw new Invalid(`"group" must be a group id (a string), got ${describe(f['group'])}`);
      if (typeof clientId !== 'string') throw new Invalid(`"clientId" must be a string, got ${describe(clientId)}`);
      return { type, group: f['group'], clientId, topics: [...new Set(topics as string[])], strategy, sessionTimeoutMs: timeout as number | undefined, offsetReset };
    }
    case 'credit': {
      keys(f, ['type', 'records', 'bytes']);
      return { type, records: count(f, 'records', MAX_CREDIT_RECORDS), bytes: count(f, 'bytes', MAX_CREDIT_BYTES) };
    }
    case 'commit': {
      keys(f, ['type', 'id', 'generation', 'offsets']);
      const generation = f['generation'];
      if (typeof generation !== 'number' || !Number.isInteger(generation) || generation < 0) throw new Invalid(`"generation" must be the generation of the member's assignment, got ${describe(generation)}`);
      const offsets = f['offsets'];
      if (!Array.isArray(offsets) || offsets.length === 0 || offsets.length > MAX_OFFSET_COMMITS) throw new Invalid(`"offsets" must be a list of 1 to ${MAX_OFFSET_COMMITS} entries, got ${describe(offsets)}`);
      // The log checks each entry's fields and names the bad one (src/log/offsets.ts).
      return { type, id, generation, offsets: offsets as OffsetCommit[] };
    }
    case 'seek': {
      keys(f, ['type', 'id', 'topic', 'partition', 'to']);
      const { topic, partition } = partitionRef(f, '');
      return { type, id, topic, partition, to: seekTarget(f['to']) };
    }
    case 'pause':
    case 'resume': {
      keys(f, ['type', 'partitions']);
      const list = f['partitions'];
      if (!Array.isArray(list) || list.length === 0 || list.length > 10_000) throw new Invalid(`"partitions" must be a list of 1 to 10000 {"topic","partition"}, got ${describe(list)}`);
      return { type, partitions: list.map((p: unknown, i) => (isObject(p) ? partitionRef(p, `partitions[${i}].`) : bad(`partitions[${i}] must be {"topic","partition"}, got ${describe(p)}`))) };
    }
    case 'heartbeat':
    case 'leave':
      keys(f, ['type']);
      return { type };
    default:
      throw new Error(`edgelog invariant violated: frame type '${type}' has a shape but no parser`);
  }
}

/** A stored record as the wire carries it: bytes as base64, so any payload survives JSON. */
export interface WireRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  /** Set instead of `key` when the key is bytes. */
  keyBase64?: string;
  valueBase64: string;
  headers: Record<string, string | { base64: string }>;
}

export function toWire(r: StoredRecord): WireRecord {
  const headers: WireRecord['headers'] = {};
  for (const [name, v] of Object.entries(r.headers)) headers[name] = typeof v === 'string' ? v : { base64: v.toString('base64') };
  const out: WireRecord = { offset: r.offset, timestamp: r.timestamp, key: typeof r.key === 'string' ? r.key : null, valueBase64: r.value.toString('base64'), headers };
  if (r.key !== null && typeof r.key !== 'string') out.keyBase64 = r.key.toString('base64');
  return out;
}

function seekTarget(to: unknown): SeekTarget {
  if (to === 'earliest' || to === 'latest') return to;
  if (isObject(to)) {
    const [k, ...rest] = Object.keys(to);
    const v = k === undefined ? undefined : to[k];
    if (rest.length === 0 && (k === 'offset' || k === 'timestamp') && typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return k === 'offset' ? { offset: v } : { timestamp: v };
  }
  throw new Invalid(`"to" must be "earliest", "latest", {"offset":N} or {"timestamp":MS} with a whole number ≥ 0, got ${describe(to)}`);
}

function partitionRef(f: Record<string, unknown>, at: string): TopicPartitionRef {
  const { topic, partition } = f;
  if (typeof topic !== 'string') throw new Invalid(`${at}topic must be a topic name, got ${describe(topic)}`);
  if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0) throw new Invalid(`${at}partition must be a whole number ≥ 0, got ${describe(partition)}`);
  return { topic, partition };
}

function count(f: Record<string, unknown>, key: string, max: number): number {
  const v = f[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new Invalid(`"${key}" must be a whole number from 0 to ${max}, got ${describe(v)}`);
  return v;
}

function oneOf<T extends string>(f: Record<string, unknown>, key: string, allowed: readonly T[]): T | undefined {
  const v = f[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !allowed.includes(v as T)) throw new Invalid(`"${key}" must be ${allowed.map((a) => `"${a}"`).join(' or ')}, got ${describe(v)}`);
  return v as T;
}

function keys(f: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(f).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw new Invalid(`unknown key ${unknown.map((k) => `"${clip(k)}"`).join(', ')}`);
}

function frameId(v: unknown): FrameId | undefined {
  if (v === undefined) return undefined;
  if ((typeof v === 'string' && v.length > 0 && v.length <= MAX_FRAME_ID_CHARS) || (typeof v === 'number' && Number.isFinite(v))) return v;
  throw new Invalid(`"id" must be a string of 1 to ${MAX_FRAME_ID_CHARS} characters or a number, got ${describe(v)}`);
}

function bad(message: string): never {
  throw new Invalid(message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  const text = JSON.stringify(v) ?? String(v);
  return clip(text);
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}
