import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { CorruptRecordError, EdgelogError, OffsetOutOfRangeError } from '../errors.js';
import type { Assignment, GroupCoordinator } from '../groups/coordinator.js';
import { refuseInternalGroup } from '../groups/join-request.js';
import type { CommitLog } from '../log/commit-log.js';
import { MAX_CREDIT_BYTES, MAX_CREDIT_RECORDS, parseConsumeFrame, toWire, type ConsumeFrame, type FrameId, type SeekTarget } from './consume-frames.js';

/**
 * Bytes a consumer's socket may hold unsent before the gateway stops reading for it: with the
 * consumer's credit, this bounds what a slow consumer costs (DESIGN "Memory is bounded").
 */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Records one read takes: bounds one records frame and the time one pump step holds the event loop. */
const MAX_RECORDS_PER_FRAME = 500;
/** Value bytes one records frame carries at most (at least one record): with base64, frames stay under ~1.4 MB. */
const MAX_FRAME_VALUE_BYTES = 1024 * 1024;
/** Frames one pump turn sends before it yields the event loop to ingest and other consumers. */
const FRAMES_PER_TURN = 16;
/** The largest frame a consumer sends: a commit of many partitions is the biggest. */
export const MAX_CONSUME_FRAME_BYTES = 1024 * 1024;

interface Position {
  topic: string;
  partition: number;
  /** The topic's id in the log when assigned (see AssignedPartition.topicId). */
  topicId: number;
  /** The offset of the next record to send. */
  next: number;
  paused: boolean;
  /** Set to `next` when the record there cannot be read (CORRUPT_RECORD): the partition waits until the consumer seeks elsewhere. */
  corruptAt?: number;
}

export interface ConsumeServiceOptions {
  log: CommitLog;
  groups: GroupCoordinator;
  logger: Logger;
}

/**
 * The consumer protocol at `/consume` (docs/consume.md): a connection joins a group, gets its
 * partitions from the coordinator, and receives records as far as the credit it grants allows.
 */
export class ConsumeService {
  private readonly sessions = new Set<ConsumeSession>();
  private readonly stopListening: () => void;
  private readonly logger: Logger;

  constructor(private readonly opts: ConsumeServiceOptions) {
    this.logger = opts.logger.child({ component: 'consume' });
    this.stopListening = opts.log.onAppend((topic, partition) => {
      for (const s of this.sessions) s.wake(topic, partition);
    });
  }

  handle(ws: WebSocket, req: IncomingMessage): void {
    // Admitted by the HTTP server's admin access check (access.ts).
    const remote = req.socket.remoteAddress ?? '';
    const session = new ConsumeSession(ws, this.opts, this.logger.child({ remote: `${remote}:${req.socket.remotePort}` }), () => this.sessions.delete(session));
    this.sessions.add(session);
  }

  /** Open consumer connections, and the most bytes any of them holds unsent (the slow-consumer bound). */
  stats(): { sessions: number; bufferedBytesMax: number } {
    let bufferedBytesMax = 0;
    for (const s of this.sessions) bufferedBytesMax = Math.max(bufferedBytesMax, s.bufferedBytes);
    return { sessions: this.sessions.size, bufferedBytesMax };
  }

  /** Ends every consumer session (its member leaves its group). Idempotent. */
  close(): void {
    this.stopListening();
    for (const s of [...this.sessions]) s.close(1001, 'the gateway is shutting down');
  }
}

class ConsumeSession {
  private member: { groupId: string; memberId: string } | null = null;
  private generation = -1;
  private readonly positions = new Map<string, Position>();
  private credit = { records: 0, bytes: 0 };
  private cursor = 0;
  private pumping = false;
  private waitingForSocket = false;
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly opts: ConsumeServiceOptions,
    private readonly logger: Logger,
    private readonly onClosed: () => void,
  ) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.fail(undefined, new EdgelogError('INVALID_ARGUMENT', 'frames are JSON text, not binary'));
      this.onFrame(parseConsumeFrame(data.toString()));
    });
    ws.on('close', () => this.close());
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  /** The log moved `topic`/`partition`: send more if this session reads it and has credit. */
  wake(topic: string, partition: number): void {
    if (this.positions.has(key(topic, partition))) this.pump();
  }

  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    this.closed = true;
    if (this.member) this.opts.groups.leave(this.member.groupId, this.member.memberId);
    this.member = null;
    this.onClosed();
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason);
  }

  private onFrame(frame: ConsumeFrame): void {
    if (this.closed) return;
    if (frame.type === 'invalid') return this.fail(frame.id, new EdgelogError('INVALID_ARGUMENT', frame.message));
    if (frame.type === 'join') return this.join(frame);
    const member = this.member;
    if (!member) return this.fail(undefined, new EdgelogError('INVALID_ARGUMENT', `a '${frame.type}' frame before 'join': join a group first ({"type":"join","group":"…","topics":["…"]})`));
    try {
      // Any frame from a member is a sign of life (Kafka's heartbeat, folded into traffic).
      this.opts.groups.heartbeat(member.groupId, member.memberId);
      switch (frame.type) {
        case 'credit':
          this.credit.records = Math.min(MAX_CREDIT_RECORDS, this.credit.records + frame.records);
          this.credit.bytes = Math.min(MAX_CREDIT_BYTES, Math.max(0, this.credit.bytes) + frame.bytes);
          return this.pump();
        case 'commit':
          this.opts.groups.commit(member.groupId, member.memberId, frame.generation, frame.offsets).then(
            () => this.send({ type: 'commit-ok', id: frame.id }),
            (error: unknown) => this.fail(frame.id, error),
          );
          return;
        case 'seek':
          return this.seek(frame.id, frame.topic, frame.partition, frame.to);
        case 'pause':
        case 'resume':
          for (const p of frame.partitions) this.owned(p.topic, p.partition).paused = frame.type === 'pause';
          return this.pump();
        case 'heartbeat':
          return;
        case 'leave':
          return this.close(1000, 'left the group');
      }
    } catch (error) {
      this.fail('id' in frame ? frame.id : undefined, error);
    }
  }

  private join(frame: Extract<ConsumeFrame, { type: 'join' }>): void {
    if (this.member) return this.fail(undefined, new EdgelogError('INVALID_ARGUMENT', `this connection is already member '${this.member.memberId}' of group '${this.member.groupId}'; open another connection to join again`));
    try {
      refuseInternalGroup(frame.group);
      const { memberId } = this.opts.groups.join({
        groupId: frame.group,
        clientId: frame.clientId,
        topics: frame.topics,
        ...(frame.strategy ? { strategy: frame.strategy } : {}),
        ...(frame.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: frame.sessionTimeoutMs } : {}),
        ...(frame.offsetReset ? { offsetReset: frame.offsetReset } : {}),
        onAssignment: (a) => this.assign(a),
        onRemoved: (reason) => {
          this.member = null;
          this.send({ type: 'removed', reason });
          this.close(4000, 'removed from the group');
        },
      });
      this.member = { groupId: frame.group, memberId };
      // Kafka assigns topics once they exist; say which ones do not yet, so an empty assignment is not a mystery.
      const notYetCreated = frame.topics.filter((t) => !this.opts.log.hasTopic(t));
      this.send({ type: 'joined', group: frame.group, memberId, ...(notYetCreated.length > 0 ? { notYetCreated } : {}) });
      // The first assignment may have come before `member` was set; send the current one now.
      this.assign(this.opts.groups.currentAssignment(frame.group, memberId));
    } catch (error) {
      this.fail(undefined, error);
    }
  }

  private assign(a: Assignment): void {
    if (this.closed || a.generation === this.generation) return;
    this.generation = a.generation;
    const before = new Map(this.positions);
    this.positions.clear();
    for (const p of a.partitions) {
      // A partition this member keeps goes on from where it was; a new one (or one of a topic
      // deleted and created again) starts where the coordinator says.
      const kept = before.get(key(p.topic, p.partition));
      const keep = kept !== undefined && kept.topicId === p.topicId;
      this.positions.set(key(p.topic, p.partition), keep ? kept : { topic: p.topic, partition: p.partition, topicId: p.topicId, next: p.offset, paused: false });
    }
    this.send({
      type: 'assignment',
      generation: a.generation,
      partitions: [...this.positions.values()].map((p) => ({ topic: p.topic, partition: p.partition, offset: p.next })),
    });
    this.pump();
  }

  private seek(id: FrameId | undefined, topic: string, partition: number, to: SeekTarget): void {
    const pos = this.owned(topic, partition);
    const d = this.opts.log.describeTopic(topic).partitions[partition]!;
    let offset: number;
    if (to === 'earliest') offset = d.startOffset;
    else if (to === 'latest') offset = d.highWatermark;
    else if ('timestamp' in to) offset = this.opts.log.offsetForTimestamp(topic, partition, to.timestamp);
    else if (to.offset < d.startOffset || to.offset > d.highWatermark) throw new OffsetOutOfRangeError(topic, partition, to.offset, d.startOffset, d.highWatermark);
    else offset = to.offset;
    pos.next = offset;
    this.send({ type: 'seek-ok', id, topic, partition, offset });
    this.pump();
  }

  private owned(topic: string, partition: number): Position {
    const pos = this.positions.get(key(topic, partition));
    if (!pos) {
      const mine = [...this.positions.values()].map((p) => `${p.topic}/${p.partition}`).join(', ') || 'none';
      throw new EdgelogError('NOT_ASSIGNED', `${topic}/${partition} is not assigned to this member in generation ${this.generation}; its partitions are ${mine}`);
    }
    return pos;
  }

  /**
   * Sends records while there is credit, the socket is not backed up, and a partition has more:
   * partitions take turns, one frame each. Yields the event loop every FRAMES_PER_TURN frames.
   */
  private pump(): void {
    if (this.pumping || this.waitingForSocket || this.closed) return;
    this.pumping = true;
    try {
      for (let frames = 0; frames < FRAMES_PER_TURN; frames++) {
        if (this.credit.records <= 0 || this.credit.bytes <= 0) return;
        if (this.ws.bufferedAmount >= MAX_BUFFERED_BYTES) {
          // The send callback of a records frame resumes this once the socket has taken most of it.
          this.waitingForSocket = true;
          return;
        }
        if (!this.sendNextBatch()) return;
      }
      setImmediate(() => this.pump());
    } finally {
      this.pumping = false;
    }
  }

  /** Sends one records frame from the next partition with records waiting; false when none has any. */
  private sendNextBatch(): boolean {
    const list = [...this.positions.values()];
    for (let i = 0; i < list.length; i++) {
      const pos = list[(this.cursor + i) % list.length]!;
      if (pos.paused || pos.corruptAt === pos.next || !this.opts.log.hasTopic(pos.topic)) continue;
      let result;
      const maxRecords = Math.min(MAX_RECORDS_PER_FRAME, this.credit.records);
      const maxBytes = Math.min(MAX_FRAME_VALUE_BYTES, this.credit.bytes);
      try {
        result = this.opts.log.read(pos.topic, pos.partition, pos.next, { maxRecords, maxBytes });
      } catch (error) {
        if (error instanceof CorruptRecordError && error.offset > pos.next) {
          // The records before an unreadable one are delivered; the next read meets it at its own offset.
          result = this.opts.log.read(pos.topic, pos.partition, pos.next, { maxRecords: Math.min(maxRecords, error.offset - pos.next), maxBytes });
        } else if (error instanceof CorruptRecordError) {
          // Never skipped silently, never the end of the gateway: the consumer is told and decides (seek past it).
          pos.corruptAt = pos.next;
          this.logger.error({ topic: pos.topic, partition: pos.partition, offset: pos.next, reason: error.message }, 'a consumer met a record that cannot be read; its partition waits until the consumer seeks past it');
          this.send({ type: 'error', code: error.code, message: `${error.message}; this partition is not read further until the consumer seeks past offset ${pos.next}`, topic: pos.topic, partition: pos.partition, offset: pos.next });
          continue;
        } else {
          if (!(error instanceof OffsetOutOfRangeError) || pos.next >= error.highWatermark) throw error;
          // Retention deleted records this member had not read: go on from the oldest kept, and say so (never silent).
          this.logger.warn({ topic: pos.topic, partition: pos.partition, from: pos.next, to: error.startOffset }, 'consumer position was deleted by retention; skipping to the oldest record kept');
          this.send({ type: 'skipped', topic: pos.topic, partition: pos.partition, from: pos.next, to: error.startOffset, reason: 'deleted by retention before it was read' });
          pos.next = error.startOffset;
          return true;
        }
      }
      if (result.records.length === 0) continue;
      this.cursor = (this.cursor + i + 1) % list.length;
      pos.next = result.records.at(-1)!.offset + 1;
      this.credit.records -= result.records.length;
      this.credit.bytes -= result.records.reduce((sum, r) => sum + r.value.length, 0);
      const frame = { type: 'records', generation: this.generation, topic: pos.topic, partition: pos.partition, highWatermark: result.highWatermark, records: result.records.map(toWire) };
      this.ws.send(JSON.stringify(frame), () => {
        if (this.waitingForSocket && this.ws.bufferedAmount < MAX_BUFFERED_BYTES / 2) {
          this.waitingForSocket = false;
          this.pump();
        }
      });
      return true;
    }
    return false;
  }

  private fail(id: FrameId | undefined, error: unknown): void {
    if (error instanceof EdgelogError) {
      this.send({ type: 'error', id, code: error.code, message: error.message });
      return;
    }
    this.logger.error({ err: error }, 'consumer request failed');
    this.send({ type: 'error', id, code: 'INTERNAL', message: 'the gateway failed to handle this frame (a bug; it logged the cause)' });
  }

  private send(frame: object): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(frame));
  }
}

function key(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
