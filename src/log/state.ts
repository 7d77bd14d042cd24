import type { Key } from 'lmdb';
import { EdgelogError } from '../errors.js';
import { GROUP_ID_PATTERN, GROUP_ID_RULE } from './offsets.js';
import { describe } from './topic-config.js';

/**
 * Named key-value state stores in the log's own LMDB environment, written in the same transaction
 * as an append or an offset commit (Kafka Streams keeps a processor's state, its output and its
 * input position in one transaction too). A stream processor's open windows and a file source's
 * read position live here, so after a crash its state, its output and its position agree: nothing
 * is lost and nothing is counted twice.
 */

/** One write to a store: a value, or null to delete the key. */
export interface StatePut {
  key: string;
  value: Uint8Array | null;
}

/** Writes to one store, committed together with the records or offsets they go with. */
export interface StateWrite {
  store: string;
  puts: readonly StatePut[];
}

/** Store names share the group ids' safe characters: they travel in config, logs and LMDB keys. */
export const STATE_STORE_RULE = GROUP_ID_RULE;
/** LMDB keys are at most 1,978 bytes; this leaves room for the store name and the key's framing. */
export const MAX_STATE_KEY_BYTES = 1024;
/** One value: a window's aggregate or a file position is far smaller; a bound on one transaction's work. */
export const MAX_STATE_VALUE_BYTES = 1024 * 1024;
/** Puts in one write, like MAX_OFFSET_COMMITS. */
export const MAX_STATE_PUTS = 10_000;

export function validateStoreName(store: unknown): asserts store is string {
  if (typeof store !== 'string' || !GROUP_ID_PATTERN.test(store)) {
    throw new EdgelogError('INVALID_ARGUMENT', `state store name must be ${STATE_STORE_RULE}, got ${describe(store)}`);
  }
}

/** Above every valid key in UTF-8 order: the largest code point, a noncharacter that keys may not contain. */
const KEY_END = '\u{10FFFF}';

/** The meta key of one entry of a store. */
export function stateKey(store: string, key: string): [string, string, string] {
  return ['s', store, key];
}

/** The key range holding every entry of `store` (or of every store when undefined). */
export function stateRange(store?: string): { start: Key; end: Key } {
  return store === undefined ? { start: ['s'], end: ['s', '\uffff'] } : { start: ['s', store], end: ['s', store, KEY_END] };
}

/**
 * Checks a state write's shape and returns the bytes it will store. Throws INVALID_ARGUMENT naming
 * the first bad put and field; nothing is written then.
 */
export function checkStateWrite(write: unknown): number {
  if (typeof write !== 'object' || write === null) throw new EdgelogError('INVALID_ARGUMENT', `state must be { store, puts: [{ key, value }] }, got ${describe(write)}`);
  const { store, puts } = write as Record<string, unknown>;
  validateStoreName(store);
  if (!Array.isArray(puts) || puts.length === 0 || puts.length > MAX_STATE_PUTS) {
    throw new EdgelogError('INVALID_ARGUMENT', `state.puts must be an array of 1 to ${MAX_STATE_PUTS} { key, value }, got ${describe(puts)}`);
  }
  let bytes = 0;
  const seen = new Set<string>();
  puts.forEach((p: unknown, i) => {
    const at = `state.puts[${i}]`;
    if (typeof p !== 'object' || p === null) throw new EdgelogError('INVALID_ARGUMENT', `${at} must be { key, value }, got ${describe(p)}`);
    const { key, value } = p as Record<string, unknown>;
    if (typeof key !== 'string' || key === '' || Buffer.byteLength(key) > MAX_STATE_KEY_BYTES || key.includes(KEY_END)) {
      throw new EdgelogError('INVALID_ARGUMENT', `${at}.key must be a non-empty string of at most ${MAX_STATE_KEY_BYTES} bytes, got ${describe(key)}`);
    }
    if (value !== null && !(value instanceof Uint8Array && value.byteLength <= MAX_STATE_VALUE_BYTES)) {
      throw new EdgelogError('INVALID_ARGUMENT', `${at}.value must be bytes (at most ${MAX_STATE_VALUE_BYTES}) or null to delete, got ${describe(value)}`);
    }
    if (seen.has(key)) throw new EdgelogError('INVALID_ARGUMENT', `${at} names key '${key}' a second time: one put per key per write`);
    seen.add(key);
    bytes += Buffer.byteLength(key) + (value?.byteLength ?? 0);
  });
  return bytes;
}
