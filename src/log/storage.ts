import { open, type Database, type RootDatabase } from 'lmdb';
import { join } from 'node:path';
import { MAX_OFFSET } from './topic-config.js';

/**
 * The LMDB layout of the log, in one environment:
 *   meta     msgpack: ['format'] → version, ['nextTopicId'] → n, ['t', name] → TopicMeta,
 *            ['p', topicId, partition] → PartitionState, ['clock'] → { offsetMs } (log-clock.ts)
 *   t<id>    binary: one database per topic; key partition * 2^40 + offset (a plain number key,
 *            the cheapest key lmdb-js encodes), value the encoded record
 *   tindex   sparse time index: key [topicId, partition, maxTimestampSoFar, offset], empty value
 * A partition's state is written in the same transaction as its records, so the state on disk
 * always matches the records on disk and open() reads the states instead of scanning records.
 */
export const STORAGE_FORMAT = 1;

/** The durable state of one partition. */
export interface PartitionState {
  /** First offset still stored (the log start offset). */
  start: number;
  /** The next offset to assign; equals the high watermark once committed. */
  next: number;
  /** Stored bytes of the records in [start, next). */
  bytes: number;
  /** The largest producer timestamp ever appended (−Infinity when none): the time index's running max. */
  maxTs: number;
}

export interface TopicMeta {
  id: number;
  config: import('./topic-config.js').TopicConfig;
  createdAt: number;
}

export interface Storage {
  root: RootDatabase;
  meta: Database;
  timeIndex: Database;
}

/**
 * Durability is explicit (lmdb-js README, "Overlapping Sync"): with overlappingSync off, a write
 * transaction's promise resolves only after the commit has been fdatasync'd, so a resolved
 * transaction is a durable one. eventTurnBatching is off because every write goes through an
 * explicit `transaction()`; with it on, lmdb-js leaves an internal promise that rejects unhandled
 * when a commit fails (seen on a full disk), which would crash the process.
 */
export function openStorage(dir: string, maxTopics: number): Storage {
  const root = open({
    path: join(dir, 'log'),
    maxDbs: maxTopics + 4,
    overlappingSync: false,
    eventTurnBatching: false,
    noSync: false,
    noMetaSync: false,
    useWritemap: false,
    encoding: 'msgpack',
  });
  const meta = root.openDB('meta', { encoding: 'msgpack' });
  const timeIndex = root.openDB('tindex', { encoding: 'binary' });
  return { root, meta, timeIndex };
}

/** The LMDB key of a record. */
export function recordKey(partition: number, offset: number): number {
  return partition * MAX_OFFSET + offset;
}

export function topicDbName(id: number): string {
  return `t${id}`;
}

/** Every TIME_INDEX_INTERVAL-th record gets a time index entry; a lookup scans at most this many records. */
export const TIME_INDEX_INTERVAL = 64;
export const EMPTY = Buffer.alloc(0);
