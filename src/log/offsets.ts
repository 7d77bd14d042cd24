import type { Key } from 'lmdb';
import { EdgelogError } from '../errors.js';
import { describe } from './topic-config.js';

/**
 * Committed consumer offsets, stored in the log's own LMDB environment (Kafka keeps them in the
 * log too, in __consumer_offsets): a commit is durable like an append, and an append can carry a
 * commit in the same transaction, so a stream processor's output and its input position are
 * committed together (Kafka design §4.6: keep a consumer's position with its output).
 */

/** One partition's position to commit: the offset of the next record the group will read. */
export interface OffsetCommit {
  topic: string;
  partition: number;
  offset: number;
  /** Free text kept with the offset (Kafka's commit metadata), at most MAX_OFFSET_METADATA_BYTES. */
  metadata?: string;
}

/** A committed position as stored. */
export interface CommittedOffset {
  topic: string;
  partition: number;
  offset: number;
  metadata: string;
  /** When it was committed, ms since the epoch (the log's clock). */
  committedAtMs: number;
}

/** The stored value, under the key {@link offsetKey}. */
export interface StoredOffset {
  offset: number;
  metadata: string;
  committedAtMs: number;
}

/** Group ids travel in URLs, CLI arguments and LMDB keys: Kafka's topic-name characters keep them safe in all three. */
export const GROUP_ID_PATTERN = /^[A-Za-z0-9._-]{1,249}$/;
export const GROUP_ID_RULE = '1 to 249 of a-z A-Z 0-9 . _ -';
/** Kafka's default offset.metadata.max.bytes. */
export const MAX_OFFSET_METADATA_BYTES = 4096;
/** One commit call names at most this many partitions: a bound on one transaction's work. */
export const MAX_OFFSET_COMMITS = 10_000;

export function validateGroupId(group: unknown): asserts group is string {
  if (typeof group !== 'string' || !GROUP_ID_PATTERN.test(group)) {
    throw new EdgelogError('INVALID_ARGUMENT', `group id must be ${GROUP_ID_RULE}, got ${describe(group)}`);
  }
}

/** The meta key of a group's committed offset for one partition of a topic (by id, so a re-created topic starts afresh). */
export function offsetKey(group: string, topicId: number, partition: number): [string, string, number, number] {
  return ['o', group, topicId, partition];
}

/** The key range holding every committed offset of `group` (or of every group when undefined). */
export function offsetRange(group?: string): { start: Key; end: Key } {
  return group === undefined ? { start: ['o'], end: ['o', '\uffff'] } : { start: ['o', group], end: ['o', group, Number.MAX_SAFE_INTEGER] };
}

/**
 * Checks the shape of a commit list (not the topics: the log checks those against its state).
 * Throws INVALID_ARGUMENT naming the first bad entry and field.
 */
export function checkOffsetCommits(offsets: unknown): asserts offsets is readonly OffsetCommit[] {
  if (!Array.isArray(offsets) || offsets.length === 0 || offsets.length > MAX_OFFSET_COMMITS) {
    throw new EdgelogError('INVALID_ARGUMENT', `offsets must be an array of 1 to ${MAX_OFFSET_COMMITS} { topic, partition, offset, metadata? }, got ${describe(offsets)}`);
  }
  const seen = new Set<string>();
  offsets.forEach((c: unknown, i) => {
    const at = `offsets[${i}]`;
    if (typeof c !== 'object' || c === null) throw new EdgelogError('INVALID_ARGUMENT', `${at} must be { topic, partition, offset, metadata? }, got ${describe(c)}`);
    const { topic, partition, offset, metadata } = c as Record<string, unknown>;
    if (typeof topic !== 'string') throw new EdgelogError('INVALID_ARGUMENT', `${at}.topic must be a topic name, got ${describe(topic)}`);
    if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0) {
      throw new EdgelogError('INVALID_ARGUMENT', `${at}.partition must be a whole number ≥ 0, got ${describe(partition)}`);
    }
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      throw new EdgelogError('INVALID_ARGUMENT', `${at}.offset must be a whole number ≥ 0 (the next offset to read), got ${describe(offset)}`);
    }
    if (metadata !== undefined && (typeof metadata !== 'string' || Buffer.byteLength(metadata) > MAX_OFFSET_METADATA_BYTES)) {
      throw new EdgelogError('INVALID_ARGUMENT', `${at}.metadata must be a string of at most ${MAX_OFFSET_METADATA_BYTES} bytes, got ${describe(metadata)}`);
    }
    const id = `${topic}\u0000${partition}`;
    if (seen.has(id)) throw new EdgelogError('INVALID_ARGUMENT', `${at} names ${topic}/${partition} a second time: one offset per partition per commit`);
    seen.add(id);
  });
}
