import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { EdgelogError } from '../errors.js';
import { ByteBudget } from '../ingest/byte-budget.js';
import { DEFAULT_MAX_BATCH_RECORDS, type AppendResult, type CommitLog } from '../log/commit-log.js';
import type { AppendRecord } from '../log/prepare-records.js';
import { validateTopicName } from '../log/topic-config.js';
import type { WebSocketRoute } from './http-server.js';
import { parseProduceFrame, produceFrameBytesMax, type FrameId } from './produce-frames.js';

/**
 * Frame bytes of every /produce connection handed to the log and not yet committed; past it the
 * next frame waits (and its connection soon stops being read) instead of the log refusing it with
 * LOG_OVERLOADED. 16 MiB, like ingest's default budget: with ingest's, this stays under the log's
 * own bound (the gateway opens the log with at least 64 MiB, or 4 × ingest's budget).
 */
export const PRODUCE_MAX_PENDING_BYTES = 16 * 1024 * 1024;
/**
 * Frame bytes one connection has sent and not yet had answered; past it the gateway stops reading
 * its socket (ws.pause) until appends resolve, and resumes below half. About two full frames of
 * 1 MiB records: enough to keep a pipelining producer's next append queued behind the commit in flight.
 */
export const MAX_INFLIGHT_BYTES = 8 * 1024 * 1024;
/** Frames read and not yet answered, however small: answers go out in frame order, so this bounds the answer queue. */
export const MAX_PENDING_FRAMES = 1_000;
/** Answer bytes given to ws and not yet written: a producer that does not read its answers stops being read. */
export const MAX_UNWRITTEN_ANSWER_BYTES = 1024 * 1024;

/** How long shutdown waits for the answers of appends in flight to be written. */
const CLOSE_DRAIN_MS = 5_000;

export interface ProduceServiceOptions {
  log: CommitLog;
  logger: Logger;
  /** The log's maxMessageBytes for new topics: sets the largest frame ({@link produceFrameBytesMax}). */
  maxMessageBytes: number;
  /** Records in one frame: the log's maxBatchRecords, since one frame is one append. Default the log's default. */
  maxRecordsPerFrame?: number;
  /** Default {@link PRODUCE_MAX_PENDING_BYTES}. */
  maxPendingBytes?: number;
  /** Default {@link MAX_INFLIGHT_BYTES}. */
  maxInFlightBytes?: number;
}

export interface ProduceStats {
  connections: number;
  /** Times a connection's socket was paused because it had too much unanswered work. */
  pauses: number;
  /** The most frame bytes one connection had read and not yet answered (the per-connection bound, plus at most one socket read). */
  inFlightBytesMax: number;
}

/**
 * The producer protocol at `/produce` (docs/consume.md): a local application sends records to a
 * topic, and each frame is answered once its records are durable (one `log.append`, which resolves
 * after the fsync), or with the reason it was refused. Topics are created on first use with the
 * configured topic defaults, as Kafka's auto-create does and as ingest does (intake.ts).
 */
export class ProduceService {
  readonly maxFrameBytes: number;
  readonly maxRecordsPerFrame: number;
  readonly maxInFlightBytes: number;
  readonly budget: ByteBudget;
  readonly logger: Logger;
  private readonly sessions = new Set<ProduceSession>();
  private closing = false;
  private readonly counts: ProduceStats = { connections: 0, pauses: 0, inFlightBytesMax: 0 };

  constructor(readonly opts: ProduceServiceOptions) {
    this.maxFrameBytes = produceFrameBytesMax(opts.maxMessageBytes);
    this.maxRecordsPerFrame = opts.maxRecordsPerFrame ?? DEFAULT_MAX_BATCH_RECORDS;
    this.maxInFlightBytes = opts.maxInFlightBytes ?? MAX_INFLIGHT_BYTES;
    this.budget = new ByteBudget(opts.maxPendingBytes ?? PRODUCE_MAX_PENDING_BYTES);
    this.logger = opts.logger.child({ component: 'produce' });
  }

  /** The HTTP server's route for this endpoint. */
  route(): WebSocketRoute {
    return { path: '/produce', handler: (ws, req) => this.handle(ws, req), maxPayloadBytes: this.maxFrameBytes };
  }

  handle(ws: WebSocket, req: IncomingMessage): void {
    // Admitted by the HTTP server's admin access check (access.ts).
    if (this.closing) {
      ws.close(1001, 'gateway shutting down');
      return;
    }
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const session = new ProduceSession(this, ws, this.logger.child({ remote }), () => this.sessions.delete(session));
    this.sessions.add(session);
  }

  /**
   * At shutdown, before connections are cut: every connection stops reading, frames not yet
   * appended are answered GATEWAY_CLOSING (not stored), and the appends in flight finish and get
   * their answers written, so a producer learns the fate of every frame it sent. Bounded by
   * CLOSE_DRAIN_MS for a producer that does not read its answers.
   */
  async close(): Promise<void> {
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_DRAIN_MS)));
    await Promise.race([Promise.all([...this.sessions].map((s) => s.drain())), deadline]);
    clearTimeout(timer);
  }

  stats(): ProduceStats {
    return { ...this.counts };
  }

  /** @internal */
  count(event: 'open' | 'close' | 'pause'): void {
    if (event === 'open') this.counts.connections += 1;
    else if (event === 'close') this.counts.connections -= 1;
    else this.counts.pauses += 1;
  }

  /** @internal */
  noteInFlight(bytes: number): void {
    if (bytes > this.counts.inFlightBytesMax) this.counts.inFlightBytesMax = bytes;
  }
}

/** One frame from its arrival to its answer. */
interface Pending {
  id: FrameId | undefined;
  topic: string;
  records: AppendRecord[];
  /** The frame's size: what it counts against the connection's bound and the service's budget. */
  bytes: number;
  budgetHeld: boolean;
  /** The answer, once there is one; answers go out in frame order. */
  answer: string | null;
}

class ProduceSession {
  /** Frames read and not yet answered, in order (the answer queue). */
  private readonly pending: Pending[] = [];
  /** Frames waiting for their topic or their share of the budget before their append starts, in order. */
  private readonly waiting: Pending[] = [];
  private inFlightBytes = 0;
  private unwrittenBytes = 0;
  private pumping = false;
  private paused = false;
  private warned = false;
  private closed = false;
  /** Set at gateway shutdown: nothing more is appended. */
  private draining = false;
  private drained: (() => void) | null = null;

  constructor(
    private readonly service: ProduceService,
    private readonly ws: WebSocket,
    private readonly logger: Logger,
    private readonly onGone: () => void,
  ) {
    service.count('open');
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', () => this.onClose());
    this.send(JSON.stringify({ type: 'ready', maxRecordsPerFrame: service.maxRecordsPerFrame, maxFrameBytes: service.maxFrameBytes }));
  }

  /** See ProduceService.close: resolves once every frame read is answered and the answers are written. */
  drain(): Promise<void> {
    this.draining = true;
    this.ws.pause();
    const done = new Promise<void>((resolve) => (this.drained = resolve));
    // A running pump refuses the frames it reaches from now on; otherwise refuse them here.
    if (!this.pumping) for (const item of this.waiting.splice(0)) this.refuse(item, new EdgelogError('LOG_CLOSED', 'shutting down'));
    this.checkDrained();
    return done;
  }

  private checkDrained(): void {
    if (this.drained !== null && (this.closed || (this.pending.length === 0 && this.unwrittenBytes === 0))) this.drained();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    // binaryType is 'nodebuffer' (ws's default): one Buffer per message, fragments joined.
    const raw = Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
    const item: Pending = { id: undefined, topic: '', records: [], bytes: raw.length, budgetHeld: false, answer: null };
    this.pending.push(item);
    this.inFlightBytes += item.bytes;
    this.service.noteInFlight(this.inFlightBytes);
    if (this.draining) {
      this.refuse(item, new EdgelogError('LOG_CLOSED', 'shutting down'));
    } else if (isBinary) {
      this.refuse(item, new EdgelogError('INVALID_ARGUMENT', 'frames are JSON text, not binary; send bytes as "valueBase64" in a produce frame'));
    } else {
      const frame = parseProduceFrame(raw.toString('utf8'), this.service.maxRecordsPerFrame);
      item.id = frame.id;
      if (frame.type === 'invalid') {
        this.refuse(item, new EdgelogError('INVALID_ARGUMENT', frame.message));
      } else {
        try {
          item.topic = validateTopicName(frame.topic);
          item.records = frame.records;
          this.waiting.push(item);
          if (!this.pumping) void this.pump();
        } catch (error) {
          this.refuse(item, error);
        }
      }
    }
    this.updateFlow();
  }

  /**
   * Starts the appends of waiting frames in frame order: each waits for its topic's creation and
   * its share of the budget behind the frames before it, so a connection's records reach the log
   * in the order they were sent. Many appends are in flight at once (group commit).
   */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.waiting.length > 0 && !this.closed) {
        const item = this.waiting[0]!;
        try {
          if (!this.service.opts.log.hasTopic(item.topic)) await this.service.opts.log.ensureTopic(item.topic);
          if (!this.service.budget.tryAcquire(item.bytes)) await this.service.budget.acquire(item.bytes);
          item.budgetHeld = true;
        } catch (error) {
          this.waiting.shift();
          this.refuse(item, error);
          continue;
        }
        if (this.closed) break;
        this.waiting.shift();
        if (this.draining) {
          this.release(item);
          this.refuse(item, new EdgelogError('LOG_CLOSED', 'shutting down'));
        } else {
          this.append(item);
        }
      }
    } finally {
      this.pumping = false;
      if (this.closed) this.dropWaiting();
    }
  }

  private append(item: Pending): void {
    this.service.opts.log.append(item.topic, item.records).then(
      (results: AppendResult[]) => {
        this.release(item);
        this.answer(item, JSON.stringify({ type: 'produced', id: item.id, results: results.map((r) => ({ partition: r.partition, offset: r.offset })) }));
      },
      (error: unknown) => {
        this.release(item);
        this.refuse(item, error);
      },
    );
  }

  private release(item: Pending): void {
    if (item.budgetHeld) this.service.budget.release(item.bytes);
    item.budgetHeld = false;
    item.records = [];
  }

  /** Answers a frame with an error frame naming the code, what was wrong and what is allowed. */
  private refuse(item: Pending, error: unknown): void {
    let code: string;
    let message: string;
    let retryable: boolean;
    if (error instanceof EdgelogError && error.code === 'LOG_CLOSED') {
      // Frames that waited their turn while the gateway shut down: say it the way ingest does.
      code = 'GATEWAY_CLOSING';
      message = 'the gateway is shutting down: these records were not stored; send them again when it is back';
      retryable = true;
    } else if (error instanceof EdgelogError) {
      ({ code, message, retryable } = error);
      if (!this.warned && code !== 'LOG_FULL') {
        // One line per connection (STYLE.md §9); the producer gets every refusal in its answers.
        this.warned = true;
        this.logger.warn({ code, reason: message, topic: item.topic || undefined }, 'produce frame refused (further refusals on this connection are not logged)');
      }
    } else {
      this.logger.error({ err: error, topic: item.topic }, 'produce frame failed');
      code = 'INTERNAL';
      message = 'the gateway failed to store these records (a bug; it logged the cause); they were not stored, send them again';
      retryable = true;
    }
    this.answer(item, JSON.stringify({ type: 'error', id: item.id, code, message, retryable }));
  }

  private answer(item: Pending, frame: string): void {
    item.answer = frame;
    while (this.pending.length > 0 && this.pending[0]!.answer !== null) {
      const done = this.pending.shift()!;
      this.inFlightBytes -= done.bytes;
      this.send(done.answer!);
    }
    this.updateFlow();
    this.checkDrained();
  }

  private send(frame: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.unwrittenBytes += frame.length;
    this.ws.send(frame, () => {
      this.unwrittenBytes -= frame.length;
      this.updateFlow();
      this.checkDrained();
    });
  }

  /**
   * Pauses the socket while this connection holds too much unanswered work, and resumes it below
   * half of every bound (hysteresis). A paused socket is not read: the producer's frames wait in
   * TCP buffers and then in the producer (DESIGN "Memory is bounded").
   */
  private updateFlow(): void {
    if (this.closed || this.draining) return;
    const max = this.service.maxInFlightBytes;
    const over = this.inFlightBytes >= max || this.pending.length >= MAX_PENDING_FRAMES || this.unwrittenBytes >= MAX_UNWRITTEN_ANSWER_BYTES;
    if (over && !this.paused) {
      this.paused = true;
      this.ws.pause();
      this.service.count('pause');
      return;
    }
    if (this.paused && this.inFlightBytes <= max / 2 && this.pending.length <= MAX_PENDING_FRAMES / 2 && this.unwrittenBytes <= MAX_UNWRITTEN_ANSWER_BYTES / 2) {
      this.paused = false;
      this.ws.resume();
    }
  }

  /**
   * The producer went away (or the gateway closed the connection at shutdown). Frames still
   * waiting are not appended; appends in flight finish, unanswered: the producer treats records
   * without an answer as maybe stored and sends them again (at least once).
   */
  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.pumping) this.dropWaiting();
    this.service.count('close');
    this.onGone();
    this.checkDrained();
  }

  private dropWaiting(): void {
    for (const item of this.waiting.splice(0)) this.release(item);
  }
}
