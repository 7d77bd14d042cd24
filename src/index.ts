/** edgelog's public API. */
export { CommitLog } from './log/commit-log.js';
export type {
  AppendResult,
  CommitLogOptions,
  DiskPressurePolicy,
  RetentionHold,
  PartitionDescription,
  ReadOptions,
  ReadResult,
  RetentionReport,
  TopicDescription,
} from './log/commit-log.js';
export type { AppendRecord } from './log/prepare-records.js';
export type { StoredRecord, HeaderValue } from './log/record-codec.js';
export type { TopicConfig } from './log/topic-config.js';
export { murmur2, partitionForKey } from './log/murmur2.js';
export { EdgelogError, LogFullError, CorruptRecordError, OffsetOutOfRangeError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { GroupCoordinator } from './groups/coordinator.js';
export type { Assignment, AssignedPartition, AssignmentStrategy, GroupCoordinatorOptions, GroupDescription, JoinRequest, OffsetReset } from './groups/coordinator.js';
export type { CommittedOffset, OffsetCommit } from './log/offsets.js';
export type { StatePut, StateWrite } from './log/state.js';
export * from './client/index.js';
// The rate math shared by ingest's per-device limits and the bridges' bandwidth caps.
export { newBucket, takeToken } from './ingest/token-bucket.js';
export type { TokenBucket } from './ingest/token-bucket.js';
