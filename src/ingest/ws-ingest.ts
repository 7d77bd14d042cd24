import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { EdgelogError } from '../errors.js';
import { AUTH_FAILURE_BURST, AUTH_FAILURE_INTERVAL_MS, type AuthThrottle } from './auth-throttle.js';
import type { DeviceDirectory, Intake, IntakeSession, StoredReading } from './intake.js';
import { mapReading, type MappedTopic } from './topic-mapping.js';
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

/** What WebSocket ingest authentication needs of the device registry (devices/registry.ts). */
export interface TokenVerifier extends DeviceDirectory {
  verifyToken(id: string, secret: string | Buffer): Promise<boolean>;
}

export interface WsIngestOptions {
  intake: Intake;
  devices: TokenVerifier;
  /** Accept clients without a token (no registry configured, or allowAnonymous), as MQTT ingest does. */
  allowAnonymous: boolean;
  /** Failed logins per source address, shared with MQTT ingest. */
  authThrottle: AuthThrottle;
  logger: Logger;
  /** The log's maxMessageBytes for new topics: sets the largest frame (see {@link wsIngestFrameBytesMax}). */
  maxMessageBytes: number;
  authTimeoutMs?: number;
}

/** How long a client has to send its auth frame; a socket that says nothing must not hold a slot. */
export const AUTH_TIMEOUT_MS = 10_000;
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

/** Room for a frame's JSON around the base64 of its largest reading. */
const FRAME_SLACK_BYTES = 64 * 1024;
/** A frame may carry this many readings of the largest size (maxMessageBytes), base64-encoded... */
const FRAME_BATCH_ALLOWANCE = 4;
/** ...but is never larger than this (unless one reading needs more): ws holds a frame whole in memory while it arrives. */
const FRAME_BYTES_CAP = 16 * 1024 * 1024;

/**
 * The largest WebSocket message accepted on /ingest (the route's maxPayloadBytes; a larger one
 * closes the connection with 1009): a batch of {@link FRAME_BATCH_ALLOWANCE} readings of
 * `maxMessageBytes` in base64, capped at 16 MiB, and never less than one such reading.
 * 5.6 MiB with the default 1 MiB records.
 */
export function wsIngestFrameBytesMax(maxMessageBytes: number): number {
  const oneReading = Math.ceil(maxMessageBytes / 3) * 4 + FRAME_SLACK_BYTES;
  return Math.max(oneReading, Math.min(FRAME_BATCH_ALLOWANCE * oneReading, FRAME_BYTES_CAP));
}

export interface WsIngestStats {
  /** Open connections, authenticated or not. */
  connections: number;
  /** Times a connection's socket was paused because it had too much unsettled work. */
  pauses: number;
  /** The most readings one connection had submitted and unsettled at once (bounded by MAX_PENDING_READINGS plus one frame). */
  pendingReadingsMax: number;
}

/** An authentication refusal: its message goes to the client, `detail` only to the log. */
class AuthRefusal extends Error {
  constructor(
    message: string,
    readonly detail: string,
    /** Not logged: a throttled source was logged once when its throttling began. */
    readonly quiet = false,
  ) {
    super(message);
  }
}

/**
 * WebSocket ingest at `/ingest` (docs/ws-ingest.md): JSON frames carrying one reading or a batch,
 * each answered once every reading of it is durable in the log (or refused), in frame order. One
 * connection is one device and one intake session, so a device's readings keep their order.
 */
export class WsIngest {
  readonly maxFrameBytes: number;
  readonly logger: Logger;
  readonly authTimeoutMs: number;
  private readonly counts: WsIngestStats = { connections: 0, pauses: 0, pendingReadingsMax: 0 };

  constructor(readonly opts: WsIngestOptions) {
    this.maxFrameBytes = wsIngestFrameBytesMax(opts.maxMessageBytes);
    this.logger = opts.logger.child({ component: 'ws-ingest' });
    this.authTimeoutMs = opts.authTimeoutMs ?? AUTH_TIMEOUT_MS;
  }

  /** Serves one accepted WebSocket on /ingest (the HttpServer route handler). */
  handle(ws: WebSocket, req: IncomingMessage): void {
    const address = req.socket.remoteAddress ?? '?';
    new IngestConnection(this, ws, address, `${address}:${req.socket.remotePort ?? '?'}`);
  }

  stats(): WsIngestStats {
    return { ...this.counts };
  }

  /** @internal */
  count(event: 'open' | 'close' | 'pause'): void {
    if (event === 'open') this.counts.connections += 1;
    else if (event === 'close') this.counts.connections -= 1;
    else this.counts.pauses += 1;
  }

  /** @internal */
  notePending(readings: number): void {
    if (readings > this.counts.pendingReadingsMax) this.counts.pendingReadingsMax = readings;
  }

  /**
   * The identity of a connection, by the same policy as MQTT ingest: a registered device must
   * present its token; without a token a client is anonymous (identity null) where the gateway
   * accepts anonymous clients; a source with too many failed logins is refused without a check
   * for a while. Throws an {@link AuthRefusal}.
   */
  async authenticate(frame: AuthFrame, address: string): Promise<string | null> {
    const { authThrottle } = this.opts;
    if (!authThrottle.mayTry(address)) {
      throw new AuthRefusal(`too many failed logins from ${address}: one more is allowed every ${AUTH_FAILURE_INTERVAL_MS / 1000} s`, 'throttled', true);
    }
    try {
      return await this.checkCredentials(frame);
    } catch (error) {
      if (error instanceof AuthRefusal && authThrottle.failed(address)) {
        this.logger.warn({ address, failures: AUTH_FAILURE_BURST }, 'too many failed logins: refusing this source without checking for a while');
      }
      throw error;
    }
  }

  private async checkCredentials(frame: AuthFrame): Promise<string | null> {
    const { deviceId, token } = frame;
    const { devices, allowAnonymous } = this.opts;
    // The same words for an unknown id and a wrong token, so a client cannot probe which ids exist.
    const notAccepted = `device id or token not accepted (unknown device or wrong token); the auth frame is ${AUTH_FRAME_SHAPE}`;
    if (devices.get(deviceId)) {
      if (token === undefined) {
        if (allowAnonymous) throw new AuthRefusal(`device '${deviceId}' is registered: its auth frame must carry its token`, 'registered device without a token');
        throw new AuthRefusal(`this gateway requires a token: the auth frame is ${AUTH_FRAME_SHAPE}`, 'no token');
      }
      if (await devices.verifyToken(deviceId, token)) return deviceId;
      throw new AuthRefusal(notAccepted, 'wrong token');
    }
    if (allowAnonymous) return null;
    if (token === undefined) throw new AuthRefusal(`this gateway requires a token: the auth frame is ${AUTH_FRAME_SHAPE}`, 'no token');
    // As long as a real check takes (devices/registry.ts), so timing does not tell which ids exist either.
    await devices.verifyToken(deviceId, token);
    throw new AuthRefusal(notAccepted, 'unknown device');
  }
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
class IngestConnection {
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
    private readonly owner: WsIngest,
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
    this.session = this.owner.opts.intake.openSession({ deviceId: identity, transport: 'ws', client: `${this.deviceId} ${this.remote}` });
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
    this.owner.opts.intake.countRefusal('AUTH_FAILED');
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
      const m = mapReading(this.deviceId, reading.stream);
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
    this.owner.opts.intake.countRefusal(code);
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
