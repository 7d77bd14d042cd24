import * as hdr from 'hdr-histogram-js';
import type { BrokerProcess } from './brokers.js';
import { connackMs, type CountingSubscriber } from './counting-subscriber.js';
import { LoadProcess } from './load-process.js';
import type { LoadMark, LoadSpec, LoadTotals } from './load-protocol.js';
import { machineBusySeconds } from './proc-stats.js';

/** How long a run waits after stopping its load for the reference broker to deliver the rest. */
const DELIVERY_WAIT_MS = 10_000;
const DELIVERY_POLL_MS = 50;

/** What drives one run: `devices` split over `processes` load processes. */
export interface RunLoad {
  readonly kind: LoadSpec['kind'];
  readonly devices: number;
  readonly processes: number;
  readonly inflight: number;
  /** Readings/s per device; undefined: closed loop (publisher only). */
  readonly ratePerSecond: number | undefined;
  readonly rampPerSecond: number;
  readonly seed: number;
}

export interface RunTiming {
  readonly warmupS: number;
  readonly windowS: number;
}

/** Figures of one run, over its measurement window (after ramp-up and warm-up). */
export interface RunResult {
  readonly broker: BrokerProcess['name'];
  readonly devices: number;
  readonly load: string;
  /** Readings/s the load offered, or undefined for a closed loop (as much as acks allow). */
  readonly offeredPerSec: number | undefined;
  readonly ackedPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Broker CPU seconds per second of window: 1 is one core busy. */
  readonly brokerCores: number;
  readonly brokerCpuSecondsPer1000: number;
  readonly loadCpuSecondsPer1000: number;
  /** Load processes' CPU seconds per second of window. */
  readonly loadCores: number;
  /**
   * Cores busy with work other than the broker, the load and this coordinator during the window
   * (another session's tests, a build): near 0 on a quiet machine; a large figure taints the run.
   */
  readonly otherCores: number;
  /** From forking the load processes until every device was connected (the slowest process). */
  readonly connectMs: number;
  /** One more client connecting during the window: ms to its CONNACK, or null when none came within the window. */
  readonly connackMs: number | null;
  /** Readings dropped from full device buffers (or shed by a paced publisher) during the window. */
  readonly droppedInWindow: number;
  /** Acknowledged readings in the window. */
  readonly ackedInWindow: number;
  /** Whole run, all load processes. */
  readonly totals: { readonly published: number; readonly acknowledged: number; readonly dropped: number; readonly resent: number; readonly errors: number };
  /** Mosquitto: PUBLISHes its counting subscriber received during the run; edgelog: checked on the log afterwards. */
  readonly delivered: number | undefined;
}

function splitDevices(devices: number, processes: number): number[] {
  const n = Math.max(1, Math.min(processes, devices));
  return Array.from({ length: n }, (_, i) => Math.floor(devices / n) + (i < devices % n ? 1 : 0));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function describeLoad(load: RunLoad): string {
  if (load.kind === 'fleet') return `firmware-sim ${load.devices}x${formatRate(load.ratePerSecond ?? 0)}/s`;
  if (load.ratePerSecond === undefined) return `publisher ${load.devices}x${load.inflight} in flight`;
  return `publisher ${load.devices}x${formatRate(load.ratePerSecond)}/s`;
}

function formatRate(r: number): string {
  return r >= 10 ? String(Math.round(r)) : r.toFixed(1);
}

/**
 * One measured run against one broker: starts the load processes, waits for every device to
 * connect and for the warm-up, then measures acks, ack latency and CPU over the window, stops the
 * load and checks the counts the broker can be held to.
 */
export async function measureRun(
  broker: BrokerProcess,
  load: RunLoad,
  timing: RunTiming,
  subscriber: CountingSubscriber | undefined,
  runId: string,
  /** Called as the measurement window opens and closes (a consumer measuring over the same window). */
  hooks?: { opened(): void; closed(): void },
): Promise<RunResult> {
  const shares = splitDevices(load.devices, load.processes);
  const deliveredBefore = subscriber?.received ?? 0;
  const started = await Promise.allSettled(
    shares.map((devices, i) =>
      LoadProcess.start({
        kind: load.kind,
        url: broker.url,
        devices,
        idPrefix: `${runId}p${i}-dev-`,
        seed: (load.seed + i) >>> 0,
        inflight: load.inflight,
        ratePerSecond: load.ratePerSecond,
        durationS: timing.warmupS + timing.windowS + 60,
        rampPerSecond: load.rampPerSecond,
      }),
    ),
  );
  const loads = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    for (const l of loads) l.kill();
    throw (failed as PromiseRejectedResult).reason;
  }
  let totals: LoadTotals[];
  let first: LoadMark[];
  let last: LoadMark[];
  let cpu0: number;
  let cpu1: number;
  let windowMs: number;
  let probeMs: number | null;
  let machine0: number;
  let machine1: number;
  let self0: NodeJS.CpuUsage;
  let self1: NodeJS.CpuUsage;
  try {
    // All devices of all load processes are connected: only now may any of them publish.
    for (const l of loads) l.go();
    await sleep(timing.warmupS * 1000);
    machine0 = machineBusySeconds();
    self0 = process.cpuUsage();
    cpu0 = broker.cpuSeconds();
    const t0 = performance.now();
    hooks?.opened();
    first = await Promise.all(loads.map((l) => l.mark()));
    // A device that boots while the broker is this busy: how long until it may publish?
    const probe = connackMs(broker.port, `${runId}-probe`, timing.windowS * 1000);
    await sleep(timing.windowS * 1000);
    probeMs = await probe;
    last = await Promise.all(loads.map((l) => l.mark()));
    hooks?.closed();
    cpu1 = broker.cpuSeconds();
    windowMs = performance.now() - t0;
    self1 = process.cpuUsage(self0);
    machine1 = machineBusySeconds();
    totals = await Promise.all(loads.map((l) => l.stop()));
  } catch (error) {
    for (const l of loads) l.kill();
    throw error;
  }

  let acked = 0;
  let ackedPerSec = 0;
  let droppedInWindow = 0;
  let loadCpuS = 0;
  const window = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  for (let i = 0; i < loads.length; i++) {
    const a = first[i] as LoadMark;
    const b = last[i] as LoadMark;
    const delta = b.acknowledged - a.acknowledged;
    acked += delta;
    droppedInWindow += b.dropped - a.dropped;
    ackedPerSec += delta / ((b.atMs - a.atMs) / 1000);
    loadCpuS += b.cpuS - a.cpuS;
    const h1 = hdr.decodeFromCompressedBase64(b.latencyHdrBase64);
    const h0 = hdr.decodeFromCompressedBase64(a.latencyHdrBase64);
    h1.subtract(h0);
    window.add(h1);
    h0.destroy();
    h1.destroy();
  }
  const sum = (key: 'published' | 'acknowledged' | 'dropped' | 'resent' | 'errors') => totals.reduce((s, t) => s + t[key], 0);
  const runTotals = { published: sum('published'), acknowledged: sum('acknowledged'), dropped: sum('dropped'), resent: sum('resent'), errors: sum('errors') };

  let delivered: number | undefined;
  if (subscriber !== undefined) {
    // Every acknowledged reading must reach the subscriber; wait (bounded) for the tail in transit.
    const deadline = performance.now() + DELIVERY_WAIT_MS;
    while (subscriber.received - deliveredBefore < runTotals.acknowledged && performance.now() < deadline) await sleep(DELIVERY_POLL_MS);
    // Publishes in flight when the load stopped may still arrive after their acks were abandoned.
    await sleep(DELIVERY_POLL_MS * 4);
    delivered = subscriber.received - deliveredBefore;
  }

  const windowS = windowMs / 1000;
  const selfS = (self1.user + self1.system) / 1e6;
  const result: RunResult = {
    broker: broker.name,
    devices: load.devices,
    load: describeLoad(load),
    offeredPerSec: load.ratePerSecond === undefined ? undefined : load.ratePerSecond * load.devices,
    ackedPerSec,
    p50Ms: window.getValueAtPercentile(50) / 1000,
    p99Ms: window.getValueAtPercentile(99) / 1000,
    maxMs: window.maxValue / 1000,
    brokerCores: (cpu1 - cpu0) / windowS,
    loadCores: loadCpuS / windowS,
    otherCores: Math.max(0, (machine1 - machine0 - (cpu1 - cpu0) - loadCpuS - selfS) / windowS),
    brokerCpuSecondsPer1000: acked === 0 ? Number.NaN : ((cpu1 - cpu0) / acked) * 1000,
    loadCpuSecondsPer1000: acked === 0 ? Number.NaN : (loadCpuS / acked) * 1000,
    connectMs: Math.max(...loads.map((l) => l.connectMs)),
    connackMs: probeMs,
    droppedInWindow,
    ackedInWindow: acked,
    totals: runTotals,
    delivered,
  };
  window.destroy();
  return result;
}
