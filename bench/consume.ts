/**
 * Consumer benchmark (not a test), issue 5. The compiled gateway runs as a child process on
 * 127.0.0.1; the load runs in processes of its own (bench/lib/load-worker.ts); the consumers are
 * the TypeScript client (src/client) in this process, as an application would use it.
 *
 *   ingest   the peak durable ingest rate: a closed loop of QoS 1 publishers (10 devices with 100
 *            publishes in flight each, as bench:ingest's peak) for the window; what it acknowledged
 *            is the backlog;
 *   single   one consumer reads that whole backlog from the beginning (records/s);
 *   group    a group of four consumers reads it again (records/s, all four together);
 *   log      the reference: the same records read in-process with CommitLog.read once the gateway
 *            has stopped, the log's own read rate with no network in between;
 *   e2e      firmware-sim keeps 1,000 devices publishing one reading/s each; a consumer reads the
 *            new records, and the latency from each reading's sample time (its payload's `ts`)
 *            to the consumer's receipt is recorded (p50/p99). The reference in the same run is
 *            Mosquitto with the same fleet and an MQTT subscriber measuring the same way.
 * Aims (issue 5): single ≥ 5 × ingest; e2e p99 < 50 ms.
 *
 *   npm run bench:consume [-- --window S --quick]
 */
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import mqtt from 'mqtt';
import { detectFormat } from '../devices/payload-codec.js';
import { loadProfiles } from '../devices/profile.js';
import { consumer, type Consumer } from '../src/client/index.js';
import { CommitLog } from '../src/index.js';
import { startGateway, startMosquitto, type BrokerProcess } from './lib/brokers.js';
import { measureRun, type RunLoad, type RunResult } from './lib/ingest-run.js';
import { printTable, writeResults, type Row } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    window: { type: 'string' },
    partitions: { type: 'string', default: '4' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(`npm run bench:consume [-- options]
  --window S       measurement window of the ingest and end-to-end runs (default 10; --quick 4)
  --partitions N   partitions of each topic, created before the load (default 4: one per member of the group)
  --quick          a short run to try the benchmark out
`);
  process.exit(0);
}
const WINDOW_S = Number(args.window ?? (args.quick ? 4 : 10));
const WARMUP_S = args.quick ? 1 : 2;
const PARTITIONS = Number(args.partitions);
const GROUP_SIZE = 4;
const FLEET_DEVICES = 1000;
const LOAD_PROCESSES = 2;
/** A backlog read must finish within this; a consumer that stalls fails the benchmark instead of hanging it. */
const READ_TIMEOUT_MS = 300_000;
/** The streams firmware-sim's profiles publish: the topics the load writes and the consumers read. */
const TOPICS = [...new Set(loadProfiles().flatMap((p) => p.streams.map((s) => s.name)))].sort();

async function api(gateway: BrokerProcess, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${gateway.httpPort}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}

/** Records per topic in the gateway's log, from its admin API. */
async function backlogSize(gateway: BrokerProcess): Promise<number> {
  const { topics } = (await api(gateway, '/api/topics')) as { topics: { name: string; records: number }[] };
  return topics.filter((t) => TOPICS.includes(t.name)).reduce((sum, t) => sum + t.records, 0);
}

interface ReadResult {
  records: number;
  seconds: number;
  perSec: number;
  gatewayCores: number;
  benchCores: number;
}

/** `members` consumers of one new group read every record of the topics from the beginning. */
async function readBacklog(gateway: BrokerProcess, group: string, members: number, expected: number): Promise<ReadResult> {
  const url = `ws://127.0.0.1:${gateway.httpPort}/consume`;
  const consumers: Consumer[] = Array.from({ length: members }, (_, i) =>
    consumer({ url, groupId: group, topics: TOPICS, clientId: `bench-${i}`, offsetReset: 'earliest', autoCommit: false }),
  );
  let received = 0;
  const cpu0 = gateway.cpuSeconds();
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${group}: ${received} of ${expected} records within ${READ_TIMEOUT_MS / 1000} s`)), READ_TIMEOUT_MS);
    for (const c of consumers) {
      void (async () => {
        for await (const batch of c) {
          received += batch.records.length;
          if (received >= expected) {
            clearTimeout(timer);
            resolve();
          }
        }
      })().catch((error: unknown) => {
        clearTimeout(timer);
        reject(error as Error);
      });
    }
  });
  try {
    await done;
  } finally {
    await Promise.allSettled(consumers.map((c) => c.close()));
  }
  const seconds = (performance.now() - t0) / 1000;
  const self = process.cpuUsage(self0);
  return {
    records: received,
    seconds,
    perSec: received / seconds,
    gatewayCores: (gateway.cpuSeconds() - cpu0) / seconds,
    benchCores: (self.user + self.system) / 1e6 / seconds,
  };
}

/** The same records read in this process straight from the log's folder: the ceiling a consumer over the network is measured against. */
async function readLogDirectly(dataDir: string): Promise<{ records: number; seconds: number; perSec: number }> {
  const log = await CommitLog.open({ dir: dataDir, retentionSchedule: null });
  try {
    let records = 0;
    const t0 = performance.now();
    for (const topic of TOPICS.filter((t) => log.hasTopic(t))) {
      for (const p of log.describeTopic(topic).partitions) {
        for (let offset = p.startOffset; offset < p.highWatermark; ) {
          const page = log.read(topic, p.partition, offset).records;
          records += page.length;
          offset = page.at(-1)!.offset + 1;
        }
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    return { records, seconds, perSec: records / seconds };
  } finally {
    await log.close();
  }
}

/** The sample time a firmware-sim payload carries (ms since the epoch), JSON or edgebin. */
function sampleTime(payload: Buffer): number | undefined {
  const format = detectFormat(payload);
  if (format === 'edgebin') return payload.readUIntBE(8, 6);
  if (format === 'json') return (JSON.parse(payload.toString('utf8')) as { ts?: number }).ts;
  return undefined;
}

/** Latencies (us) from sample time to receipt, recorded only between start() and stop(). */
class LatencyRecorder {
  readonly histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  private recording = false;
  private received = 0;

  record(payload: Buffer): void {
    if (!this.recording) return;
    const ts = sampleTime(payload);
    if (ts === undefined) return;
    this.received++;
    this.histogram.recordValue(Math.max(1, Math.round((performance.timeOrigin + performance.now() - ts) * 1000)));
  }

  start(): void {
    this.histogram.reset();
    this.received = 0;
    this.recording = true;
  }

  stop(): { p50Ms: number; p99Ms: number; maxMs: number; received: number } {
    this.recording = false;
    return { p50Ms: this.histogram.getValueAtPercentile(50) / 1000, p99Ms: this.histogram.getValueAtPercentile(99) / 1000, maxMs: this.histogram.maxValue / 1000, received: this.received };
  }
}

const fleetLoad: RunLoad = { kind: 'fleet', devices: FLEET_DEVICES, processes: LOAD_PROCESSES, inflight: 16, ratePerSecond: 1, rampPerSecond: 500, seed: 1 };

interface EndToEnd {
  broker: string;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  received: number;
  acked: number;
  run: RunResult;
}

/**
 * Runs the fleet against `broker` while a subscriber hands payloads to the recorder, which records
 * over measureRun's window only: after every device connected and the warm-up.
 */
async function endToEnd(broker: BrokerProcess, recorder: LatencyRecorder): Promise<Omit<EndToEnd, 'broker'>> {
  let figures: ReturnType<LatencyRecorder['stop']> | undefined;
  const run = await measureRun(broker, fleetLoad, { warmupS: WARMUP_S + 2, windowS: WINDOW_S }, undefined, `e2e-${broker.name.slice(0, 2)}`, {
    opened: () => recorder.start(),
    closed: () => (figures = recorder.stop()),
  });
  return { ...figures!, acked: run.totals.acknowledged, run };
}

async function main(): Promise<void> {
  console.log(`bench:consume — topics ${TOPICS.join(', ')} with ${PARTITIONS} partitions; window ${WINDOW_S} s`);
  const gateway = await startGateway();
  const results: Record<string, unknown> = {};
  let reference: { records: number; seconds: number; perSec: number };
  let single: ReadResult;
  let group: ReadResult;
  let ingest: RunResult;
  let e2eEdgelog: Omit<EndToEnd, 'broker'>;
  try {
    for (const name of TOPICS) await api(gateway, '/api/topics', { name, partitions: PARTITIONS });

    ingest = await measureRun(
      gateway,
      // 100 in flight per device, 1,000 in all: bench:ingest's closed-loop peak load for 10 devices.
      { kind: 'publisher', devices: 10, processes: LOAD_PROCESSES, inflight: 100, ratePerSecond: undefined, rampPerSecond: 500, seed: 1 },
      { warmupS: WARMUP_S, windowS: WINDOW_S },
      undefined,
      'ingest',
    );
    const backlog = await backlogSize(gateway);
    console.log(`ingest: ${Math.round(ingest.ackedPerSec).toLocaleString('en-US')} acked readings/s (peak durable ingest); backlog ${backlog.toLocaleString('en-US')} records`);

    single = await readBacklog(gateway, 'bench-single', 1, backlog);
    console.log(`single consumer: ${Math.round(single.perSec).toLocaleString('en-US')} records/s`);
    group = await readBacklog(gateway, 'bench-group', GROUP_SIZE, backlog);
    console.log(`group of ${GROUP_SIZE}: ${Math.round(group.perSec).toLocaleString('en-US')} records/s`);

    // End to end on edgelog: a consumer at the end of the log while the fleet publishes.
    const recorder = new LatencyRecorder();
    const live = consumer({ url: `ws://127.0.0.1:${gateway.httpPort}/consume`, groupId: 'bench-e2e', topics: TOPICS, offsetReset: 'latest', autoCommit: false });
    const reading = (async () => {
      for await (const batch of live) for (const r of batch.records) recorder.record(r.value);
    })();
    try {
      e2eEdgelog = await endToEnd(gateway, recorder);
    } finally {
      await live.close();
      await reading.catch(() => {});
    }
    console.log(`e2e edgelog: p50 ${e2eEdgelog.p50Ms.toFixed(1)} ms, p99 ${e2eEdgelog.p99Ms.toFixed(1)} ms over ${e2eEdgelog.received} readings`);
  } finally {
    await gateway.stop();
  }
  try {
    reference = await readLogDirectly(gateway.dataDir!);
  } finally {
    gateway.cleanup();
  }

  // The reference for end to end: Mosquitto with the same fleet and a subscriber that measures the same way.
  const mosquitto = await startMosquitto();
  let e2eMosquitto: Omit<EndToEnd, 'broker'>;
  try {
    const recorder = new LatencyRecorder();
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${mosquitto.port}`, { clientId: 'bench-e2e-sub', clean: true });
    sub.on('message', (_topic, payload) => recorder.record(payload));
    await sub.subscribeAsync('devices/#', { qos: 1 });
    try {
      e2eMosquitto = await endToEnd(mosquitto, recorder);
    } finally {
      await sub.endAsync();
    }
    console.log(`e2e mosquitto: p50 ${e2eMosquitto.p50Ms.toFixed(1)} ms, p99 ${e2eMosquitto.p99Ms.toFixed(1)} ms over ${e2eMosquitto.received} readings`);
  } finally {
    await mosquitto.stop();
    mosquitto.cleanup();
  }

  const rows: Row[] = [
    { what: 'peak durable ingest (10 publishers, QoS 1)', 'records/s': ingest.ackedPerSec, 'gateway cores': ingest.brokerCores, 'x ingest': 1 },
    { what: 'single consumer, backlog', 'records/s': single.perSec, 'gateway cores': single.gatewayCores, 'x ingest': single.perSec / ingest.ackedPerSec },
    { what: `group of ${GROUP_SIZE}, backlog`, 'records/s': group.perSec, 'gateway cores': group.gatewayCores, 'x ingest': group.perSec / ingest.ackedPerSec },
    { what: 'reference: CommitLog.read in-process', 'records/s': reference.perSec, 'gateway cores': '', 'x ingest': reference.perSec / ingest.ackedPerSec },
  ];
  printTable('Consumer throughput (records of ~100 bytes)', rows);
  printTable('End to end, 1,000 devices x 1 reading/s (sample time → receipt)', [
    { broker: 'edgelog → /consume client', 'p50 ms': e2eEdgelog.p50Ms, 'p99 ms': e2eEdgelog.p99Ms, 'max ms': e2eEdgelog.maxMs, readings: e2eEdgelog.received, 'gateway cores': e2eEdgelog.run.brokerCores },
    { broker: 'mosquitto → MQTT subscriber', 'p50 ms': e2eMosquitto.p50Ms, 'p99 ms': e2eMosquitto.p99Ms, 'max ms': e2eMosquitto.maxMs, readings: e2eMosquitto.received, 'gateway cores': e2eMosquitto.run.brokerCores },
  ]);
  const singleRatio = single.perSec / ingest.ackedPerSec;
  console.log(`\naim: single consumer ≥ 5 × peak ingest: ${singleRatio.toFixed(1)} × (${singleRatio >= 5 ? 'met' : 'NOT met'})`);
  console.log(`aim: end-to-end p99 < 50 ms: ${e2eEdgelog.p99Ms.toFixed(1)} ms (${e2eEdgelog.p99Ms < 50 ? 'met' : 'NOT met'})`);
  Object.assign(results, {
    settings: { windowS: WINDOW_S, partitions: PARTITIONS, topics: TOPICS, groupSize: GROUP_SIZE, fleetDevices: FLEET_DEVICES },
    ingest: { ackedPerSec: ingest.ackedPerSec, brokerCores: ingest.brokerCores, totals: ingest.totals },
    single,
    group,
    reference,
    endToEnd: {
      edgelog: { p50Ms: e2eEdgelog.p50Ms, p99Ms: e2eEdgelog.p99Ms, maxMs: e2eEdgelog.maxMs, received: e2eEdgelog.received, acked: e2eEdgelog.acked, gatewayCores: e2eEdgelog.run.brokerCores },
      mosquitto: { p50Ms: e2eMosquitto.p50Ms, p99Ms: e2eMosquitto.p99Ms, maxMs: e2eMosquitto.maxMs, received: e2eMosquitto.received, acked: e2eMosquitto.acked, brokerCores: e2eMosquitto.run.brokerCores },
    },
    aims: { singleOverIngest: singleRatio, e2eP99Ms: e2eEdgelog.p99Ms },
  });
  console.log(`\nwrote ${writeResults('consume', results)}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench:consume failed: ${(error as Error)?.stack ?? String(error)}`);
    process.exit(1);
  },
);
