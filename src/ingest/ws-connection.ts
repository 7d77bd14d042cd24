import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { EdgelogError } from '../errors.js';
import type { Intake, IntakeSession, StoredReading } from './intake.js';
import type { MappedTopic } from './topic-mapping.js';
import {
  AUTH_FRAME_SHAPE,
  MAX_READINGS_PER_FRAME,
  answerFrame,
  authOkFrame,
  errorFrame,
  parseClientFrame,
  type AuthFrame,
  type FrameId,
  type ReadingError,
  type ReadingOutcome,
} from './ws-frames.js';

/**
 * Readings of one connection submitted and not yet settled, past which its socket is paused
 * (TCP backpressure, as aedes does for MQTT); it is resumed below half. One full batch frame:
 * enough to keep a batching client's pipeline busy while the log commits the previous one, and
 * it bounds the intake session's queue, which the byte budget does not cover.
 */
export const MAX_PENDING_READINGS = MAX_READINGS_PER_FRAME;
/** Frames read and not yet answered: answers go out in frame order, so one slow reading holds the answers behind it. */
export const MAX_PENDING_FRAMES = 1_000;
/** Answer bytes given to ws and not yet written to the socket: a client that does not read its acks stops being read. */
export const MAX_UNWRITTEN_ANSWER_BYTES = 1024 * 1024;

/** An authentication refusal: its message goes to the client, `detail` only to the log. */
export class AuthRefusal extends Error {
  constructor(
    message: string,
    readonly detail: string,
    /** Not logged: a throttled source was logged once when its throttling began. */
    readonly quiet = false,
  ) {
    super(message);
  }
}

/** What a connection needs of the WebSocket ingest that accepted it (ws-ingest.ts). */
export interface ConnectionHost {
  readonly intake: Intake;
  readonly logger: Logger;
  readonly maxFrameBytes: number;
  readonly authTimeoutMs: number;
  /** The identity to publish as (null: anonymous); rejects with an {@link AuthRefusal}. */
  authenticate(frame: AuthFrame, address: string): Promise<string | null>;
  count(event: 'open' | 'close' | 'pause'): void;
  notePending(readings: number): void;
}

interface PendingAnswer {
  readonly id: FrameId | undefined;
  readonly outcomes: ReadingOutcome[];
  unsettled: number;
  /** Set when the whole frame was refused before any of it was submitted. */
  readonly refusal?: ReadingError;
}

type State = 'awaiting-auth' | 'authenticating' | 'open' | 'closed';

/** One client connection: auth, then publish frames through one intake session, answered in order. */
export class IngestConnection {
  private state: State = 'awaiting-auth';
  private session: IntakeSession | undefined;
  /** The device the readings are for: the authenticated device, or the id an anonymous client named. */
  private deviceId = '';
  /** Frames that came after the auth frame while it was being checked (pipelined), handled after auth-ok. */
  private readonly early: { data: RawData; isBinary: boolean }[] = [];
  /** Frames read and not yet answered, in order. */
  private readonly answers: PendingAnswer[] = [];
  private pendingReadings = 0;
  private pendingBytes = 0;
  private unwrittenBytes = 0;
  private paused = false;
  private warned = false;
  private authTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(
    private readonly owner: ConnectionHost,
    private readonly ws: WebSocket,
    private readonly address: string,
    private readonly remote: string,
  ) {
    this.log = owner.logger;
    owner.count('open');
    ws.on('message', (data, isBinary) => this.guard(() => this.onMessage(data, isBinary)));
    ws.on('close', () => this.onClose());
    // ws closes the connection itself after an error (1009 too large, 1007 bad UTF-8, 1002 protocol).
    ws.on('error', (error: Error & { code?: string }) => {
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') owner.intake.countRefusal('RECORD_TOO_LARGE');
      this.log.warn({ deviceId: this.deviceId || undefined, remote, code: error.code, reason: error.message }, 'WebSocket error: connection closed');
    });
    this.authTimer = setTimeout(() => this.refuseAuth(`no auth frame within ${owner.authTimeoutMs / 1000} s; the first frame must be ${AUTH_FRAME_SHAPE}`, 'auth timeout'), owner.authTimeoutMs);
  }

  /** A bug in handling one frame must not take the gateway down: close this connection, log it. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.log.error({ err: error, deviceId: this.deviceId || undefined, remote: this.remote }, 'WebSocket ingest failed to handle a frame: connection closed');
      this.closeWith(1011, 'internal error');
    }
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    switch (this.state) {
      case 'awaiting-auth':
        return this.onFirstFrame(data, isBinary);
      case 'authenticating':
        // Paused while the token is checked: at most the rest of one socket read gets here.
        if (this.early.length >= MAX_PENDING_FRAMES) return this.refuseAuth(`more than ${MAX_PENDING_FRAMES} frames before auth-ok`, 'flood before auth-ok');
        this.early.push({ data, isBinary });
        return;
      case 'open':
        return this.onFrame(data, isBinary);
      case 'closed':
        return;
    }
  }

  private onFirstFrame(data: RawData, isBinary: boolean): void {
    const frame = isBinary ? undefined : parseClientFrame(text(data));
    if (frame?.type !== 'auth') {
      const got = frame === undefined ? 'a binary frame' : frame.type === 'invalid' ? `a frame that is not one: ${frame.message}` : `a ${frame.type} frame`;
      return this.refuseAuth(`the first frame must be ${AUTH_FRAME_SHAPE} (token left out for an anonymous client); got ${got}`, 'no auth frame first');
    }
    clearTimeout(this.authTimer);
    this.state = 'authenticating';
    this.deviceId = frame.deviceId;
    this.updateFlow();
    this.owner.authenticate(frame, this.address).then(
      (identity) => this.guard(() => this.opened(identity)),
      (error: unknown) => {
        if (error instanceof AuthRefusal) return this.refuseAuth(error.message, error.detail, error.quiet);
        this.log.error({ err: error, deviceId: frame.deviceId, remote: this.remote }, 'token check failed');
        this.refuseAuth('the gateway could not check the token; try again later', 'token check failed');
      },
    );
  }

  private opened(identity: string | null): void {
    if (this.state !== 'authenticating') return; // closed meanwhile
    this.state = 'open';
    this.session = this.owner.intake.openSession({ deviceId: identity, transport: 'ws', client: `${this.deviceId} ${this.remote}` });
    this.send(authOkFrame({ deviceId: this.deviceId, anonymous: identity === null, maxReadingsPerFrame: MAX_READINGS_PER_FRAME, maxFrameBytes: this.owner.maxFrameBytes }));
    for (const { data, isBinary } of this.early.splice(0)) this.onFrame(data, isBinary);
    this.updateFlow();
  }

  /** Refuses the connection: an AUTH_FAILED error frame, one warn line (never the token), close 1008. */
  private refuseAuth(message: string, detail: string, quiet = false): void {
    if (this.state === 'closed' || this.state === 'open') return;
    clearTimeout(this.authTimer);
    this.state = 'closed';
    this.early.length = 0;
    this.owner.intake.countRefusal('AUTH_FAILED');
    if (!quiet) this.log.warn({ deviceId: this.deviceId || undefined, remote: this.remote, reason: detail }, 'WebSocket ingest connection refused');
    this.send(errorFrame(undefined, { code: 'AUTH_FAILED', message, retryable: false }));
    this.closeWith(1008, 'AUTH_FAILED');
  }

  /** Starts the close handshake; the socket must be read again to receive the client's close frame. */
  private closeWith(code: number, reason: string): void {
    this.state = 'closed';
    if (this.paused) {
      this.paused = false;
      this.ws.resume();
    }
    this.ws.close(code, reason);
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (isBinary) return this.refuseFrame(undefined, 'INVALID_ARGUMENT', 'frames are JSON text, not binary; send binary payloads as "payloadBase64" in a publish frame');
    const frame = parseClientFrame(text(data));
    if (frame.type === 'invalid') return this.refuseFrame(frame.id, 'INVALID_ARGUMENT', frame.message);
    if (frame.type === 'auth') {
      return this.refuseFrame(undefined, 'INVALID_ARGUMENT', `this connection is already authenticated for device '${this.deviceId}'; one connection is one device: open another connection for another device`);
    }
    // Every reading is mapped before any is submitted, so a bad stream name refuses the frame whole.
    const mapped: MappedTopic[] = [];
    for (const [i, reading] of frame.readings.entries()) {
      const m = this.owner.intake.mapper.mapReading(this.deviceId, reading.stream);
      if (typeof m === 'string') {
        const where = frame.readings.length > 1 ? `readings[${i}]: ` : '';
        return this.refuseFrame(frame.id, 'UNMAPPED_TOPIC', `${where}${m}; nothing of this frame was stored`);
      }
      mapped.push(m);
    }
    const session = this.session!;
    const answer: PendingAnswer = { id: frame.id, outcomes: new Array<ReadingOutcome>(mapped.length), unsettled: mapped.length };
    this.answers.push(answer);
    for (const [i, reading] of frame.readings.entries()) {
      const bytes = reading.payload.length;
      this.pendingReadings += 1;
      this.pendingBytes += bytes;
      session.submit(mapped[i]!, reading.payload).then(
        (stored) => this.settle(answer, i, bytes, stored, undefined),
        (error: unknown) => this.settle(answer, i, bytes, undefined, error),
      );
    }
    this.owner.notePending(this.pendingReadings);
    this.updateFlow();
  }

  private settle(answer: PendingAnswer, index: number, bytes: number, stored: StoredReading | undefined, error: unknown): void {
    this.pendingReadings -= 1;
    this.pendingBytes -= bytes;
    answer.unsettled -= 1;
    if (stored) {
      answer.outcomes[index] = { topic: stored.topic, partition: stored.partition, offset: stored.offset, ...(stored.deadLetterReason === undefined ? {} : { deadLetter: stored.deadLetterReason }) };
    } else {
      const refusal = describeError(error);
      answer.outcomes[index] = { error: refusal };
      this.noteRefusal(refusal, error);
    }
    if (answer.unsettled === 0) this.flushAnswers();
    this.updateFlow();
  }

  /** Answers a frame refused whole (nothing stored), in its turn behind the frames before it. */
  private refuseFrame(id: FrameId | undefined, code: 'INVALID_ARGUMENT' | 'UNMAPPED_TOPIC', message: string): void {
    this.owner.intake.countRefusal(code);
    const refusal = { code, message, retryable: false };
    this.noteRefusal(refusal);
    this.answers.push({ id, outcomes: [], unsettled: 0, refusal });
    this.flushAnswers();
    this.updateFlow();
  }

  /** Sends the answers whose frames have settled, in frame order. */
  private flushAnswers(): void {
    while (this.answers.length > 0 && this.answers[0]!.unsettled === 0) {
      const answer = this.answers.shift()!;
      this.send(answer.refusal ? errorFrame(answer.id, answer.refusal) : answerFrame(answer.id, answer.outcomes));
    }
  }

  /** One warn line per connection for refusals (STYLE.md §9); the rest at debug. Log-full and shutdown are logged by the intake. */
  private noteRefusal(refusal: ReadingError, cause?: unknown): void {
    if (this.state === 'closed') return;
    const fields = { deviceId: this.deviceId, remote: this.remote, code: refusal.code, reason: refusal.message };
    if (refusal.code === 'INTERNAL') {
      // Not a refusal but a failure: each one with its cause, at error.
      this.log.error({ ...fields, err: cause }, 'WebSocket ingest could not store a reading');
      return;
    }
    if (this.warned || refusal.code === 'LOG_FULL' || refusal.code === 'GATEWAY_CLOSING') {
      this.log.debug(fields, 'WebSocket ingest refusal');
      return;
    }
    this.warned = true;
    this.log.warn(fields, 'WebSocket ingest refusal (further refusals on this connection are logged at debug)');
  }

  private send(frame: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.unwrittenBytes += frame.length;
    this.ws.send(frame, () => {
      this.unwrittenBytes -= frame.length;
      this.updateFlow();
    });
  }

  /**
   * Pauses the socket while this connection holds too much unsettled work, and resumes it below
   * half of every bound (hysteresis, so it does not flap at the edge). A paused socket is not
   * read: the client's writes wait in TCP buffers and then on the client (DESIGN "Memory is bounded").
   */
  private updateFlow(): void {
    if (this.state === 'closed') return;
    const maxBytes = this.owner.maxFrameBytes;
    const over =
      this.state === 'authenticating' ||
      this.pendingReadings >= MAX_PENDING_READINGS ||
      this.pendingBytes >= maxBytes ||
      this.answers.length >= MAX_PENDING_FRAMES ||
      this.unwrittenBytes >= MAX_UNWRITTEN_ANSWER_BYTES;
    if (over && !this.paused) {
      this.paused = true;
      this.ws.pause();
      this.owner.count('pause');
      return;
    }
    const underHalf =
      this.state === 'open' &&
      this.pendingReadings <= MAX_PENDING_READINGS / 2 &&
      this.pendingBytes <= maxBytes / 2 &&
      this.answers.length <= MAX_PENDING_FRAMES / 2 &&
      this.unwrittenBytes <= MAX_UNWRITTEN_ANSWER_BYTES / 2;
    if (this.paused && underHalf) {
      this.paused = false;
      this.ws.resume();
    }
  }

  /** The client went away (or was closed): readings still waiting are failed; those in flight finish unanswered. */
  private onClose(): void {
    clearTimeout(this.authTimer);
    this.state = 'closed';
    this.early.length = 0;
    this.session?.close();
    this.owner.count('close');
  }
}

function text(data: RawData): string {
  // binaryType is 'nodebuffer' (ws's default): one Buffer per message, fragments joined.
  return Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]).toString('utf8');
}

function describeError(error: unknown): ReadingError {
  if (error instanceof EdgelogError) return { code: error.code, message: error.message, retryable: error.retryable };
  // Not a refusal the gateway means to make: the client may try again, the log has the cause.
  return { code: 'INTERNAL', message: 'the gateway failed to store the reading (see its log); send it again', retryable: true };
}
