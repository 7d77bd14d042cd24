/**
 * Every error edgelog raises on purpose is an {@link EdgelogError} with a code from this closed set.
 * Each code is listed in docs/errors.md with what the user should do about it.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'INVALID_TOPIC_NAME'
  | 'TOPIC_EXISTS'
  | 'UNKNOWN_TOPIC'
  | 'UNKNOWN_PARTITION'
  | 'RECORD_TOO_LARGE'
  | 'OFFSET_OUT_OF_RANGE'
  | 'LOG_FULL'
  | 'LOG_OVERLOADED'
  | 'LOG_CLOSED'
  | 'LOG_IO_ERROR'
  | 'LOG_INCOMPATIBLE'
  | 'LOG_LOCKED'
  | 'CORRUPT_RECORD'
  | 'LISTEN_FAILED'
  | 'INVALID_CONFIG'
  | 'INVALID_PROFILE'
  | 'INVALID_PAYLOAD'
  | 'UNMAPPED_TOPIC'
  | 'AUTH_FAILED'
  | 'NOT_AUTHORIZED'
  | 'GATEWAY_CLOSING'
  | 'UNKNOWN_MEMBER'
  | 'STALE_GENERATION'
  | 'NOT_ASSIGNED'
  | 'OFFSET_AHEAD'
  | 'UNKNOWN_GROUP'
  | 'GROUP_NOT_EMPTY'
  | 'UNKNOWN_ROUTE'
  | 'METHOD_NOT_ALLOWED'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'API_BUSY'
  | 'GATEWAY_UNREACHABLE'
  | 'UNKNOWN_BRIDGE'
  | 'UNKNOWN_DEVICE'
  | 'UPSTREAM_UNAVAILABLE'
  | 'UPSTREAM_REFUSED'
  | 'INTERNAL';

/** Codes whose condition may clear by itself, so retrying the same call later can succeed. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['LOG_FULL', 'LOG_OVERLOADED', 'LOG_IO_ERROR', 'GATEWAY_CLOSING', 'STALE_GENERATION', 'API_BUSY', 'GATEWAY_UNREACHABLE', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_REFUSED']);

/** Base of every error edgelog raises on purpose: a stable `code`, a `retryable` flag and an optional `cause`. */
export class EdgelogError extends Error {
  override name = 'EdgelogError';
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.retryable = RETRYABLE.has(code);
  }
}

/** The log cannot take more data: its configured capacity or the disk is full. Retry after space is freed. */
export class LogFullError extends EdgelogError {
  override name = 'LogFullError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('LOG_FULL', message, options);
  }
}

/** A stored record failed its checksum or its identity check: the storage medium returned bad bytes. */
export class CorruptRecordError extends EdgelogError {
  override name = 'CorruptRecordError';
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  constructor(topic: string, partition: number, offset: number, detail: string) {
    super('CORRUPT_RECORD', `corrupt record in topic '${topic}' partition ${partition} at offset ${offset}: ${detail}`);
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
  }
}

/** The requested offset is outside the partition's range [startOffset, highWatermark]. */
export class OffsetOutOfRangeError extends EdgelogError {
  override name = 'OffsetOutOfRangeError';
  readonly startOffset: number;
  readonly highWatermark: number;
  constructor(topic: string, partition: number, offset: number, startOffset: number, highWatermark: number) {
    super(
      'OFFSET_OUT_OF_RANGE',
      `offset ${offset} is out of range for topic '${topic}' partition ${partition}: ` +
        `valid offsets are ${startOffset} to ${highWatermark} (the high watermark, where the next record will go)`,
    );
    this.startOffset = startOffset;
    this.highWatermark = highWatermark;
  }
}

/** Asserts a programmer's invariant; failing means a bug in edgelog, never bad input. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`edgelog invariant violated: ${message}`);
}
