/**
 * Bridge benchmark (not a test), issue 6: backlog drain. A log holds N records (default 1,000,000)
 * of topic `telemetry` while the link to the central side is down (a TCP proxy that refuses);
 * the link is restored and the time until the central side holds all N is measured, for:
 *
 *   mqtt         the MQTT bridge (bridges/mqtt, MQTT 5, one record per message, config defaults)
 *                into Mosquitto; a QoS 1 subscriber on that Mosquitto counts the records;
 *   mqtt-batch   the same with batch {records: 100, gzip: false} (metered-link mode): NDJSON
 *                messages of 100 records, counted line by line;
 *   nats         the NATS bridge into JetStream (one nats-server, file store): the stream's
 *                message count, polled with stream info every 200 ms (so ±0.2 s);
 *   mosquitto    the reference in the same run: Mosquitto A bridging `telemetry/# out 1` with a
 *                persistent session (cleansession false) to Mosquitto B through the same proxy;
 *                N QoS 1 messages of the same bytes are published into A while the link is down,
 *                A's store is checked to hold them ($SYS), then the link is restored and a QoS 1
 *                subscriber on B counts them.
 *
 * Every bridge of ours runs in a process of its own (bench/lib/bridge-worker.ts), so "bridge CPU"
 * is that process (log reads, encoding, the client) and, for the reference, Mosquitto A; "central
 * CPU" is the receiving broker. The proxy and the counting subscriber run in this process; they
 * cost the same for every row. Mosquitto A keeps 1,000 messages in flight (max_inflight_messages),
 * the window of our bridges' default maxInFlight. Drain time runs from restore() to the last
 * record, so it includes the reconnect: our bridge's first backoff after a refused connect (up to
 * 0.5 s), Mosquitto's restart_timeout. The "first s" column shows that part, and "records/s from
 * first" is the rate from the first record upstream to the last (for NATS to within a poll).
 * Debian's Mosquitto 2.0.11 took 5-7 s between attempts with the constant form `restart_timeout 1`
 * (measured here), ~2 s with the 2.0 form `restart_timeout 1 1` (base and cap of its backoff),
 * which this benchmark uses.
 * The peak ingest rate the aim is stated against comes from bench/results/ingest.json.
 *
 *   npm run bench:bridge [-- --records N --paths mqtt,mqtt-batch,nats,mosquitto]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import { CommitLog } from '../src/index.js';
import { createTcpProxy, type TcpProxy } from '../test/helpers/tcp-proxy-core.js';
import { BridgeProcess, type BridgeCounters, type BridgeSpec } from './lib/bridge-process.js';
import { startMosquitto } from './lib/brokers.js';
import { startNatsServer } from './lib/nats-server.js';
import { machineBusySeconds } from './lib/proc-stats.js';
import { QosOnePublisher, RecordCounter } from './lib/raw-mqtt.js';
import { printTable, writeResults, type Row } from './lib/report.js';

const PATHS = ['mqtt', 'mqtt-batch', 'nats', 'mosquitto'] as const;
type PathName = (typeof PATHS)[number];

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    paths: { type: 'string', default: PATHS.join(',') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(`npm run bench:bridge [-- options]
  --records N    records in the backlog (default 1,000,000)
  --paths LIST   rows to run, of ${PATHS.join(', ')} (default all)
`);
  process.exit(0);
}
const RECORDS = Number(args.records);
if (!Number.isInteger(RECORDS) || RECORDS < 1) {
  process.stderr.write(`bench:bridge: --records must be a positive whole number, got '${args.records}'\n`);
  process.exit(2);
}
const SELECTED = args.paths.split(',').map((p) => p.trim());
for (const p of SELECTED) {
  if (!(PATHS as readonly string[]).includes(p)) {
    process.stderr.write(`bench:bridge: --paths takes ${PATHS.join(', ')}; '${p}' is not one of them\n`);
    process.exit(2);
  }
}

const TOPIC = 'telemetry';
const PARTITIONS = 4;
const DEVICES = 1000;
const VALUE_BYTES = 100;
/** The log's default maxBatchRecords: one append call, one group commit. */
const FILL_BATCH_RECORDS = 10_000;
const GATEWAY_ID = 'bench-gw';
const STREAM = 'EDGELOG_BENCH';
const BATCH = { records: 100, gzip: false } as const;
/** QoS 1 publishes in flight into Mosquitto A: what one busy publisher keeps, as bench:ingest's peak load. */
const PUBLISH_WINDOW = 1000;
/** Mosquitto A's outgoing window to B: the same as our bridges' DEFAULT_MAX_IN_FLIGHT. */
const REFERENCE_INFLIGHT = 1000;
/** Sample times stay fixed, so every run sends the same bytes. */
const BASE_TIMESTAMP_MS = 1_700_000_000_000;
/** A drain slower than 2,000 records/s is broken, not slow: fail it rather than wait for ever. */
const DRAIN_TIMEOUT_MS = 60_000 + RECORDS / 2;
/** No record arriving for this long means the path lost some: fail with the count. */
const STALL_MS = 60_000;
/** Mosquitto publishes $SYS every sys_interval (1 s here); its store count is read within this. */
const SYS_TIMEOUT_MS = 15_000;
const MQTT_POLL_MS = 50;
/** JetStream's err_code for "stream not found". */
const ERR_STREAM_NOT_FOUND = 10059;
const NATS_POLL_MS = 200;
/** bench:ingest's mark for a run the machine's other work may have distorted. */
const OTHER_CORES_TAINTED = 0.25;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function key(i: number): string {
  return `device-${String(i % DEVICES).padStart(4, '0')}`;
}

/** A JSON reading of exactly VALUE_BYTES bytes, the same for every path. */
function value(i: number): Buffer {
  // Two decimals through toFixed: 20 + 26 / 100 would print as 20.259999999999998.
  const reading = { device: key(i), seq: i, ts: BASE_TIMESTAMP_MS + i * 10, temp: Number((20 + (i % 997) / 100).toFixed(2)), hum: Number((40 + (i % 613) / 100).toFixed(2)) };
  const text = JSON.stringify(reading);
  // `,"p":""` is 7 bytes; the padding fills the rest.
  return Buffer.from(JSON.stringify({ ...reading, p: 'x'.repeat(Math.max(0, VALUE_BYTES - text.length - 7)) }));
}

/** The latest durable peak ingest rate bench:ingest measured: its best 'edgelog peak/s' over fleet sizes. */
function readPeakIngest(): { perSec: number; field: string; at: string } | undefined {
  try {
    const path = join(import.meta.dirname, 'results', 'ingest.json');
    const results = JSON.parse(readFileSync(path, 'utf8')) as { at?: string; summary?: Array<Record<string, unknown>> };
    let best: { perSec: number; field: string } | undefined;
    for (const row of results.summary ?? []) {
      const perSec = row['edgelog peak/s'];
      if (typeof perSec === 'number' && perSec > (best?.perSec ?? 0)) best = { perSec, field: `summary[devices=${String(row['devices'])}]["edgelog peak/s"]` };
    }
    return best === undefined ? undefined : { ...best, at: results.at ?? 'unknown' };
  } catch {
    return undefined;
  }
}

async function fillLog(dir: string): Promise<{ seconds: number; perSec: number }> {
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  try {
    await log.createTopic(TOPIC, { partitions: PARTITIONS });
    const t0 = performance.now();
    for (let first = 0; first < RECORDS; first += FILL_BATCH_RECORDS) {
      const records = Array.from({ length: Math.min(FILL_BATCH_RECORDS, RECORDS - first) }, (_, j) => ({ key: key(first + j), value: value(first + j) }));
      await log.append(TOPIC, records);
    }
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, perSec: RECORDS / seconds };
  } finally {
    await log.close();
  }
}

/** Samples `count` until it reaches `target`; bounded by DRAIN_TIMEOUT_MS and by STALL_MS without progress. */
async function waitForCount(what: string, intervalMs: number, count: () => number | Promise<number>): Promise<{ count: number; atMs: number; firstAtMs: number }> {
  const startedMs = performance.now();
  let last = -1;
  let movedAtMs = startedMs;
  let firstAtMs: number | undefined;
  for (;;) {
    const n = await count();
    const now = performance.now();
    if (n > 0) firstAtMs ??= now;
    if (n >= RECORDS) return { count: n, atMs: now, firstAtMs: firstAtMs ?? now };
    if (n !== last) {
      last = n;
      movedAtMs = now;
    }
    if (now - movedAtMs > STALL_MS) throw new Error(`${what}: ${n.toLocaleString('en-US')} of ${RECORDS.toLocaleString('en-US')} records, none more for ${STALL_MS / 1000} s`);
    if (now - startedMs > DRAIN_TIMEOUT_MS) throw new Error(`${what}: ${n.toLocaleString('en-US')} of ${RECORDS.toLocaleString('en-US')} records within ${DRAIN_TIMEOUT_MS / 1000} s`);
    await sleep(intervalMs);
  }
}

interface PathResult {
  path: string;
  drainS: number;
  /** From restore() to the first record upstream: the reconnect. */
  firstS: number;
  perSec: number;
  /** Records per second from the first record upstream to the last: the transfer without the reconnect. */
  perSecFromFirst: number;
  bridgeCpuUsPerRecord: number;
  centralCpuUsPerRecord: number;
  benchCpuUsPerRecord: number;
  /** Cores busy with work other than the measured processes and this one during the drain. */
  otherCores: number;
  bridgePeakRssMiB: number;
  /** What the central side held once the bridge had stopped (more than N: duplicates). */
  delivered: number;
  bridge: BridgeCounters | null;
  reference?: { publishS: number; publishPerSec: number; queuedMessages: number };
}

/** CPU of the bridge side, the central side and this process, and the machine, over the drain. */
function cpuMeter(bridgeCpu: () => number, centralCpu: () => number): () => Pick<PathResult, 'bridgeCpuUsPerRecord' | 'centralCpuUsPerRecord' | 'benchCpuUsPerRecord' | 'otherCores'> {
  const bridge0 = bridgeCpu();
  const central0 = centralCpu();
  const self0 = process.cpuUsage();
  const machine0 = machineBusySeconds();
  const t0 = performance.now();
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const bridge = bridgeCpu() - bridge0;
    const central = centralCpu() - central0;
    const selfUsage = process.cpuUsage(self0);
    const self = (selfUsage.user + selfUsage.system) / 1e6;
    const other = machineBusySeconds() - machine0 - bridge - central - self;
    return { bridgeCpuUsPerRecord: (bridge * 1e6) / RECORDS, centralCpuUsPerRecord: (central * 1e6) / RECORDS, benchCpuUsPerRecord: (self * 1e6) / RECORDS, otherCores: Math.max(0, other / seconds) };
  };
}

function rates(restoredAtMs: number, firstAtMs: number, doneAtMs: number): Pick<PathResult, 'drainS' | 'firstS' | 'perSec' | 'perSecFromFirst'> {
  const drainS = (doneAtMs - restoredAtMs) / 1000;
  const firstS = (firstAtMs - restoredAtMs) / 1000;
  return { drainS, firstS, perSec: RECORDS / drainS, perSecFromFirst: RECORDS / Math.max(drainS - firstS, 1e-3) };
}

/**
 * Starts our bridge with the link down, restores the link, waits until `upstreamCount` reaches N.
 * `exact` gives the first and the N-th record's arrival when the central side knows them to the
 * packet (the MQTT counter); otherwise the poll's times count.
 */
async function drainThroughBridge(
  proxy: TcpProxy,
  spec: BridgeSpec,
  centralCpu: () => number,
  upstreamCount: () => number | Promise<number>,
  pollMs: number,
  exact: { firstAtMs: () => number | undefined; doneAtMs: () => number | undefined },
): Promise<Omit<PathResult, 'path' | 'delivered'>> {
  const started = await BridgeProcess.start(spec);
  const worker = started.process;
  try {
    if (started.logRecords !== RECORDS || started.counters.backlogRecords !== RECORDS) {
      throw new Error(`the bridge sees ${started.logRecords} records and a backlog of ${started.counters.backlogRecords}, not ${RECORDS}`);
    }
    if ((await upstreamCount()) !== 0) throw new Error('records reached the central side while the link was down');
    const meter = cpuMeter(() => worker.cpuSeconds(), centralCpu);
    const t0 = performance.now();
    proxy.restore();
    const done = await waitForCount(`${spec.name} drain`, pollMs, upstreamCount);
    const cpu = meter();
    const peakRss = worker.memory().peakRssBytes;
    const bridge = await worker.stop();
    if (bridge.reconnects > 0 || bridge.resentRecords > 0) {
      console.log(`  note: ${spec.name} lost the link ${bridge.reconnects} time(s) and resent ${bridge.resentRecords} records; the count may include duplicates:\n${worker.output}`);
    }
    return { ...rates(t0, exact.firstAtMs() ?? done.firstAtMs, exact.doneAtMs() ?? done.atMs), ...cpu, bridgePeakRssMiB: peakRss / 2 ** 20, bridge };
  } finally {
    worker.kill();
  }
}

async function mqttRow(path: 'mqtt' | 'mqtt-batch', dataDir: string): Promise<PathResult> {
  const batch = path === 'mqtt' ? null : BATCH;
  // Mosquitto's CONNACK offers MQTT 5 clients a Receive Maximum of max_inflight_messages (20 by
  // default), which would cap our window at 20 while its own 3.1.1 bridge (no such limit) keeps
  // 1,000 in flight: give both the same window.
  const central = await startMosquitto([`max_inflight_messages ${REFERENCE_INFLIGHT}`]);
  let proxy: TcpProxy | undefined;
  let counter: RecordCounter | undefined;
  try {
    proxy = await createTcpProxy(central.port);
    proxy.refuse();
    const c = await RecordCounter.connect(central.port, `bench-central-${path}`, 'gateways/#', { ndjson: batch !== null });
    counter = c;
    c.expect(RECORDS);
    const spec: BridgeSpec = { dataDir, name: `bench-${path}`, gatewayId: GATEWAY_ID, topic: TOPIC, kind: 'mqtt', url: `mqtt://127.0.0.1:${proxy.port}`, batch, stream: STREAM };
    const result = await drainThroughBridge(proxy, spec, () => central.cpuSeconds(), () => c.records, MQTT_POLL_MS, { firstAtMs: () => c.firstAtMs, doneAtMs: () => c.reachedAtMs });
    return { path, ...result, delivered: c.records };
  } finally {
    counter?.close();
    await proxy?.close();
    await central.stop();
    central.cleanup();
  }
}

async function natsRow(dataDir: string): Promise<PathResult> {
  const server = await startNatsServer();
  let proxy: TcpProxy | undefined;
  const nc = await natsConnect({ servers: server.url, reconnect: false }).catch(async (error: unknown) => {
    await server.stop();
    server.cleanup();
    throw error;
  });
  try {
    const jsm = await jetstreamManager(nc);
    const stored = async (): Promise<number> => {
      try {
        return (await jsm.streams.info(STREAM)).state.messages;
      } catch (error) {
        // Until the bridge's first connect creates the stream.
        if (error instanceof JetStreamApiError && error.apiError().err_code === ERR_STREAM_NOT_FOUND) return 0;
        throw error;
      }
    };
    proxy = await createTcpProxy(server.port);
    proxy.refuse();
    const spec: BridgeSpec = { dataDir, name: 'bench-nats', gatewayId: GATEWAY_ID, topic: TOPIC, kind: 'nats', url: `nats://127.0.0.1:${proxy.port}`, batch: null, stream: STREAM };
    const result = await drainThroughBridge(proxy, spec, () => server.cpuSeconds(), stored, NATS_POLL_MS, { firstAtMs: () => undefined, doneAtMs: () => undefined });
    return { path: 'nats', ...result, delivered: await stored() };
  } finally {
    await nc.close().catch(() => undefined);
    await proxy?.close();
    await server.stop();
    server.cleanup();
  }
}

/** Messages in Mosquitto's store ($SYS/broker/store/messages/count, published every sys_interval). */
async function storeCounter(port: number): Promise<{ latest: () => number | undefined; close: () => Promise<void> }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'bench-sys', clean: true, reconnectPeriod: 0 });
  let latest: number | undefined;
  client.on('message', (_topic, payload) => (latest = Number(payload.toString())));
  await client.subscribeAsync('$SYS/broker/store/messages/count', { qos: 0 });
  return { latest: () => latest, close: () => client.endAsync() };
}

async function waitForStore(store: { latest: () => number | undefined }, atLeast: number): Promise<number> {
  const deadline = Date.now() + SYS_TIMEOUT_MS;
  // Bounded by the deadline; $SYS comes every second.
  for (;;) {
    const n = store.latest();
    if (n !== undefined && n >= atLeast) return n;
    if (Date.now() > deadline) throw new Error(`Mosquitto A's store holds ${n ?? 'no count'} messages, not ${atLeast} or more, after ${SYS_TIMEOUT_MS / 1000} s: it did not queue the messages for its bridge`);
    await sleep(100);
  }
}

async function mosquittoRow(): Promise<PathResult> {
  const central = await startMosquitto();
  let proxy: TcpProxy | undefined;
  let counter: RecordCounter | undefined;
  let edge: Awaited<ReturnType<typeof startMosquitto>> | undefined;
  try {
    proxy = await createTcpProxy(central.port);
    proxy.refuse();
    const c = await RecordCounter.connect(central.port, 'bench-central-mosquitto', `${TOPIC}/#`, { ndjson: false });
    counter = c;
    c.expect(RECORDS);
    edge = await startMosquitto([
      'sys_interval 1',
      `max_inflight_messages ${REFERENCE_INFLIGHT}`,
      'connection bench-reference',
      `address 127.0.0.1:${proxy.port}`,
      `topic ${TOPIC}/# out 1`,
      'cleansession false',
      // The 2.0 form (backoff base and cap): the constant form waited 5-7 s between attempts here.
      'restart_timeout 1 1',
      'notifications false',
    ]);
    const a = edge;
    const store = await storeCounter(a.port);
    let publishS: number;
    let queuedMessages: number;
    try {
      const before = await waitForStore(store, 0);
      const publisher = await QosOnePublisher.connect(a.port, 'bench-publisher');
      const t0 = performance.now();
      try {
        await publisher.publishAll(RECORDS, (i) => ({ topic: `${TOPIC}/${key(i)}`, payload: value(i) }), PUBLISH_WINDOW, DRAIN_TIMEOUT_MS);
      } finally {
        publisher.close();
      }
      publishS = (performance.now() - t0) / 1000;
      queuedMessages = (await waitForStore(store, before + RECORDS)) - before;
    } finally {
      await store.close();
    }
    console.log(`  mosquitto A: ${RECORDS.toLocaleString('en-US')} QoS 1 publishes acked in ${publishS.toFixed(1)} s; its store holds ${queuedMessages.toLocaleString('en-US')} more messages`);
    if (c.records !== 0) throw new Error('records reached Mosquitto B while the link was down');
    const meter = cpuMeter(() => a.cpuSeconds(), () => central.cpuSeconds());
    const t0 = performance.now();
    proxy.restore();
    const done = await waitForCount('mosquitto bridge drain', MQTT_POLL_MS, () => c.records);
    const cpu = meter();
    return {
      path: 'mosquitto',
      ...rates(t0, c.firstAtMs ?? done.firstAtMs, c.reachedAtMs ?? done.atMs),
      ...cpu,
      bridgePeakRssMiB: a.memory().peakRssBytes / 2 ** 20,
      delivered: c.records,
      bridge: null,
      reference: { publishS, publishPerSec: RECORDS / publishS, queuedMessages },
    };
  } finally {
    counter?.close();
    await proxy?.close();
    await edge?.stop();
    edge?.cleanup();
    await central.stop();
    central.cleanup();
  }
}

const LABELS: Record<PathName, string> = {
  mqtt: 'edgelog MQTT bridge → Mosquitto',
  'mqtt-batch': 'edgelog MQTT bridge, batch 100 → Mosquitto',
  nats: 'edgelog NATS bridge → JetStream',
  mosquitto: 'reference: Mosquitto bridge → Mosquitto',
};

function hourOfflineMin(perSec: number, peak: number): number {
  return (peak * 3600) / perSec / 60;
}

async function main(): Promise<void> {
  const peak = readPeakIngest();
  console.log(`bench:bridge — ${RECORDS.toLocaleString('en-US')} records of ${VALUE_BYTES} bytes, topic '${TOPIC}' with ${PARTITIONS} partitions, keys of ${DEVICES} devices; paths ${SELECTED.join(', ')}`);
  const scratch = mkdtempSync(join(tmpdir(), 'edgelog-bench-bridge-'));
  const dataDir = join(scratch, 'log');
  const rows: PathResult[] = [];
  const failures: Array<{ path: string; error: string }> = [];
  let fill: { seconds: number; perSec: number };
  try {
    fill = await fillLog(dataDir);
    console.log(`fill: ${RECORDS.toLocaleString('en-US')} records appended in ${fill.seconds.toFixed(1)} s (${Math.round(fill.perSec).toLocaleString('en-US')}/s, ${FILL_BATCH_RECORDS.toLocaleString('en-US')} per append)`);
    for (const path of SELECTED as PathName[]) {
      try {
        const row = path === 'mqtt' || path === 'mqtt-batch' ? await mqttRow(path, dataDir) : path === 'nats' ? await natsRow(dataDir) : await mosquittoRow();
        rows.push(row);
        console.log(`${path}: ${RECORDS.toLocaleString('en-US')} records upstream in ${row.drainS.toFixed(2)} s (${Math.round(row.perSec).toLocaleString('en-US')}/s; first after ${row.firstS.toFixed(2)} s)`);
      } catch (error) {
        failures.push({ path, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
        console.error(`${path}: FAILED: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  const reference = rows.find((r) => r.path === 'mosquitto');
  const table: Row[] = rows.map((r) => ({
    path: LABELS[r.path as PathName],
    records: RECORDS,
    'drain s': r.drainS,
    'first s': r.firstS,
    'records/s': r.perSec,
    'records/s from first': r.perSecFromFirst,
    'vs Mosquitto bridge': reference === undefined ? '-' : r.perSec / reference.perSec,
    'vs peak ingest': peak === undefined ? '-' : r.perSec / peak.perSec,
    '1 h offline drains in min': peak === undefined ? '-' : hourOfflineMin(r.perSec, peak.perSec),
    'bridge CPU us/rec': r.bridgeCpuUsPerRecord,
    'central CPU us/rec': r.centralCpuUsPerRecord,
  }));
  for (const f of failures) table.push({ path: LABELS[f.path as PathName], records: RECORDS, 'drain s': 'failed' });
  printTable('Backlog drain after the link is restored', table);
  console.log(
    peak === undefined
      ? '\npeak ingest: no bench/results/ingest.json with summary["edgelog peak/s"]: run npm run bench:ingest for the "vs peak ingest" columns'
      : `\npeak ingest: ${Math.round(peak.perSec).toLocaleString('en-US')} records/s, bench/results/ingest.json ${peak.field}, measured ${peak.at}`,
  );
  if (reference?.reference !== undefined) {
    const ref = reference.reference;
    console.log(`reference: publishing ${RECORDS.toLocaleString('en-US')} QoS 1 messages into Mosquitto A with the link down took ${ref.publishS.toFixed(1)} s (${Math.round(ref.publishPerSec).toLocaleString('en-US')}/s); A's store held ${ref.queuedMessages.toLocaleString('en-US')} more messages before the link came back`);
  }
  for (const r of rows) {
    if (r.delivered !== RECORDS && r.path !== 'nats') console.log(`${r.path}: the central side got ${r.delivered.toLocaleString('en-US')} records for ${RECORDS.toLocaleString('en-US')} (duplicates after a resend)`);
    if (r.path === 'nats' && r.delivered !== RECORDS) console.log(`nats: the stream holds ${r.delivered.toLocaleString('en-US')} messages for ${RECORDS.toLocaleString('en-US')} records`);
    if (r.otherCores > OTHER_CORES_TAINTED) console.log(`${r.path}: other work kept ${r.otherCores.toFixed(2)} cores busy during the drain: the figures are tainted`);
  }
  for (const r of rows.filter((row) => row.path !== 'mosquitto')) {
    const vsRef = reference === undefined ? undefined : r.perSec / reference.perSec;
    const vsPeak = peak === undefined ? undefined : r.perSec / peak.perSec;
    const catchUp = vsPeak === undefined || vsPeak <= 1 ? undefined : 60 / (vsPeak - 1);
    console.log(
      `aim (${r.path}): faster than Mosquitto's bridge: ${vsRef === undefined ? 'not measured' : `${vsRef.toFixed(2)}× (${vsRef > 1 ? 'met' : 'NOT met'})`}; ≥ 5× peak ingest: ${vsPeak === undefined ? 'no peak' : `${vsPeak.toFixed(1)}× (${vsPeak >= 5 ? 'met' : 'NOT met'})`}` +
        (catchUp === undefined ? '' : `; with ingest going on at peak meanwhile, an hour's backlog is caught up in ${catchUp.toFixed(0)} min`),
    );
  }
  const out = writeResults('bridge', {
    settings: { records: RECORDS, topic: TOPIC, partitions: PARTITIONS, devices: DEVICES, valueBytes: VALUE_BYTES, paths: SELECTED, batch: BATCH, publishWindow: PUBLISH_WINDOW, referenceInflight: REFERENCE_INFLIGHT },
    fill,
    peakIngest: peak ?? null,
    rows: rows.map((r) => ({
      ...r,
      vsMosquittoBridge: reference === undefined ? null : r.perSec / reference.perSec,
      vsPeakIngest: peak === undefined ? null : r.perSec / peak.perSec,
      hourOfflineDrainMin: peak === undefined ? null : hourOfflineMin(r.perSec, peak.perSec),
    })),
    failures,
  });
  console.log(`\nwrote ${out}`);
  if (failures.length > 0) throw new Error(`${failures.length} path(s) failed: ${failures.map((f) => f.path).join(', ')}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench:bridge failed: ${(error as Error)?.stack ?? String(error)}`);
    process.exit(1);
  },
);
