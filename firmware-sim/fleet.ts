import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { SimDevice } from './device.js';
import { deviceId, resolveFleetOptions } from './options.js';
import type { FleetConfig, FleetOptions } from './options.js';
import { deriveSeed, mulberry32 } from './prng.js';
import type { Random } from './prng.js';
import { buildReport } from './report.js';
import type { FleetReport } from './report.js';
import { SEED_PURPOSE } from './signal.js';
import { FleetStats } from './stats.js';

/** One scheduler turn; 20 ms keeps sample times within a tick of their due time at 50 Hz per device or less. */
const TICK_MS = 20;
/** Bounds the catch-up after a stalled event loop: one device never samples more than this in one turn. */
const MAX_SAMPLES_PER_DEVICE_PER_TICK = 1_000;
/** How often flapping faults are drawn (the flap probability is per device per second). */
const FAULT_CHECK_MS = 1_000;
const DRAIN_POLL_MS = 50;

interface Schedule {
  readonly device: SimDevice;
  /** performance.now() at which the device boots (connection ramp). */
  readonly bootAtMs: number;
  /** Offset of the first sample after boot, so devices do not sample in lockstep. */
  readonly phaseMs: number;
  readonly burst: Random;
  booted: boolean;
  samplesTaken: number;
}

/** Live figures for a status line. */
export interface FleetSnapshot {
  readonly elapsedMs: number;
  readonly phase: 'idle' | 'running' | 'draining' | 'done';
  readonly devices: number;
  readonly booted: number;
  readonly connected: number;
  readonly generated: number;
  readonly published: number;
  readonly acknowledged: number;
  readonly publishAcks: number;
  readonly errors: number;
  readonly buffered: number;
  readonly inflight: number;
  readonly dropped: number;
}

/**
 * A fleet of simulated devices in this process, each with its own MQTT connection.
 *
 * ```ts
 * const report = await new Fleet({ gateway: 'mqtt://127.0.0.1:1883', devices: 100, ratePerSecond: 1, durationS: 30 }).run();
 * ```
 */
export class Fleet {
  readonly config: FleetConfig;
  readonly stats = new FleetStats();
  private readonly log: Logger;
  private readonly schedules: Schedule[] = [];
  private phase: FleetSnapshot['phase'] = 'idle';
  private startedAtMs = 0;
  private startedAtIso = '';
  private startTimeMs = 0;
  private booted = 0;
  private finishedSampling = 0;
  private ticker: NodeJS.Timeout | undefined;
  private faultTicker: NodeJS.Timeout | undefined;
  private finished: Promise<FleetReport> | undefined;
  private stopRequested: (() => void) | undefined;
  private report: FleetReport | undefined;

  /** Validates `options` (throws InvalidOptionError naming the option); nothing connects before {@link Fleet.start}. */
  constructor(options: FleetOptions) {
    this.config = resolveFleetOptions(options);
    this.log = this.config.logger.child({ component: 'firmware-sim' });
  }

  /** Starts the ramp-up and the sampling; returns at once. Call {@link Fleet.done} to wait for the end. */
  start(): void {
    if (this.phase !== 'idle') return;
    const c = this.config;
    this.phase = 'running';
    this.startedAtMs = performance.now();
    this.startedAtIso = new Date().toISOString();
    this.startTimeMs = c.startTimeMs ?? Date.now();
    const periodMs = 1000 / c.ratePerSecond;
    for (let i = 0; i < c.devices; i++) {
      const profile = c.profiles[i % c.profiles.length];
      if (profile === undefined) throw new Error('edgelog invariant violated: profiles is not empty');
      const bootOffsetMs = (i * 1000) / c.rampPerSecond;
      const phaseMs = mulberry32(deriveSeed(c.seed, i, SEED_PURPOSE.clock, 1))() * periodMs;
      const device = new SimDevice(c, this.stats, this.log, i, deviceId(c, i), profile, this.startTimeMs + bootOffsetMs);
      this.schedules.push({ device, bootAtMs: this.startedAtMs + bootOffsetMs, phaseMs, burst: mulberry32(deriveSeed(c.seed, i, SEED_PURPOSE.burst)), booted: false, samplesTaken: 0 });
    }
    this.log.info({ devices: c.devices, ratePerSecond: c.ratePerSecond, durationS: c.durationS, qos: c.qos, seed: c.seed, gateway: c.gateway }, 'fleet started');
    this.finished = new Promise<void>((resolve) => {
      this.stopRequested = resolve;
      this.ticker = setInterval(() => {
        if (this.tick()) resolve();
      }, TICK_MS);
      if (c.faults.flap > 0) this.faultTicker = setInterval(() => this.flapSome(), FAULT_CHECK_MS);
      if (this.tick()) resolve();
    }).then(() => this.finish());
  }

  /** Boots devices whose ramp slot has come and takes every sample that is due; true once all are done. */
  private tick(): boolean {
    const c = this.config;
    const now = performance.now();
    const periodMs = 1000 / c.ratePerSecond;
    for (const s of this.schedules) {
      if (now < s.bootAtMs) break; // boot times are increasing
      if (!s.booted) {
        s.booted = true;
        this.booted++;
        if (this.booted === c.devices) this.log.info({ devices: this.booted }, 'ramp-up complete');
        s.device.connect();
      }
      let taken = 0;
      while (s.samplesTaken < c.samplesPerDevice && taken < MAX_SAMPLES_PER_DEVICE_PER_TICK) {
        const offsetMs = s.phaseMs + s.samplesTaken * periodMs;
        if (s.bootAtMs + offsetMs > now) break;
        const nominalMs = this.startTimeMs + (s.bootAtMs - this.startedAtMs) + offsetMs;
        s.device.sample(nominalMs);
        s.samplesTaken++;
        taken++;
        if (c.faults.burst > 0 && s.burst() < c.faults.burst) {
          // A burst: the device dumps extra readings at once, stamped a millisecond apart.
          this.stats.bursts++;
          for (let b = 1; b <= c.faults.burstSize; b++) s.device.sample(nominalMs + b);
        }
        if (s.samplesTaken === c.samplesPerDevice) this.finishedSampling++;
      }
    }
    return this.finishedSampling === c.devices;
  }

  private flapSome(): void {
    for (const s of this.schedules) {
      if (s.device.isConnected && s.burst() < this.config.faults.flap) s.device.flap();
    }
  }

  private async finish(): Promise<FleetReport> {
    clearInterval(this.ticker);
    clearInterval(this.faultTicker);
    const c = this.config;
    if (this.phase === 'running') {
      this.phase = 'draining';
      // Give buffered readings a bounded time to go out, as firmware does before it sleeps.
      const deadline = performance.now() + c.drainTimeoutMs;
      while (this.stats.buffered + this.stats.inflight > 0 && performance.now() < deadline && this.phase === 'draining') {
        await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      }
    }
    const graceful = this.phase === 'draining';
    this.phase = 'done';
    await Promise.all(this.schedules.map((s) => s.device.stop(graceful, 2_000)));
    const elapsedMs = performance.now() - this.startedAtMs;
    this.report = buildReport(c, this.stats, { startedAt: this.startedAtIso, elapsedMs, startTimeMs: this.startTimeMs });
    this.log.info({ ...this.report.readings, elapsedMs: Math.round(elapsedMs) }, 'fleet finished');
    return this.report;
  }

  /** Resolves with the report once every device has sampled for the duration and drained its buffer. */
  async done(): Promise<FleetReport> {
    if (this.finished === undefined) throw new Error('edgelog invariant violated: Fleet.done() before start()');
    return this.finished;
  }

  /** Starts and waits for the end. */
  async run(): Promise<FleetReport> {
    this.start();
    return this.done();
  }

  /**
   * Stops early (idempotent): no more samples, no drain, every connection closed. Resolves with the
   * report; whatever was still buffered is counted as unsent.
   */
  async close(): Promise<FleetReport | undefined> {
    if (this.phase === 'idle') {
      this.phase = 'done';
      return undefined;
    }
    if (this.phase === 'draining') this.phase = 'done';
    if (this.phase === 'running') this.phase = 'done';
    this.stopRequested?.();
    return this.finished;
  }

  snapshot(): FleetSnapshot {
    const s = this.stats;
    return {
      elapsedMs: this.phase === 'idle' ? 0 : performance.now() - this.startedAtMs,
      phase: this.phase,
      devices: this.config.devices,
      booted: this.booted,
      connected: s.connected,
      generated: s.generated,
      published: s.published,
      acknowledged: s.acknowledged,
      publishAcks: s.publishAcks,
      errors: s.errors,
      buffered: s.buffered,
      inflight: s.inflight,
      dropped: s.dropped,
    };
  }
}
