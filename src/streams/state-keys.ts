import { MAX_STATE_KEY_BYTES } from '../log/state.js';

/**
 * Keys of a processor's entries in its state store (src/log/state.ts). One store per processor,
 * named like its group. Everything is kept per input partition ("topic/partition"), because a
 * partition is the unit whose order is fixed: the state after a given offset is then the same
 * however the records were batched, before or after a crash.
 *
 *   meta                                  JSON: pipeline fingerprint and counters
 *   p|<topic>/<partition>                 JSON: the offset the state matches, and per window step its stream time
 *   w|<step>|<topic>/<partition>|<start>|<key>   one open window's aggregate (aggregates.ts)
 *   a|<step>|<topic>/<partition>          JSON: the raised alerts of that partition, [[key, level], ...]
 *
 * A record key is stored as 'n' (no key), 's' + the string, or 'b' + the bytes in hex.
 */

export const META_KEY = 'meta';

/** "topic/partition": topic names cannot hold '/'. */
export function partitionId(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

export function splitPartitionId(pk: string): { topic: string; partition: number } {
  const at = pk.lastIndexOf('/');
  return { topic: pk.slice(0, at), partition: Number(pk.slice(at + 1)) };
}

export function positionKey(pk: string): string {
  return `p|${pk}`;
}

export function windowKey(step: number, pk: string, start: number, keyEnc: string): string {
  return `w|${step}|${pk}|${start}|${keyEnc}`;
}

export function alertKey(step: number, pk: string): string {
  return `a|${step}|${pk}`;
}

/** The encoded record key, or undefined when it cannot be a state key (too long, or holding U+FFFF, which the store reserves). */
export function encodeRecordKey(key: string | Buffer | null): string | undefined {
  const enc = key === null ? 'n' : typeof key === 'string' ? `s${key}` : `b${key.toString('hex')}`;
  // Room for the longest prefix: 'w|', a step, a topic/partition of 254 and a start of 16 digits.
  if (Buffer.byteLength(enc) > MAX_STATE_KEY_BYTES - 290 || enc.includes('\uffff')) return undefined;
  return enc;
}

export function decodeRecordKey(enc: string): string | Buffer | null {
  if (enc === 'n') return null;
  if (enc.startsWith('s')) return enc.slice(1);
  return Buffer.from(enc.slice(1), 'hex');
}

export type ParsedStateKey =
  | { kind: 'meta' }
  | { kind: 'position'; pk: string }
  | { kind: 'window'; step: number; pk: string; start: number; keyEnc: string }
  | { kind: 'alert'; step: number; pk: string }
  | { kind: 'unknown' };

export function parseStateKey(key: string): ParsedStateKey {
  if (key === META_KEY) return { kind: 'meta' };
  if (key.startsWith('p|')) return { kind: 'position', pk: key.slice(2) };
  if (key.startsWith('a|')) {
    const [, step, pk] = key.split('|');
    return { kind: 'alert', step: Number(step), pk: pk ?? '' };
  }
  if (key.startsWith('w|')) {
    // The key part may hold '|': split off the four fields before it only.
    const parts = key.split('|');
    if (parts.length < 5) return { kind: 'unknown' };
    return { kind: 'window', step: Number(parts[1]), pk: parts[2]!, start: Number(parts[3]), keyEnc: parts.slice(4).join('|') };
  }
  return { kind: 'unknown' };
}
