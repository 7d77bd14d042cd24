import { EdgelogError } from '../errors.js';

/** Per-topic settings, fixed at creation. `-1` for a retention limit means unlimited (as in Kafka). */
export interface TopicConfig {
  partitions: number;
  retentionMs: number;
  retentionBytes: number;
  maxMessageBytes: number;
}

/** Kafka's default `max.message.bytes` is about 1 MiB; a sensor reading is far smaller. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
/** Kafka's default retention: seven days. */
export const DEFAULT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_PARTITIONS = 1;
/**
 * Partition and offset share one 53-bit LMDB key (partition * 2^40 + offset): 2^12 partitions and
 * 2^40 offsets per partition (over 30 years at 1,000 records/s in one partition).
 */
export const MAX_PARTITIONS = 4096;
export const MAX_OFFSET = 2 ** 40;
/** A stored record's size must fit LMDB's value limits comfortably and a gateway's memory; 64 MiB is the ceiling. */
export const MAX_MESSAGE_BYTES_LIMIT = 64 * 1024 * 1024;

export const DEFAULT_TOPIC_CONFIG: Readonly<TopicConfig> = Object.freeze({
  partitions: DEFAULT_PARTITIONS,
  retentionMs: DEFAULT_RETENTION_MS,
  retentionBytes: -1,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
});

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** Kafka's rules for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`. */
export function validateTopicName(name: unknown): string {
  if (typeof name !== 'string') {
    throw new EdgelogError('INVALID_TOPIC_NAME', `topic name must be a string, got ${typeof name}`);
  }
  if (!TOPIC_NAME.test(name) || name === '.' || name === '..') {
    throw new EdgelogError(
      'INVALID_TOPIC_NAME',
      `invalid topic name ${JSON.stringify(name.length > 60 ? name.slice(0, 60) + '…' : name)}: ` +
        `use 1 to 249 characters from a-z, A-Z, 0-9, '.', '_' and '-' (not '.' or '..')`,
    );
  }
  return name;
}

/** Fills defaults into a partial topic config and rejects anything out of range, naming the field. */
export function resolveTopicConfig(partial: Partial<TopicConfig> | undefined, defaults: Readonly<TopicConfig>): TopicConfig {
  if (partial !== undefined && (typeof partial !== 'object' || partial === null)) {
    throw new EdgelogError('INVALID_ARGUMENT', 'topic options must be an object');
  }
  const known = new Set(['partitions', 'retentionMs', 'retentionBytes', 'maxMessageBytes']);
  for (const k of Object.keys(partial ?? {})) {
    if (!known.has(k)) {
      throw new EdgelogError('INVALID_ARGUMENT', `unknown topic option '${k}': allowed are ${[...known].join(', ')}`);
    }
  }
  const config: TopicConfig = { ...defaults, ...stripUndefined(partial ?? {}) };
  integerIn('partitions', config.partitions, 1, MAX_PARTITIONS);
  integerIn('retentionMs', config.retentionMs, -1, Number.MAX_SAFE_INTEGER);
  integerIn('retentionBytes', config.retentionBytes, -1, Number.MAX_SAFE_INTEGER);
  integerIn('maxMessageBytes', config.maxMessageBytes, 64, MAX_MESSAGE_BYTES_LIMIT);
  return config;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Throws INVALID_ARGUMENT unless `value` is an integer in [min, max]. */
export function integerIn(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new EdgelogError('INVALID_ARGUMENT', `${field} must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** A short, safe description of a bad value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (typeof value === 'object') return 'an object';
  return String(value);
}
