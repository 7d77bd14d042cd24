import { CorruptRecordError, EdgelogError, OffsetOutOfRangeError, type CommitLog, type StoredRecord } from '../src/index.js';
import type { BridgeTopicRule } from './bridge-rules.js';

/**
 * One partition's replication position. `acked` is the first offset the upstream has not
 * acknowledged (everything below it is upstream, in order): it is what the checkpoint commits.
 * `next` is the first offset not yet sent. Messages in flight between them are slots in send
 * order; acks may come in any order, and `acked` moves only over a contiguous prefix of acked
 * slots, so a checkpoint never skips a record the upstream has not confirmed.
 */

interface Slot {
  from: number;
  count: number;
  acked: boolean;
}

interface Waiter {
  offset: number;
  resolve: (replicated: boolean) => void;
  timer: NodeJS.Timeout;
}

export interface CursorStatus {
  topic: string;
  partition: number;
  /** The committed checkpoint: the first offset a restart would send. */
  checkpoint: number;
  /** The first offset not acknowledged upstream (ahead of the checkpoint until the next commit). */
  acked: number;
  highWatermark: number;
  backlogRecords: number;
  inFlightRecords: number;
  /**
   * Set while the partition cannot be read at its next offset (a record fails its checksum,
   * CORRUPT_RECORD): replication of this partition waits there, the others go on.
   */
  stalled: { offset: number; code: string; message: string } | null;
}

export interface CursorRead {
  records: StoredRecord[];
  /** Records deleted from the log before they were sent (skipped over). */
  lost: number;
  /** The partition no longer exists (topic deleted): stop tracking it. */
  gone: boolean;
}

export class PartitionCursor {
  readonly priority: number;
  readonly syncWindow: string | null;
  acked: number;
  committed: number;
  highWatermark: number;
  /** See CursorStatus.stalled. */
  stalled: CursorStatus['stalled'] = null;
  private next: number;
  private slots: Slot[] = [];
  private head = 0;
  private waiters: Waiter[] = [];

  constructor(
    readonly topic: string,
    readonly partition: number,
    /** The topic's id when tracking began: a re-created topic has another and is tracked afresh. */
    readonly topicId: number,
    rule: BridgeTopicRule,
    committed: number | null,
    log: CommitLog,
  ) {
    this.priority = rule.priority;
    this.syncWindow = rule.syncWindow;
    const p = log.describeTopic(topic).partitions[partition]!;
    // A partition never checkpointed is replicated from its oldest stored record.
    this.acked = this.next = this.committed = committed ?? p.startOffset;
    this.highWatermark = p.highWatermark;
  }

  hasBacklog(): boolean {
    return this.next < this.highWatermark;
  }

  refresh(log: CommitLog): void {
    // A topic deleted (or re-created) since tracking began keeps its last figures until the bridge's rescan drops it.
    if (log.topicShape(this.topic)?.id !== this.topicId) return;
    const p = log.describeTopic(this.topic).partitions[this.partition];
    if (p) this.highWatermark = p.highWatermark;
  }

  /** The first offset not yet sent: where the next read starts. */
  get nextOffset(): number {
    return this.next;
  }

  /** Reads up to `maxRecords` from the first unsent offset, skipping (and counting) records already deleted. */
  read(log: CommitLog, maxRecords: number): CursorRead {
    let lost = 0;
    try {
      const result = log.read(this.topic, this.partition, this.next, { maxRecords });
      this.highWatermark = result.highWatermark;
      return { records: result.records, lost, gone: false };
    } catch (error) {
      if (error instanceof OffsetOutOfRangeError && this.next < error.startOffset) {
        lost = error.startOffset - this.next;
        // The gap counts as acknowledged: nothing can be sent for it, and the checkpoint moves past it.
        this.ack(this.sent(this.next, lost));
        return { ...this.read(log, maxRecords), lost };
      }
      // The records before an unreadable one still go; the read at the record itself throws to the bridge, which stalls there.
      if (error instanceof CorruptRecordError && error.offset > this.next) return this.read(log, error.offset - this.next);
      if (error instanceof EdgelogError && (error.code === 'UNKNOWN_TOPIC' || error.code === 'UNKNOWN_PARTITION' || error.code === 'OFFSET_OUT_OF_RANGE')) {
        return { records: [], lost, gone: true };
      }
      throw error;
    }
  }

  /**
   * Skips the records retention deleted before they were sent (disk-pressure policy 'drop-oldest'),
   * as read() does, so the loss is counted while the link is down too; returns how many.
   */
  skipDeleted(log: CommitLog): number {
    if (log.topicShape(this.topic)?.id !== this.topicId) return 0;
    const start = log.describeTopic(this.topic).partitions[this.partition]?.startOffset;
    if (start === undefined || start <= this.next) return 0;
    const lost = start - this.next;
    this.ack(this.sent(this.next, lost));
    return lost;
  }

  /** Records that `count` records from `from` are in flight; returns the slot to ack. */
  sent(from: number, count: number): Slot {
    const slot: Slot = { from, count, acked: false };
    this.slots.push(slot);
    this.next = from + count;
    return slot;
  }

  /** Marks a slot acknowledged and moves `acked` over the acknowledged prefix; returns the slot's record count. */
  ack(slot: Slot): number {
    slot.acked = true;
    while (this.head < this.slots.length && this.slots[this.head]!.acked) {
      const s = this.slots[this.head++]!;
      this.acked = s.from + s.count;
    }
    if (this.head === this.slots.length) {
      this.slots = [];
      this.head = 0;
    }
    if (this.waiters.length > 0) this.resolveWaiters();
    return slot.count;
  }

  /** Forgets the slots in flight (the link failed); returns how many records will be sent again. */
  rewind(): number {
    const resent = this.next - this.acked;
    this.next = this.acked;
    this.slots = [];
    this.head = 0;
    return resent;
  }

  /** Resolves true once `offset` is acknowledged, false after `timeoutMs` or releaseWaiters(). */
  waitAcked(offset: number, timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        offset,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(false);
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Lets every waiter go with false (link down, bridge closing). */
  releaseWaiters(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
  }

  status(log: CommitLog): CursorStatus {
    this.refresh(log);
    return {
      topic: this.topic,
      partition: this.partition,
      checkpoint: this.committed,
      acked: this.acked,
      highWatermark: this.highWatermark,
      backlogRecords: Math.max(0, this.highWatermark - this.acked),
      inFlightRecords: this.next - this.acked,
      stalled: this.stalled,
    };
  }

  private resolveWaiters(): void {
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.offset < this.acked) {
        clearTimeout(w.timer);
        w.resolve(true);
      } else still.push(w);
    }
    this.waiters = still;
  }
}
