/**
 * Footprint benchmark (not a test), issue 7: what the gateway costs on a small machine. The compiled
 * gateway runs pinned to one core (taskset) under a V8 heap cap, as a stand-in for a small Pi;
 * firmware-sim runs pinned to the other core. Debian's Mosquitto, pinned the same way with the same
 * fleets, is the reference in the same run.
 *
 *   steady    idle (no devices), then 100 and 1,000 devices at 1 reading/s, QoS 1, each after a
 *             warm-up: RSS (VmRSS every second: mean, max; VmHWM over the run), CPU % of one core
 *             (utime + stime), readings acked/s (firmware-sim's --report), for both brokers;
 *   start-up  a 10-million-record log prefilled once (CommitLog in a child), then 3 starts of the
 *             gateway: spawn to its 'edgelog gateway started' line and to GET /healthz 200, and
 *             its RSS then; references: a raw LMDB open reading the last record of one partition,
 *             and bare Node, each pinned and heap-capped the same way.
 *
 *   npm run bench:footprint [-- --seconds S --warmup S --devices 100,1000 --records N --heap-mb N --runs N]
 * About 8 minutes with the defaults, and ~3 GB free in the temp folder for the 10-million-record log.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_TOPICS } from '../src/log/commit-log.js';
import { MAX_OFFSET } from '../src/log/topic-config.js';
import { startMosquitto, type BrokerProcess } from './lib/brokers.js';
import { diskCheck, prefillLog } from './lib/footprint-prefill.js';
import { BARE_NODE_ARGS, ChildSet, pinProcess, rawLmdbArgs, startFleet, startPinnedGateway, timeReference, type FleetFigures, type PinnedGateway } from './lib/footprint-processes.js';
import { sampleWindow, type WindowFigures } from './lib/footprint-sampler.js';
import { cpuSeconds, memoryBytes } from './lib/proc-stats.js';
import { printTable, writeResults, type Row } from './lib/report.js';

/** The V8 heap cap of every Node process measured (--max-old-space-size), as on a Pi with little RAM. */
const HEAP_CAP_MB = 128;
/** The brokers' core and the load's: on two cores, one each, so the load never takes the broker's. */
const BROKER_CORE = 0;
const LOAD_CORE = 1;
/** The issue's aim: under 150 MB RSS at 1,000 devices (MB read as MiB, like every RSS figure here). */
const AIM_RSS_BYTES = 150 * 1024 * 1024;
const MIB = 1024 * 1024;
/** The fleet samples this long past the window, so the window never sees its drain and disconnect. */
const FLEET_TAIL_S = 2;
/** The prefill's topics (1 partition each, as the gateway's topic defaults create them). */
const PREFILL_TOPICS = ['temperature', 'humidity', 'power', 'vibration'] as const;
/** Bounds of the flags: a window of at most an hour, at most 9 start-up runs. */
const MAX_SECONDS = 3600;
const MAX_RUNS = 9;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    idle: { type: 'string' },
    devices: { type: 'string', default: '100,1000' },
    records: { type: 'string' },
    'heap-mb': { type: 'string' },
    runs: { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(`npm run bench:footprint [-- options]
  --seconds S     measurement window of each loaded phase (default 60)
  --warmup S      seconds a fleet runs before its window (default 10)
  --idle S        the idle phase's window, no devices (default 10)
  --devices LIST  fleet sizes at 1 reading/s each (default 100,1000)
  --records N     records in the log the start-up runs open (default 10000000; needs ~200 bytes of disk each)
  --heap-mb N     V8 heap cap of every Node process measured (default ${HEAP_CAP_MB})
  --runs N        start-up runs, the median counts (default 3)
  --seed N        firmware-sim's seed (default 1)
`);
  process.exit(0);
}

function positive(flag: string, text: string | undefined, fallback: number, max: number): number {
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    process.stderr.write(`bench:footprint: --${flag} must be a whole number from 1 to ${max.toLocaleString('en-US')}, got '${text}'\n`);
    process.exit(2);
  }
  return value;
}

const WINDOW_S = positive('seconds', args.seconds, 60, MAX_SECONDS);
const WARMUP_S = positive('warmup', args.warmup, 10, MAX_SECONDS);
const IDLE_S = positive('idle', args.idle, 10, MAX_SECONDS);
const RECORDS = positive('records', args.records, 10_000_000, 1_000_000_000);
const HEAP_MB = positive('heap-mb', args['heap-mb'], HEAP_CAP_MB, 65_536);
const RUNS = positive('runs', args.runs, 3, MAX_RUNS);
const SEED = positive('seed', args.seed, 1, 2 ** 32 - 1);
// firmware-sim takes up to 20,000 devices.
const SIZES = (args.devices ?? '').split(',').map((s) => positive('devices', s.trim(), 0, 20_000));
if (availableParallelism() < 2) {
  process.stderr.write(`bench:footprint: needs 2 cores (the broker on core ${BROKER_CORE}, the load on core ${LOAD_CORE}); this machine has ${availableParallelism()}\n`);
  process.exit(2);
}

const scratch = mkdtempSync(join(tmpdir(), 'edgelog-bench-footprint-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
const disk = diskCheck(scratch, RECORDS);
if (disk.short) {
  process.stderr.write(
    `bench:footprint: the start-up runs need ~${(disk.neededBytes / 1e9).toFixed(1)} GB free in ${tmpdir()} for a ${RECORDS.toLocaleString('en-US')}-record log ` +
      `(~200 bytes each, plus 1 GiB to spare); it has ${(disk.freeBytes / 1e9).toFixed(1)} GB. Free some space, point TMPDIR elsewhere, or pass --records N.\n`,
  );
  process.exit(2);
}

const children = new ChildSet();
const notes: string[] = [];
const failures: string[] = [];
const note = (text: string) => {
  notes.push(text);
  console.log(`note: ${text}`);
};
const fail = (text: string) => {
  failures.push(text);
  console.log(`FAILED: ${text}`);
};
process.once('SIGINT', () => {
  void children.stopAll().then(() => process.exit(130));
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => bytes / MIB;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

interface Broker {
  readonly name: 'edgelog' | 'mosquitto';
  readonly pid: number;
  readonly port: number;
  alive(): boolean;
  stop(): Promise<void>;
}

interface PhaseResult {
  readonly phase: string;
  readonly broker: Broker['name'];
  readonly devices: number;
  readonly window: WindowFigures | undefined;
  readonly fleet: FleetFigures | undefined;
  /** firmware-sim's CPU over the window, % of its core: near 100 would mean the load, not the broker, set the pace. */
  readonly loadCpuPercent: number | undefined;
  readonly error?: string;
}

/** One loaded phase: firmware-sim with `devices` devices against `broker`, warm-up, then the window. */
async function loadedPhase(broker: Broker, devices: number): Promise<PhaseResult> {
  const phase = `${devices.toLocaleString('en-US')} devices`;
  const reportFile = join(scratch, `fleet-${broker.name}-${devices}.json`);
  const fleet = startFleet(children, { core: LOAD_CORE, port: broker.port, devices, durationS: WARMUP_S + WINDOW_S + FLEET_TAIL_S, seed: SEED, reportFile });
  try {
    await sleep(WARMUP_S * 1000);
    const load0 = cpuSeconds(fleet.pid);
    const t0 = performance.now();
    const window = await sampleWindow(broker.pid, BROKER_CORE, WINDOW_S, broker.alive);
    const loadCpuPercent = (100 * (cpuSeconds(fleet.pid) - load0)) / ((performance.now() - t0) / 1000);
    const figures = await fleet.done;
    if (figures.acknowledged < figures.generated) note(`${phase}, ${broker.name}: ${figures.generated - figures.acknowledged} of ${figures.generated} readings were not acknowledged`);
    return { phase, broker: broker.name, devices, window, fleet: figures, loadCpuPercent };
  } catch (error) {
    const message = `${phase}, ${broker.name}: ${(error as Error).message.split('\n')[0]}`;
    fail(message);
    await fleet.done.catch(() => undefined);
    return { phase, broker: broker.name, devices, window: undefined, fleet: undefined, loadCpuPercent: undefined, error: message };
  }
}

async function steadyPhases(): Promise<{ phases: PhaseResult[]; peakRssBytes: Partial<Record<Broker['name'], number>> }> {
  console.log(`steady: idle ${IDLE_S} s, then ${SIZES.join(' and ')} devices at 1 reading/s (QoS 1), warm-up ${WARMUP_S} s, window ${WINDOW_S} s each`);
  const dataDir = join(scratch, 'steady-data');
  const gateway = await startPinnedGateway(children, { core: BROKER_CORE, heapMb: HEAP_MB, dataDir });
  let mosquitto: BrokerProcess | undefined;
  try {
    mosquitto = await startMosquitto();
    children.adoptStop(mosquitto.stop);
    pinProcess(mosquitto.pid, BROKER_CORE);
    const brokers: Broker[] = [
      { name: 'edgelog', pid: gateway.pid, port: gateway.mqttPort, alive: gateway.alive, stop: gateway.stop },
      { name: 'mosquitto', pid: mosquitto.pid, port: mosquitto.port, alive: () => isRunning(mosquitto!.pid), stop: mosquitto.stop },
    ];
    const phases: PhaseResult[] = [];
    // Idle: both at once, nothing connected.
    const idle = await Promise.all(brokers.map((b) => sampleWindow(b.pid, BROKER_CORE, IDLE_S, b.alive).catch((error: Error) => error)));
    brokers.forEach((b, i) => {
      const w = idle[i];
      if (w instanceof Error) fail(`idle, ${b.name}: ${w.message}`);
      phases.push({ phase: 'idle', broker: b.name, devices: 0, window: w instanceof Error ? undefined : w, fleet: undefined, loadCpuPercent: undefined });
    });
    progress(phases.slice(-2));
    // The brokers take turns at each fleet size, so a noisy spell of the shared machine hits one phase, not one broker.
    for (const devices of SIZES) {
      for (const broker of brokers) {
        phases.push(await loadedPhase(broker, devices));
        progress(phases.slice(-1));
      }
    }
    const peakRssBytes: Partial<Record<Broker['name'], number>> = {};
    for (const b of brokers) if (b.alive()) peakRssBytes[b.name] = memoryBytes(b.pid).peakRssBytes;
    return { phases, peakRssBytes };
  } finally {
    await gateway.stop();
    if (mosquitto !== undefined) {
      await mosquitto.stop();
      mosquitto.cleanup();
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function progress(phases: PhaseResult[]): void {
  for (const p of phases) {
    const w = p.window;
    if (w === undefined) continue;
    const acked = p.fleet === undefined ? '' : `  ${Math.round(p.fleet.ackedPerSec)} acked/s (p99 ${p.fleet.p99Ms.toFixed(1)} ms)`;
    console.log(
      `  ${p.phase.padEnd(13)} ${p.broker.padEnd(9)} RSS mean ${mib(w.rssMeanBytes).toFixed(1)} MiB, max ${mib(w.rssMaxBytes).toFixed(1)} MiB  CPU ${w.cpuPercent.toFixed(1)} %${acked}  other on core ${w.otherOnCorePercent.toFixed(1)} %`,
    );
  }
}

interface StartRun {
  readonly gateway: { startedLineMs: number; healthzMs: number | null; rssAtStartBytes: number };
  readonly rawLmdb: { readyMs: number; rssBytes: number };
  readonly bareNode: { readyMs: number; rssBytes: number };
}

async function startupRuns(): Promise<{ runs: StartRun[]; prefillMs: number; logBytes: number }> {
  const dataDir = join(scratch, 'startup-data');
  mkdirSync(dataDir, { recursive: true });
  console.log(`\nstart-up: prefilling ${RECORDS.toLocaleString('en-US')} records in ${dataDir} (${PREFILL_TOPICS.length} topics, 1,000 device keys)`);
  const { elapsedMs: prefillMs } = await prefillLog(children, {
    dir: dataDir,
    records: RECORDS,
    topics: PREFILL_TOPICS,
    onProgress: (records, elapsedMs) => console.log(`  prefill: ${records.toLocaleString('en-US')} records in ${(elapsedMs / 1000).toFixed(0)} s`),
  });
  const logBytes = statSync(join(dataDir, 'log', 'data.mdb')).blocks * 512;
  console.log(`  prefill done: ${(prefillMs / 1000).toFixed(0)} s, ${(logBytes / 1e9).toFixed(2)} GB on disk`);
  const runs: StartRun[] = [];
  for (let run = 0; run < RUNS; run++) {
    let gateway: PinnedGateway | undefined;
    try {
      gateway = await startPinnedGateway(children, { core: BROKER_CORE, heapMb: HEAP_MB, dataDir });
    } finally {
      await gateway?.stop();
    }
    const rawLmdb = await timeReference(children, { core: BROKER_CORE, heapMb: HEAP_MB, args: rawLmdbArgs(dataDir, PREFILL_TOPICS[0], DEFAULT_MAX_TOPICS + 4, MAX_OFFSET) });
    const bareNode = await timeReference(children, { core: BROKER_CORE, heapMb: HEAP_MB, args: BARE_NODE_ARGS });
    const g = { startedLineMs: gateway.startedLineMs, healthzMs: gateway.healthzMs, rssAtStartBytes: gateway.rssAtStartBytes };
    runs.push({ gateway: g, rawLmdb, bareNode });
    console.log(
      `  run ${run + 1}: gateway started line ${g.startedLineMs.toFixed(0)} ms, /healthz ${g.healthzMs === null ? 'n/a' : `${g.healthzMs.toFixed(0)} ms`}, RSS ${mib(g.rssAtStartBytes).toFixed(1)} MiB; ` +
        `raw LMDB open ${rawLmdb.readyMs.toFixed(0)} ms; bare node ${bareNode.readyMs.toFixed(0)} ms`,
    );
  }
  rmSync(dataDir, { recursive: true, force: true });
  return { runs, prefillMs, logBytes };
}

function steadyRows(phases: PhaseResult[]): Row[] {
  return phases.map((p) => {
    const w = p.window;
    const dash = p.error === undefined ? '-' : 'failed';
    return {
      phase: p.phase,
      broker: p.broker,
      'acked/s': p.fleet === undefined ? '-' : Math.round(p.fleet.ackedPerSec),
      'RSS mean MiB': w === undefined ? dash : mib(w.rssMeanBytes),
      'RSS max MiB': w === undefined ? dash : mib(w.rssMaxBytes),
      'of it file-mapped MiB': w === undefined ? dash : mib(w.rssFileBytes),
      'CPU % of a core': w === undefined ? dash : w.cpuPercent,
      'ack p99 ms': p.fleet === undefined ? '-' : p.fleet.p99Ms,
      'load CPU %': p.loadCpuPercent === undefined ? '-' : p.loadCpuPercent,
      'other on core %': w === undefined ? dash : w.otherOnCorePercent,
    };
  });
}

function startupRows(runs: StartRun[]): Row[] {
  const ms = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
  const healthz = runs.map((r) => r.gateway.healthzMs).filter((x): x is number => x !== null);
  const rows: Row[] = [
    { case: "edgelog start: spawn to 'edgelog gateway started'", 'median ms': median(runs.map((r) => r.gateway.startedLineMs)), 'runs ms': ms(runs.map((r) => r.gateway.startedLineMs)), 'RSS then MiB': mib(median(runs.map((r) => r.gateway.rssAtStartBytes))) },
  ];
  if (healthz.length === runs.length) rows.push({ case: 'edgelog start: spawn to GET /healthz 200', 'median ms': median(healthz), 'runs ms': ms(healthz), 'RSS then MiB': '-' });
  rows.push(
    { case: 'reference: raw LMDB open + read last record', 'median ms': median(runs.map((r) => r.rawLmdb.readyMs)), 'runs ms': ms(runs.map((r) => r.rawLmdb.readyMs)), 'RSS then MiB': mib(median(runs.map((r) => r.rawLmdb.rssBytes))) },
    { case: 'reference: bare node boot', 'median ms': median(runs.map((r) => r.bareNode.readyMs)), 'runs ms': ms(runs.map((r) => r.bareNode.readyMs)), 'RSS then MiB': mib(median(runs.map((r) => r.bareNode.rssBytes))) },
  );
  return rows;
}

async function main(): Promise<void> {
  console.log('building (npm run build)');
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  console.log(`gateway and Mosquitto pinned to core ${BROKER_CORE}, firmware-sim to core ${LOAD_CORE}; Node heap cap ${HEAP_MB} MB`);
  note('Mosquitto runs with persistence off and never fsyncs before a PUBACK; the gateway fsyncs every group commit before its PUBACKs (DESIGN "Contracts")');
  note('an x86_64 core of a shared 2-core machine, pinned with taskset and heap-capped, stands in for a small Pi: not a measurement on a Pi');
  const steady = await steadyPhases();
  printTable(`Steady state (1 reading/s per device, QoS 1; window ${WINDOW_S} s after ${WARMUP_S} s warm-up; broker on core ${BROKER_CORE}, heap cap ${HEAP_MB} MB)`, steadyRows(steady.phases));
  const peak = Object.entries(steady.peakRssBytes).map(([name, bytes]) => `${name} ${mib(bytes).toFixed(1)} MiB`).join(', ');
  console.log(`peak RSS over the whole run (VmHWM): ${peak}`);
  const atMost = steady.phases.find((p) => p.broker === 'edgelog' && p.devices === Math.max(...SIZES));
  if (atMost?.window !== undefined) {
    const met = atMost.window.rssMaxBytes < AIM_RSS_BYTES;
    note(`aim < ${mib(AIM_RSS_BYTES)} MiB RSS at ${atMost.devices.toLocaleString('en-US')} devices: ${met ? 'met' : 'NOT met'} (max ${mib(atMost.window.rssMaxBytes).toFixed(1)} MiB, mean ${mib(atMost.window.rssMeanBytes).toFixed(1)} MiB)`);
  }
  const startup = await startupRuns();
  if (startup.runs.some((r) => r.gateway.healthzMs === null)) note("GET /healthz answered 404 (the route is not there yet): start-up is timed to the 'edgelog gateway started' line only");
  note('start-up runs open a log just written, so its pages are in the page cache (a warm start); a cold boot from an SD card reads them from the card');
  printTable(`Start-up with a ${RECORDS.toLocaleString('en-US')}-record log (${(startup.logBytes / 1e9).toFixed(2)} GB), pinned to core ${BROKER_CORE}, heap cap ${HEAP_MB} MB, median of ${RUNS}`, startupRows(startup.runs));
  const path = writeResults('footprint', {
    settings: { windowS: WINDOW_S, warmupS: WARMUP_S, idleS: IDLE_S, devices: SIZES, ratePerDevicePerSecond: 1, qos: 1, heapCapMb: HEAP_MB, brokerCore: BROKER_CORE, loadCore: LOAD_CORE, records: RECORDS, runs: RUNS, seed: SEED },
    steady: steady.phases,
    peakRssBytes: steady.peakRssBytes,
    startup: { records: RECORDS, logBytes: startup.logBytes, prefillMs: startup.prefillMs, runs: startup.runs },
    notes,
    failures,
  });
  console.log(`\nresults written to ${path}`);
  if (failures.length > 0) process.exitCode = 1;
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench:footprint: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
} finally {
  await children.stopAll();
}
