import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { encodeReading } from '../devices/payload-codec.js';
import type { DeviceProfile } from '../devices/profile.js';
import { backoffDelayMs } from './backoff.js';
import type { FleetConfig } from './options.js';
import { deriveSeed, mulberry32 } from './prng.js';
import type { Random } from './prng.js';
import { RingBuffer } from './ring-buffer.js';
import { SEED_PURPOSE, SignalGenerator } from './signal.js';
import type { FleetStats } from './stats.js';

/** A reading waiting to be sent or acknowledged. Kept small: 5,000 devices × 500 buffered readings. */
interface Pending {
  readonly stream: number;
  readonly payload: Buffer;
  /** performance.now() of the latest send. */
  sentAtMs: number;
  /** Connection generation of the latest send; an ack from an older connection is stale. */
  generation: number;
  sends: number;
}

type State = 'off' | 'connecting' | 'connected' | 'waiting' | 'stopped';

/**
 * One simulated sensor: its signal, its bounded buffer of unsent readings and its own MQTT
 * connection, with reconnect backoff. Its state is a few fields and a lazily grown ring, so a
 * process holds thousands of them.
 */
export class SimDevice {
  readonly id: string;
  private readonly topics: readonly string[];
  private readonly generator: SignalGenerator;
  private readonly buffer: RingBuffer<Pending>;
  /** In send order, oldest first; at most config.inflightMax. */
  private inflight: Pending[] = [];
  private readonly net: Random;
  private client: MqttClient | undefined;
  private state: State = 'off';
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;

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
    this.topics = profile.streams.map((s) => `devices/${id}/${s.name}`);
    this.generator = new SignalGenerator(profile, { seed: config.seed, deviceIndex: index, startTimeMs, clockSkewMaxMs: config.faults.clockSkewMs });
    this.buffer = new RingBuffer(config.bufferReadings);
    this.net = mulberry32(deriveSeed(config.seed, index, SEED_PURPOSE.network));
  }

  get isConnected(): boolean {
    return this.state === 'connected';
  }

  /** Readings buffered or in flight. */
  get backlog(): number {
    return this.buffer.length + this.inflight.length;
  }

  /** Samples one reading at true time `nominalMs` and queues it, dropping the oldest if the buffer is full. */
  sample(nominalMs: number): void {
    const { stream, reading } = this.generator.next(nominalMs);
    const payload = encodeReading(this.profile, stream.name, reading, this.config.format);
    this.stats.generated++;
    this.enqueue({ stream: stream.index, payload, sentAtMs: 0, generation: -1, sends: 0 });
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
    const id = this.id;
    const client = mqtt.connect(this.config.gateway, {
      clientId: id,
      username: id,
      password: this.config.password?.replaceAll('{deviceId}', id),
      protocolVersion: 4, // MQTT 3.1.1: what sensors speak and what the gateway's aedes accepts (DESIGN "Traps")
      clean: true,
      // The device owns reconnects (backoff with jitter) and its buffer; mqtt.js must not queue or retry on its own.
      reconnectPeriod: 0,
      queueQoSZero: false,
      resubscribe: false,
      connectTimeout: this.config.connectTimeoutMs,
      keepalive: this.config.keepaliveS,
    });
    this.client = client;
    client.on('connect', () => {
      if (client !== this.client) return;
      this.state = 'connected';
      this.attempt = 0;
      this.stats.connected++;
      this.stats.connects++;
      this.log.debug({ device: id }, 'connected');
      this.pump();
    });
    client.on('error', (error: Error & { code?: string | number }) => {
      if (client !== this.client) return;
      this.stats.recordError(typeof error.code === 'string' ? error.code : error.message);
    });
    client.on('close', () => {
      if (client !== this.client) return;
      this.lost('connection closed');
    });
  }

  /** The connection is gone: requeue what was in flight, oldest first, and schedule a reconnect. */
  private lost(reason: string): void {
    const client = this.client;
    this.client = undefined;
    this.generation++;
    if (this.state === 'connected') this.stats.connected--;
    else if (this.state === 'connecting') this.stats.recordError('CONNECT_FAILED');
    this.requeueInflight();
    if (client !== undefined) {
      client.removeAllListeners('connect');
      client.removeAllListeners('close');
      client.end(true); // flushes mqtt.js's own callbacks; they carry the old generation and are ignored
    }
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
    // Newest first, so the oldest ends at the front; a full buffer keeps the newest (drop oldest).
    for (let i = this.inflight.length - 1; i >= 0; i--) {
      const pending = this.inflight[i] as Pending;
      this.stats.inflight--;
      const evicted = this.buffer.unshift(pending);
      if (evicted === undefined) this.stats.buffered++;
      else this.countDrop(evicted);
    }
    this.inflight = [];
  }

  /** Sends buffered readings, oldest first, while the in-flight window has room. */
  private pump(): void {
    const client = this.client;
    // Bounded by the in-flight window, and by the buffer when QoS 0 callbacks come back synchronously.
    while (this.state === 'connected' && client !== undefined && this.inflight.length < this.config.inflightMax && this.buffer.length > 0) {
      const pending = this.buffer.shift() as Pending;
      this.stats.buffered--;
      this.inflight.push(pending);
      this.stats.inflight++;
      if (pending.sends === 0) this.stats.sent++;
      else this.stats.resent++;
      pending.sends++;
      this.publish(client, pending);
      if (pending.sends === 1 && this.net() < this.config.faults.duplicate) this.publishFault(client, pending.stream, pending.payload, 'duplicated');
      if (this.config.faults.malformed > 0 && this.net() < this.config.faults.malformed) this.publishFault(client, pending.stream, corrupt(pending.payload), 'malformed');
      if (this.config.faults.oversize > 0 && this.net() < this.config.faults.oversize) this.publishFault(client, pending.stream, oversized(this.config.faults.oversizeBytes), 'oversize');
    }
  }

  private publish(client: MqttClient, pending: Pending): void {
    const generation = this.generation;
    pending.generation = generation;
    pending.sentAtMs = performance.now();
    this.stats.published++;
    client.publish(this.topics[pending.stream] as string, pending.payload, { qos: this.config.qos }, (error) => {
      if (generation !== this.generation || pending.generation !== generation) return; // a lost connection already requeued it
      if (error !== undefined && error !== null) return; // the close handler requeues it
      const at = this.inflight.indexOf(pending);
      if (at < 0) return;
      this.inflight.splice(at, 1);
      this.stats.inflight--;
      if (this.config.qos === 1) {
        this.stats.acknowledged++;
        this.stats.publishAcks++;
        this.stats.recordLatencyUs((performance.now() - pending.sentAtMs) * 1000);
      }
      this.pump();
    });
  }

  /** Fire-and-count extra publishes: they are not readings, so they are never buffered or resent. */
  private publishFault(client: MqttClient, stream: number, payload: Buffer, kind: 'duplicated' | 'malformed' | 'oversize'): void {
    this.stats[kind]++;
    this.stats.published++;
    const generation = this.generation;
    const sentAtMs = performance.now();
    client.publish(this.topics[stream] as string, payload, { qos: this.config.qos }, (error) => {
      if (generation !== this.generation || (error !== undefined && error !== null) || this.config.qos !== 1) return;
      this.stats.publishAcks++;
      this.stats.recordLatencyUs((performance.now() - sentAtMs) * 1000);
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
    const client = this.client;
    this.client = undefined;
    this.generation++;
    if (wasConnected) this.stats.connected--;
    this.stats.unsent += this.buffer.length + this.inflight.length;
    this.stats.buffered -= this.buffer.length;
    this.stats.inflight -= this.inflight.length;
    this.inflight = [];
    while (this.buffer.length > 0) this.buffer.shift();
    if (client === undefined) return;
    client.removeAllListeners('connect');
    client.removeAllListeners('close');
    if (!graceful || !wasConnected) {
      client.end(true);
      return;
    }
    // A DISCONNECT packet, as firmware going to sleep sends; bounded so a dead peer cannot hold us.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.end(true);
        resolve();
      }, timeoutMs);
      client.end(false, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
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
