import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { encodeReading } from '../devices/payload-codec.js';
import type { DeviceProfile } from '../devices/profile.js';
import { backoffDelayMs } from './backoff.js';
import { openIngestLink } from './ingest-link.js';
import type { Link, LinkEvents, Outgoing, SendOutcome } from './link.js';
import { openMqttLink } from './mqtt-link.js';
import type { FleetConfig } from './options.js';
import { deriveSeed, mulberry32 } from './prng.js';
import type { Random } from './prng.js';
import { RingBuffer } from './ring-buffer.js';
import { SEED_PURPOSE, SignalGenerator } from './signal.js';
import type { FleetStats } from './stats.js';

/** A reading waiting to be sent or acknowledged. Kept small: 5,000 devices × 500 buffered readings. */
interface Pending {
  readonly stream: number;
  /** The reading's own sequence number (in its payload), for the ack listener. */
  readonly seq: number;
  readonly payload: Buffer;
  /** performance.now() of the latest send. */
  sentAtMs: number;
  /** Connection generation of the latest send; an ack from an older connection is stale. */
  generation: number;
  sends: number;
}

type State = 'off' | 'connecting' | 'connected' | 'waiting' | 'stopped';
type FaultKind = 'duplicated' | 'malformed' | 'oversize';

/**
 * One simulated sensor: its signal, its bounded buffer of unsent readings and its own connection
 * to the gateway (MQTT or WebSocket ingest, see link.ts), with reconnect backoff. Its state is a
 * few fields and a lazily grown ring, so a process holds thousands of them.
 */
export class SimDevice {
  readonly id: string;
  private readonly generator: SignalGenerator;
  private readonly buffer: RingBuffer<Pending>;
  /** In send order, oldest first; at most config.inflightMax. */
  private inflight: Pending[] = [];
  /** Readings the gateway refused for now (LOG_FULL, GATEWAY_CLOSING): sent again, oldest first, after a pause. */
  private retry: Pending[] = [];
  private readonly net: Random;
  private readonly json: boolean;
  private link: Link | undefined;
  private state: State = 'off';
  private generation = 0;
  private attempt = 0;
  private retryAttempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: FleetConfig,
    private readonly stats: FleetStats,
    private readonly log: Logger,
    readonly index: number,
    id: string,
    private readonly profile: DeviceProfile,
    startTimeMs: number,
  ) {
    this.id = id;
    this.generator = new SignalGenerator(profile, { seed: config.seed, deviceIndex: index, startTimeMs, clockSkewMaxMs: config.faults.clockSkewMs });
    this.buffer = new RingBuffer(config.bufferReadings);
    this.net = mulberry32(deriveSeed(config.seed, index, SEED_PURPOSE.network));
    this.json = (config.format ?? profile.payloadFormat) === 'json';
  }

  get isConnected(): boolean {
    return this.state === 'connected';
  }

  /** Readings buffered or in flight. */
  get backlog(): number {
    return this.buffer.length + this.retry.length + this.inflight.length;
  }

  /** Samples one reading at true time `nominalMs` and queues it, dropping the oldest if the buffer is full. */
  sample(nominalMs: number): void {
    const { stream, reading } = this.generator.next(nominalMs);
    const payload = encodeReading(this.profile, stream.name, reading, this.config.format);
    this.stats.generated++;
    this.enqueue({ stream: stream.index, seq: reading.seq, payload, sentAtMs: 0, generation: -1, sends: 0 });
    if (this.state === 'connected') this.pump();
  }

  private enqueue(pending: Pending): void {
    const evicted = this.buffer.push(pending);
    if (evicted === undefined) this.stats.buffered++;
    else this.countDrop(evicted);
  }

  private countDrop(pending: Pending): void {
    this.stats.dropped++;
    if (pending.sends > 0) this.stats.droppedAfterSend++;
  }

  /** Opens the connection (first boot, or after a backoff). */
  connect(): void {
    if (this.state === 'stopped' || this.state === 'connecting' || this.state === 'connected') return;
    this.state = 'connecting';
    const events: LinkEvents = {
      open: () => {
        if (link !== this.link) return;
        this.state = 'connected';
        this.attempt = 0;
        this.stats.connected++;
        this.stats.connects++;
        this.log.debug({ device: this.id }, 'connected');
        this.pump();
      },
      error: (code) => {
        if (link === this.link) this.stats.recordError(code);
      },
      closed: (reason) => {
        if (link === this.link) this.lost(reason);
      },
    };
    const open = this.config.transport === 'ws-ingest' ? openIngestLink : openMqttLink;
    const link = open(this.config, this.id, events);
    this.link = link;
  }

  /** The connection is gone: requeue what was in flight, oldest first, and schedule a reconnect. */
  private lost(reason: string): void {
    const link = this.link;
    this.link = undefined;
    this.generation++;
    if (this.state === 'connected') this.stats.connected--;
    else if (this.state === 'connecting') this.stats.recordError('CONNECT_FAILED');
    this.requeueInflight();
    void link?.end(false, 0);
    if (this.state === 'stopped') return;
    this.state = 'waiting';
    const delayMs = backoffDelayMs(this.attempt++, this.config.backoff, this.net);
    this.log.debug({ device: this.id, reason, delayMs }, 'disconnected');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.state = 'off';
      this.connect();
    }, delayMs);
  }

  private requeueInflight(): void {
    this.requeueRetry();
    // Newest first, so the oldest ends at the front; a full buffer keeps the newest (drop oldest).
    for (let i = this.inflight.length - 1; i >= 0; i--) {
      const pending = this.inflight[i] as Pending;
      this.stats.inflight--;
      this.unshift(pending);
    }
    this.inflight = [];
  }

  /** Puts the readings refused for now back in front of the buffer, oldest first. */
  private requeueRetry(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (let i = this.retry.length - 1; i >= 0; i--) {
      this.stats.buffered--;
      this.unshift(this.retry[i] as Pending);
    }
    this.retry = [];
  }

  private unshift(pending: Pending): void {
    const evicted = this.buffer.unshift(pending);
    if (evicted === undefined) this.stats.buffered++;
    else this.countDrop(evicted);
  }

  /** Sends buffered readings, oldest first, while the in-flight window has room (one batch frame over WebSocket ingest). */
  private pump(): void {
    const link = this.link;
    if (this.state !== 'connected' || link === undefined || this.retryTimer !== undefined) return;
    const batch: Pending[] = [];
    const faults: { stream: number; payload: Buffer; json: boolean; kind: FaultKind }[] = [];
    while (this.inflight.length < this.config.inflightMax && this.buffer.length > 0) {
      const pending = this.buffer.shift() as Pending;
      this.stats.buffered--;
      this.inflight.push(pending);
      this.stats.inflight++;
      if (pending.sends === 0) this.stats.sent++;
      else this.stats.resent++;
      pending.sends++;
      pending.generation = this.generation;
      batch.push(pending);
      if (pending.sends === 1 && this.net() < this.config.faults.duplicate) faults.push({ stream: pending.stream, payload: pending.payload, json: this.json, kind: 'duplicated' });
      if (this.config.faults.malformed > 0 && this.net() < this.config.faults.malformed) faults.push({ stream: pending.stream, payload: corrupt(pending.payload), json: false, kind: 'malformed' });
      if (this.config.faults.oversize > 0 && this.net() < this.config.faults.oversize) faults.push({ stream: pending.stream, payload: oversized(this.config.faults.oversizeBytes), json: true, kind: 'oversize' });
    }
    if (batch.length === 0) return;
    const sentAtMs = performance.now();
    for (const pending of batch) pending.sentAtMs = sentAtMs;
    this.stats.published += batch.length;
    link.send(
      batch.map((p) => this.outgoing(p.stream, p.payload, this.json)),
      (i, outcome) => this.settle(link, batch[i] as Pending, outcome),
    );
    for (const fault of faults) this.sendFault(link, fault.stream, fault.payload, fault.json, fault.kind);
  }

  private outgoing(stream: number, payload: Buffer, json: boolean): Outgoing {
    return { stream: (this.profile.streams[stream] as { name: string }).name, payload, json };
  }

  /** How a reading's send ended: acknowledged, sent (QoS 0), or refused (WebSocket ingest). */
  private settle(link: Link, pending: Pending, outcome: SendOutcome): void {
    if (link !== this.link || pending.generation !== this.generation) return; // a lost connection already requeued it
    const at = this.inflight.indexOf(pending);
    if (at < 0) return;
    this.inflight.splice(at, 1);
    this.stats.inflight--;
    if (outcome.kind === 'acked') {
      this.retryAttempt = 0;
      this.stats.acknowledged++;
      this.stats.publishAcks++;
      if (outcome.deadLetter !== undefined) {
        this.stats.deadLettered++;
        this.stats.publishDeadLettered++;
      }
      this.stats.recordLatencyUs((performance.now() - pending.sentAtMs) * 1000);
      this.config.onAck?.(this.id, (this.profile.streams[pending.stream] as { name: string }).name, pending.seq);
    } else if (outcome.kind === 'refused') {
      this.stats.recordRefusal(outcome.code);
      if (outcome.retryable) this.retryLater(pending);
      else this.stats.rejected++; // never stored, and sending it again cannot change that
    }
    this.pump();
  }

  /** Holds a reading the gateway refused for now, and pauses sending for a backoff, as firmware would. */
  private retryLater(pending: Pending): void {
    this.retry.push(pending);
    this.stats.buffered++;
    if (this.retryTimer !== undefined) return;
    const delayMs = backoffDelayMs(this.retryAttempt++, this.config.backoff, this.net);
    this.retryTimer = setTimeout(() => {
      this.requeueRetry();
      this.pump();
    }, delayMs);
  }

  /** Fire-and-count extra publishes: they are not readings, so they are never buffered or resent. */
  private sendFault(link: Link, stream: number, payload: Buffer, json: boolean, kind: FaultKind): void {
    this.stats[kind]++;
    this.stats.published++;
    const generation = this.generation;
    const sentAtMs = performance.now();
    link.send([this.outgoing(stream, payload, json)], (_i, outcome) => {
      if (generation !== this.generation) return;
      if (outcome.kind === 'acked') {
        this.stats.publishAcks++;
        if (outcome.deadLetter !== undefined) this.stats.publishDeadLettered++;
        this.stats.recordLatencyUs((performance.now() - sentAtMs) * 1000);
      } else if (outcome.kind === 'refused') {
        this.stats.recordRefusal(outcome.code);
      }
    });
  }

  /** Drops the connection as a flaky radio would; the device reconnects with backoff. */
  flap(): void {
    if (this.state !== 'connected') return;
    this.stats.flaps++;
    this.lost('flap (fault injection)');
  }

  /** Stops for good: no reconnect; what is still buffered or in flight is counted as unsent. */
  async stop(graceful: boolean, timeoutMs: number): Promise<void> {
    if (this.state === 'stopped') return;
    const wasConnected = this.state === 'connected';
    this.state = 'stopped';
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const link = this.link;
    this.link = undefined;
    this.generation++;
    if (wasConnected) this.stats.connected--;
    this.stats.unsent += this.buffer.length + this.retry.length + this.inflight.length;
    this.stats.buffered -= this.buffer.length + this.retry.length;
    this.stats.inflight -= this.inflight.length;
    this.inflight = [];
    this.retry = [];
    while (this.buffer.length > 0) this.buffer.shift();
    await link?.end(graceful && wasConnected, timeoutMs);
  }
}

/** A payload that no decoder accepts: JSON cut in half, or an edgebin header with a bad version. */
function corrupt(payload: Buffer): Buffer {
  const copy = Buffer.from(payload.subarray(0, Math.max(1, Math.floor(payload.length / 2))));
  if (copy[0] === 0xeb && copy.length > 1) copy[1] = 0xff;
  return copy;
}

function oversized(bytes: number): Buffer {
  // Valid JSON of the requested size, so only its size is at fault.
  const prefix = '{"padding":"';
  return Buffer.from(`${prefix}${'x'.repeat(Math.max(bytes - prefix.length - 2, 0))}"}`, 'utf8');
}
