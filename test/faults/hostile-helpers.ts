/**
 * Shared parts of the hostile-input suites (issue 8): a well-behaved canary device whose acks and
 * stored readings prove the gateway still serves while it is attacked, memory readings of the
 * in-process gateway, raw sockets that report whether the gateway closed them, and a seeded PRNG
 * so every fuzz run can be replayed.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import mqtt from 'mqtt';
import { expect, onTestFinished } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startGateway, type ConfigOverrides } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';
import { mulberry32 } from '../../firmware-sim/prng.js';

/** Canary readings published while an attack runs, at most: bounds the loop if the attack hangs. */
const CANARY_READINGS_MAX = 2_000;
/** Pause between canary readings: a device's cadence, not a flood competing with the attack. */
const CANARY_PACE_MS = 10;
/** An ack slower than this is a failure however slow the baseline was: the suite's stated bound. */
export const CANARY_P99_FLOOR_MS = 500;
/** ...and so is an ack this many times slower than the canary's own unloaded p99. */
export const CANARY_P99_FACTOR = 10;
/** Canary readings for the unloaded baseline. */
const BASELINE_READINGS = 30;
/** Bytes of what the gateway answers a raw socket kept for assertions (a status line, a CONNACK). */
const RECEIVED_BYTES_KEPT = 4096;
/** Heap growth allowed across an attack, measured after a forced GC: connection state must not pile up. */
export const HEAP_GROWTH_BYTES_MAX = 32 * 1024 * 1024;
/** RSS growth allowed: generous, since the allocator keeps freed pages and socket buffers come and go. */
export const RSS_GROWTH_BYTES_MAX = 192 * 1024 * 1024;

/** The 99th percentile of latencies (ms); 0 for none. */
export function p99(latenciesMs: readonly number[]): number {
  if (latenciesMs.length === 0) return 0;
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!;
}

/** The p99 ack latency the canary may show under attack, given its unloaded baseline. */
export function latencyBoundMs(baselineMs: readonly number[]): number {
  return Math.max(CANARY_P99_FACTOR * p99(baselineMs), CANARY_P99_FLOOR_MS);
}

/**
 * A well-behaved device: QoS 1 readings on `devices/{id}/canary`, one at a time, each timed from
 * publish to PUBACK. Every reading it sent must be acked (publishAsync resolves) and stored.
 */
export class Canary {
  private readonly sent: string[] = [];
  /** Times the canary's connection closed: a served device keeps its one connection. */
  private disconnects = 0;

  private constructor(
    private readonly client: mqtt.MqttClient,
    readonly id: string,
  ) {
    client.on('close', () => (this.disconnects += 1));
  }

  static async connect(port: number, id = 'canary'): Promise<Canary> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: id, reconnectPeriod: 0, connectTimeout: 10_000 });
    onTestFinished(() => client.endAsync(true));
    return new Canary(client, id);
  }

  /** Publishes one reading and returns its ack latency in ms. */
  private async publishOne(): Promise<number> {
    const value = `${this.id}-${this.sent.length}`;
    this.sent.push(value);
    const startMs = performance.now();
    await this.client.publishAsync(`devices/${this.id}/canary`, value, { qos: 1 });
    return performance.now() - startMs;
  }

  /** Latencies of `count` readings sent one after another, unloaded. */
  async measure(count: number): Promise<number[]> {
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) latencies.push(await this.publishOne());
    return latencies;
  }

  /** Publishes readings at a device's pace until `work` settles (bounded); returns their latencies and work's result. */
  async during<T>(work: Promise<T>): Promise<{ latenciesMs: number[]; result: T }> {
    let done = false;
    const settled = work.finally(() => (done = true));
    const latenciesMs: number[] = [];
    // At least a few readings, even when the attack is over quickly.
    while ((!done || latenciesMs.length < 5) && latenciesMs.length < CANARY_READINGS_MAX) {
      latenciesMs.push(await this.publishOne());
      await new Promise((resolve) => setTimeout(resolve, CANARY_PACE_MS));
    }
    return { latenciesMs, result: await settled };
  }

  /** Every reading sent is in the log once, in order (topic `canary`, keyed by the device id). */
  expectAllStored(gateway: Gateway): void {
    expect(this.disconnects, 'canary disconnects').toBe(0);
    const shape = gateway.log.topicShape('canary');
    expect(shape, 'the canary topic exists').toBeDefined();
    const stored: string[] = [];
    for (let p = 0; p < shape!.partitions; p++) {
      for (let offset = 0; ; ) {
        const page = gateway.log.read('canary', p, offset, { maxRecords: 10_000 }).records;
        if (page.length === 0) break;
        for (const r of page) if (r.key === this.id) stored.push(r.value.toString());
        offset = page.at(-1)!.offset + 1;
      }
    }
    expect(stored).toEqual(this.sent);
  }
}

/** The V8 collector, made callable once per process: `--expose-gc` set at run time, read from a fresh context. */
const forceGc: (() => void) | null = (() => {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
})();

export interface MemoryReading {
  heapUsedBytes: number;
  rssBytes: number;
  /** Whether a full GC ran before the reading (else heapUsed includes garbage). */
  collected: boolean;
}

/** The in-process gateway's memory, after a forced full GC where V8 allows it. */
export function memory(): MemoryReading {
  if (forceGc) {
    forceGc();
    forceGc(); // a second pass frees what the first one's finalizers released
  }
  const m = process.memoryUsage();
  return { heapUsedBytes: m.heapUsed, rssBytes: m.rss, collected: forceGc !== null };
}

/** Asserts memory grew within the suite's bounds since `before`; returns the growth for the report. */
export function expectMemoryBounded(before: MemoryReading): { heapGrowthBytes: number; rssGrowthBytes: number } {
  const after = memory();
  const growth = { heapGrowthBytes: after.heapUsedBytes - before.heapUsedBytes, rssGrowthBytes: after.rssBytes - before.rssBytes };
  // Without a forced GC the heap reading includes garbage: allow twice the bound then.
  expect(growth.heapGrowthBytes).toBeLessThan(HEAP_GROWTH_BYTES_MAX * (after.collected ? 1 : 2));
  expect(growth.rssGrowthBytes).toBeLessThan(RSS_GROWTH_BYTES_MAX);
  return growth;
}

/** A seeded PRNG (firmware-sim's mulberry32), so a failing fuzz case can be replayed from its seed. */
export const seededRandom = mulberry32;

/** `count` random bytes from `random`. */
export function randomBytes(random: () => number, count: number): Buffer {
  const bytes = Buffer.alloc(count);
  for (let i = 0; i < count; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` at once; resolves with the results in order. */
export async function inPool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

/** A raw TCP connection to 127.0.0.1 that remembers whether the peer closed it; destroyed when the test finishes. */
export class RawSocket {
  private closedByPeer = false;
  private destroyedByUs = false;
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('error', () => {}); // a reset is one way the gateway closes a hostile connection
    // Read everything (without reading, the gateway's FIN would go unseen); keep only the start.
    socket.on('data', (chunk: Buffer) => {
      if (this.keptBytes >= RECEIVED_BYTES_KEPT) return;
      this.kept.push(chunk.subarray(0, RECEIVED_BYTES_KEPT - this.keptBytes));
      this.keptBytes += Math.min(chunk.length, RECEIVED_BYTES_KEPT - this.keptBytes);
    });
    socket.on('end', () => (this.closedByPeer = true));
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        if (!this.destroyedByUs) this.closedByPeer = true;
        resolve();
      }),
    );
  }

  static async open(port: number): Promise<RawSocket> {
    const socket = connect(port, '127.0.0.1');
    const raw = new RawSocket(socket);
    onTestFinished(() => raw.destroy());
    await once(socket, 'connect');
    return raw;
  }

  /** Writes bytes unless the socket is gone; returns whether they were handed to the socket. */
  write(bytes: Buffer | string): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    this.socket.write(bytes);
    return true;
  }

  /** The first bytes the gateway sent, as latin1 text. */
  get received(): string {
    return Buffer.concat(this.kept).toString('latin1');
  }

  /** Whether the gateway closed the connection (FIN or reset), as opposed to us. */
  get gatewayClosed(): boolean {
    return this.closedByPeer;
  }

  /** Resolves true once the gateway has closed the connection, false if it has not within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.closed, timeout]);
    clearTimeout(timer);
    return this.closedByPeer;
  }

  destroy(): void {
    if (this.socket.destroyed) return;
    this.destroyedByUs = true;
    this.socket.destroy();
  }
}

/** A gauge or counter of the gateway's /metrics (loopback needs no token without an admin token). */
export async function metric(httpPort: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  if (line === undefined) throw new Error(`no metric ${name}${labels} in /metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

export interface AttackOptions {
  /** Gateway config for the attack. */
  overrides?: ConfigOverrides;
  /** Connections of these kinds (edgelog_connections) must be back to 0 after the attack; mqtt is back to the canary's 1. */
  kinds?: string[];
}

/**
 * Runs `attack` against a fresh in-process gateway while a canary device publishes, then asserts
 * the canary was served (every reading acked and stored, p99 ack latency within
 * {@link latencyBoundMs} of its own unloaded baseline), that the attack's connections are gone,
 * and that memory stayed bounded. Prints the figures as one line.
 */
export async function underAttack<T>(label: string, attack: (gateway: Gateway) => Promise<T>, opts: AttackOptions = {}): Promise<{ gateway: Gateway; result: T }> {
  const gateway = await startGateway(opts.overrides ?? {});
  const canary = await Canary.connect(gateway.ports.mqtt);
  const baseline = await canary.measure(BASELINE_READINGS);
  const before = memory();
  const { latenciesMs, result } = await canary.during(attack(gateway));
  canary.expectAllStored(gateway);
  const bound = latencyBoundMs(baseline);
  expect(p99(latenciesMs), `canary p99 under attack (bound ${bound} ms)`).toBeLessThan(bound);
  for (const kind of ['mqtt', ...(opts.kinds ?? [])]) {
    const expected = kind === 'mqtt' ? 1 : 0;
    await waitFor(async () => (await metric(gateway.ports.http, 'edgelog_connections', `{kind="${kind}"}`)) === expected, `${kind} connections back to ${expected}`, 15_000);
  }
  const growth = expectMemoryBounded(before);
  // Figures for docs/reliability.md: one line per scenario.
  process.stdout.write(
    `[hostile] ${label}: canary p99 ${p99(baseline).toFixed(1)} ms unloaded, ${p99(latenciesMs).toFixed(1)} ms under attack (${latenciesMs.length} readings); ` +
      `heap ${(growth.heapGrowthBytes / 2 ** 20).toFixed(1)} MiB, rss ${(growth.rssGrowthBytes / 2 ** 20).toFixed(1)} MiB growth\n`,
  );
  return { gateway, result };
}
