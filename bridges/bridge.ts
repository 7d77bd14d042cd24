import type { Logger } from 'pino';
import { EdgelogError, newBucket, takeToken, type CommitLog, type TokenBucket } from '../src/index.js';
import { backoffMs, patternToRegExp, ruleFor, SyncWindow, type BridgeTopicRule } from './bridge-rules.js';
import { PartitionCursor, type CursorRead, type CursorStatus } from './partition-cursor.js';
import type { EncodedMessage, OutgoingMessage, SendResult, Upstream } from './upstream.js';

/**
 * The bridge core (issue 6, "the bridge contract"): replicates the chosen topics of the log to an
 * upstream engine, in order per partition, with a window of messages in flight, and checkpoints
 * each partition as the consumer group `bridge.<name>` only after the upstream acknowledged the
 * records. After a crash it resumes from the checkpoint: at-least-once always, exactly-once where
 * the upstream deduplicates (JetStream's Nats-Msg-Id). The records wait on disk, not in memory:
 * a retention hold keeps what is not replicated, and the bridge holds at most its window.
 */

/** Settings shared by every bridge type (config `bridges[]`, validated in bridges/config.ts). */
export interface BridgeSettings {
  readonly name: string;
  readonly gatewayId: string;
  readonly topics: readonly BridgeTopicRule[];
  /** Messages sent and not yet acknowledged. */
  readonly maxInFlight: number;
  /** Bytes of messages in flight (they are held until acknowledged): the bridge's memory bound. */
  readonly maxInFlightBytes: number;
  /** Several records per upstream message (metered links); null sends one record per message. */
  readonly batch: { readonly records: number; readonly gzip: boolean } | null;
  /** Average bytes per second sent upstream; 0 for no cap. One second's worth may go at once. */
  readonly bandwidthBytesPerSecond: number;
  /** How often acknowledged positions are committed: a crash resends at most this much. */
  readonly checkpointIntervalMs: number;
  readonly reconnect: { readonly initialDelayMs: number; readonly maxDelayMs: number };
  /** How long a device's PUBACK waits for the upstream on topics with ack 'upstream'. */
  readonly upstreamAckTimeoutMs: number;
}

export const BRIDGE_GROUP_PREFIX = 'bridge.';
/** Records read from the log per read call while filling the window. */
const READ_CHUNK_RECORDS = 500;
/** Messages taken from one partition before the next partition of the same priority gets a turn. */
const FAIR_SHARE_MESSAGES = 100;
/** How often the bridge rescans topics, checks sync windows and samples its throughput. */
const HOUSEKEEPING_MS = 1000;
/** Throughput is the acked records over this span. */
const THROUGHPUT_SPAN_MS = 10_000;
/** Devices waiting for upstream acks (ack: upstream), across partitions: beyond it they get the local ack. */
const MAX_ACK_WAITERS = 100_000;

export type BridgeState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface BridgeStatus {
  name: string;
  kind: string;
  target: string;
  state: BridgeState;
  /** ms since the epoch; null while not connected. */
  connectedSince: number | null;
  lastAckAt: number | null;
  /** Records acknowledged per second over the last 10 s. */
  recordsPerSecond: number;
  /** Records not yet acknowledged upstream, over all partitions. */
  backlogRecords: number;
  counters: {
    sentRecords: number;
    ackedRecords: number;
    /** Records sent again after a failure: the upstream may hold them twice (JetStream drops them). */
    resentRecords: number;
    /** Records the upstream reported as already stored (JetStream's duplicate window). */
    duplicateRecords: number;
    /** Records deleted from the log before they were replicated (disk-pressure policy 'drop-oldest'). */
    lostRecords: number;
    reconnects: number;
    errors: number;
  };
  lastError: { code: string; message: string; at: number } | null;
  partitions: CursorStatus[];
}

export interface BridgeOptions {
  log: CommitLog;
  settings: BridgeSettings;
  upstream: Upstream;
  logger: Logger;
  /** The wall clock, ms since the epoch: sync windows and the times the status shows (tests move it). */
  now?: () => number;
  /**
   * The monotonic clock, ms: the bandwidth cap and the throughput figure, intervals a step of the
   * wall clock must not stretch (a step back would stop the token refill, and the bridge, for as
   * long). Default performance.now(); `now` when only that is given.
   */
  monotonicNow?: () => number;
}

export class Bridge {
  readonly group: string;
  private readonly log: CommitLog;
  private readonly settings: BridgeSettings;
  private readonly upstream: Upstream;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly monotonicNow: () => number;
  private readonly patterns: RegExp[];
  private readonly windows = new Map<string, SyncWindow>();
  private readonly cursors = new Map<string, PartitionCursor>();
  /** Cursors by priority, highest first; rebuilt when cursors come or go. */
  private order: PartitionCursor[][] = [];
  private readonly turn = new Map<number, number>();
  private readonly releaseHold: () => void;
  private readonly stopListening: () => void;
  private state: BridgeState = 'connecting';
  /** Increases with every connection: acks and failures of an older connection are ignored. */
  private epoch = 0;
  private linkDown: ((error: Error) => void) | null = null;
  private inFlightMessages = 0;
  /**
   * Set on each connect until the first ack: one message probes the link before the window opens.
   * A JetStream stream without a leader (an election after a node failure) refuses at once, and a
   * whole window sent into the instant it gets one would be stored from the middle: later records
   * before earlier ones, which the resend cannot reorder.
   */
  private probing = false;
  private inFlightBytes = 0;
  private pumping = false;
  private pumpScheduled = false;
  private pumpTimer: NodeJS.Timeout | null = null;
  private readonly bucket: TokenBucket | null;
  private housekeeping: NodeJS.Timeout | null = null;
  private checkpointTimer: NodeJS.Timeout | null = null;
  /** A checkpoint is queued or committing: the timer does not stack another behind a slow commit. */
  private checkpointQueued = false;
  private checkpointing: Promise<void> = Promise.resolve();
  private running: Promise<void> | null = null;
  private sleeper: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  private ackWaiters = 0;
  private connectedSince: number | null = null;
  private lastAckAt: number | null = null;
  private lastError: BridgeStatus['lastError'] = null;
  private readonly samples: Array<{ at: number; acked: number }> = [];
  private readonly counters: BridgeStatus['counters'] = {
    sentRecords: 0,
    ackedRecords: 0,
    resentRecords: 0,
    duplicateRecords: 0,
    lostRecords: 0,
    reconnects: 0,
    errors: 0,
  };

  constructor(opts: BridgeOptions) {
    this.log = opts.log;
    this.settings = opts.settings;
    this.upstream = opts.upstream;
    this.now = opts.now ?? Date.now;
    this.monotonicNow = opts.monotonicNow ?? opts.now ?? (() => performance.now());
    this.group = BRIDGE_GROUP_PREFIX + opts.settings.name;
    this.logger = opts.logger.child({ component: 'bridge', bridge: opts.settings.name, upstream: opts.upstream.kind });
    this.patterns = opts.settings.topics.map((r) => patternToRegExp(r.match));
    for (const rule of opts.settings.topics) {
      if (rule.syncWindow !== null && !this.windows.has(rule.syncWindow)) this.windows.set(rule.syncWindow, new SyncWindow(rule.syncWindow));
    }
    const rate = opts.settings.bandwidthBytesPerSecond;
    this.bucket = rate > 0 ? newBucket(rate, this.monotonicNow()) : null;
    // Registered at once, before retention can run: what this bridge has not sent stays on disk.
    this.releaseHold = this.log.holdRetention({ group: this.group, covers: (topic) => this.ruleOf(topic) !== undefined });
    this.stopListening = this.log.onAppend((topic, partition, highWatermark) => this.onAppend(topic, partition, highWatermark));
    this.upstream.onDisconnect((error) => this.fail(error, this.epoch));
  }

  get name(): string {
    return this.settings.name;
  }

  /** Starts replicating: connects (with backoff) and keeps the link up until close(). */
  start(): void {
    if (this.running) return;
    this.rescan();
    this.housekeeping = setInterval(() => this.tick(), HOUSEKEEPING_MS);
    this.housekeeping.unref();
    // Its own timer: checkpointIntervalMs may be shorter than the housekeeping period.
    this.checkpointTimer = setInterval(() => {
      if (this.checkpointQueued) return;
      this.checkpointQueued = true;
      void this.checkpoint().finally(() => (this.checkpointQueued = false));
    }, this.settings.checkpointIntervalMs);
    this.checkpointTimer.unref();
    this.running = this.run();
  }

  /** Whether records of a topic wait for the upstream ack before their device's PUBACK. */
  acksUpstream(topic: string): boolean {
    return this.ruleOf(topic)?.ack === 'upstream';
  }

  /**
   * Resolves true once the upstream acknowledged `offset` of a partition, or false at once when
   * the link is down, and false when the link drops or upstreamAckTimeoutMs passes first (the
   * caller then acks on local durability, as the `ack: upstream` setting documents).
   */
  waitReplicated(topic: string, partition: number, offset: number): Promise<boolean> {
    const cursor = this.cursors.get(cursorKey(topic, partition)) ?? this.track(topic, partition);
    if (cursor === undefined) return Promise.resolve(false);
    if (cursor.acked > offset) return Promise.resolve(true);
    if (this.state !== 'connected' || this.ackWaiters >= MAX_ACK_WAITERS) return Promise.resolve(false);
    this.ackWaiters++;
    return cursor.waitAcked(offset, this.settings.upstreamAckTimeoutMs).finally(() => this.ackWaiters--);
  }

  status(): BridgeStatus {
    const partitions = [...this.cursors.values()]
      .map((c) => c.status(this.log))
      .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
    const oldest = this.samples[0];
    const span = oldest ? this.monotonicNow() - oldest.at : 0;
    return {
      name: this.settings.name,
      kind: this.upstream.kind,
      target: this.upstream.target,
      state: this.state,
      connectedSince: this.connectedSince,
      lastAckAt: this.lastAckAt,
      recordsPerSecond: oldest && span > 0 ? Math.round(((this.counters.ackedRecords - oldest.acked) * 1000) / span) : 0,
      backlogRecords: partitions.reduce((sum, p) => sum + p.backlogRecords, 0),
      counters: { ...this.counters },
      lastError: this.lastError,
      partitions,
    };
  }

  /** Stops sending, disconnects and commits the acknowledged positions. Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.housekeeping) clearInterval(this.housekeeping);
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.stopListening();
    this.sleeper?.wake();
    this.linkDown?.(new EdgelogError('GATEWAY_CLOSING', 'the bridge is closing'));
    // Disconnecting first also ends a connect() in progress, so the run loop stops at once.
    await this.upstream.disconnect();
    await this.running;
    await this.upstream.disconnect();
    for (const c of this.cursors.values()) c.releaseWaiters();
    await this.checkpoint();
    for (const w of this.windows.values()) w.close();
    this.releaseHold();
    this.logger.info(this.countersForLog(), 'bridge closed');
  }

  // ---------------------------------------------------------------- connection

  private async run(): Promise<void> {
    let attempt = 0;
    let connections = 0;
    while (this.state !== 'closed') {
      this.state = 'connecting';
      try {
        await this.upstream.connect();
      } catch (error) {
        attempt++;
        this.noteError(error, attempt === 1 ? 'warn' : 'debug', 'cannot connect upstream; retrying with backoff', { attempt });
        await this.sleep(backoffMs(attempt, this.settings.reconnect.initialDelayMs, this.settings.reconnect.maxDelayMs));
        continue;
      }
      if ((this.state as BridgeState) === 'closed') break;
      if (connections++ > 0) this.counters.reconnects++;
      attempt = 0;
      this.epoch++;
      this.state = 'connected';
      this.probing = true;
      this.connectedSince = this.now();
      this.logger.info({ target: this.upstream.target, backlogRecords: this.status().backlogRecords }, 'bridge connected');
      const down = new Promise<Error>((resolve) => (this.linkDown = resolve));
      this.pump();
      const error = await down;
      this.linkDown = null;
      this.connectedSince = null;
      this.rewind();
      if ((this.state as BridgeState) === 'closed') break;
      this.state = 'disconnected';
      this.noteError(error, 'warn', 'bridge disconnected; resending from the last acknowledged record after reconnecting');
      await this.upstream.disconnect();
      attempt = 1;
      await this.sleep(backoffMs(attempt, this.settings.reconnect.initialDelayMs, this.settings.reconnect.maxDelayMs));
    }
  }

  /** The link failed (a send was refused or timed out, or the connection dropped): reconnect and resend. */
  private fail(error: unknown, epoch: number): void {
    if (epoch !== this.epoch || this.state !== 'connected') return;
    this.linkDown?.(error instanceof Error ? error : new Error(String(error)));
  }

  /** Forgets what was in flight: it is sent again from each partition's acknowledged position. */
  private rewind(): void {
    this.epoch++;
    for (const c of this.cursors.values()) {
      this.counters.resentRecords += c.rewind();
      c.releaseWaiters();
    }
    this.inFlightMessages = 0;
    this.inFlightBytes = 0;
  }

  private sleep(ms: number): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleeper = null;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleeper = { timer, wake };
    });
  }

  private noteError(error: unknown, level: 'warn' | 'debug', msg: string, fields: Record<string, unknown> = {}): void {
    const code = error instanceof EdgelogError ? error.code : 'UPSTREAM_UNAVAILABLE';
    const message = error instanceof Error ? error.message : String(error);
    this.counters.errors++;
    this.lastError = { code, message, at: this.now() };
    this.logger[level]({ code, reason: message, target: this.upstream.target, ...fields }, msg);
  }

  // ---------------------------------------------------------------- sending

  /** Fills the window: highest priority first, partitions of one priority in turn. */
  private pump(): void {
    if (this.pumping || this.state !== 'connected') return;
    this.pumping = true;
    try {
      const epoch = this.epoch;
      for (const level of this.order) {
        let idle = 0;
        while (idle < level.length) {
          if (this.windowFull() || this.throttled()) return;
          const i = (this.turn.get(level[0]!.priority) ?? 0) % level.length;
          this.turn.set(level[0]!.priority, i + 1);
          const sent = this.sendFrom(level[i]!, epoch);
          idle = sent > 0 ? 0 : idle + 1;
          if (epoch !== this.epoch) return;
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private windowFull(): boolean {
    if (this.probing && this.inFlightMessages >= 1) return true;
    return this.inFlightMessages >= this.settings.maxInFlight || this.inFlightBytes >= this.settings.maxInFlightBytes;
  }

  /** True (and a pump scheduled) while the bandwidth cap has no bytes left. */
  private throttled(): boolean {
    if (this.bucket === null) return false;
    const rate = this.settings.bandwidthBytesPerSecond;
    const waitMs = takeToken(this.bucket, this.monotonicNow(), rate, rate, 0);
    if (waitMs === 0) return false;
    this.pumpTimer ??= setTimeout(() => {
      this.pumpTimer = null;
      this.pump();
    }, waitMs);
    return true;
  }

  /** Sends up to a fair share of one partition's backlog; returns how many messages went. */
  private sendFrom(cursor: PartitionCursor, epoch: number): number {
    if (!cursor.hasBacklog() || !this.windowOpen(cursor)) return 0;
    const perMessage = this.settings.batch?.records ?? 1;
    let messages = 0;
    while (messages < FAIR_SHARE_MESSAGES && cursor.hasBacklog() && !this.windowFull() && !this.throttled()) {
      // Read no more than this turn can send: records read and not sent are decoded for nothing.
      const room = Math.min(READ_CHUNK_RECORDS, (Math.min(FAIR_SHARE_MESSAGES - messages, this.settings.maxInFlight - this.inFlightMessages)) * perMessage);
      let read: CursorRead;
      try {
        read = cursor.read(this.log, room);
      } catch (error) {
        // One unreadable record (CORRUPT_RECORD) must not end the gateway or the other partitions.
        this.stall(cursor, error);
        return messages;
      }
      if (cursor.stalled !== null) this.unstall(cursor);
      if (read.lost > 0) this.lost(cursor, read.lost);
      if (read.gone) {
        this.untrack(cursor);
        return messages;
      }
      if (read.records.length === 0) break;
      for (let at = 0; at < read.records.length && epoch === this.epoch; at += perMessage) {
        // Each message answers to the fair share, the window and the bandwidth cap, not each read:
        // a read of READ_CHUNK_RECORDS sent whole would burst past all three. The rest is read again.
        if (messages >= FAIR_SHARE_MESSAGES || this.windowFull() || this.throttled()) break;
        const message: OutgoingMessage = { topic: cursor.topic, partition: cursor.partition, records: read.records.slice(at, at + perMessage) };
        this.send(cursor, this.upstream.encode(message), epoch);
        messages++;
      }
      if (epoch !== this.epoch) break;
    }
    return messages;
  }

  private send(cursor: PartitionCursor, encoded: EncodedMessage, epoch: number): void {
    const records = encoded.message.records.length;
    const slot = cursor.sent(encoded.message.records[0]!.offset, records);
    this.inFlightMessages++;
    this.inFlightBytes += encoded.bytes;
    this.counters.sentRecords += records;
    if (this.bucket) takeToken(this.bucket, this.monotonicNow(), this.settings.bandwidthBytesPerSecond, this.settings.bandwidthBytesPerSecond, encoded.bytes);
    this.upstream.send(encoded).then(
      (result: SendResult) => {
        if (epoch !== this.epoch) return;
        this.inFlightMessages--;
        this.inFlightBytes -= encoded.bytes;
        this.probing = false;
        this.counters.ackedRecords += cursor.ack(slot);
        if (result.duplicate) this.counters.duplicateRecords += records;
        this.lastAckAt = this.now();
        // Refill once half the window is free: one read per many acks, not one per ack.
        if (this.inFlightMessages <= this.settings.maxInFlight / 2) this.pump();
      },
      (error: unknown) => this.fail(error, epoch),
    );
  }

  /**
   * Stops replicating a partition at a record that cannot be read, without skipping it: the
   * operator sees it in the status (partitions[].stalled, lastError) and one error line per
   * offset; reads retry on each pump, so the partition goes on once retention has deleted the
   * record or an operator has deleted the topic.
   */
  private stall(cursor: PartitionCursor, error: unknown): void {
    const offset = cursor.nextOffset;
    if (cursor.stalled?.offset === offset) return;
    const code = error instanceof EdgelogError ? error.code : 'INTERNAL';
    const message = error instanceof Error ? error.message : String(error);
    cursor.stalled = { offset, code, message };
    this.counters.errors++;
    this.lastError = { code, message, at: this.now() };
    this.logger.error({ topic: cursor.topic, partition: cursor.partition, offset, code, reason: message }, 'replication of this partition is stalled: a record cannot be read');
  }

  private unstall(cursor: PartitionCursor): void {
    this.logger.info({ topic: cursor.topic, partition: cursor.partition, offset: cursor.stalled?.offset }, 'replication of this partition resumed');
    cursor.stalled = null;
  }

  private lost(cursor: PartitionCursor, records: number): void {
    this.counters.lostRecords += records;
    this.logger.warn(
      { topic: cursor.topic, partition: cursor.partition, lostRecords: records, totalLostRecords: this.counters.lostRecords },
      "records were deleted from the log before they were replicated (log.diskPressurePolicy 'drop-oldest' under disk pressure)",
    );
  }

  private windowOpen(cursor: PartitionCursor): boolean {
    const window = cursor.syncWindow === null ? undefined : this.windows.get(cursor.syncWindow);
    return window === undefined || window.isOpen(this.now());
  }

  // ---------------------------------------------------------------- partitions

  private ruleOf(topic: string): BridgeTopicRule | undefined {
    return ruleFor(this.settings.topics, this.patterns, topic);
  }

  private onAppend(topic: string, partition: number, highWatermark: number): void {
    const cursor = this.cursors.get(cursorKey(topic, partition)) ?? this.track(topic, partition);
    if (cursor === undefined) return;
    cursor.highWatermark = highWatermark;
    // Not from inside the log's commit notification: the writer loop must not wait for our sends.
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  /** Starts tracking a partition of a covered topic, from its checkpoint or the oldest stored record. */
  private track(topic: string, partition: number): PartitionCursor | undefined {
    const rule = this.ruleOf(topic);
    const shape = this.log.topicShape(topic);
    if (rule === undefined || shape === undefined || partition >= shape.partitions) return undefined;
    const committed = this.log.committedOffsets(this.group).find((c) => c.topic === topic && c.partition === partition);
    const cursor = new PartitionCursor(topic, partition, shape.id, rule, committed?.offset ?? null, this.log);
    this.cursors.set(cursorKey(topic, partition), cursor);
    this.reorder();
    return cursor;
  }

  private untrack(cursor: PartitionCursor): void {
    cursor.releaseWaiters();
    this.cursors.delete(cursorKey(cursor.topic, cursor.partition));
    this.reorder();
  }

  /** Picks up created topics and drops deleted (or deleted and re-created) ones. */
  private rescan(): void {
    for (const cursor of [...this.cursors.values()]) {
      if (this.log.topicShape(cursor.topic)?.id !== cursor.topicId) this.untrack(cursor);
    }
    for (const topic of this.log.listTopics()) {
      if (this.ruleOf(topic) === undefined) continue;
      const shape = this.log.topicShape(topic)!;
      for (let p = 0; p < shape.partitions; p++) {
        const cursor = this.cursors.get(cursorKey(topic, p)) ?? this.track(topic, p);
        if (cursor === undefined) continue;
        cursor.refresh(this.log);
        // Counted when retention drops them, not when the link is back: a loss is never silent, even during an outage.
        const lost = cursor.skipDeleted(this.log);
        if (lost > 0) this.lost(cursor, lost);
      }
    }
  }

  private reorder(): void {
    const levels = new Map<number, PartitionCursor[]>();
    for (const c of this.cursors.values()) levels.set(c.priority, [...(levels.get(c.priority) ?? []), c]);
    this.order = [...levels.entries()].sort((a, b) => b[0] - a[0]).map(([, cs]) => cs);
  }

  private tick(): void {
    if (this.state === 'closed') return;
    this.rescan();
    const now = this.monotonicNow();
    this.samples.push({ at: now, acked: this.counters.ackedRecords });
    while (this.samples.length > 1 && now - this.samples[0]!.at > THROUGHPUT_SPAN_MS) this.samples.shift();
    // Sync windows open with the clock, not with an append.
    this.pump();
  }

  /** Commits every partition's acknowledged position that moved since its last commit. */
  private checkpoint(): Promise<void> {
    this.checkpointing = this.checkpointing.then(async () => {
      const due = [...this.cursors.values()].filter((c) => c.acked > c.committed);
      if (due.length === 0) return;
      const offsets = due.map((c) => ({ topic: c.topic, partition: c.partition, offset: c.acked }));
      try {
        await this.log.commitOffsets(this.group, offsets);
        due.forEach((c, i) => (c.committed = offsets[i]!.offset));
      } catch (error) {
        // A topic deleted meanwhile (UNKNOWN_TOPIC) or the log closing: the next rescan sorts it out.
        this.logger.debug({ err: error }, 'bridge checkpoint not committed');
      }
    });
    return this.checkpointing;
  }

  private countersForLog(): Record<string, number> {
    return { ...this.counters, backlogRecords: this.status().backlogRecords };
  }
}

function cursorKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
