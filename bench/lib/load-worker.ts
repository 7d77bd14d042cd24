/**
 * A load process of the ingest benchmark (forked by bench/lib/load-process.ts, never run by hand):
 * drives one share of the fleet against one broker and answers the coordinator's marks with its
 * own counts, so rates are measured where the acks arrive.
 */
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { Fleet } from '../../firmware-sim/index.js';
import { BenchPublisher } from './mqtt-publisher.js';
import type { FromWorker, LoadSpec, LoadTotals, ToWorker } from './load-protocol.js';

const CONNECT_POLL_MS = 50;
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 2_000;
const CONNECT_TIMEOUT_MS = 30_000;
/** A worker whose coordinator vanished must not linger. */
const ORPHAN_EXIT_MS = 5_000;

interface Driver {
  connected(): number;
  /** Called once every device of every load process is connected. */
  go(): void;
  /** Connection errors so far by code, for a message that says why devices did not connect. */
  errors(): Readonly<Record<string, number>>;
  counts(): { acknowledged: number; published: number };
  /** Readings dropped (fleet: from full buffers) or shed (paced publisher) so far. */
  dropped(): number;
  /** Every ack latency so far (us), encoded. */
  latencyHdrBase64(): string;
  stop(): Promise<LoadTotals>;
}

function send(message: FromWorker): void {
  process.send?.(message);
}

function fleetDriver(spec: LoadSpec): Driver {
  if (spec.ratePerSecond === undefined) throw new Error('a fleet needs a rate');
  const fleet = new Fleet({
    gateway: spec.url,
    devices: spec.devices,
    ratePerSecond: spec.ratePerSecond,
    durationS: spec.durationS,
    qos: 1,
    seed: spec.seed,
    idPrefix: spec.idPrefix,
    inflightMax: spec.inflight,
    rampPerSecond: spec.rampPerSecond,
    drainTimeoutMs: 0,
    // A broker busy with the devices already connected is slow to accept the rest; retry soon
    // rather than after firmware-sim's default of up to 30 s, so the run starts with every device.
    backoff: { initialMs: RECONNECT_MIN_MS, maxMs: RECONNECT_MAX_MS },
  });
  fleet.start();
  return {
    connected: () => fleet.snapshot().connected,
    go: () => {}, // a fleet samples from each device's boot, as firmware does
    dropped: () => fleet.snapshot().dropped,
    errors: () => Object.fromEntries(fleet.stats.errorsByCode),
    counts: () => {
      const s = fleet.snapshot();
      return { acknowledged: s.acknowledged, published: s.published };
    },
    latencyHdrBase64: () => hdr.encodeIntoCompressedBase64(fleet.stats.latency),
    stop: async () => {
      const report = await fleet.close();
      if (report === undefined) throw new Error('edgelog invariant violated: the fleet was started');
      return {
        type: 'stopped',
        published: report.publishes.total,
        acknowledged: report.readings.acknowledged,
        dropped: report.readings.dropped,
        resent: report.publishes.resent,
        errors: report.connections.errors,
        errorsByCode: report.connections.errorsByCode,
      };
    },
  };
}

function publisherDriver(spec: LoadSpec): Driver {
  const publisher = new BenchPublisher({ url: spec.url, devices: spec.devices, idPrefix: spec.idPrefix, inflight: spec.inflight, ratePerSecond: spec.ratePerSecond, seed: spec.seed });
  return {
    connected: () => publisher.connected,
    go: () => publisher.go(),
    dropped: () => publisher.shed,
    errors: () => ({ errors: publisher.errors }),
    counts: () => ({ acknowledged: publisher.acknowledged, published: publisher.published }),
    latencyHdrBase64: () => hdr.encodeIntoCompressedBase64(publisher.latency),
    stop: async () => {
      await publisher.close();
      return { type: 'stopped', published: publisher.published, acknowledged: publisher.acknowledged, dropped: publisher.shed, resent: 0, errors: publisher.errors, errorsByCode: {} };
    },
  };
}

let driver: Driver | undefined;

async function waitConnected(d: Driver, devices: number): Promise<void> {
  const deadline = performance.now() + CONNECT_TIMEOUT_MS;
  while (d.connected() < devices) {
    if (performance.now() > deadline) {
      throw new Error(`only ${d.connected()} of ${devices} devices connected within ${CONNECT_TIMEOUT_MS / 1000} s; connection errors: ${JSON.stringify(d.errors())}`);
    }
    await new Promise((resolve) => setTimeout(resolve, CONNECT_POLL_MS));
  }
}

async function onMessage(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'start': {
      driver = message.spec.kind === 'fleet' ? fleetDriver(message.spec) : publisherDriver(message.spec);
      await waitConnected(driver, message.spec.devices);
      send({ type: 'connected' });
      return;
    }
    case 'go': {
      if (driver === undefined) throw new Error('go before start');
      driver.go();
      return;
    }
    case 'mark': {
      if (driver === undefined) throw new Error('mark before start');
      const cpu = process.cpuUsage();
      send({ type: 'mark', atMs: performance.timeOrigin + performance.now(), ...driver.counts(), dropped: driver.dropped(), cpuS: (cpu.user + cpu.system) / 1e6, latencyHdrBase64: driver.latencyHdrBase64() });
      return;
    }
    case 'stop': {
      if (driver === undefined) throw new Error('stop before start');
      send(await driver.stop());
      process.disconnect();
      return;
    }
  }
}

if (process.send === undefined) {
  process.stderr.write('bench/lib/load-worker.ts is forked by the ingest benchmark; run npm run bench:ingest\n');
  process.exit(2);
}
process.on('message', (message: ToWorker) => {
  onMessage(message).catch((error: unknown) => {
    send({ type: 'failed', message: (error as Error).message ?? String(error) });
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
  });
});
process.on('disconnect', () => setTimeout(() => process.exit(process.exitCode ?? 0), ORPHAN_EXIT_MS).unref());
