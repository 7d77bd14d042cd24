import { open, opendir, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { EdgelogError } from '../../errors.js';
import type { CommitLog } from '../../log/commit-log.js';
import type { AppendRecord } from '../../log/prepare-records.js';
import { encodedSize } from '../../log/record-codec.js';
import type { StateWrite } from '../../log/state.js';
import { connectorGroup, type FileSourceOptions } from './config.js';
import {
  decodeSourcePosition,
  encodeSourcePosition,
  identityOf,
  sameFile,
  SOURCE_STATE_KEY,
  type FileIdentity,
  type SourcePosition,
} from './file-position.js';
import { FileWatch } from './file-watch.js';
import {
  flushLine,
  INITIAL_SPLIT_STATE,
  LINE_MORE_HEADER,
  LINE_PART_HEADER,
  lineHeaders,
  splitLines,
  type Line,
  type LineLimits,
  type SplitState,
} from './line-splitter.js';
import { RetryLoop } from './retry-loop.js';

/** One read(2): large enough to amortise the call, small enough that the records it pins until their commit stay small. */
export const READ_CHUNK_BYTES = 64 * 1024;
/** Lines per append, well under the log's maxBatchRecords (10,000 by default), so a chunk of empty lines is never refused for its count. */
export const MAX_LINES_PER_APPEND = 1000;
/** Chunks read in one wake-up before yielding the event loop to other work. */
const MAX_CHUNKS_PER_PUMP = 256;
/** Folder entries examined for the file rotated away while the source was stopped: rotation keeps a handful, 1,000 bounds start-up work. */
export const MAX_ROTATED_SCAN_ENTRIES = 1000;
/** The widest part number the splitter writes (16 digits), used to size the room the part headers take. */
const WIDEST_PART_HEADERS = { [LINE_PART_HEADER]: '9'.repeat(16), [LINE_MORE_HEADER]: 'false' };
const EMPTY = Buffer.alloc(0);

export interface FileSourceSettings {
  name: string;
  /** The file to tail: an absolute path. */
  file: string;
  topic: string;
  options: FileSourceOptions;
  log: CommitLog;
  logger: Logger;
  /** Bytes per read (tests make it small to have many transactions); default READ_CHUNK_BYTES. */
  readChunkBytes?: number;
}

export interface FileSourceStats {
  /** waiting: no file at the path yet; tailing: reading or caught up; retrying: an append or a read failed and is retried. */
  state: 'waiting' | 'tailing' | 'retrying' | 'closed';
  /** The durable position: the file (by identity) and the byte offset whose lines are all in the topic. */
  position: { dev: string; ino: string; offset: number } | null;
  /** Records appended, counting each part of a split line. */
  recordsAppended: number;
  /** Lines longer than the topic's maxMessageBytes allows, appended as several parts. */
  linesSplit: number;
  /** Times the file at the path was replaced (rename rotation) and the source moved on to the new one. */
  rotations: number;
  /** Times the file shrank under the source (copytruncate) and it started again from its beginning. */
  truncations: number;
}

interface OpenFile {
  handle: FileHandle;
  id: FileIdentity;
}

/**
 * Tails a text file into a topic, one record per line, like Kafka Connect's FileStreamSource but
 * restart-exact: the position (the file's identity and byte offset) goes into the connector's
 * state store in the same transaction as the lines it covers (src/log/state.ts), so after a crash
 * it resumes exactly where the topic ends, with no line lost or repeated. Follows rotation by
 * rename (it finishes the old file through its open descriptor, then opens the new one) and by
 * copytruncate (the file shrinks: it starts again at 0). See docs/connectors.md.
 */
export class FileSource {
  private readonly store: string;
  private limits: LineLimits;
  private watch: FileWatch | null = null;
  private current: OpenFile | null = null;
  /** The durable position in `current`; null until a file is open. */
  private committed: SourcePosition | null = null;
  /** Bytes read past `committed.offset` that no newline has ended yet. */
  private split: SplitState = INITIAL_SPLIT_STATE;
  /** The position stored by an earlier run, used at the first open. */
  private saved: SourcePosition | null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly loop: RetryLoop;
  private waitingLogged = false;
  private goneLogged = false;
  private splitLogged = false;
  private readonly counts = { recordsAppended: 0, linesSplit: 0, rotations: 0, truncations: 0 };

  private constructor(
    private readonly s: Required<FileSourceSettings>,
    limits: LineLimits,
    saved: SourcePosition | null,
  ) {
    this.store = connectorGroup(s.name);
    this.limits = limits;
    this.saved = saved;
    this.loop = new RetryLoop({
      name: 'file source',
      step: () => this.pump(),
      // Forget what is not durable, so the retry reads it again from the file.
      onFailure: () => (this.split = { carry: EMPTY, part: this.committed?.part ?? 0 }),
      retryNote: 'nothing is skipped',
      logger: s.logger,
    });
  }

  /** Creates the topic if it does not exist, reads the stored position and starts tailing. */
  static async start(settings: FileSourceSettings): Promise<FileSource> {
    const s: Required<FileSourceSettings> = { readChunkBytes: READ_CHUNK_BYTES, ...settings, logger: settings.logger.child({ connector: settings.name }) };
    const { log, topic } = s;
    const limits = await ensureTopic(s);
    const { position, why } = decodeSourcePosition(log.getState(connectorGroup(s.name), SOURCE_STATE_KEY));
    if (why !== undefined) s.logger.warn({ store: connectorGroup(s.name) }, `the stored position is ${why}; reading ${s.file} from its beginning`);
    const source = new FileSource(s, limits, position);
    source.watch = new FileWatch(s.file, s.options.pollIntervalMs, () => source.loop.kick(), s.logger);
    s.logger.info({ file: s.file, topic, resumeAt: position?.path === s.file ? position.offset : 0 }, 'file source started');
    source.loop.kick();
    return source;
  }

  stats(): FileSourceStats {
    const c = this.committed;
    const state = this.closed ? 'closed' : this.loop.failing ? 'retrying' : this.current === null ? 'waiting' : 'tailing';
    return { state, position: c && { dev: String(c.dev), ino: String(c.ino), offset: c.offset }, ...this.counts };
  }

  /** Stops watching, waits for the append in flight, and closes the file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.watch?.close();
      await this.loop.close();
      await this.current?.handle.close();
      this.current = null;
      this.s.logger.info({ position: this.stats().position }, 'file source closed');
    })();
    return this.closing;
  }

  /** Reads what the file has, follows truncation and rotation; true when there is more to do. */
  private async pump(): Promise<boolean> {
    if (!this.s.log.hasTopic(this.s.topic)) {
      // Deleted while the source runs: it is created again (as at start) rather than retried forever.
      this.limits = await ensureTopic(this.s);
      this.s.logger.warn({ topic: this.s.topic }, 'the topic was deleted: created it again; lines go on from the stored position');
    }
    if (this.current === null && !(await this.openFirst())) return false;
    for (let i = 0; i < MAX_CHUNKS_PER_PUMP && !this.closed; i++) {
      const { handle } = this.current!;
      const size = Number((await handle.stat({ bigint: true })).size);
      const readPos = this.committed!.offset + this.split.carry.length;
      if (size < readPos) await this.restartTruncated(size);
      else if (size > readPos) await this.readChunk(handle, readPos, size);
      else if (!(await this.followRotation(size))) return false;
    }
    return !this.closed;
  }

  private async readChunk(handle: FileHandle, readPos: number, size: number): Promise<void> {
    const length = Math.min(this.s.readChunkBytes, size - readPos);
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(buffer, 0, length, readPos);
    if (bytesRead === 0) return;
    const { lines, state } = splitLines(this.split, buffer.subarray(0, bytesRead), this.limits);
    for (let i = 0; i < lines.length; i += MAX_LINES_PER_APPEND) {
      const batch = lines.slice(i, i + MAX_LINES_PER_APPEND);
      const position = { ...this.committed! };
      for (const line of batch) {
        position.offset += line.consumed;
        position.part = line.more ? line.part : 0;
      }
      await this.appendLines(batch, position);
    }
    this.split = state;
  }

  // ---------------------------------------------------------------- opening, truncation, rotation

  /** Opens the file at the path and works out where to start; false while there is no file. */
  private async openFirst(): Promise<boolean> {
    const opened = await this.openPath();
    if (opened === null) return false;
    const saved = this.saved;
    let file = opened;
    let position: SourcePosition = { path: this.s.file, ...opened.id, offset: 0, part: 0 };
    let store = true;
    try {
      if (saved !== null && saved.path === this.s.file) {
        const size = Number((await opened.handle.stat({ bigint: true })).size);
        if (sameFile(saved, opened.id) && size >= saved.offset) {
          position = saved;
          store = false;
        } else if (sameFile(saved, opened.id)) {
          this.s.logger.warn({ file: this.s.file, size, storedOffset: saved.offset }, 'the file is shorter than the stored position (truncated while the source was stopped): reading it from its beginning; lines after the stored position that were truncated away were not read');
        } else {
          const rotated = await this.findRotated(saved);
          if (rotated !== null) {
            // The new file is found again by followRotation once the old one is finished.
            await opened.handle.close();
            file = rotated;
            position = saved;
            store = false;
            this.s.logger.info({ file: this.s.file, ino: String(saved.ino), offset: saved.offset }, 'the file was rotated while the source was stopped: finishing the rotated file first');
          } else {
            this.s.logger.warn({ file: this.s.file, ino: String(saved.ino), offset: saved.offset }, 'the file the source was reading was replaced while it was stopped and is not in its folder any more: its lines after the stored offset were not read; reading the new file from its beginning');
          }
        }
      } else if (saved !== null) {
        this.s.logger.info({ file: this.s.file, was: saved.path }, 'the configured file changed: reading the new file from its beginning');
      }
      if (store) await this.writePosition([], position);
    } catch (error) {
      await file.handle.close();
      throw error;
    }
    this.current = file;
    this.committed = position;
    this.split = { carry: EMPTY, part: position.part };
    this.saved = null;
    return true;
  }

  /** The file at the path, opened, with its identity; null when there is none (logged once). */
  private async openPath(): Promise<OpenFile | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.s.file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      if (!this.waitingLogged) this.s.logger.info({ file: this.s.file }, 'waiting for the file to appear');
      this.waitingLogged = true;
      return null;
    }
    try {
      const id = identityOf(await handle.stat({ bigint: true }));
      if (this.waitingLogged) this.s.logger.info({ file: this.s.file }, 'the file appeared');
      this.waitingLogged = false;
      return { handle, id };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The file with the stored identity among the entries of the path's folder, opened; null when it is not there. */
  private async findRotated(saved: SourcePosition): Promise<OpenFile | null> {
    const folder = dirname(this.s.file);
    let seen = 0;
    try {
      for await (const entry of await opendir(folder)) {
        if (++seen > MAX_ROTATED_SCAN_ENTRIES) break;
        if (!entry.isFile()) continue;
        const path = join(folder, entry.name);
        const stats = await stat(path, { bigint: true }).catch(() => null);
        if (stats === null || !sameFile(identityOf(stats), saved) || Number(stats.size) < saved.offset) continue;
        // Renamed again between the stat and the open: it is looked for no further (a warning says so).
        const handle = await open(path, 'r').catch(() => null);
        if (handle === null) continue;
        const id = identityOf(await handle.stat({ bigint: true }));
        if (sameFile(id, saved)) return { handle, id };
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    return null;
  }

  /** The file shrank below what was read (copytruncate): its carried partial line is final, and reading starts again at 0. */
  private async restartTruncated(size: number): Promise<void> {
    const position: SourcePosition = { ...this.committed!, offset: 0, part: 0 };
    const last = flushLine(this.split);
    await this.writePosition(last === null ? [] : [last], position);
    this.committed = position;
    this.split = INITIAL_SPLIT_STATE;
    this.counts.truncations++;
    this.s.logger.info({ file: this.s.file, size }, 'the file was truncated (copytruncate rotation?): reading it again from its beginning');
  }

  /**
   * At the end of the current file: when the path names another file now (rename rotation), and
   * the old one has not grown since, its carried partial line is final and the new file is read
   * from 0. True when there is more to read.
   */
  private async followRotation(size: number): Promise<boolean> {
    const current = this.current!;
    const next = await this.openPathQuietly();
    if (next === null || sameFile(next.id, current.id)) {
      await next?.handle.close();
      return false;
    }
    try {
      // A write may have reached the old file between the end-of-file check and the rename.
      if (Number((await current.handle.stat({ bigint: true })).size) !== size) {
        await next.handle.close();
        return true;
      }
      const position: SourcePosition = { path: this.s.file, ...next.id, offset: 0, part: 0 };
      const last = flushLine(this.split);
      await this.writePosition(last === null ? [] : [last], position);
      this.current = next;
      this.committed = position;
      this.split = INITIAL_SPLIT_STATE;
    } catch (error) {
      await next.handle.close();
      throw error;
    }
    await current.handle.close().catch(() => {});
    this.counts.rotations++;
    this.s.logger.info({ file: this.s.file, ino: String(next.id.ino) }, 'the file was rotated: finished the old one, reading the new one');
    return true;
  }

  /** Like openPath, but a missing file is logged as gone (once) rather than awaited. */
  private async openPathQuietly(): Promise<OpenFile | null> {
    try {
      const handle = await open(this.s.file, 'r');
      try {
        const id = identityOf(await handle.stat({ bigint: true }));
        this.goneLogged = false;
        return { handle, id };
      } catch (error) {
        await handle.close();
        throw error;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      if (!this.goneLogged) this.s.logger.info({ file: this.s.file }, 'the file is gone from its path: keeping the old one open until a new file appears');
      this.goneLogged = true;
      return null;
    }
  }

  // ---------------------------------------------------------------- appends

  /** Appends lines (possibly none) with the position after them, in one transaction. */
  private async appendLines(lines: Line[], position: SourcePosition): Promise<void> {
    await this.writePosition(lines, position);
    this.committed = position;
  }

  /** The one place the position is written: with the records it covers, or alone when there are none. */
  private async writePosition(lines: Line[], position: SourcePosition): Promise<void> {
    const state: StateWrite = { store: this.store, puts: [{ key: SOURCE_STATE_KEY, value: encodeSourcePosition(position) }] };
    if (lines.length === 0) {
      await this.s.log.putState(state);
      return;
    }
    const key = this.s.options.key;
    const records: AppendRecord[] = lines.map((line) => ({
      value: line.value,
      headers: lineHeaders(line),
      // One partition keeps the file's order: the key's, or 0 without a key.
      ...(key === null ? { partition: 0 } : { key }),
    }));
    await this.s.log.append(this.s.topic, records, { state });
    this.counts.recordsAppended += records.length;
    const splits = lines.filter((l) => l.part === 1).length;
    if (splits > 0) {
      this.counts.linesSplit += splits;
      if (!this.splitLogged) {
        this.splitLogged = true;
        this.s.logger.warn(
          { topic: this.s.topic, maxLineBytes: this.limits.maxLineBytes },
          `a line is longer than topic '${this.s.topic}' allows (maxMessageBytes): it is appended in parts with headers ${LINE_PART_HEADER} and ${LINE_MORE_HEADER}; further split lines are counted, not logged`,
        );
      }
    }
  }
}

/** Creates the topic (with the log's topic defaults) when it does not exist; returns its line limits. */
async function ensureTopic(s: Required<FileSourceSettings>): Promise<LineLimits> {
  await s.log.ensureTopic(s.topic);
  return lineLimits(s, s.log.describeTopic(s.topic).config.maxMessageBytes);
}

/** The longest line value a record of this topic can hold, whole and as one part of a split line. */
function lineLimits(s: Required<FileSourceSettings>, maxMessageBytes: number): LineLimits {
  const key = s.options.key ?? undefined;
  const maxLineBytes = maxMessageBytes - encodedSize({ key, value: EMPTY, headers: undefined });
  const maxPartBytes = maxMessageBytes - encodedSize({ key, value: EMPTY, headers: WIDEST_PART_HEADERS });
  if (maxPartBytes < 1) {
    throw new EdgelogError(
      'INVALID_CONFIG',
      `connector '${s.name}': topic '${s.topic}' has maxMessageBytes ${maxMessageBytes}, too small for a line with the key and part headers; use a shorter key or a topic with a larger maxMessageBytes`,
    );
  }
  return { maxLineBytes, maxPartBytes };
}
