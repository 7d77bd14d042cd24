import { mkdirSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { validate as validateCron } from 'node-cron';
import type { Database, Key } from 'lmdb';
import {
  assert,
  CorruptRecordError,
  EdgelogError,
  LogFullError,
  OffsetOutOfRangeError,
} from '../errors.js';
import { CronTimer } from './cron-timer.js';
import { DiskSpace } from './disk-space.js';
import { lockDir } from './dir-lock.js';
import { LogClock } from './log-clock.js';
import {
  checkOffsetCommits,
  offsetKey,
  offsetRange,
  validateGroupId,
  type CommittedOffset,
  type OffsetCommit,
  type StoredOffset,
} from './offsets.js';
import { checkStateWrite, stateKey, stateRange, validateStoreName, type StateWrite } from './state.js';
import { prepareRecords, type AppendRecord, type PreparedRecord } from './prepare-records.js';
import { appendTimeOf, decodeRecord, encodeInto, RecordDecodeError, timestampOf, type StoredRecord } from './record-codec.js';
import { applyRetentionHold, recordsToDelete } from './retention.js';
import {
  EMPTY,
  openStorage,
  recordKey,
  STORAGE_FORMAT,
  TIME_INDEX_INTERVAL,
  topicDbName,
  type PartitionState,
  type Storage,
  type TopicMeta,
} from './storage.js';
import {
  DEFAULT_TOPIC_CONFIG,
  describe,
  integerIn,
  MAX_OFFSET,
  resolveTopicConfig,
  validateTopicName,
  type TopicConfig,
} from './topic-config.js';

/** Options of {@link CommitLog.open}; every bound has a default and a reason. */
export interface CommitLogOptions {
  /** The data folder; created if missing. */
  dir: string;
  /** Defaults for topics created without an explicit setting. */
  topicDefaults?: Partial<TopicConfig>;
  /** Topics the log can hold; each is an LMDB database and LMDB fixes their number at open. Default 256. */
  maxTopics?: number;
  /** Capacity of the log in stored record bytes; appends past it fail with LogFullError. Default −1 (the disk is the limit). */
  maxLogBytes?: number;
  /** Appends fail with LogFullError while the disk has less free space than this, so LMDB never meets a full disk mid-commit. Default 64 MiB. */
  minFreeDiskBytes?: number;
  /** Records in one append call and at most in one group-commit transaction; bounds the time a commit holds the writer. Default 10,000. */
  maxBatchRecords?: number;
  /** Bytes accepted but not yet committed; past it appends fail with LOG_OVERLOADED (retryable) so callers push back on their sources. Default 64 MiB. */
  maxPendingBytes?: number;
  /** When retention runs (node-cron expression, seconds field allowed); null to run it only by calling enforceRetention(). Default every 30 s. */
  retentionSchedule?: string | null;
  /** Records deleted per retention transaction, so appends never wait behind a large deletion. Default 1,000. */
  retentionBatchRecords?: number;
  /**
   * What retention does with records a hold keeps (holdRetention: records a bridge has not yet
   * replicated) once they are past their topic's retention and the log is under disk pressure:
   * 'keep' them (the default: when the log fills, appends are refused with LOG_FULL), or
   * 'drop-oldest' (delete them as retention says, counted in droppedHeldRecords and logged).
   */
  diskPressurePolicy?: DiskPressurePolicy;
  /**
   * The least time between the starts of two group commits. 0 (the default) commits as soon as
   * the previous commit is done. On an SD card each commit is an fsync that wears the card and
   * can stall for tens of ms: 50-200 ms cuts fsyncs to 5-20 a second, and each ack waits up to
   * that much longer. Acks still mean durable. At most MAX_COMMIT_INTERVAL_MS.
   */
  commitIntervalMs?: number;
  /** Called with each append's latency, from the append() call to its durable commit, in ms (for the metrics). */
  observeAppendMs?: (latencyMs: number) => void;
  logger?: Logger;
  /** The wall clock, in ms since the epoch (tests move it). */
  now?: () => number;
  /**
   * The monotonic clock, in ms: intervals, and telling the wall clock's steps from elapsed time
   * (log-clock.ts). Default performance.now(); when only `now` is given, `now` (a test's clock then
   * measures both and never steps).
   */
  monotonicNow?: () => number;
}

export const DEFAULT_MAX_TOPICS = 256;
export const DEFAULT_MIN_FREE_DISK_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_BATCH_RECORDS = 10_000;
export const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;
export const DEFAULT_RETENTION_SCHEDULE = '*/30 * * * * *';
export const DEFAULT_RETENTION_BATCH_RECORDS = 1000;
/** A longer wait between commits would hold acks past what MQTT clients wait for without resending. */
export const MAX_COMMIT_INTERVAL_MS = 1000;
/** The log is under disk pressure past this share of maxLogBytes, or below twice the free-disk reserve. */
export const DISK_PRESSURE_FRACTION = 0.9;

export type DiskPressurePolicy = 'keep' | 'drop-oldest';
export const DISK_PRESSURE_POLICIES: readonly DiskPressurePolicy[] = ['keep', 'drop-oldest'];

/** Keeps retention from deleting records a consumer group has not consumed yet (a bridge's checkpoint). */
export interface RetentionHold {
  /** The group whose committed offset per partition is the first record to keep; none committed keeps all. */
  group: string;
  /** Whether the hold covers a topic. */
  covers: (topic: string) => boolean;
}

/** See {@link CommitLog.diskUsage}. */
export interface DiskUsage {
  /** Record bytes stored. */
  storedBytes: number;
  /** The log's capacity (config log.maxLogBytes); −1 when the disk is the limit. */
  maxLogBytes: number;
  /** Free bytes on the data folder's disk (sampled every few seconds, estimated in between). */
  freeDiskBytes: number;
  /** Appends stop below this much free disk. */
  minFreeDiskBytes: number;
}

/** Where a record went. */
export interface AppendResult {
  partition: number;
  offset: number;
}

export interface ReadOptions {
  /** At most this many records. Default 500. */
  maxRecords?: number;
  /** Stop once this many value bytes are read; at least one record is always returned. Default 1 MiB. */
  maxBytes?: number;
}

export interface ReadResult {
  records: StoredRecord[];
  /** The offset the next record will get; records below it are durable. */
  highWatermark: number;
  /** The oldest offset still stored. */
  startOffset: number;
}

export interface PartitionDescription {
  partition: number;
  startOffset: number;
  highWatermark: number;
  records: number;
  bytes: number;
  /** Producer timestamp of the oldest stored record, or null when the partition is empty. */
  oldestTimestamp: number | null;
}

export interface TopicDescription {
  name: string;
  config: TopicConfig;
  partitions: PartitionDescription[];
}

/** Called after each commit for every partition whose high watermark moved. */
export type AppendListener = (topic: string, partition: number, highWatermark: number) => void;

/** Options of {@link CommitLog.append}. */
export interface AppendOptions {
  /** Offsets to commit for a consumer group in the same transaction as the records (both or neither). */
  commit?: { group: string; offsets: readonly OffsetCommit[] };
  /** Writes to a state store in the same transaction (src/log/state.ts). */
  state?: StateWrite;
}

export interface RetentionReport {
  deletedRecords: number;
  deletedBytes: number;
  /** Of the deleted records, those a hold wanted kept (disk-pressure policy 'drop-oldest'). */
  droppedHeldRecords: number;
}

interface TopicState {
  name: string;
  id: number;
  config: TopicConfig;
  db: Database;
  /** Committed (durable) partition states; readers never see past `next`. */
  partitions: PartitionState[];
  sticky: number;
  deleted: boolean;
}

/** A commit checked against the log's state when it was made. */
interface PreparedCommit {
  topic: TopicState;
  partition: number;
  offset: number;
  metadata: string;
}

/** Records to append and/or offsets to commit, in one transaction: both or neither. */
interface PendingAppend {
  /** Null for a commit of offsets only. */
  topic: TopicState | null;
  records: PreparedRecord[];
  commit: { group: string; offsets: PreparedCommit[] } | null;
  state: StateWrite | null;
  /** Stored bytes of the records (what counts against the log's capacity). */
  bytes: number;
  /** Bytes of the state puts: held in memory until the commit, like the records. */
  stateBytes: number;
  /** performance.now() at the append() call, for the latency observed at commit. */
  enqueuedAtMs: number;
  resolve: (r: AppendResult[]) => void;
  reject: (e: unknown) => void;
}

/** A unit of writer work other than appends; resolves true when it wants to run again (more to do). */
type Task = () => Promise<boolean>;

/**
 * A durable, partitioned commit log on LMDB with Kafka's semantics: dense offsets per partition,
 * keyed partitioning, retention, checksummed records. One writer loop owns every mutation: appends
 * that arrive while a commit is in flight are committed together in the next transaction (group
 * commit), and an append resolves only once its transaction is fsync'd.
 */
export class CommitLog {
  private readonly topics = new Map<string, TopicState>();
  /** Topics being created, with the creation's promise: ensureTopic waits for one in flight. */
  private readonly creating = new Map<string, Promise<void>>();
  private readonly queue: PendingAppend[] = [];
  private readonly tasks: Task[] = [];
  private pendingBytes = 0;
  private storedBytes = 0;
  private writing = false;
  private idle: Array<() => void> = [];
  private closed = false;
  private closing: Promise<void> | null = null;
  private cron: CronTimer | null = null;
  /** Append times and retention: the wall clock less its steps (log-clock.ts). Set by load(). */
  private clock!: LogClock;
  /** monotonicNow() of the last 'log is full' line: one line per episode. */
  private lastFullLogAtMs = -Infinity;
  private appendCommits = 0;
  /** performance.now() when the last group commit started (commitIntervalMs). */
  private lastCommitStartMs = -Infinity;
  private readonly appendListeners = new Set<AppendListener>();
  private readonly holds = new Set<RetentionHold>();
  private droppedHeld = 0;

  private constructor(
    private readonly storage: Storage,
    private readonly opts: Required<Omit<CommitLogOptions, 'topicDefaults' | 'logger' | 'retentionSchedule' | 'diskPressurePolicy' | 'observeAppendMs'>> & {
      diskPressurePolicy: DiskPressurePolicy;
      observeAppendMs: ((latencyMs: number) => void) | null;
      retentionSchedule: string | null;
    },
    private readonly topicDefaults: Readonly<TopicConfig>,
    private readonly log: Logger,
    private readonly disk: DiskSpace,
    private readonly unlock: () => void,
  ) {}

  /** Opens (or creates) the log in `options.dir`. Reads partition states only: no scan of the records. */
  static async open(options: CommitLogOptions): Promise<CommitLog> {
    if (typeof options?.dir !== 'string' || options.dir === '') {
      throw new EdgelogError('INVALID_ARGUMENT', 'CommitLog.open needs { dir }: the data folder, as a non-empty string');
    }
    const opts = {
      dir: options.dir,
      maxTopics: integerIn('maxTopics', options.maxTopics ?? DEFAULT_MAX_TOPICS, 1, 10_000),
      maxLogBytes: integerIn('maxLogBytes', options.maxLogBytes ?? -1, -1, Number.MAX_SAFE_INTEGER),
      minFreeDiskBytes: integerIn('minFreeDiskBytes', options.minFreeDiskBytes ?? DEFAULT_MIN_FREE_DISK_BYTES, 0, Number.MAX_SAFE_INTEGER),
      maxBatchRecords: integerIn('maxBatchRecords', options.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS, 1, 1_000_000),
      maxPendingBytes: integerIn('maxPendingBytes', options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES, 1024, Number.MAX_SAFE_INTEGER),
      retentionSchedule: options.retentionSchedule === undefined ? DEFAULT_RETENTION_SCHEDULE : options.retentionSchedule,
      retentionBatchRecords: integerIn('retentionBatchRecords', options.retentionBatchRecords ?? DEFAULT_RETENTION_BATCH_RECORDS, 1, 1_000_000),
      diskPressurePolicy: options.diskPressurePolicy ?? 'keep',
      commitIntervalMs: integerIn('commitIntervalMs', options.commitIntervalMs ?? 0, 0, MAX_COMMIT_INTERVAL_MS),
      observeAppendMs: options.observeAppendMs ?? null,
      now: options.now ?? Date.now,
      monotonicNow: options.monotonicNow ?? options.now ?? (() => performance.now()),
    };
    if (!DISK_PRESSURE_POLICIES.includes(opts.diskPressurePolicy)) {
      throw new EdgelogError('INVALID_ARGUMENT', `diskPressurePolicy must be one of ${DISK_PRESSURE_POLICIES.join(', ')}, got ${describe(opts.diskPressurePolicy)}`);
    }
    if (opts.retentionSchedule !== null && (typeof opts.retentionSchedule !== 'string' || !validateCron(opts.retentionSchedule))) {
      throw new EdgelogError('INVALID_ARGUMENT', `retentionSchedule must be a cron expression or null, got ${describe(opts.retentionSchedule)}`);
    }
    const topicDefaults = Object.freeze(resolveTopicConfig(options.topicDefaults, DEFAULT_TOPIC_CONFIG));
    const logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'log' });
    mkdirSync(opts.dir, { recursive: true });
    const unlock = lockDir(opts.dir);
    let storage: Storage | undefined;
    try {
      storage = openStorage(opts.dir, opts.maxTopics);
      const disk = new DiskSpace(opts.dir, opts.monotonicNow);
      await disk.sample();
      const log = new CommitLog(storage, opts, topicDefaults, logger, disk, unlock);
      await log.load();
      log.startRetentionSchedule();
      logger.info({ dir: opts.dir, topics: log.topics.size, storedBytes: log.storedBytes }, 'log opened');
      return log;
    } catch (error) {
      await storage?.root.close().catch(() => {});
      unlock();
      throw error;
    }
  }

  private async load(): Promise<void> {
    const { root, meta } = this.storage;
    const format = meta.get(['format']) as number | undefined;
    if (format === undefined) {
      await root.transaction(() => meta.putSync(['format'], STORAGE_FORMAT));
    } else if (format !== STORAGE_FORMAT) {
      throw new EdgelogError('LOG_INCOMPATIBLE', `data folder uses log format ${format}; this edgelog reads format ${STORAGE_FORMAT}`);
    }
    let lastAppendMs = Number.NEGATIVE_INFINITY;
    for (const { key, value } of meta.getRange({ start: ['t'], end: ['t', '~'] })) {
      const name = (key as [string, string])[1];
      const m = value as TopicMeta;
      const db = root.openDB(topicDbName(m.id), { encoding: 'binary' });
      const partitions: PartitionState[] = [];
      for (let p = 0; p < m.config.partitions; p++) {
        const state = meta.get(['p', m.id, p]) as PartitionState | undefined;
        assert(state, `topic '${name}' partition ${p} has no stored state`);
        this.checkPartitionOnOpen(name, db, p, state);
        partitions.push(state);
        this.storedBytes += state.bytes;
        const last = state.next > state.start ? db.getBinary(recordKey(p, state.next - 1)) : undefined;
        if (last) lastAppendMs = Math.max(lastAppendMs, appendTimeOf(last));
      }
      this.topics.set(name, { name, id: m.id, config: m.config, db, partitions, sticky: 0, deleted: false });
    }
    const stored = meta.get(['clock']) as { offsetMs: number } | undefined;
    this.clock = new LogClock(this.opts.now, this.opts.monotonicNow, stored?.offsetMs ?? 0, lastAppendMs, (stepMs, offsetMs) =>
      // One line per step: an operator sees why retention's ages differ from the wall clock.
      this.log.warn({ stepMs, offsetMs }, 'the wall clock stepped: append times and retention ages leave the step out'),
    );
  }

  /** O(log n) cross-check of a partition's stored state against its first and last stored keys. */
  private checkPartitionOnOpen(topic: string, db: Database, p: number, s: PartitionState): void {
    assert(s.start <= s.next && s.bytes >= 0, `topic '${topic}' partition ${p} has an impossible state ${JSON.stringify(s)}`);
    const keys = (reverse: boolean) =>
      [...db.getKeys(reverse ? { start: recordKey(p, MAX_OFFSET - 1), end: recordKey(p, 0) - 1, reverse, limit: 1 } : { start: recordKey(p, 0), end: recordKey(p + 1, 0), limit: 1 })];
    const first = keys(false)[0] as number | undefined;
    const last = keys(true)[0] as number | undefined;
    if (s.start === s.next) {
      assert(first === undefined, `topic '${topic}' partition ${p} is empty by its state but holds records`);
    } else {
      assert(first === recordKey(p, s.start), `topic '${topic}' partition ${p}: first stored offset differs from start ${s.start}`);
      assert(last === recordKey(p, s.next - 1), `topic '${topic}' partition ${p}: last stored offset differs from ${s.next - 1}`);
    }
  }

  private startRetentionSchedule(): void {
    if (this.opts.retentionSchedule === null) return;
    this.cron = new CronTimer(this.opts.retentionSchedule, async () => {
      try {
        await this.enforceRetention();
      } catch (error) {
        if (!this.closed) this.log.error({ err: error }, 'retention run failed');
      }
    });
  }

  // ---------------------------------------------------------------- topics

  /** Creates a topic; resolves once the topic is durable. */
  async createTopic(name: string, options?: Partial<TopicConfig>): Promise<TopicDescription> {
    this.checkOpen();
    validateTopicName(name);
    const config = resolveTopicConfig(options, this.topicDefaults);
    if (this.topics.has(name) || this.creating.has(name)) {
      throw new EdgelogError('TOPIC_EXISTS', `topic '${name}' already exists`);
    }
    if (this.topics.size + this.creating.size >= this.opts.maxTopics) {
      throw new EdgelogError('INVALID_ARGUMENT', `the log holds at most ${this.opts.maxTopics} topics (maxTopics); delete one or raise the limit`);
    }
    const created = this.runTask(async () => {
      const { root, meta } = this.storage;
      const id = ((meta.get(['nextTopicId']) as number | undefined) ?? 1);
      const db = root.openDB(topicDbName(id), { encoding: 'binary' });
      const partitions: PartitionState[] = [];
      await root.transaction(() => {
        meta.putSync(['nextTopicId'], id + 1);
        meta.putSync(['t', name], { id, config, createdAt: this.opts.now() } satisfies TopicMeta);
        for (let p = 0; p < config.partitions; p++) {
          const state: PartitionState = { start: 0, next: 0, bytes: 0, maxTs: Number.NEGATIVE_INFINITY };
          meta.putSync(['p', id, p], state);
          partitions.push(state);
        }
      });
      this.topics.set(name, { name, id, config, db, partitions, sticky: 0, deleted: false });
      this.log.info({ topic: name, ...config }, 'topic created');
      return false;
    });
    this.creating.set(name, created);
    try {
      await created;
    } finally {
      this.creating.delete(name);
    }
    return this.describeTopic(name);
  }

  /** Deletes a topic and all its records; appends still queued for it fail with UNKNOWN_TOPIC. */
  async deleteTopic(name: string): Promise<void> {
    this.checkOpen();
    const topic = this.topicOrThrow(name);
    topic.deleted = true;
    this.topics.delete(name);
    await this.runTask(async () => {
      const { root, meta, timeIndex } = this.storage;
      let bytes = 0;
      await root.transaction(() => {
        topic.db.dropSync();
        meta.removeSync(['t', name]);
        for (let p = 0; p < topic.config.partitions; p++) {
          bytes += topic.partitions[p]!.bytes;
          meta.removeSync(['p', topic.id, p]);
        }
        for (const key of timeIndex.getKeys({ start: [topic.id], end: [topic.id + 1] })) timeIndex.removeSync(key);
        // Committed offsets are keyed by topic id: a topic created again under this name starts afresh.
        for (const key of meta.getKeys(offsetRange())) if ((key as [string, string, number])[2] === topic.id) meta.removeSync(key);
      });
      this.storedBytes -= bytes;
      this.log.info({ topic: name }, 'topic deleted');
      return false;
    });
  }

  /**
   * Creates a topic with the topic defaults unless it exists: topics created on first use (ingest,
   * producers, stream processors, connectors). Resolves once the topic exists, also when another
   * caller's creation of it was in flight.
   */
  ensureTopic(name: string): Promise<void> {
    if (this.topics.has(name)) return Promise.resolve();
    const inFlight = this.creating.get(name);
    // A creation that failed is tried again here, so its error reaches this caller too.
    if (inFlight) return inFlight.then(() => {}, () => this.ensureTopic(name));
    return this.createTopic(name).then(() => {});
  }

  /** Whether a topic exists. */
  hasTopic(name: string): boolean {
    this.checkOpen();
    return this.topics.has(name);
  }

  /**
   * A topic's id and partition count, or undefined when it does not exist: cheap (no read), for
   * watchers that poll. The id changes when a topic is deleted and created again under its name.
   */
  topicShape(name: string): { id: number; partitions: number } | undefined {
    this.checkOpen();
    const topic = this.topics.get(name);
    return topic === undefined ? undefined : { id: topic.id, partitions: topic.config.partitions };
  }

  /** The names of all topics, sorted. */
  listTopics(): string[] {
    this.checkOpen();
    return [...this.topics.keys()].sort();
  }

  /** A topic's config and, per partition, start offset, high watermark, bytes and oldest timestamp. */
  describeTopic(name: string): TopicDescription {
    this.checkOpen();
    const topic = this.topicOrThrow(name);
    return {
      name,
      config: { ...topic.config },
      partitions: topic.partitions.map((s, partition) => {
        let oldestTimestamp: number | null = null;
        if (s.next > s.start) {
          const buf = topic.db.getBinary(recordKey(partition, s.start));
          if (buf) oldestTimestamp = timestampOf(buf);
        }
        return { partition, startOffset: s.start, highWatermark: s.next, records: s.next - s.start, bytes: s.bytes, oldestTimestamp };
      }),
    };
  }

  // ---------------------------------------------------------------- append

  /**
   * Appends records to a topic. Resolves, per record in the given order, to where it went, only
   * after the records are in an fsync'd LMDB transaction. Appends arriving within one event-loop
   * turn (and while a commit is in flight) share one transaction. Rejects with a typed error and
   * changes nothing when the input is bad; all records of one call commit or fail together.
   */
  append(topicName: string, records: AppendRecord[], options: AppendOptions = {}): Promise<AppendResult[]> {
    try {
      this.checkOpen();
      const topic = this.topicOrThrow(topicName);
      const sticky = topic.sticky;
      const { prepared, bytes } = prepareRecords(topicName, topic.config, records, this.opts.maxBatchRecords, sticky);
      const commit = options.commit === undefined ? null : this.prepareCommit(options.commit.group, options.commit.offsets);
      const stateBytes = options.state === undefined ? 0 : checkStateWrite(options.state);
      if (this.pendingBytes + bytes + stateBytes > this.opts.maxPendingBytes) {
        throw new EdgelogError(
          'LOG_OVERLOADED',
          `the log already holds ${this.pendingBytes} bytes waiting to commit (maxPendingBytes ${this.opts.maxPendingBytes}); retry when earlier appends resolve`,
        );
      }
      topic.sticky = (sticky + 1) % topic.config.partitions;
      this.pendingBytes += bytes + stateBytes;
      return new Promise<AppendResult[]>((resolve, reject) => {
        this.queue.push({ topic, records: prepared, commit, state: options.state ?? null, bytes, stateBytes, enqueuedAtMs: performance.now(), resolve, reject });
        this.kick();
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Calls `listener` after each commit for every partition whose high watermark moved; returns the unsubscribe. */
  onAppend(listener: AppendListener): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  /**
   * Keeps retention from deleting records of the covered topics at or after `hold.group`'s
   * committed offsets (DESIGN "Contracts": retention never drops unreplicated data unless config
   * allows it): bridges hold the records they have not replicated. Register a hold before
   * retention can run (right after open); returns the release.
   */
  holdRetention(hold: RetentionHold): () => void {
    validateGroupId(hold.group);
    this.holds.add(hold);
    return () => this.holds.delete(hold);
  }

  /** Records deleted by retention although a hold wanted them kept, since open. */
  get droppedHeldRecords(): number {
    return this.droppedHeld;
  }

  // ---------------------------------------------------------------- committed offsets

  /**
   * Commits a consumer group's offsets durably (an fsync'd transaction, shared with appends).
   * Each offset is the next one the group will read; it may not be above the partition's high
   * watermark (OFFSET_AHEAD): a committed offset never runs ahead of the data (DESIGN "Contracts").
   */
  commitOffsets(group: string, offsets: readonly OffsetCommit[], options: { state?: StateWrite } = {}): Promise<void> {
    try {
      this.checkOpen();
      return this.enqueueMeta(this.prepareCommit(group, offsets), options.state);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Writes to a state store durably, without records or offsets (see src/log/state.ts). */
  putState(write: StateWrite): Promise<void> {
    try {
      this.checkOpen();
      return this.enqueueMeta(null, write);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Queues a transaction of offsets and/or state only: a few bytes, allowed while the log is full. */
  private enqueueMeta(commit: PendingAppend['commit'], state: StateWrite | undefined): Promise<void> {
    const stateBytes = state === undefined ? 0 : checkStateWrite(state);
    if (this.pendingBytes + stateBytes > this.opts.maxPendingBytes) {
      throw new EdgelogError('LOG_OVERLOADED', `the log already holds ${this.pendingBytes} bytes waiting to commit (maxPendingBytes ${this.opts.maxPendingBytes}); retry when earlier writes resolve`);
    }
    this.pendingBytes += stateBytes;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic: null, records: [], commit, state: state ?? null, bytes: 0, stateBytes, enqueuedAtMs: performance.now(), resolve: () => resolve(), reject });
      this.kick();
    });
  }

  /** One entry of a state store, or undefined. */
  getState(store: string, key: string): Buffer | undefined {
    this.checkOpen();
    validateStoreName(store);
    const value = this.storage.meta.get(stateKey(store, key)) as Uint8Array | undefined;
    // A copy: what lmdb-js decodes may share memory it reuses for later reads.
    return value === undefined ? undefined : Buffer.from(value);
  }

  /** Every entry of a state store, in key order, read lazily from one snapshot. */
  *stateEntries(store: string): Generator<{ key: string; value: Buffer }> {
    this.checkOpen();
    validateStoreName(store);
    for (const { key, value } of this.storage.meta.getRange(stateRange(store))) {
      yield { key: (key as [string, string, string])[2], value: Buffer.from(value as Uint8Array) };
    }
  }

  /** Removes every entry of a state store; resolves to how many there were. */
  async deleteStateStore(store: string): Promise<number> {
    this.checkOpen();
    validateStoreName(store);
    let removed = 0;
    await this.runTask(async () => {
      const { root, meta } = this.storage;
      await root.transaction(() => {
        for (const key of meta.getKeys(stateRange(store))) {
          meta.removeSync(key);
          removed++;
        }
      });
      return false;
    });
    return removed;
  }

  /** A group's committed offsets, by topic and partition (offsets of deleted topics are gone). */
  committedOffsets(group: string): CommittedOffset[] {
    this.checkOpen();
    validateGroupId(group);
    const names = new Map([...this.topics.values()].map((t) => [t.id, t.name]));
    const out: CommittedOffset[] = [];
    for (const { key, value } of this.storage.meta.getRange(offsetRange(group))) {
      const [, , topicId, partition] = key as [string, string, number, number];
      const topic = names.get(topicId);
      if (topic === undefined) continue;
      const v = value as StoredOffset;
      out.push({ topic, partition, offset: v.offset, metadata: v.metadata, committedAtMs: v.committedAtMs });
    }
    return out.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  }

  /** Every group with committed offsets, sorted. */
  listGroups(): string[] {
    this.checkOpen();
    const groups = new Set<string>();
    for (const key of this.storage.meta.getKeys(offsetRange())) groups.add((key as [string, string])[1]);
    return [...groups].sort();
  }

  /** Removes every committed offset of a group; resolves to how many there were. */
  async deleteGroupOffsets(group: string): Promise<number> {
    this.checkOpen();
    validateGroupId(group);
    let removed = 0;
    await this.runTask(async () => {
      const { root, meta } = this.storage;
      await root.transaction(() => {
        for (const key of meta.getKeys(offsetRange(group))) {
          meta.removeSync(key);
          removed++;
        }
      });
      return false;
    });
    return removed;
  }

  private prepareCommit(group: string, offsets: readonly OffsetCommit[]): { group: string; offsets: PreparedCommit[] } {
    validateGroupId(group);
    checkOffsetCommits(offsets);
    const prepared = offsets.map((c, i) => {
      const topic = this.topicOrThrow(c.topic);
      const s = this.partitionOrThrow(topic, c.partition);
      if (c.offset > s.next) {
        throw new EdgelogError(
          'OFFSET_AHEAD',
          `offsets[${i}]: offset ${c.offset} for ${c.topic}/${c.partition} is above its high watermark ${s.next}; commit at most the offset after the last record read`,
        );
      }
      return { topic, partition: c.partition, offset: c.offset, metadata: c.metadata ?? '' };
    });
    return { group, offsets: prepared };
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = true;
    // setImmediate, not a microtask: every append issued in this event-loop turn joins the first commit.
    setImmediate(() => void this.drain());
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 || this.tasks.length > 0) {
        if (this.queue.length > 0) {
          const waitMs = this.lastCommitStartMs + this.opts.commitIntervalMs - performance.now();
          if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
          this.lastCommitStartMs = performance.now();
          await this.commitAppends(this.takeBatch());
        }
        const task = this.tasks.shift();
        if (task && (await task())) this.tasks.push(task);
      }
    } finally {
      this.writing = false;
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  private takeBatch(): PendingAppend[] {
    let records = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || records + this.queue[n]!.records.length <= this.opts.maxBatchRecords)) {
      records += this.queue[n]!.records.length;
      n++;
    }
    return this.queue.splice(0, n);
  }

  /**
   * Commits one batch of appends in one durable transaction. Offsets are assigned and records
   * encoded (into one buffer for the whole batch) inside the transaction callback: only this loop
   * writes, so the partition states it works from are the committed ones.
   */
  private async commitAppends(batch: PendingAppend[]): Promise<void> {
    const bytesAsked = batch.reduce((sum, r) => sum + r.bytes + r.stateBytes, 0);
    await this.disk.ensure(this.opts.minFreeDiskBytes + bytesAsked * 2);
    const accepted: PendingAppend[] = [];
    let batchBytes = 0;
    for (const req of batch) {
      this.pendingBytes -= req.bytes + req.stateBytes;
      const refusal = this.refusal(req, batchBytes);
      if (refusal) req.reject(refusal);
      else {
        accepted.push(req);
        batchBytes += req.bytes;
      }
    }
    if (accepted.length === 0) return;
    const { wallMs, logMs } = this.clock.read();
    const clockOffsetMs = this.clock.unstoredOffset();
    const out = Buffer.allocUnsafe(batchBytes);
    const working = new Map<TopicState, PartitionState[]>();
    const results: AppendResult[][] = [];
    const { root, meta, timeIndex } = this.storage;
    try {
      await root.transaction(() => {
        let pos = 0;
        for (const req of accepted) {
          const assigned: AppendResult[] = new Array(req.records.length);
          const topic = req.topic;
          if (topic !== null) {
            let states = working.get(topic);
            if (!states) working.set(topic, (states = topic.partitions.map((s) => ({ ...s }))));
            for (let i = 0; i < req.records.length; i++) {
              const r = req.records[i]!;
              const s = states[r.partition]!;
              const offset = s.next++;
              if (offset >= MAX_OFFSET) assert(false, `partition offset ${offset} reached the key space limit`);
              const timestamp = r.timestamp ?? wallMs;
              topic.db.putSync(recordKey(r.partition, offset), encodeInto(out, pos, r.size, offset, timestamp, logMs, r.key, r.value, r.headers));
              pos += r.size;
              s.bytes += r.size;
              if (timestamp > s.maxTs) s.maxTs = timestamp;
              if ((offset + 1) % TIME_INDEX_INTERVAL === 0) timeIndex.putSync([topic.id, r.partition, s.maxTs, offset], EMPTY);
              assigned[i] = { partition: r.partition, offset };
            }
          }
          results.push(assigned);
          const commit = req.commit;
          if (commit !== null) {
            for (const c of commit.offsets) meta.putSync(offsetKey(commit.group, c.topic.id, c.partition), { offset: c.offset, metadata: c.metadata, committedAtMs: wallMs } satisfies StoredOffset);
          }
          const state = req.state;
          if (state !== null) {
            for (const p of state.puts) {
              if (p.value === null) meta.removeSync(stateKey(state.store, p.key));
              else meta.putSync(stateKey(state.store, p.key), p.value);
            }
          }
        }
        for (const [topic, states] of working) {
          states.forEach((s, p) => {
            if (s.next !== topic.partitions[p]!.next) meta.putSync(['p', topic.id, p], s);
          });
        }
        // A clock step is stored with the first records appended after it, so their ages and the older ones' agree after a restart.
        if (clockOffsetMs !== undefined) meta.putSync(['clock'], { offsetMs: clockOffsetMs });
      });
    } catch (error) {
      const failure = await this.classifyCommitFailure(error);
      for (const req of accepted) req.reject(failure);
      return;
    }
    for (const [topic, states] of working) {
      const before = topic.partitions;
      topic.partitions = states;
      states.forEach((s, p) => {
        if (s.next !== before[p]!.next) this.notifyAppend(topic.name, p, s.next);
      });
    }
    if (clockOffsetMs !== undefined) this.clock.stored(clockOffsetMs);
    this.appendCommits++;
    this.storedBytes += batchBytes;
    this.disk.consumed(batchBytes);
    accepted.forEach((req, i) => req.resolve(results[i]!));
    const observe = this.opts.observeAppendMs;
    if (observe !== null) {
      const doneMs = performance.now();
      for (const req of accepted) observe(doneMs - req.enqueuedAtMs);
    }
  }

  private notifyAppend(topic: string, partition: number, highWatermark: number): void {
    for (const listener of this.appendListeners) {
      try {
        listener(topic, partition, highWatermark);
      } catch (error) {
        // A listener's bug must not stop the writer loop: say so once per failure and go on.
        this.log.error({ err: error, topic, partition }, 'append listener failed');
      }
    }
  }

  /** Why an append that reached the writer cannot be committed now, or null when it can. */
  private refusal(req: PendingAppend, batchBytes: number): EdgelogError | null {
    if (req.topic?.deleted) return new EdgelogError('UNKNOWN_TOPIC', `topic '${req.topic.name}' was deleted before the append committed`);
    const gone = req.commit?.offsets.find((c) => c.topic.deleted);
    if (gone) return new EdgelogError('UNKNOWN_TOPIC', `topic '${gone.topic.name}' was deleted before the offset commit committed`);
    // Committing offsets only adds a few bytes: a group may commit while the log is full (Kafka does too).
    if (req.records.length === 0) return null;
    const { maxLogBytes, minFreeDiskBytes } = this.opts;
    if (maxLogBytes >= 0 && this.storedBytes + batchBytes + req.bytes > maxLogBytes) {
      return this.full(`the log is full: ${this.storedBytes} of ${maxLogBytes} bytes (maxLogBytes) are used; retention or deleting a topic frees space`);
    }
    const free = this.disk.free() - (batchBytes + req.bytes) * 2;
    if (free < minFreeDiskBytes) {
      return this.full(`the disk holding ${this.opts.dir} is full: ${free} bytes free, below the ${minFreeDiskBytes}-byte reserve (minFreeDiskBytes)`);
    }
    return null;
  }

  private full(message: string): LogFullError {
    // One log line per episode, not per refused append.
    const nowMs = this.opts.monotonicNow();
    if (nowMs - this.lastFullLogAtMs > 60_000) this.log.warn({ storedBytes: this.storedBytes }, message);
    this.lastFullLogAtMs = nowMs;
    return new LogFullError(message);
  }

  private async classifyCommitFailure(error: unknown): Promise<EdgelogError> {
    // lmdb-js rejects with a generic error whose `commitError` promise carries the cause.
    const commitError = (error as { commitError?: Promise<unknown> } | null)?.commitError;
    commitError?.catch(() => {});
    await this.disk.sample();
    if (this.disk.free() < Math.max(this.opts.minFreeDiskBytes, 1024 * 1024)) {
      return this.full(`the disk holding ${this.opts.dir} is full (${this.disk.free()} bytes free): the commit failed and nothing of it was stored`);
    }
    this.log.error({ err: error }, 'log commit failed');
    return new EdgelogError('LOG_IO_ERROR', `the log could not commit to ${this.opts.dir}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }

  // ---------------------------------------------------------------- read

  /** Records of one partition from `fromOffset` on, in offset order, up to the durable high watermark. */
  read(topicName: string, partition: number, fromOffset: number, options: ReadOptions = {}): ReadResult {
    this.checkOpen();
    const topic = this.topicOrThrow(topicName);
    const s = this.partitionOrThrow(topic, partition);
    const maxRecords = integerIn('maxRecords', options.maxRecords ?? 500, 1, 100_000);
    const maxBytes = integerIn('maxBytes', options.maxBytes ?? 1024 * 1024, 1, Number.MAX_SAFE_INTEGER);
    if (typeof fromOffset !== 'number' || !Number.isInteger(fromOffset) || fromOffset < s.start || fromOffset > s.next) {
      throw new OffsetOutOfRangeError(topicName, partition, fromOffset, s.start, s.next);
    }
    const records: StoredRecord[] = [];
    let bytes = 0;
    let expected = fromOffset;
    for (const { key, value } of topic.db.getRange({
      start: recordKey(partition, fromOffset),
      end: recordKey(partition, s.next),
      limit: maxRecords,
    })) {
      const offset = (key as number) - recordKey(partition, 0);
      if (offset !== expected) throw new CorruptRecordError(topicName, partition, expected, `record is missing (next stored offset is ${offset})`);
      const record = this.decode(topicName, partition, offset, value as Buffer);
      records.push(record);
      expected++;
      bytes += record.value.length;
      if (bytes >= maxBytes) break;
    }
    if (expected < Math.min(s.next, fromOffset + maxRecords) && bytes < maxBytes) {
      throw new CorruptRecordError(topicName, partition, expected, 'record is missing below the high watermark');
    }
    return { records, highWatermark: s.next, startOffset: s.start };
  }

  private decode(topic: string, partition: number, offset: number, buf: Buffer): StoredRecord {
    try {
      return decodeRecord(buf, offset);
    } catch (error) {
      if (error instanceof RecordDecodeError) {
        this.log.error({ topic, partition, offset, reason: error.message }, 'corrupt record');
        throw new CorruptRecordError(topic, partition, offset, error.message);
      }
      throw error;
    }
  }

  /**
   * The first offset whose producer timestamp is at or after `timestamp` (Kafka's ListOffsets),
   * or the high watermark when there is none. Uses the sparse time index: at most
   * TIME_INDEX_INTERVAL records are read.
   */
  offsetForTimestamp(topicName: string, partition: number, timestamp: number): number {
    this.checkOpen();
    const topic = this.topicOrThrow(topicName);
    const s = this.partitionOrThrow(topic, partition);
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) {
      throw new EdgelogError('INVALID_ARGUMENT', `timestamp must be milliseconds since the epoch, got ${describe(timestamp)}`);
    }
    // The running max M(o) of timestamps is monotone, and the first offset with M(o) >= t is the
    // first offset with timestamp >= t. Index entries sit at the last offset of each block of
    // TIME_INDEX_INTERVAL records and hold M there, so the answer lies in the block of the first
    // entry with M >= t, or in the unindexed tail.
    let blockEnd = s.next - 1;
    let blockStart = Math.floor(s.next / TIME_INDEX_INTERVAL) * TIME_INDEX_INTERVAL;
    for (const key of this.storage.timeIndex.getKeys({ start: [topic.id, partition, timestamp], end: [topic.id, partition + 1], limit: 1 })) {
      blockEnd = (key as number[])[3]!;
      blockStart = blockEnd - TIME_INDEX_INTERVAL + 1;
    }
    const from = Math.max(s.start, blockStart);
    for (const { key, value } of topic.db.getRange({ start: recordKey(partition, from), end: recordKey(partition, blockEnd + 1) })) {
      if (timestampOf(value as Buffer) >= timestamp) return (key as number) - recordKey(partition, 0);
    }
    return s.next;
  }

  // ---------------------------------------------------------------- retention

  /**
   * Deletes, per partition, the oldest records past the topic's retention age or size, in
   * transactions of `retentionBatchRecords` with appends committed in between. Ages are in the
   * log's time (log-clock.ts): a step of the wall clock ages no record. The retention schedule
   * calls this; it can also be called directly.
   */
  async enforceRetention(): Promise<RetentionReport> {
    this.checkOpen();
    const report: RetentionReport = { deletedRecords: 0, deletedBytes: 0, droppedHeldRecords: 0 };
    const work = [...this.topics.values()].flatMap((t) => t.partitions.map((_, p) => ({ topic: t, p })));
    let i = 0;
    await this.runTask(async () => {
      while (i < work.length) {
        const { topic, p } = work[i]!;
        const deleted = topic.deleted ? null : await this.retainChunk(topic, p);
        if (deleted) {
          report.deletedRecords += deleted.records;
          report.deletedBytes += deleted.bytes;
          report.droppedHeldRecords += deleted.droppedHeld;
          return true; // let queued appends commit before the next chunk
        }
        i++;
      }
      await this.storeClockStep();
      return false;
    });
    if (report.droppedHeldRecords > 0) {
      this.log.warn(report, "retention deleted records a bridge had not replicated: the log is under disk pressure and diskPressurePolicy is 'drop-oldest'");
    } else if (report.deletedRecords > 0) this.log.info(report, 'retention deleted records');
    return report;
  }

  /** Deletes one chunk of expired records from a partition; null when nothing is due. */
  private async retainChunk(topic: TopicState, p: number): Promise<{ records: number; bytes: number; droppedHeld: number } | null> {
    const s = topic.partitions[p]!;
    if (topic.config.retentionMs < 0 && topic.config.retentionBytes < 0) return null;
    const candidates: Array<{ appendTime: number; bytes: number }> = [];
    for (const { value } of topic.db.getRange({
      start: recordKey(p, s.start),
      end: recordKey(p, s.next),
      limit: this.opts.retentionBatchRecords,
    })) {
      candidates.push({ appendTime: appendTimeOf(value as Buffer), bytes: (value as Buffer).length });
    }
    const due = recordsToDelete(candidates, s.bytes, topic.config, this.clock.read().logMs);
    if (due === 0) return null;
    const dropHeld = this.opts.diskPressurePolicy === 'drop-oldest' && this.underDiskPressure();
    const { toDelete: n, droppedHeld } = applyRetentionHold(s.start, due, this.heldFrom(topic, p), dropHeld);
    if (n === 0) return null;
    const bytes = candidates.slice(0, n).reduce((sum, c) => sum + c.bytes, 0);
    const next: PartitionState = { ...s, start: s.start + n, bytes: s.bytes - bytes };
    const { root, meta, timeIndex } = this.storage;
    const clockOffsetMs = this.clock.unstoredOffset();
    await root.transaction(() => {
      // The step that made these records due, if any, is stored before they go.
      if (clockOffsetMs !== undefined) meta.putSync(['clock'], { offsetMs: clockOffsetMs });
      for (let o = s.start; o < next.start; o++) topic.db.removeSync(recordKey(p, o));
      // Index entries are ordered by [maxTs, offset], which is offset order: drop those below the new start.
      for (const key of timeIndex.getKeys({ start: [topic.id, p], end: [topic.id, p + 1] })) {
        if ((key as number[])[3]! >= next.start) break;
        timeIndex.removeSync(key);
      }
      meta.putSync(['p', topic.id, p], next);
    });
    if (clockOffsetMs !== undefined) this.clock.stored(clockOffsetMs);
    topic.partitions[p] = next;
    this.storedBytes -= bytes;
    this.droppedHeld += droppedHeld;
    return { records: n, bytes, droppedHeld };
  }

  /**
   * Stores a clock step that no append or deletion stored yet (an idle log): without it, a restart
   * would count the step as age after all. Runs as writer work, after retention's reading.
   */
  private async storeClockStep(): Promise<void> {
    const offsetMs = this.clock.unstoredOffset();
    if (offsetMs === undefined) return;
    try {
      await this.storage.root.transaction(() => this.storage.meta.putSync(['clock'], { offsetMs }));
      this.clock.stored(offsetMs);
    } catch (error) {
      // A full disk: the next append or retention run stores it.
      this.log.debug({ err: error }, 'the clock step could not be stored yet');
    }
  }

  /** The first offset of a partition that holds keep, or undefined when no hold covers it. */
  private heldFrom(topic: TopicState, p: number): number | undefined {
    let from: number | undefined;
    for (const hold of this.holds) {
      if (!hold.covers(topic.name)) continue;
      const committed = this.storage.meta.get(offsetKey(hold.group, topic.id, p)) as StoredOffset | undefined;
      const offset = committed?.offset ?? 0;
      from = from === undefined ? offset : Math.min(from, offset);
    }
    return from;
  }

  private underDiskPressure(): boolean {
    const { maxLogBytes, minFreeDiskBytes } = this.opts;
    if (maxLogBytes >= 0 && this.storedBytes >= maxLogBytes * DISK_PRESSURE_FRACTION) return true;
    return this.disk.free() < 2 * minFreeDiskBytes;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Append transactions committed since open: appends per commit is what group commit buys. */
  get commitCount(): number {
    return this.appendCommits;
  }

  /** Bytes of stored records across all topics. */
  /** The log's size against its capacity and the disk's free space against its reserve (dashboard, metrics, doctor). */
  diskUsage(): DiskUsage {
    return { storedBytes: this.storedBytes, maxLogBytes: this.opts.maxLogBytes, freeDiskBytes: Math.max(0, this.disk.free()), minFreeDiskBytes: this.opts.minFreeDiskBytes };
  }

  get bytesStored(): number {
    return this.storedBytes;
  }

  /** Stops retention, waits for queued appends to commit, and closes LMDB. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      await this.cron?.stop();
      if (this.writing) await new Promise<void>((resolve) => this.idle.push(resolve));
      await this.storage.root.close();
      this.unlock();
      this.log.info('log closed');
    })();
    return this.closing;
  }

  private runTask(step: Task): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.tasks.push(async () => {
        try {
          const more = await step();
          if (!more) resolve();
          return more;
        } catch (error) {
          reject(error);
          return false;
        }
      });
      this.kick();
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new EdgelogError('LOG_CLOSED', 'the log is closed');
  }

  private topicOrThrow(name: string): TopicState {
    const topic = this.topics.get(name);
    if (topic) return topic;
    if (typeof name !== 'string') throw new EdgelogError('INVALID_TOPIC_NAME', `topic name must be a string, got ${describe(name)}`);
    throw new EdgelogError('UNKNOWN_TOPIC', `unknown topic ${describe(name)}: create it first (existing topics: ${this.listTopics().join(', ') || 'none'})`);
  }

  private partitionOrThrow(topic: TopicState, partition: number): PartitionState {
    const s = Number.isInteger(partition) ? topic.partitions[partition] : undefined;
    if (!s) {
      throw new EdgelogError(
        'UNKNOWN_PARTITION',
        `partition ${describe(partition)} does not exist: topic '${topic.name}' has partitions 0 to ${topic.partitions.length - 1}`,
      );
    }
    return s;
  }
}
