import type { Logger } from 'pino';
import { assert, CorruptRecordError, EdgelogError, OffsetOutOfRangeError } from '../errors.js';
import type { GroupCoordinator } from '../groups/coordinator.js';
import { DEFAULT_MAX_BATCH_RECORDS, type CommitLog } from '../log/commit-log.js';
import type { OffsetCommit } from '../log/offsets.js';
import type { AppendRecord } from '../log/prepare-records.js';
import type { StoredRecord } from '../log/record-codec.js';
import { integerIn } from '../log/topic-config.js';
import { STREAMS_GROUP_PREFIX, type StreamProcessorConfig } from './config.js';
import { Pipeline, type Item, type PipelineCounters, type Problem } from './pipeline.js';
import { META_KEY, partitionId, splitPartitionId } from './state-keys.js';

/**
 * One stream processor (docs/streams.md): reads its input partitions from its group's committed
 * offsets (from the earliest record the first time), runs each batch through its pipeline, and
 * writes the batch's output records, its input offsets and its changed state in ONE log
 * transaction (`append(to, records, { commit, state })`, or `commitOffsets(..., { state })` when
 * nothing is emitted). After a crash it resumes from that transaction: its state is exactly the
 * state after its committed offsets, so no reading is lost and none is counted twice.
 *
 * It wakes on the log's append events, never polls, and registers as a member of its group with
 * the coordinator, so `edgelog groups describe streams.<name>` shows it and its lag.
 */

export interface StreamProcessorOptions {
  log: CommitLog;
  /** With a coordinator the processor is a member of its group and reads the partitions it is assigned; without, it reads every partition of its input topics. */
  groups?: GroupCoordinator;
  logger: Logger;
  config: StreamProcessorConfig;
  /** Input records per transaction, 1 to BATCH_RECORDS_MAX (the default); the crash tests use small batches to get many transactions. */
  batchRecords?: number;
}

export type ProcessorStatus = 'starting' | 'waiting' | 'running' | 'retrying' | 'closed';

export interface StreamProcessorStats {
  name: string;
  group: string;
  from: string[];
  to: string;
  status: ProcessorStatus;
  /** Input partitions it reads now. */
  partitions: number;
  /** Records in those partitions not yet processed. */
  lag: number;
  counters: PipelineCounters;
  openWindows: number;
  raisedAlerts: number;
  /** The last failure of a batch (it is retried), null once a batch succeeds again. */
  lastError: string | null;
}

/** Input records per transaction: one commit's work stays a few ms, and a batch's records are in memory at once. */
export const BATCH_RECORDS_MAX = 1000;
/** Bytes of input values read per partition and batch (the log's own default read bound). */
const READ_BYTES_MAX = 1024 * 1024;
/** Output bytes after which a batch takes no more records: one transaction stays small next to the log's pending-bytes bound. */
const OUTPUT_BYTES_SOFT_MAX = 4 * 1024 * 1024;
/** One append takes at most this many records (the log's maxBatchRecords default, which the gateway uses). */
const MAX_OUTPUT_RECORDS = DEFAULT_MAX_BATCH_RECORDS;
/** A stored record's framing, key length field and content-type header around the value, for the output size check. */
const OUTPUT_RECORD_OVERHEAD_BYTES = 128;
/** Backoff after a failed batch (log full, overloaded, output topic gone): from 100 ms, doubling, at most 10 s. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 10_000;
/** The processor heartbeats from a timer, so only a blocked event loop could miss the session timeout. */
const HEARTBEAT_INTERVAL_MS = 3000;
const SESSION_TIMEOUT_MS = 30_000;
/** A kind of record problem is logged at most once in this interval, with its running count (STYLE.md §9). */
const PROBLEM_LOG_INTERVAL_MS = 10 * 60_000;
/** Failures that are operating conditions the processor waits out (docs/streams.md: it waits and retries, as producers do): logged at warn. */
const WAITED_OUT_CODES: ReadonlySet<string> = new Set(['LOG_FULL', 'LOG_OVERLOADED']);
/** The client id of processors in their groups. */
const CLIENT_ID = 'edgelog-streams';

interface ActivePartition {
  topic: string;
  partition: number;
  /** The next offset to read. */
  position: number;
}

export class StreamProcessor {
  readonly name: string;
  /** Its consumer group and its state store. */
  readonly group: string;
  private readonly config: StreamProcessorConfig;
  private readonly log: CommitLog;
  private readonly groups: GroupCoordinator | undefined;
  private readonly logger: Logger;
  private readonly fromSet: ReadonlySet<string>;
  private readonly pipeline: Pipeline;
  private readonly batchRecords: number;
  private readonly active = new Map<string, ActivePartition>();
  /** Partitions the coordinator assigned (null without a coordinator: every input partition). */
  private assignment: Set<string> | null;
  private memberId: string | null = null;
  private needsLoad = true;
  private outputMaxBytes = 0;
  private cursor = 0;
  private status: ProcessorStatus = 'starting';
  private lastError: string | null = null;
  /** What the last failure's line was about (its code, or its message): one line per kind, not per retry. */
  private lastErrorKind: string | null = null;
  private readonly problemLoggedAt = new Map<string, number>();
  private closed = false;
  private closing: Promise<void> | null = null;
  private loop: Promise<void> | null = null;
  private woken = false;
  /** While backing off after a failure, appends do not wake the loop (only close() does): no busy retry while the log is overloaded. */
  private backingOff = false;
  private wakeSleeper: (() => void) | null = null;
  private unsubscribe: (() => void) | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private rejoin: NodeJS.Timeout | null = null;

  constructor(opts: StreamProcessorOptions) {
    assert(opts?.log && opts.logger && opts.config, 'StreamProcessor needs { log, logger, config }');
    this.config = opts.config;
    this.name = opts.config.name;
    this.group = `${STREAMS_GROUP_PREFIX}${opts.config.name}`;
    this.log = opts.log;
    this.groups = opts.groups;
    this.logger = opts.logger.child({ component: 'streams', processor: this.name });
    this.fromSet = new Set(opts.config.from);
    this.assignment = opts.groups ? new Set() : null;
    this.batchRecords = integerIn('batchRecords', opts.batchRecords ?? BATCH_RECORDS_MAX, 1, BATCH_RECORDS_MAX);
    this.pipeline = new Pipeline(opts.config.pipeline, opts.config.maxOpenWindows, (p) => this.onProblem(p));
  }

  /** Starts the processing loop; failures inside it are logged and retried, never thrown. */
  start(): void {
    assert(this.loop === null, 'a stream processor starts once');
    this.unsubscribe = this.log.onAppend((topic) => {
      if (this.fromSet.has(topic)) this.wake();
    });
    if (this.groups) {
      this.join();
      this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_INTERVAL_MS);
      this.heartbeat.unref();
    }
    this.logger.info({ group: this.group, from: this.config.from, to: this.config.to, steps: this.config.pipeline.map((s) => s.kind) }, 'stream processor started');
    this.loop = this.run();
  }

  stats(): StreamProcessorStats {
    let lag = 0;
    if (!this.closed) {
      for (const p of this.active.values()) {
        const hw = this.log.hasTopic(p.topic) ? this.log.describeTopic(p.topic).partitions[p.partition]?.highWatermark : undefined;
        if (hw !== undefined) lag += Math.max(0, hw - p.position);
      }
    }
    const c = this.pipeline.counters;
    return {
      name: this.name,
      group: this.group,
      from: [...this.config.from],
      to: this.config.to,
      status: this.status,
      partitions: this.active.size,
      lag,
      counters: { ...c, errors: { ...c.errors } },
      openWindows: this.pipeline.openWindows,
      raisedAlerts: this.pipeline.raisedAlerts,
      lastError: this.lastError,
    };
  }

  /** Stops after the batch in flight is committed (or fails), and leaves the group. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.wake();
      this.unsubscribe?.();
      if (this.heartbeat) clearInterval(this.heartbeat);
      if (this.rejoin) clearTimeout(this.rejoin);
      await this.loop;
      if (this.groups && this.memberId !== null) this.groups.leave(this.group, this.memberId);
      this.memberId = null;
      this.status = 'closed';
      this.logger.info(this.pipeline.counters, 'stream processor stopped');
    })();
    return this.closing;
  }

  // ---------------------------------------------------------------- group membership

  private join(): void {
    const groups = this.groups!;
    if (this.closed) return;
    let me: string | null = null;
    try {
      me = groups.join({
        groupId: this.group,
        clientId: CLIENT_ID,
        topics: this.config.from,
        offsetReset: 'earliest',
        sessionTimeoutMs: SESSION_TIMEOUT_MS,
        onAssignment: (a) => {
          if (me !== this.memberId) return;
          this.assignment = new Set(a.partitions.map((p) => partitionId(p.topic, p.partition)));
          this.wake();
        },
        onRemoved: (reason) => {
          if (me !== this.memberId) return;
          this.memberId = null;
          this.assignment = new Set();
          if (this.closed) return;
          this.logger.warn({ reason }, 'removed from its group: joining again');
          this.scheduleRejoin();
        },
      }).memberId;
      this.memberId = me;
    } catch (error) {
      this.logger.error({ err: error }, `cannot join group ${this.group}: retrying in ${RETRY_MAX_MS} ms`);
      this.scheduleRejoin();
    }
  }

  private scheduleRejoin(): void {
    if (this.closed || this.rejoin) return;
    this.rejoin = setTimeout(() => {
      this.rejoin = null;
      this.join();
    }, RETRY_MAX_MS);
    this.rejoin.unref();
  }

  private beat(): void {
    if (this.memberId === null) return;
    try {
      this.groups!.heartbeat(this.group, this.memberId);
    } catch (error) {
      if (!(error instanceof EdgelogError && error.code === 'UNKNOWN_MEMBER')) {
        this.logger.error({ err: error }, 'heartbeat failed');
        return;
      }
      this.memberId = null;
      this.assignment = new Set();
      this.logger.warn('no longer a member of its group: joining again');
      this.join();
    }
  }

  // ---------------------------------------------------------------- the loop

  private wake(): void {
    this.woken = true;
    if (this.backingOff && !this.closed) return;
    const sleeper = this.wakeSleeper;
    this.wakeSleeper = null;
    sleeper?.();
  }

  /** Waits for an append to an input topic, an assignment or close(). */
  private sleep(): Promise<void> {
    if (this.woken || this.closed) return Promise.resolve();
    return new Promise((resolve) => (this.wakeSleeper = resolve));
  }

  /** Waits `ms` or until close(). */
  private async backOff(ms: number): Promise<void> {
    if (this.closed) return;
    this.backingOff = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wakeSleeper = null;
        resolve();
      }, ms);
      this.wakeSleeper = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.backingOff = false;
  }

  private async run(): Promise<void> {
    let retryMs = RETRY_MIN_MS;
    while (!this.closed) {
      // Appends from here on wake the next sleep: none is missed between a read and the sleep.
      this.woken = false;
      try {
        if (this.needsLoad) await this.loadState();
        await this.refreshPartitions();
        const worked = await this.batch(Number.POSITIVE_INFINITY);
        if (this.lastError !== null) this.logger.info({ after: this.lastError }, 'stream processor resumed');
        this.lastError = null;
        this.lastErrorKind = null;
        retryMs = RETRY_MIN_MS;
        if (!worked) {
          this.status = 'waiting';
          await this.sleep();
        }
      } catch (error) {
        if (this.closed) break;
        if (error instanceof EdgelogError && error.code === 'LOG_CLOSED') {
          this.logger.warn('the log closed under the stream processor: it stops');
          break;
        }
        const message = error instanceof Error ? error.message : String(error);
        // A full log's message carries byte counts that change with every retry: the code is the kind.
        const kind = error instanceof EdgelogError ? error.code : message;
        if (kind !== this.lastErrorKind) {
          const level = error instanceof EdgelogError && WAITED_OUT_CODES.has(error.code) ? 'warn' : 'error';
          this.logger[level]({ err: error, retryInMs: retryMs }, 'stream processor batch failed: it resumes from its last commit');
        }
        this.lastError = message;
        this.lastErrorKind = kind;
        this.status = 'retrying';
        // Whatever the failed batch changed in memory is thrown away: state and positions come
        // back from the store and the group's offsets, as after a crash.
        this.needsLoad = true;
        await this.backOff(retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    }
    this.status = 'closed';
  }

  /** Loads state from the store (deleting what no longer fits) and forgets the in-memory positions. */
  private async loadState(): Promise<void> {
    this.active.clear();
    const entries = (function* (log: CommitLog, store: string) {
      for (const e of log.stateEntries(store)) if (e.key !== META_KEY) yield e;
    })(this.log, this.group);
    const report = this.pipeline.load(this.log.getState(this.group, META_KEY), entries, this.fromSet);
    if (report.fingerprintChanged) {
      this.logger.warn({ droppedWindows: report.droppedWindows, droppedAlerts: report.droppedAlerts }, "the processor's pipeline changed since its state was written: open windows and raised alerts start afresh (their partial results are dropped)");
    }
    if (report.droppedPartitions.length > 0) {
      this.logger.warn({ partitions: report.droppedPartitions }, "state of input partitions no longer in 'from' is deleted");
    }
    await this.writeCleanup();
    // The log says 'topic created' itself.
    await this.log.ensureTopic(this.config.to);
    this.outputMaxBytes = this.log.describeTopic(this.config.to).config.maxMessageBytes;
    this.needsLoad = false;
  }

  /**
   * Writes deletions of dropped state. They belong to no offset commit: if the gateway dies
   * before they are written, the next start finds the same state to drop.
   */
  private async writeCleanup(): Promise<void> {
    if (!this.pipeline.hasChanges) return;
    for (const puts of this.pipeline.takeWrites()) await this.log.putState({ store: this.group, puts });
  }

  /** Brings the set of partitions read in line with the assignment (or the input topics) and activates new ones. */
  private async refreshPartitions(): Promise<void> {
    const wanted = new Set<string>();
    if (this.assignment) for (const pk of this.assignment) wanted.add(pk);
    else {
      for (const topic of this.config.from) {
        if (!this.log.hasTopic(topic)) continue;
        for (const p of this.log.describeTopic(topic).partitions) wanted.add(partitionId(topic, p.partition));
      }
    }
    for (const pk of this.active.keys()) if (!wanted.has(pk)) this.active.delete(pk);
    for (const pk of wanted) if (!this.active.has(pk)) await this.activate(pk);
  }

  /** Where a partition resumes: its committed offset, whose state must be the stored one. */
  private async activate(pk: string): Promise<void> {
    const { topic, partition } = splitPartitionId(pk);
    if (!this.log.hasTopic(topic)) return;
    const desc = this.log.describeTopic(topic).partitions[partition];
    if (!desc) return;
    const committed = this.log.committedOffsets(this.group).find((c) => c.topic === topic && c.partition === partition)?.offset;
    const stored = this.pipeline.position(pk);
    if (stored !== undefined && stored !== committed) {
      // Only this processor commits with state: another writer moved the offset (a reset while
      // the processor was not running, another member of the group, or the topic was created
      // again, which forgets its offsets). The state no longer matches: start it afresh.
      const dropped = this.pipeline.dropPartition(pk);
      this.logger.warn(
        { partition: pk, stateOffset: stored, committedOffset: committed ?? null, droppedWindows: dropped.windows, droppedAlerts: dropped.alerts },
        "the group's committed offset moved outside the processor: this partition's windows and alerts start afresh from the committed offset",
      );
      await this.writeCleanup();
    } else if (stored === undefined && committed !== undefined && committed > desc.startOffset) {
      this.logger.warn({ partition: pk, committedOffset: committed }, 'the group has a committed offset but the processor has no state for it: resuming there with empty state');
    }
    this.active.set(pk, { topic, partition, position: committed ?? desc.startOffset });
  }

  /**
   * Processes up to `batchRecords` records (at most `limit` through the pipeline) and commits
   * them in one transaction. Resolves false when there was nothing to do.
   */
  private async batch(limit: number): Promise<boolean> {
    this.status = 'running';
    const parts = [...this.active.entries()];
    const start = parts.length === 0 ? 0 : this.cursor % parts.length;
    const order = [...parts.slice(start), ...parts.slice(0, start)];
    const outputs: AppendRecord[] = [];
    const touched = new Set<string>();
    let outputBytes = 0;
    let processed = 0;
    let budget = this.batchRecords;
    let full = false;
    for (const [pk, part] of order) {
      if (budget <= 0 || full) break;
      const records = this.readSome(pk, part, budget, touched);
      for (const record of records) {
        if (processed === limit) {
          // A redone batch stops before the record that overflowed it; alone, that record is skipped as an error.
          if (limit === 0) {
            this.pipeline.skip(pk, record.offset, 'overflow', 'processing this record alone would write more than one transaction holds (too many windows closing at once): it was skipped');
            part.position = record.offset + 1;
            touched.add(pk);
          }
          full = true;
          break;
        }
        const worstOutputs = this.pipeline.openWindows + 64 * this.config.pipeline.length;
        if (!this.pipeline.canTake() || outputBytes >= OUTPUT_BYTES_SOFT_MAX || outputs.length + worstOutputs > MAX_OUTPUT_RECORDS) {
          full = true;
          break;
        }
        const items = this.pipeline.process(pk, record);
        const produced = this.toRecords(items);
        if (this.pipeline.overLimits() || outputs.length + produced.records.length > MAX_OUTPUT_RECORDS) {
          // Never expected with the bounds above; when it happens, redo the batch without this record.
          this.logger.warn({ partition: pk, offset: record.offset, records: processed }, 'a batch outgrew one transaction: it is redone without its last record');
          await this.loadState();
          await this.refreshPartitions();
          return this.batch(processed);
        }
        outputs.push(...produced.records);
        outputBytes += produced.bytes;
        part.position = record.offset + 1;
        touched.add(pk);
        processed++;
        budget--;
      }
    }
    if (touched.size === 0) return false;
    this.pipeline.counters.emitted += outputs.length;
    const offsets: OffsetCommit[] = [...touched].map((pk) => {
      const p = this.active.get(pk)!;
      return { topic: p.topic, partition: p.partition, offset: p.position };
    });
    const writes = this.pipeline.takeWrites();
    assert(writes.length === 1, `a batch's state needs ${writes.length} writes`);
    const state = { store: this.group, puts: writes[0]! };
    if (outputs.length > 0) await this.log.append(this.config.to, outputs, { commit: { group: this.group, offsets }, state });
    else await this.log.commitOffsets(this.group, offsets, { state });
    this.cursor++;
    return true;
  }

  /**
   * Reads the next records of one partition. Records deleted by retention before they were read
   * are skipped and counted; a corrupt record is skipped as an error (the storage returned bad
   * bytes: it can never be read); a deleted topic drops out until it exists again.
   */
  private readSome(pk: string, part: ActivePartition, budget: number, touched: Set<string>): StoredRecord[] {
    try {
      return this.log.read(part.topic, part.partition, part.position, { maxRecords: budget, maxBytes: READ_BYTES_MAX }).records;
    } catch (error) {
      if (error instanceof OffsetOutOfRangeError && part.position < error.startOffset) {
        this.logger.warn({ partition: pk, from: part.position, to: error.startOffset }, 'input records were deleted by retention before the processor read them: skipped and counted');
        this.pipeline.skipDeleted(pk, part.position, error.startOffset);
        part.position = error.startOffset;
        touched.add(pk);
        return this.readSome(pk, part, budget, touched);
      }
      if (error instanceof CorruptRecordError && error.offset >= part.position) {
        if (error.offset > part.position) {
          return this.log.read(part.topic, part.partition, part.position, { maxRecords: Math.min(budget, error.offset - part.position), maxBytes: READ_BYTES_MAX }).records;
        }
        this.pipeline.skip(pk, error.offset, 'corruptRecord', error.message);
        part.position = error.offset + 1;
        touched.add(pk);
        return [];
      }
      if (error instanceof EdgelogError && (error.code === 'UNKNOWN_TOPIC' || error.code === 'UNKNOWN_PARTITION')) {
        this.active.delete(pk);
        return [];
      }
      throw error;
    }
  }

  /** The items as output records; one too large for the output topic is counted and left out. */
  private toRecords(items: Item[]): { records: AppendRecord[]; bytes: number } {
    const records: AppendRecord[] = [];
    let bytes = 0;
    for (const item of items) {
      const value = Buffer.from(JSON.stringify(item.payload));
      const size = value.length + (item.key === null ? 0 : Buffer.byteLength(item.key)) + OUTPUT_RECORD_OVERHEAD_BYTES;
      if (size > this.outputMaxBytes) {
        this.pipeline.countError('outputTooLarge', `an output record of ${size} bytes is over topic '${this.config.to}' maxMessageBytes ${this.outputMaxBytes}`);
        continue;
      }
      records.push({ key: item.key, value, timestamp: item.timestamp, headers: { 'content-type': 'application/json' } });
      bytes += size;
    }
    return { records, bytes };
  }

  private onProblem(p: Problem): void {
    // An interval: on the monotonic clock, so a step back of the wall clock cannot silence these lines.
    const now = performance.now();
    const last = this.problemLoggedAt.get(p.kind);
    if (last !== undefined && now - last < PROBLEM_LOG_INTERVAL_MS) return;
    this.problemLoggedAt.set(p.kind, now);
    const { topic, partition } = splitPartitionId(p.pk);
    const count = p.kind === 'late' ? this.pipeline.counters.late : p.kind === 'p95Inexact' ? this.pipeline.counters.p95Inexact : this.pipeline.counters.errors[p.kind];
    const what = p.kind === 'late' ? 'late record left out of a closed window' : p.kind === 'p95Inexact' ? 'window emitted without p95' : 'record skipped';
    this.logger.warn({ kind: p.kind, topic, partition, offset: p.offset, detail: p.detail, count }, `${what} (${p.kind}); more of this kind are counted in the processor's stats and logged at most every ${PROBLEM_LOG_INTERVAL_MS / 60_000} minutes`);
  }
}
