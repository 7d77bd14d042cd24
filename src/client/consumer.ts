/**
 * The consumer client: a member of a consumer group on the gateway's `/consume` endpoint
 * (docs/consume.md), read as an async iterable of batches.
 */
import { Connection, DEFAULT_CONNECT_TIMEOUT_MS, type GatewayFrame } from './connection.js';
import { EdgelogClientError, gatewayError } from './errors.js';
import { fromWire, partitionKey, type Batch, type ConsumerRecord, type TopicPartition } from './records.js';
import { endpointUrl } from './url.js';

/**
 * The credit window: records and value bytes the client lets the gateway send ahead of the
 * application. It bounds the client's buffer (what it holds plus what may be on the way), and
 * 1,000 records / 4 MiB keeps a consumer busy on a Pi without holding much.
 */
export const DEFAULT_MAX_BUFFERED_RECORDS = 1_000;
export const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** Kafka's auto.commit.interval.ms. Auto-commit is on by default, as in Kafka. */
export const DEFAULT_AUTO_COMMIT_INTERVAL_MS = 5_000;
/** The gateway's default; heartbeats go every third of it when the consumer is otherwise quiet. */
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
/** The gateway's credit limits (docs/consume.md): a window may not be larger. */
const MAX_CREDIT_RECORDS = 100_000;
const MAX_CREDIT_BYTES = 64 * 1024 * 1024;
/** Commits and seeks awaiting answers: an application that never awaits them is a bug, not a queue. */
const MAX_PENDING_REQUESTS = 1_024;
/** The shortest auto-commit interval: each commit is an fsync on the gateway. */
const MIN_AUTO_COMMIT_INTERVAL_MS = 100;

/** Where {@link Consumer.seek} moves a partition: an offset, the oldest or next record, or the first record at or after a time. */
export type SeekTo = 'earliest' | 'latest' | number | { timestamp: number };

export interface PartitionOffset extends TopicPartition {
  offset: number;
}

/** The consumer's share of its group after a rebalance. */
export interface ConsumerAssignment {
  generation: number;
  /** Every assigned partition with the offset of the next record the application will get. */
  partitions: PartitionOffset[];
  /** Partitions new to this consumer in this assignment. */
  added: TopicPartition[];
  /** Partitions this consumer lost; their buffered records were dropped. */
  revoked: TopicPartition[];
}

/** Something the application should know about that does not stop the consumer. */
export type ConsumerWarning =
  | { kind: 'skipped'; topic: string; partition: number; from: number; to: number; message: string }
  | { kind: 'auto-commit-failed'; code: string; message: string };

export interface ConsumerOptions {
  /** `ws://host:port/consume`, or the gateway's base URL (`http://host:port`, `ws://host:port`). */
  url: string | URL;
  groupId: string;
  topics: string[];
  /** Names the application; the member id starts with it. Default 'consumer'. */
  clientId?: string;
  /** Default 'sticky'; must match the group's. */
  strategy?: 'sticky' | 'round-robin';
  /** Default {@link DEFAULT_SESSION_TIMEOUT_MS}. */
  sessionTimeoutMs?: number;
  /** Where to start a partition the group has no committed offset for. Default 'latest' (Kafka's default). */
  offsetReset?: 'earliest' | 'latest';
  /**
   * Commit processed positions every `intervalMs` and on close. A batch counts as processed once
   * the application asks for the next one (or calls close()), so auto-commit is at least once.
   * Default on, every {@link DEFAULT_AUTO_COMMIT_INTERVAL_MS} ms (Kafka's default).
   */
  autoCommit?: boolean | { intervalMs: number };
  /** Default {@link DEFAULT_MAX_BUFFERED_RECORDS}. */
  maxBufferedRecords?: number;
  /** Default {@link DEFAULT_MAX_BUFFERED_BYTES} (value bytes). */
  maxBufferedBytes?: number;
  /** Default 10,000. */
  connectTimeoutMs?: number;
  /** The gateway's admin token, when it has one (config admin.token): sent as `Authorization: Bearer`. */
  token?: string;
  /**
   * Called on every assignment, first included, before any record of it is handed out. A seek()
   * called here, synchronously, hides every record from before it.
   */
  onAssignment?: (assignment: ConsumerAssignment) => void;
  /** Default: process.emitWarning. */
  onWarning?: (warning: ConsumerWarning) => void;
}

interface PartState {
  topic: string;
  partition: number;
  /** The next offset the application gets (after the last record handed to it, or where a seek moved it). */
  position: number;
  /** The next offset after the batches the application has finished: what auto-commit commits. */
  processed: number;
  /** What this consumer last committed for the partition. */
  committed: number | undefined;
  paused: boolean;
  /** Seeks sent and not yet answered: records of the partition are held back until none is. */
  seeks: number;
}

type Entry =
  | { kind: 'batch'; key: string; batch: Batch; bytes: number }
  | { kind: 'skip'; key: string; from: number; to: number; reason: string }
  /** A partition the gateway cannot read on (CORRUPT_RECORD): raised once the records before it are handed out. */
  | { kind: 'error'; key: string; error: EdgelogClientError };

interface Request {
  resolve: (value: unknown) => void;
  reject: (error: EdgelogClientError) => void;
  /** For a seek: the partition state it was sent for. */
  seekOf?: PartState;
}

type State = 'connecting' | 'active' | 'closing' | 'closed' | 'failed';

/** Creates a consumer; it connects and joins its group at once. */
export function consumer(options: ConsumerOptions): Consumer {
  return new Consumer(options);
}

/**
 * A member of a consumer group. Iterate it (`for await (const batch of consumer)`) to get
 * batches of one partition each, in offset order per partition. The client grants the gateway a
 * bounded credit window and replenishes it as the application pulls batches, so a slow
 * application costs bounded memory. Iterate it once; breaking out of the loop closes it.
 */
export class Consumer implements AsyncIterable<Batch> {
  private readonly conn: Connection;
  private readonly opts: ConsumerOptions;
  private readonly windowRecords: number;
  private readonly windowBytes: number;
  private readonly sessionTimeoutMs: number;
  private readonly autoCommitMs: number | null;
  private state: State = 'connecting';
  private failure: EdgelogClientError | null = null;
  private joined = false;
  private member = '';
  private notCreated: string[] = [];
  private generation = -1;
  private parts = new Map<string, PartState>();
  private readonly queue: Entry[] = [];
  private bufferedRecords = 0;
  private bufferedBytes = 0;
  /** The gateway's credit as it counts it (consume-session.ts): what it may still send. */
  private readonly credit = { records: 0, bytes: 0 };
  /** The batch last handed to the application, not yet known to be processed. */
  private current: { key: string; end: number } | null = null;
  private readonly requests = new Map<number, Request>();
  private nextId = 1;
  private waiters: (() => void)[] = [];
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: EdgelogClientError) => void;
  private timers: NodeJS.Timeout[] = [];
  private sentSinceTick = false;
  private autoCommitting = false;
  private closing: Promise<void> | null = null;

  constructor(options: ConsumerOptions) {
    this.opts = options;
    if (typeof options?.groupId !== 'string' || options.groupId === '') throw invalid(`groupId must be a group id (1 to 249 of a-z A-Z 0-9 . _ -), got ${String(options?.groupId)}`);
    if (!Array.isArray(options.topics) || options.topics.length === 0 || !options.topics.every((t) => typeof t === 'string')) throw invalid('topics must be a list of one or more topic names');
    this.windowRecords = intIn('maxBufferedRecords', options.maxBufferedRecords ?? DEFAULT_MAX_BUFFERED_RECORDS, 1, MAX_CREDIT_RECORDS);
    this.windowBytes = intIn('maxBufferedBytes', options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES, 1, MAX_CREDIT_BYTES);
    this.sessionTimeoutMs = intIn('sessionTimeoutMs', options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS, 1, Number.MAX_SAFE_INTEGER);
    const auto = options.autoCommit ?? true;
    if (auto === false) this.autoCommitMs = null;
    else if (auto === true) this.autoCommitMs = DEFAULT_AUTO_COMMIT_INTERVAL_MS;
    else this.autoCommitMs = intIn('autoCommit.intervalMs', auto?.intervalMs, MIN_AUTO_COMMIT_INTERVAL_MS, Number.MAX_SAFE_INTEGER);
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => {});
    const url = endpointUrl(options.url, '/consume');
    this.conn = new Connection(url, { onFrame: (f) => this.onFrame(f), onClose: (e) => this.fail(e) }, { timeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, ...(options.token === undefined ? {} : { token: options.token }) });
    this.conn.opened.then(
      () =>
        this.send({
          type: 'join',
          group: options.groupId,
          topics: options.topics,
          clientId: options.clientId ?? 'consumer',
          sessionTimeoutMs: this.sessionTimeoutMs,
          ...(options.strategy ? { strategy: options.strategy } : {}),
          ...(options.offsetReset ? { offsetReset: options.offsetReset } : {}),
        }),
      (error: EdgelogClientError) => this.fail(error),
    );
  }

  /** Resolves once the consumer has joined and has its first assignment; rejects when it cannot (GATEWAY_UNREACHABLE, a refused join). */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** This consumer's member id in its group ('' until joined). */
  get memberId(): string {
    return this.member;
  }

  /** Subscribed topics that did not exist at join; their partitions are assigned once they are created. */
  get notYetCreated(): readonly string[] {
    return this.notCreated;
  }

  /** Records and value bytes received and not yet handed to the application: at most the window (plus one record's bytes). */
  get buffered(): { records: number; bytes: number } {
    return { records: this.bufferedRecords, bytes: this.bufferedBytes };
  }

  /** The assigned partitions, each with the offset of the next record the application will get. */
  get assignment(): PartitionOffset[] {
    return [...this.parts.values()].map((p) => ({ topic: p.topic, partition: p.partition, offset: p.position }));
  }

  [Symbol.asyncIterator](): AsyncIterator<Batch> {
    return {
      next: () => this.next(),
      // break, return or a throw in the loop body: the batch in hand is not counted as processed.
      return: async () => {
        await this.shutdown(false).catch((error: EdgelogClientError) => this.warn({ kind: 'auto-commit-failed', code: error.code, message: `the commit at close failed: ${error.message}` }));
        return { done: true, value: undefined };
      },
    };
  }

  /**
   * Commits, with the current generation, the position after the last record handed to the
   * application on each assigned partition (or the given offsets: the next offset to read).
   * Resolves once the gateway has it durably; rejects with the gateway's code (STALE_GENERATION
   * after a rebalance, NOT_ASSIGNED, OFFSET_AHEAD) and a message saying why.
   */
  async commit(offsets?: readonly PartitionOffset[]): Promise<void> {
    await this.whenActive(false);
    if (offsets !== undefined) checkOffsets(offsets);
    return this.commitNow(offsets ?? this.changed('position'));
  }

  /**
   * Moves a partition of this consumer's assignment: to an offset, 'earliest', 'latest' or the
   * first record at or after `{ timestamp }`. Resolves with the new offset. Records of the
   * partition buffered or on the way from before the seek never reach the application.
   * `partition` alone is enough when the consumer reads one topic.
   */
  seek(partition: number | TopicPartition, to: SeekTo): Promise<number> {
    try {
      const tp = this.partitionOf(partition);
      const target = seekTarget(to);
      if (this.state === 'connecting') return this.whenActive(false).then(() => this.seek(partition, to));
      this.checkUsable();
      const part = this.owned(tp);
      // From now on the partition's records are held back; the answer drops the stale ones.
      part.seeks += 1;
      return this.request({ type: 'seek', topic: tp.topic, partition: tp.partition, to: target }, part) as Promise<number>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Stops handing out (and receiving) records of these partitions until resume(); buffered ones wait. */
  pause(partitions: readonly (number | TopicPartition)[]): void {
    this.setPaused(partitions, true);
  }

  resume(partitions: readonly (number | TopicPartition)[]): void {
    this.setPaused(partitions, false);
  }

  /**
   * Commits processed positions if auto-commit is on (every batch handed out counts as
   * processed), leaves the group and closes the connection; the iteration ends. Rejects only if
   * that last commit failed (the consumer is closed anyway). Idempotent.
   */
  close(): Promise<void> {
    return this.shutdown(true);
  }

  // ---------------------------------------------------------------- iteration

  private async next(): Promise<IteratorResult<Batch>> {
    this.markProcessed();
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.state === 'closing' || this.state === 'closed') return { done: true, value: undefined };
      const batch = this.take();
      if (batch) return { done: false, value: batch };
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The first buffered batch of a partition that is neither paused nor being sought; applies skip notices on the way. */
  private take(): Batch | null {
    for (let i = 0; i < this.queue.length; i++) {
      const entry = this.queue[i]!;
      const part = this.parts.get(entry.key);
      if (part && (part.paused || part.seeks > 0)) continue;
      this.queue.splice(i--, 1);
      if (!part) continue;
      if (entry.kind === 'error') {
        this.failure ??= entry.error;
        return null;
      }
      if (entry.kind === 'skip') {
        // The gateway moved on past records deleted by retention: so does every position.
        part.position = entry.to;
        if (this.current?.key === entry.key) this.current.end = entry.to;
        else part.processed = entry.to;
        this.warn({
          kind: 'skipped',
          topic: part.topic,
          partition: part.partition,
          from: entry.from,
          to: entry.to,
          message: `${part.topic}/${part.partition}: offsets ${entry.from} to ${entry.to - 1} were ${entry.reason}`,
        });
        continue;
      }
      this.bufferedRecords -= entry.batch.records.length;
      this.bufferedBytes -= entry.bytes;
      part.position = entry.batch.records.at(-1)!.offset + 1;
      this.current = { key: entry.key, end: part.position };
      this.replenish();
      return entry.batch;
    }
    return null;
  }

  /** The batch last handed out is done: the application asked for the next one, or closed. */
  private markProcessed(): void {
    const current = this.current;
    this.current = null;
    const part = current && this.parts.get(current.key);
    if (part) part.processed = current.end;
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  // ---------------------------------------------------------------- frames from the gateway

  private onFrame(frame: GatewayFrame): void {
    try {
      switch (frame.type) {
        case 'joined':
          this.joined = true;
          this.member = String(frame['memberId'] ?? '');
          this.notCreated = Array.isArray(frame['notYetCreated']) ? (frame['notYetCreated'] as string[]) : [];
          return this.replenish();
        case 'assignment':
          return this.onAssignment(frame);
        case 'records':
          return this.onRecords(frame);
        case 'skipped':
          return this.onSkipped(frame);
        case 'commit-ok':
          return this.answer(frame, undefined);
        case 'seek-ok':
          return this.answer(frame, frame['offset']);
        case 'error':
          return this.onError(frame);
        case 'removed':
          return this.fail(new EdgelogClientError('UNKNOWN_MEMBER', `the gateway removed this consumer from group '${this.opts.groupId}': ${String(frame['reason'] ?? 'no reason given')}; create a new consumer to join again (it resumes from the group's committed offsets)`));
        default:
          // A frame type from a newer gateway: nothing this client needs to act on.
          return;
      }
    } catch (error) {
      this.fail(error instanceof EdgelogClientError ? error : new EdgelogClientError('PROTOCOL_ERROR', `a '${String(frame.type)}' frame from the gateway could not be handled: ${(error as Error).message}`, { cause: error }));
    }
  }

  private onAssignment(frame: GatewayFrame): void {
    const generation = frame['generation'];
    const list = frame['partitions'];
    if (typeof generation !== 'number' || !Array.isArray(list)) throw protocol('an assignment frame without generation and partitions');
    const next = new Map<string, PartState>();
    const added: TopicPartition[] = [];
    for (const p of list as PartitionOffset[]) {
      const key = partitionKey(p.topic, p.partition);
      // A partition this consumer keeps goes on from where it was, buffered records and all (the gateway does the same).
      const kept = this.parts.get(key);
      next.set(key, kept ?? { topic: p.topic, partition: p.partition, position: p.offset, processed: p.offset, committed: undefined, paused: false, seeks: 0 });
      if (!kept) added.push({ topic: p.topic, partition: p.partition });
    }
    const revoked = [...this.parts.entries()].filter(([key]) => !next.has(key)).map(([, p]) => ({ topic: p.topic, partition: p.partition }));
    this.parts = next;
    this.generation = generation;
    if (revoked.length > 0) this.dropEntries((key) => !next.has(key));
    if (this.current && !next.has(this.current.key)) this.current = null;
    const first = this.state === 'connecting';
    if (first) {
      this.state = 'active';
      this.startTimers();
    }
    if (this.state !== 'active') return;
    try {
      this.opts.onAssignment?.({ generation, partitions: this.assignment, added, revoked });
    } catch (error) {
      throw new EdgelogClientError('INVALID_ARGUMENT', `the onAssignment callback threw: ${(error as Error)?.message ?? String(error)}`, { cause: error, retryable: false });
    }
    if (first) this.resolveReady();
    this.replenish();
    this.wake();
  }

  private onRecords(frame: GatewayFrame): void {
    const { topic, partition, generation, highWatermark, records } = frame as { topic?: unknown; partition?: unknown; generation?: unknown; highWatermark?: unknown; records?: unknown };
    if (typeof topic !== 'string' || typeof partition !== 'number' || typeof highWatermark !== 'number' || !Array.isArray(records) || records.length === 0) {
      throw protocol('a records frame without topic, partition, highWatermark and records');
    }
    const decoded: ConsumerRecord[] = records.map((r) => fromWire(topic, partition, r));
    const bytes = decoded.reduce((sum, r) => sum + r.value.length, 0);
    // The gateway spent this much credit, whatever becomes of the records here.
    this.credit.records -= decoded.length;
    this.credit.bytes -= bytes;
    const key = partitionKey(topic, partition);
    if (this.state !== 'active' || generation !== this.generation || !this.parts.has(key)) {
      this.replenish();
      return;
    }
    this.queue.push({ kind: 'batch', key, batch: { topic, partition, records: decoded, highWatermark }, bytes });
    this.bufferedRecords += decoded.length;
    this.bufferedBytes += bytes;
    this.wake();
  }

  private onSkipped(frame: GatewayFrame): void {
    const { topic, partition, from, to, reason } = frame as { topic?: unknown; partition?: unknown; from?: unknown; to?: unknown; reason?: unknown };
    if (typeof topic !== 'string' || typeof partition !== 'number' || typeof from !== 'number' || typeof to !== 'number') throw protocol('a skipped frame without topic, partition, from and to');
    const key = partitionKey(topic, partition);
    if (this.state !== 'active' || !this.parts.has(key)) return;
    this.queue.push({ kind: 'skip', key, from, to, reason: typeof reason === 'string' ? reason : 'skipped' });
    this.wake();
  }

  private answer(frame: GatewayFrame, value: unknown): void {
    const id = frame['id'];
    const req = typeof id === 'number' ? this.requests.get(id) : undefined;
    if (!req) throw protocol(`an answer to request ${JSON.stringify(id)}, which this consumer is not waiting for`);
    this.requests.delete(id as number);
    const part = req.seekOf;
    if (part) {
      if (typeof value !== 'number') throw protocol('a seek-ok frame without its offset');
      part.seeks -= 1;
      if (this.parts.get(partitionKey(part.topic, part.partition)) === part) {
        // Everything buffered for the partition came before the seek took effect.
        const key = partitionKey(part.topic, part.partition);
        this.dropEntries((k) => k === key);
        part.position = value;
        part.processed = value;
        if (this.current?.key === key) this.current = null;
        this.replenish();
        this.wake();
      }
    }
    req.resolve(value);
  }

  private onError(frame: GatewayFrame): void {
    const error = gatewayError(frame);
    const id = frame['id'];
    const req = typeof id === 'number' ? this.requests.get(id) : undefined;
    if (req) {
      this.requests.delete(id as number);
      if (req.seekOf) {
        // The position did not move: the held records are the next ones after all.
        req.seekOf.seeks -= 1;
        this.wake();
      }
      req.reject(error);
      return;
    }
    // A partition the gateway cannot read on: in order, after the records it sent before it.
    const { topic, partition } = frame as { topic?: unknown; partition?: unknown };
    if (typeof topic === 'string' && typeof partition === 'number') {
      const key = partitionKey(topic, partition);
      if (this.state !== 'active' || !this.parts.has(key)) return;
      this.queue.push({ kind: 'error', key, error });
      this.wake();
      return;
    }
    // A pause or resume that crossed a rebalance: the partition is no longer ours anyway.
    if (this.joined && error.code === 'NOT_ASSIGNED') return;
    // A refused join, or a frame this client should never have sent.
    this.fail(error);
  }

  // ---------------------------------------------------------------- requests to the gateway

  private send(frame: object): void {
    if (this.conn.send(frame)) this.sentSinceTick = true;
  }

  private request(frame: Record<string, unknown>, seekOf?: PartState): Promise<unknown> {
    if (this.requests.size >= MAX_PENDING_REQUESTS) {
      if (seekOf) seekOf.seeks -= 1;
      return Promise.reject(invalid(`${MAX_PENDING_REQUESTS} commits and seeks are already waiting for the gateway's answer: await them before sending more`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject, ...(seekOf ? { seekOf } : {}) });
      this.send({ ...frame, id });
    });
  }

  private async commitNow(offsets: readonly PartitionOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    await this.request({ type: 'commit', generation: this.generation, offsets: offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset })) });
    for (const o of offsets) {
      const part = this.parts.get(partitionKey(o.topic, o.partition));
      if (part) part.committed = o.offset;
    }
  }

  /** Assigned partitions whose position (or processed position) differs from what this consumer last committed. */
  private changed(which: 'position' | 'processed'): PartitionOffset[] {
    return [...this.parts.values()].filter((p) => p[which] !== p.committed).map((p) => ({ topic: p.topic, partition: p.partition, offset: p[which] }));
  }

  /** Sends credit so that what is buffered plus what the gateway may still send fills the window, once half of it is free. */
  private replenish(): void {
    if (!this.joined || (this.state !== 'active' && this.state !== 'connecting')) return;
    const records = this.windowRecords - this.bufferedRecords - Math.max(0, this.credit.records);
    const bytes = this.windowBytes - this.bufferedBytes - Math.max(0, this.credit.bytes);
    if (records < this.windowRecords / 2 && bytes < this.windowBytes / 2) return;
    const grant = { records: Math.max(0, records), bytes: Math.max(0, bytes) };
    this.send({ type: 'credit', ...grant });
    // The gateway's arithmetic (consume-session.ts): records add up; bytes overspent by the last record are forgiven.
    this.credit.records = Math.min(MAX_CREDIT_RECORDS, this.credit.records + grant.records);
    this.credit.bytes = Math.min(MAX_CREDIT_BYTES, Math.max(0, this.credit.bytes) + grant.bytes);
  }

  private setPaused(partitions: readonly (number | TopicPartition)[], paused: boolean): void {
    this.checkUsable();
    if (this.state !== 'active') throw invalid(`${paused ? 'pause' : 'resume'}() before the first assignment: await consumer.ready() first`);
    if (!Array.isArray(partitions) || partitions.length === 0) throw invalid(`${paused ? 'pause' : 'resume'}() takes a list of one or more partitions`);
    const tps = partitions.map((p) => this.partitionOf(p));
    const parts = tps.map((tp) => this.owned(tp));
    for (const part of parts) part.paused = paused;
    this.send({ type: paused ? 'pause' : 'resume', partitions: tps });
    if (!paused) this.wake();
  }

  private startTimers(): void {
    // Every frame counts as a heartbeat; a quiet consumer sends one every third of its session timeout.
    const heartbeat = setInterval(() => {
      if (!this.sentSinceTick) this.send({ type: 'heartbeat' });
      this.sentSinceTick = false;
    }, Math.max(1, Math.floor(this.sessionTimeoutMs / 3)));
    this.timers.push(heartbeat);
    if (this.autoCommitMs !== null) this.timers.push(setInterval(() => this.autoCommit(), this.autoCommitMs));
    // The open socket keeps the process alive while the consumer is in use; the timers need not.
    for (const t of this.timers) t.unref();
  }

  private autoCommit(): void {
    if (this.autoCommitting || this.state !== 'active') return;
    this.autoCommitting = true;
    this.commitNow(this.changed('processed'))
      .catch((error: EdgelogClientError) => {
        // A rebalance between the tick and the answer: the next tick commits with the new generation.
        if (error.code !== 'STALE_GENERATION' && error.code !== 'NOT_ASSIGNED' && this.state === 'active') {
          this.warn({ kind: 'auto-commit-failed', code: error.code, message: `auto-commit failed: ${error.message}` });
        }
      })
      .finally(() => (this.autoCommitting = false));
  }

  // ---------------------------------------------------------------- state

  private shutdown(processedAll: boolean): Promise<void> {
    this.closing ??= (async () => {
      if (processedAll) this.markProcessed();
      const wasActive = this.state === 'active';
      if (this.state === 'connecting' || this.state === 'active') this.state = 'closing';
      this.stopTimers();
      this.dropEntries(() => true);
      this.wake();
      let commitError: unknown = null;
      if (wasActive && this.autoCommitMs !== null) {
        try {
          await this.commitNow(this.changed('processed'));
        } catch (error) {
          commitError = error;
        }
      }
      if (this.state === 'closing') this.send({ type: 'leave' });
      await this.conn.close(1000, 'consumer closed');
      const closed = new EdgelogClientError('CLIENT_CLOSED', 'the consumer was closed');
      this.rejectRequests(closed);
      this.rejectReady(closed);
      if (this.state === 'closing') this.state = 'closed';
      if (commitError) throw commitError;
    })();
    return this.closing;
  }

  /** The consumer cannot go on: the iteration throws `error`, waiting calls reject with it. */
  private fail(error: EdgelogClientError): void {
    if (this.state === 'closing') {
      // Lost while closing: what waits for an answer will not get one.
      this.rejectRequests(error);
      return;
    }
    if (this.failure || this.state === 'closed') return;
    this.failure = error;
    this.state = 'failed';
    this.stopTimers();
    this.dropEntries(() => true);
    this.rejectRequests(error);
    this.rejectReady(error);
    this.wake();
    void this.conn.close(1000, 'consumer failed');
  }

  private whenActive(internal: boolean): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.state === 'active' || (internal && this.state === 'closing')) return Promise.resolve();
    if (this.state === 'connecting') return this.readyPromise;
    return Promise.reject(new EdgelogClientError('CLIENT_CLOSED', 'the consumer is closed: create a new one'));
  }

  private checkUsable(): void {
    if (this.failure) throw this.failure;
    if (this.state === 'closing' || this.state === 'closed') throw new EdgelogClientError('CLIENT_CLOSED', 'the consumer is closed: create a new one');
  }

  private dropEntries(match: (key: string) => boolean): void {
    for (let i = 0; i < this.queue.length; i++) {
      const entry = this.queue[i]!;
      if (!match(entry.key)) continue;
      this.queue.splice(i--, 1);
      if (entry.kind === 'batch') {
        this.bufferedRecords -= entry.batch.records.length;
        this.bufferedBytes -= entry.bytes;
      }
    }
    this.replenish();
  }

  private rejectRequests(error: EdgelogClientError): void {
    const pending = [...this.requests.values()];
    this.requests.clear();
    for (const r of pending) r.reject(error);
  }

  private stopTimers(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
  }

  private partitionOf(p: number | TopicPartition): TopicPartition {
    if (typeof p === 'number') {
      if (this.opts.topics.length !== 1) throw invalid(`partition ${p} alone is ambiguous: this consumer reads ${this.opts.topics.length} topics; name it as { topic, partition }`);
      return { topic: this.opts.topics[0]!, partition: p };
    }
    if (typeof p?.topic !== 'string' || typeof p.partition !== 'number') throw invalid('a partition is a number (with one topic) or { topic, partition }');
    return { topic: p.topic, partition: p.partition };
  }

  private owned(tp: TopicPartition): PartState {
    const part = this.parts.get(partitionKey(tp.topic, tp.partition));
    if (part) return part;
    const mine = [...this.parts.keys()].join(', ') || 'none';
    throw new EdgelogClientError('NOT_ASSIGNED', `${tp.topic}/${tp.partition} is not assigned to this consumer in generation ${this.generation}; its partitions are ${mine}`);
  }

  private warn(warning: ConsumerWarning): void {
    if (this.opts.onWarning) this.opts.onWarning(warning);
    else process.emitWarning(warning.message, { code: warning.kind === 'skipped' ? 'EDGELOG_SKIPPED' : 'EDGELOG_AUTO_COMMIT' });
  }
}

function seekTarget(to: SeekTo): 'earliest' | 'latest' | { offset: number } | { timestamp: number } {
  if (to === 'earliest' || to === 'latest') return to;
  if (typeof to === 'number' && Number.isSafeInteger(to) && to >= 0) return { offset: to };
  if (typeof to === 'object' && to !== null && typeof to.timestamp === 'number' && Number.isSafeInteger(to.timestamp) && to.timestamp >= 0) return { timestamp: to.timestamp };
  throw invalid(`seek to an offset (a whole number ≥ 0), 'earliest', 'latest' or { timestamp: ms }, got ${JSON.stringify(to)}`);
}

function checkOffsets(offsets: readonly PartitionOffset[]): void {
  if (!Array.isArray(offsets)) throw invalid('commit() takes nothing, or a list of { topic, partition, offset }');
  offsets.forEach((o, i) => {
    if (typeof o?.topic !== 'string' || typeof o.partition !== 'number' || typeof o.offset !== 'number') throw invalid(`offsets[${i}] must be { topic, partition, offset }`);
  });
}

function intIn(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw invalid(`${name} must be a whole number from ${min} to ${max}, got ${String(v)}`);
  return v;
}

function invalid(message: string): EdgelogClientError {
  return new EdgelogClientError('INVALID_ARGUMENT', message);
}

function protocol(what: string): EdgelogClientError {
  return new EdgelogClientError('PROTOCOL_ERROR', `the gateway sent ${what}; is the gateway's version a match for this client?`);
}
