import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { encodeReading } from '../../devices/payload-codec.js';
import { loadProfiles } from '../../devices/profile.js';
import { LATENCY_US_MAX, newHistogram, SignalGenerator } from '../../firmware-sim/index.js';

/**
 * Why this exists next to firmware-sim: firmware-sim is a device simulator, capped at 1,000
 * readings/s per device (MAX_RATE_PER_SECOND) and paced by a 20 ms scheduler. Ten devices can then
 * offer at most 10,000 readings/s, less than either broker takes on this machine, so the peak of
 * the 10-device case (and any paced rate above 1,000/s per device) needs a load generator that is
 * not a sensor. It publishes the same bytes to the same topics as firmware-sim (payloads made by
 * firmware-sim's SignalGenerator and the devices/ codec, precomputed so the hot loop is only
 * mqtt.js), one MQTT 3.1.1 connection per device, at most `inflight` unacknowledged publishes each.
 */

/** Readings precomputed per device and cycled: enough variety in values and streams, bounded memory. */
const PAYLOADS_PER_DEVICE = 256;
/** Paced mode refills every few ms; the window bounds a burst after a stalled event loop. */
const PACE_TICK_MS = 5;
/** Paced mode owes at most this many seconds of readings per device; past it readings are shed (counted). */
const OWED_MAX_S = 1;
const CONNECT_TIMEOUT_MS = 10_000;
const RECONNECT_MS = 500;

export interface PublisherOptions {
  readonly url: string;
  readonly devices: number;
  /** Client ids are `${idPrefix}${n}` zero-padded, as firmware-sim names its devices. */
  readonly idPrefix: string;
  /** Unacknowledged publishes per device at once. */
  readonly inflight: number;
  /** Readings/s per device; undefined: closed loop, a new publish as soon as an ack frees a slot. */
  readonly ratePerSecond: number | undefined;
  readonly seed: number;
}

interface DeviceConn {
  readonly client: MqttClient;
  readonly topics: string[];
  readonly payloads: Buffer[];
  next: number;
  inflight: number;
  /** Paced mode: readings due but not yet published because the window was full. */
  owed: number;
  connected: boolean;
}


/** A fleet-shaped MQTT publisher for throughput runs; counts publishes and PUBACKs and records ack latency. */
export class BenchPublisher {
  published = 0;
  acknowledged = 0;
  errors = 0;
  /** Paced mode: readings that fell due while a device already owed OWED_MAX_S worth (the broker could not keep up). */
  shed = 0;
  private readonly devices: DeviceConn[] = [];
  /** Ack latency in microseconds since the start, as firmware-sim's FleetStats.latency. */
  readonly latency = newHistogram();
  private pacer: NodeJS.Timeout | undefined;
  private stopped = false;
  private started = false;

  constructor(private readonly options: PublisherOptions) {
    const profiles = loadProfiles();
    const width = Math.max(4, String(options.devices).length);
    const startTimeMs = Date.now();
    for (let i = 0; i < options.devices; i++) {
      const profile = profiles[i % profiles.length];
      if (profile === undefined) throw new Error('edgelog invariant violated: no device profiles shipped');
      const id = `${options.idPrefix}${String(i + 1).padStart(width, '0')}`;
      const generator = new SignalGenerator(profile, { seed: options.seed, deviceIndex: i, startTimeMs, clockSkewMaxMs: 0 });
      const topics: string[] = [];
      const payloads: Buffer[] = [];
      for (let k = 0; k < PAYLOADS_PER_DEVICE; k++) {
        const { stream, reading } = generator.next(startTimeMs + k * 1000);
        topics.push(`devices/${id}/${stream.name}`);
        payloads.push(encodeReading(profile, stream.name, reading));
      }
      const client = mqtt.connect(options.url, {
        clientId: id,
        username: id,
        protocolVersion: 4,
        clean: true,
        // A CONNECT the broker is slow to answer is tried again; a connection lost later is counted
        // in `errors` (mqtt.js then resends what was in flight).
        reconnectPeriod: RECONNECT_MS,
        connectTimeout: CONNECT_TIMEOUT_MS,
        keepalive: 60,
      });
      const device: DeviceConn = { client, topics, payloads, next: 0, inflight: 0, owed: 0, connected: false };
      client.on('connect', () => {
        device.connected = true;
      });
      client.on('error', () => this.errors++);
      client.on('close', () => {
        if (device.connected && !this.stopped) this.errors++;
        device.connected = false;
      });
      this.devices.push(device);
    }
  }

  /**
   * Starts publishing, once the caller has seen every device connected: a flood from the devices
   * connected first would otherwise delay the CONNACKs of the rest (the gateway's, by seconds).
   */
  go(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    if (this.options.ratePerSecond !== undefined) this.startPacing(this.options.ratePerSecond);
    else for (const d of this.devices) this.fill(d);
  }

  get connected(): number {
    return this.devices.filter((d) => d.connected).length;
  }

  private startPacing(ratePerSecond: number): void {
    const startMs = performance.now();
    let dueBefore = 0;
    const owedMax = Math.max(1, Math.ceil(ratePerSecond * OWED_MAX_S));
    this.pacer = setInterval(() => {
      const due = Math.floor(((performance.now() - startMs) / 1000) * ratePerSecond);
      const fresh = due - dueBefore;
      dueBefore = due;
      for (const d of this.devices) {
        if (!d.connected) continue; // readings due before the connection are not owed: the window starts once connected
        d.owed += fresh;
        if (d.owed > owedMax) {
          this.shed += d.owed - owedMax;
          d.owed = owedMax;
        }
        this.fill(d);
      }
    }, PACE_TICK_MS);
  }

  /** Publishes while the device's window has room (closed loop) or while it owes readings (paced). */
  private fill(d: DeviceConn): void {
    const paced = this.options.ratePerSecond !== undefined;
    while (this.started && !this.stopped && d.connected && d.inflight < this.options.inflight && (!paced || d.owed > 0)) {
      if (paced) d.owed--;
      const k = d.next++ % PAYLOADS_PER_DEVICE;
      d.inflight++;
      this.published++;
      const sentAtMs = performance.now();
      d.client.publish(d.topics[k] as string, d.payloads[k] as Buffer, { qos: 1 }, (error) => {
        d.inflight--;
        if (error !== undefined && error !== null) return;
        this.acknowledged++;
        this.latency.recordValue(Math.min(Math.max(Math.round((performance.now() - sentAtMs) * 1000), 1), LATENCY_US_MAX));
        this.fill(d);
      });
    }
  }

  /** Stops publishing and disconnects every device (bounded); unacknowledged publishes are abandoned. */
  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pacer);
    await Promise.all(
      this.devices.map(
        (d) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              d.client.end(true);
              resolve();
            }, 2_000);
            d.client.end(false, {}, () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }
}
