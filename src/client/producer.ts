/**
 * The producer client: sends records to the gateway's `/produce` endpoint (docs/consume.md, "The
 * producer protocol"). `send()` resolves once the gateway says the records are durable.
 */
import { Connection, DEFAULT_CONNECT_TIMEOUT_MS, type GatewayFrame } from './connection.js';
import { EdgelogClientError, gatewayError } from './errors.js';
import { toWire, type ProduceResult, type ProducerRecord } from './records.js';
import { endpointUrl } from './url.js';

/**
 * Encoded frames sent and not yet answered; further sends wait (in call order) until answers
 * free room. Two of the gateway's largest frames: enough to keep an append queued behind the
 * commit in flight, and what the gateway itself reads from one connection before it pauses it.
 */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;
/** How long close() waits for sends in flight to be answered before it gives up on them. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 30_000;

export interface ProducerOptions {
  /** `ws://host:port/produce`, or the gateway's base URL (`http://host:port`, `ws://host:port`). */
  url: string | URL;
  /** Default {@link DEFAULT_MAX_IN_FLIGHT_BYTES}. */
  maxInFlightBytes?: number;
  /** Default 10,000. */
  connectTimeoutMs?: number;
  /** The gateway's admin token, when it has one (config admin.token): sent as `Authorization: Bearer`. */
  token?: string;
  /** Default {@link DEFAULT_CLOSE_TIMEOUT_MS}. */
  closeTimeoutMs?: number;
}

/** What the gateway accepts in one `send()` (its `ready` frame). */
export interface ProducerLimits {
  /** Records in one send: one send is one append, all or nothing. */
  maxRecordsPerFrame: number;
  /** Bytes of one encoded send (JSON, bytes as base64). */
  maxFrameBytes: number;
}

interface Sent {
  id: number;
  count: number;
  bytes: number;
  resolve: (results: ProduceResult[]) => void;
  reject: (error: EdgelogClientError) => void;
}

interface Queued extends Sent {
  frame: string;
}

/** Creates a producer; it connects at once. */
export function producer(options: ProducerOptions): Producer {
  return new Producer(options);
}

/**
 * A connection to `/produce`. Sends go out in call order and are answered in that order; many
 * may be in flight (the gateway commits them together). No reconnection: after the connection
 * is lost every send rejects; create a new producer.
 */
export class Producer {
  private readonly conn: Connection;
  private readonly maxInFlightBytes: number;
  private readonly closeTimeoutMs: number;
  private readonly readyPromise: Promise<ProducerLimits>;
  private resolveReady!: (limits: ProducerLimits) => void;
  private rejectReady!: (error: EdgelogClientError) => void;
  private currentLimits: ProducerLimits | null = null;
  private readonly inFlight: Sent[] = [];
  private readonly queued: Queued[] = [];
  private inFlightBytes = 0;
  private nextId = 1;
  private failure: EdgelogClientError | null = null;
  private closing: Promise<void> | null = null;
  private settledWaiters: (() => void)[] = [];

  constructor(options: ProducerOptions) {
    const url = endpointUrl(options.url, '/produce');
    this.maxInFlightBytes = positive('maxInFlightBytes', options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES);
    this.closeTimeoutMs = positive('closeTimeoutMs', options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => {});
    this.conn = new Connection(url, { onFrame: (f) => this.onFrame(f), onClose: (e) => this.fail(e) }, { timeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, ...(options.token === undefined ? {} : { token: options.token }) });
    this.conn.opened.catch((error: EdgelogClientError) => this.fail(error));
  }

  /** Resolves with the gateway's limits once connected; rejects with GATEWAY_UNREACHABLE when it cannot connect. */
  ready(): Promise<ProducerLimits> {
    return this.readyPromise;
  }

  /** The gateway's limits, once connected. */
  get limits(): ProducerLimits | null {
    return this.currentLimits;
  }

  /**
   * Appends `records` to `topic` (created with the gateway's defaults if it does not exist) as one
   * append: all are stored or none. Resolves, per record in order, to where it went, once the
   * gateway has them durably (fsync'd); rejects with the gateway's refusal (its `code` and a
   * message naming what was wrong) or with CONNECTION_LOST / GATEWAY_CLOSING when the answer
   * never came, in which case the records may or may not be stored: send them again.
   */
  send(topic: string, records: readonly ProducerRecord[]): Promise<ProduceResult[]> {
    if (this.closing) return Promise.reject(new EdgelogClientError('CLIENT_CLOSED', 'send() after close(): create a new producer'));
    if (this.failure) return Promise.reject(this.failure);
    if (this.currentLimits === null) return this.readyPromise.then(() => this.send(topic, records));
    const limits = this.currentLimits;
    try {
      if (!Array.isArray(records) || records.length === 0 || records.length > limits.maxRecordsPerFrame) {
        throw new EdgelogClientError('INVALID_ARGUMENT', `records must be a list of 1 to ${limits.maxRecordsPerFrame} records (the gateway's limit for one append), got ${Array.isArray(records) ? records.length : typeof records}`);
      }
      const id = this.nextId++;
      const frame = JSON.stringify({ type: 'produce', id, topic, records: records.map((r, i) => toWire(r, `records[${i}]`)) });
      const bytes = Buffer.byteLength(frame);
      if (bytes > limits.maxFrameBytes) {
        throw new EdgelogClientError('INVALID_ARGUMENT', `these ${records.length} records are ${bytes} bytes encoded, over the gateway's ${limits.maxFrameBytes}-byte frame limit: send fewer or smaller records per call`);
      }
      return new Promise<ProduceResult[]>((resolve, reject) => {
        this.queued.push({ id, count: records.length, bytes, frame, resolve, reject });
        this.flushQueued();
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Waits for the sends in flight to be answered (at most `closeTimeoutMs`; those still
   * unanswered then reject with CLIENT_CLOSED), then closes the connection. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.failure) {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeTimeoutMs)));
        await Promise.race([this.allSettled(), timedOut]);
        clearTimeout(timer);
      }
      const closed = new EdgelogClientError('CLIENT_CLOSED', `the producer closed before the gateway answered: these records may or may not be stored; send them again`);
      this.rejectAll(closed);
      this.rejectReady(closed);
      await this.conn.close();
    })();
    return this.closing;
  }

  /** Sends queued frames while the in-flight bound has room; one frame always goes when none is in flight. */
  private flushQueued(): void {
    while (this.queued.length > 0 && !this.failure) {
      const next = this.queued[0]!;
      if (this.inFlight.length > 0 && this.inFlightBytes + next.bytes > this.maxInFlightBytes) return;
      this.queued.shift();
      this.inFlight.push(next);
      this.inFlightBytes += next.bytes;
      this.conn.send(next.frame);
    }
  }

  private onFrame(frame: GatewayFrame): void {
    if (frame.type === 'ready') {
      const { maxRecordsPerFrame, maxFrameBytes } = frame as { maxRecordsPerFrame?: unknown; maxFrameBytes?: unknown };
      if (typeof maxRecordsPerFrame !== 'number' || typeof maxFrameBytes !== 'number') return this.protocolError('a ready frame without its limits');
      this.currentLimits = { maxRecordsPerFrame, maxFrameBytes };
      this.resolveReady(this.currentLimits);
      return;
    }
    if (frame.type !== 'produced' && frame.type !== 'error') return this.protocolError(`an unknown frame type ${JSON.stringify(frame.type)}`);
    const head = this.inFlight.shift();
    if (!head) return this.protocolError(`a '${String(frame.type)}' frame with no send in flight`);
    if (frame['id'] !== undefined && frame['id'] !== head.id) return this.protocolError(`an answer for send ${JSON.stringify(frame['id'])} where send ${head.id} was next`);
    this.inFlightBytes -= head.bytes;
    if (frame.type === 'produced') {
      const results = frame['results'];
      if (!Array.isArray(results) || results.length !== head.count) return this.protocolError(`${Array.isArray(results) ? results.length : 'no'} results for ${head.count} records`);
      head.resolve(results as ProduceResult[]);
    } else {
      head.reject(gatewayError(frame));
    }
    this.flushQueued();
    this.notifySettled();
  }

  private protocolError(what: string): void {
    this.fail(new EdgelogClientError('PROTOCOL_ERROR', `the gateway at ${this.conn.url} sent ${what}; is the gateway's version a match for this client?`));
    this.conn.terminate();
  }

  /** The connection is gone: every send not yet answered rejects, saying its records may or may not be stored. */
  private fail(error: EdgelogClientError): void {
    if (this.failure) return;
    this.failure = error;
    this.rejectReady(error);
    const unanswered = this.inFlight.length + this.queued.length;
    if (unanswered > 0) {
      const inFlight = this.inFlight.reduce((n, s) => n + s.count, 0);
      const detail = new EdgelogClientError(error.code, `${error.message}; ${inFlight} record(s) sent were not acknowledged and may or may not be stored: send them again`, { cause: error, retryable: error.retryable });
      this.rejectAll(detail);
    }
  }

  private rejectAll(error: EdgelogClientError): void {
    for (const s of [...this.inFlight.splice(0), ...this.queued.splice(0)]) s.reject(error);
    this.inFlightBytes = 0;
    this.notifySettled();
  }

  private allSettled(): Promise<void> {
    if (this.inFlight.length === 0 && this.queued.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  private notifySettled(): void {
    if (this.inFlight.length > 0 || this.queued.length > 0) return;
    for (const resolve of this.settledWaiters.splice(0)) resolve();
  }
}

function positive(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new EdgelogClientError('INVALID_ARGUMENT', `${name} must be a whole number > 0, got ${String(v)}`);
  return v;
}
