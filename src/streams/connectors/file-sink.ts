import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { CorruptRecordError, EdgelogError, OffsetOutOfRangeError } from '../../errors.js';
import type { CommitLog } from '../../log/commit-log.js';
import type { OffsetCommit } from '../../log/offsets.js';
import type { StoredRecord } from '../../log/record-codec.js';
import type { StateWrite } from '../../log/state.js';
import { connectorGroup, type FileSinkOptions } from './config.js';
import { decodeSinkPosition, encodeSinkPosition, identityOf, sameFile, SINK_STATE_KEY, type FileIdentity } from './file-position.js';
import { formatLines } from './sink-format.js';
import { RetryLoop } from './retry-loop.js';

/** Value bytes read per batch: with batchRecords, what one batch holds in memory (a single larger record is still read whole). */
export const MAX_BATCH_BYTES = 1024 * 1024;

export interface FileSinkSettings {
  name: string;
  /** The file to append to: an absolute path, created if missing (its folder must exist). */
  file: string;
  topic: string;
  options: FileSinkOptions;
  log: CommitLog;
  logger: Logger;
}

export interface FileSinkStats {
  /** waiting: the topic does not exist yet; writing: caught up or writing; retrying: a write or commit failed and is retried. */
  state: 'waiting' | 'writing' | 'retrying' | 'closed';
  /** The file's size after the last committed batch. */
  committedBytes: number;
  recordsWritten: number;
  /** Bytes cut from the end of the file at start: lines of a batch whose commit did not happen, written again. */
  bytesTruncatedAtStart: number;
  /** Records retention deleted before the sink wrote them (logged; they are not in the file). */
  recordsSkipped: number;
  /**
   * Partitions that wait at a record the log cannot read (CORRUPT_RECORD): the lines before it are
   * written, the other partitions go on, and this one waits there until an operator moves the
   * group's offset past it (`edgelog groups reset-offsets connect.<name>`) and restarts the sink.
   */
  stalled: Array<{ partition: number; offset: number; reason: string }>;
}

interface SinkFile {
  handle: FileHandle;
  id: FileIdentity;
}

/**
 * Appends a topic's records (all partitions) to a file, one line each, like Kafka Connect's
 * FileStreamSink but without duplicate lines after a crash: each batch is written, fsync'd, and
 * then the offsets are committed (consumer group `connect.<name>`) together with the file's size
 * in the same transaction (the state store). At start the file is cut back to the committed size,
 * so lines of a batch whose commit did not happen are not there twice. Woken by the log's append
 * notifications; no polling. See docs/connectors.md.
 */
export class FileSink {
  private readonly group: string;
  private file: SinkFile;
  private committedSize: number;
  /** Set after a failed batch: the file may hold part of it, to be cut back before the next write. */
  private dirtyTail = false;
  /** Next offset to write, per partition; null until the topic exists. */
  private positions: number[] | null = null;
  private nextPartition = 0;
  private readonly unsubscribe: () => void;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly loop: RetryLoop;
  private waitingLogged = false;
  private readonly counts = { recordsWritten: 0, bytesTruncatedAtStart: 0, recordsSkipped: 0 };
  /** See FileSinkStats.stalled; by partition. */
  private readonly stalled = new Map<number, { offset: number; reason: string }>();

  private constructor(
    private readonly s: FileSinkSettings,
    file: SinkFile,
    committedSize: number,
  ) {
    this.group = connectorGroup(s.name);
    this.file = file;
    this.committedSize = committedSize;
    this.loop = new RetryLoop({
      name: 'file sink',
      step: () => this.writeBatch(),
      // The file may hold part of the failed batch: cut it back before the next write.
      onFailure: () => (this.dirtyTail = true),
      retryNote: 'the batch is written again, nothing is skipped',
      logger: s.logger,
    });
    this.unsubscribe = s.log.onAppend((topic) => {
      if (topic === s.topic) this.loop.kick();
    });
  }

  /**
   * Opens (or creates) the file, cuts it back to the committed size, and starts writing from the
   * committed offsets. Throws INVALID_CONFIG when the file cannot be opened for appending.
   */
  static async start(settings: FileSinkSettings): Promise<FileSink> {
    const s = { ...settings, logger: settings.logger.child({ connector: settings.name }) };
    const file = await openSinkFile(s.file, s.name);
    let committedSize: number;
    let truncated: number;
    try {
      ({ committedSize, truncated } = await recover(s, file));
    } catch (error) {
      await file.handle.close();
      throw error;
    }
    const sink = new FileSink(s, file, committedSize);
    sink.counts.bytesTruncatedAtStart = truncated;
    s.logger.info({ file: s.file, topic: s.topic, group: sink.group, committedBytes: committedSize }, 'file sink started');
    sink.loop.kick();
    return sink;
  }

  stats(): FileSinkStats {
    const state = this.closed ? 'closed' : this.loop.failing ? 'retrying' : this.positions === null ? 'waiting' : 'writing';
    const stalled = [...this.stalled].map(([partition, at]) => ({ partition, ...at }));
    return { state, committedBytes: this.committedSize, ...this.counts, stalled };
  }

  /** Stops listening, waits for the batch in flight to commit, and closes the file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.unsubscribe();
      await this.loop.close();
      await this.file.handle.close();
      this.s.logger.info({ committedBytes: this.committedSize }, 'file sink closed');
    })();
    return this.closing;
  }

  /** Writes, fsyncs and commits one batch; true when it wrote one (there may be more). */
  private async writeBatch(): Promise<boolean> {
    const { log, topic } = this.s;
    if (!log.hasTopic(topic)) {
      if (!this.waitingLogged) this.s.logger.info({ topic }, 'waiting for the topic to exist');
      this.waitingLogged = true;
      // A topic created again later has no committed offsets of ours: start from its beginning.
      this.positions = null;
      return false;
    }
    this.waitingLogged = false;
    if (this.dirtyTail) await this.cutBack();
    await this.followReplacement();
    const positions = (this.positions ??= this.loadPositions());
    const batch = this.readBatch(positions);
    if (batch.length === 0) return false;
    const pieces: Buffer[] = [];
    for (const { partition, records } of batch) formatLines(this.s.options.format, topic, partition, records, pieces);
    const bytes = Buffer.concat(pieces);
    const { handle, id } = this.file;
    this.dirtyTail = true;
    for (let done = 0; done < bytes.length; ) done += (await handle.write(bytes, done, bytes.length - done)).bytesWritten;
    // The lines are durable before the commit that says they are there (DESIGN "Contracts").
    await handle.datasync();
    const size = Number((await handle.stat()).size);
    const offsets: OffsetCommit[] = batch.map(({ partition, records }) => ({ topic, partition, offset: records.at(-1)!.offset + 1 }));
    await log.commitOffsets(this.group, offsets, { state: this.positionWrite(id, size) });
    this.dirtyTail = false;
    this.committedSize = size;
    for (const c of offsets) positions[c.partition] = c.offset;
    this.counts.recordsWritten += batch.reduce((n, b) => n + b.records.length, 0);
    return true;
  }

  /** Up to batchRecords records and MAX_BATCH_BYTES, taking partitions in turn so none is starved. */
  private readBatch(positions: number[]): Array<{ partition: number; records: StoredRecord[] }> {
    const batch: Array<{ partition: number; records: StoredRecord[] }> = [];
    let records = this.s.options.batchRecords;
    let bytes = MAX_BATCH_BYTES;
    const n = positions.length;
    const first = this.nextPartition % n;
    this.nextPartition = first + 1;
    for (let i = 0; i < n && records > 0 && bytes > 0; i++) {
      const p = (first + i) % n;
      const read = this.readPartition(p, positions, records, bytes);
      if (read.length === 0) continue;
      batch.push({ partition: p, records: read });
      records -= read.length;
      bytes -= read.reduce((sum, r) => sum + r.value.length, 0);
    }
    return batch;
  }

  private readPartition(p: number, positions: number[], maxRecords: number, maxBytes: number): StoredRecord[] {
    try {
      return this.s.log.read(this.s.topic, p, positions[p]!, { maxRecords, maxBytes }).records;
    } catch (error) {
      if (error instanceof CorruptRecordError) return this.readToCorrupt(p, positions[p]!, error, maxRecords, maxBytes);
      if (!(error instanceof OffsetOutOfRangeError)) throw error;
      if (positions[p]! > error.highWatermark) {
        // Above the end: the topic was deleted and created again since the positions were read.
        this.s.logger.warn({ topic: this.s.topic, partition: p, position: positions[p], highWatermark: error.highWatermark }, 'the topic was created again: writing it from its beginning');
      } else {
        // Retention deleted records before this sink wrote them: they cannot be written. Say so, count, go on.
        const skipped = error.startOffset - positions[p]!;
        this.counts.recordsSkipped += skipped;
        this.s.logger.warn({ topic: this.s.topic, partition: p, from: positions[p], to: error.startOffset, skipped }, 'records were deleted by retention before the sink wrote them; going on from the oldest record still stored');
      }
      positions[p] = error.startOffset;
      return this.s.log.read(this.s.topic, p, positions[p], { maxRecords, maxBytes }).records;
    }
  }

  /**
   * The records before an unreadable one still go to the file; at the record itself the partition
   * stalls (one error line per stall), since writing past it would drop a line without a trace.
   */
  private readToCorrupt(p: number, position: number, error: CorruptRecordError, maxRecords: number, maxBytes: number): StoredRecord[] {
    if (error.offset > position) return this.s.log.read(this.s.topic, p, position, { maxRecords: Math.min(maxRecords, error.offset - position), maxBytes }).records;
    if (this.stalled.get(p)?.offset !== error.offset) {
      this.stalled.set(p, { offset: error.offset, reason: error.message });
      this.s.logger.error({ topic: this.s.topic, partition: p, offset: error.offset, reason: error.message }, 'this partition is stalled: a record cannot be read; the other partitions go on');
    }
    return [];
  }

  /** Committed offsets of this sink's group, or the oldest stored offset (like Kafka Connect's `earliest`). */
  private loadPositions(): number[] {
    const { log, topic } = this.s;
    const partitions = log.describeTopic(topic).partitions;
    const committed = new Map(log.committedOffsets(this.group).filter((c) => c.topic === topic).map((c) => [c.partition, c.offset]));
    return partitions.map((p) => committed.get(p.partition) ?? p.startOffset);
  }

  /** Removes the part of a failed batch the file may hold. */
  private async cutBack(): Promise<void> {
    const { handle } = this.file;
    const size = Number((await handle.stat()).size);
    if (size > this.committedSize) {
      await handle.truncate(this.committedSize);
      await handle.datasync();
    }
    this.dirtyTail = false;
  }

  /** When the file at the path was replaced or removed (rotated by someone), go on in a new file there. */
  private async followReplacement(): Promise<void> {
    const now = await stat(this.s.file, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    if (now !== null && sameFile(identityOf(now), this.file.id)) return;
    const next = await openSinkFile(this.s.file, this.s.name);
    const size = Number((await next.handle.stat()).size);
    try {
      await this.s.log.putState(this.positionWrite(next.id, size));
    } catch (error) {
      await next.handle.close();
      throw error;
    }
    await this.file.handle.close().catch(() => {});
    this.file = next;
    this.committedSize = size;
    this.s.logger.info({ file: this.s.file }, 'the file was replaced (rotated?): going on in the new file');
  }

  private positionWrite(id: FileIdentity, size: number): StateWrite {
    return { store: this.group, puts: [{ key: SINK_STATE_KEY, value: encodeSinkPosition({ path: this.s.file, ...id, size }) }] };
  }
}

/** Opens the file for appending (created if missing); INVALID_CONFIG when that is not possible. */
async function openSinkFile(file: string, name: string): Promise<SinkFile> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'a');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    const hint = code === 'ENOENT' ? ': its folder does not exist' : code === 'EACCES' ? ': permission denied' : code === 'EISDIR' ? ': it is a folder' : '';
    throw new EdgelogError('INVALID_CONFIG', `connector '${name}': cannot open ${file} for appending (${code})${hint}`);
  }
  try {
    return { handle, id: identityOf(await handle.stat({ bigint: true })) };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * Makes the file agree with the committed position: cuts off what a batch wrote after the last
 * commit. When the file is another one than the position names, or shorter, nothing can be cut:
 * that is said, and the position is stored again for the file as it is.
 */
async function recover(s: FileSinkSettings, file: SinkFile): Promise<{ committedSize: number; truncated: number }> {
  const group = connectorGroup(s.name);
  const size = Number((await file.handle.stat()).size);
  const { position: saved, why } = decodeSinkPosition(s.log.getState(group, SINK_STATE_KEY));
  if (why !== undefined) s.logger.warn({ store: group }, `the stored file position is ${why}; appending after what ${s.file} holds`);
  if (saved !== null && saved.path === s.file && sameFile(saved, file.id)) {
    if (size > saved.size) {
      await file.handle.truncate(saved.size);
      await file.handle.datasync();
      s.logger.info({ file: s.file, removedBytes: size - saved.size }, 'cut the file back to its committed size: the lines after it were written but not committed, and are written again');
      return { committedSize: saved.size, truncated: size - saved.size };
    }
    if (size === saved.size) return { committedSize: size, truncated: 0 };
    s.logger.warn({ file: s.file, size, committedBytes: saved.size }, 'the file is shorter than the sink committed (edited or truncated by someone else): lines are missing from it that the topic still holds');
  } else if (saved !== null) {
    s.logger.info({ file: s.file, was: saved.path }, 'the file is not the one the sink last wrote (rotated, replaced or reconfigured): appending to it from the committed offsets');
  }
  await s.log.putState({ store: group, puts: [{ key: SINK_STATE_KEY, value: encodeSinkPosition({ path: s.file, ...file.id, size }) }] });
  return { committedSize: size, truncated: 0 };
}
