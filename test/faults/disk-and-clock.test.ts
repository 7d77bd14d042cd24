import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { FleetReport } from '../../firmware-sim/index.js';
import { mulberry32 } from '../../firmware-sim/prng.js';
import { consumer, producer, type Consumer, type ConsumerWarning } from '../../src/client/index.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { checkSeeks, checkWindows, fillDisk, inspectLog, probePublish, type SeekAnswer } from './disk-clock-checks.js';
import { reportFigures } from './fault-report.js';
import {
  logLines,
  metricValue,
  PINO_ERROR_LEVEL,
  partitionsOf,
  READING_TOPICS,
  readiness,
  request,
  startGatewayChild,
  START_TIMEOUT_MS,
  startSim,
  stopAll,
  storedReadings,
  waitForStored,
  writeConfig,
  type GatewayChild,
} from './gateway-child.js';
import { auditLog, readAckLog } from './log-audit.js';

/** Fixed so a failure can be rerun; FAULTS_SEED picks other fault moments and readings. */
const SEED = Number(process.env['FAULTS_SEED'] ?? 20_260_808);
const CI = process.env['CI'] === 'true';
/** Modest load (the point is correctness under the fault): 300 QoS 1 readings/s from 30 connections. */
const DEVICES = 30;
const RATE_PER_DEVICE = 10;
/** firmware-sim's default window of unacknowledged publishes per device: the only ones a fault may duplicate. */
const INFLIGHT = 16;
/** 500 s of readings per device: no full-disk episode comes near it, so no reading is dropped unsent. */
const BUFFER_READINGS = 5000;
/** Readings stored after a fault before the next one: the devices are back and publishing. */
const RECORDS_BETWEEN_FAULTS = 300;

/** Counts the ack log's lines now (lines are flushed at least every second). */
function ackLines(file: string): number {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').length : 0;
}

/** Sleeps for a fault's seeded duration: the duration is the fault, not a wait for correctness. */
function hold(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The common figures: the ack log against what the audit found stored. */
function lossFigures(ackLogFile: string, reportFile: string, stored: Map<string, number>) {
  const acked = readAckLog(ackLogFile);
  const report = JSON.parse(readFileSync(reportFile, 'utf8')) as FleetReport;
  const lostIds = [...acked.keys()].filter((id) => !stored.has(id));
  const duplicated = [...stored.values()].reduce((sum, n) => sum + n - 1, 0);
  return { acked: acked.size, found: stored.size, lost: lostIds.length, duplicated, report, lostIds, ackLines: [...acked.values()] };
}

/** Nothing acknowledged is missing, the ack log is complete, and no device dropped a reading unsent. */
function expectNoLoss(figures: ReturnType<typeof lossFigures>): void {
  expect(figures.lostIds.slice(0, 20), `${figures.lost} acknowledged readings are missing`).toEqual([]);
  expect(figures.ackLines.every((n) => n === 1), 'one ack-log line per acknowledged reading').toBe(true);
  expect(figures.acked).toBe(figures.report.readings.acknowledged);
  expect(figures.report.readings.dropped, 'readings dropped unsent from a full device buffer').toBe(0);
}

// ---------------------------------------------------------------------------------------- disk

/** A small filesystem for the data folder: the log, its LMDB files, and room for a filler file. */
const FS_BYTES = 64 * 1024 * 1024;
/** The log's free-disk reserve (log.minFreeDiskBytes): appends stop below it. */
const MIN_FREE_DISK_BYTES = 8 * 1024 * 1024;
const FILLS = 3;
/** How long the disk stays full, seeded: long enough for every device to be refused and to retry. */
const FULL_MS_MIN = 3000;
const FULL_MS_MAX = 8000;
/** Mounting needs root, which CI has; elsewhere the scenario is skipped. */
const canMount = process.getuid?.() === 0;

function mountTmpfs(dir: string, bytes: number): void {
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  // By path, lazily: the gateway (killed by its own hook first, hooks run in reverse) may still hold files.
  onTestFinished(() => void execFileSync('umount', ['-l', dir]));
}

describe.skipIf(!canMount && !CI)('disk full', () => {
  it(`refuses readings while the data folder's disk is full (${FILLS} fills), loses nothing acknowledged, and resumes once it is freed`, async () => {
    expect(canMount, 'the disk-full scenario mounts a tmpfs: run it as root (CI does)').toBe(true);
    const startedAtMs = performance.now();
    const random = mulberry32(SEED);
    const work = tempDir('edgelog-faults-disk-');
    const fs = join(work, 'fs');
    mountTmpfs(fs, FS_BYTES);
    const dataDir = join(fs, 'data');
    const configFile = join(work, 'edgelog.yaml');
    writeConfig(configFile, {
      log: { minFreeDiskBytes: MIN_FREE_DISK_BYTES },
      streams: [{ name: 'faults-copy', from: 'climate', to: 'faults-climate-copy', pipeline: [{ filter: { field: 'seq', op: '>=', value: 0 } }] }],
    });
    const gateway = await startGatewayChild({ configFile, dataDir });
    const [ackLogFile, reportFile] = [join(work, 'acks.ndjson'), join(work, 'report.json')];
    const sim = startSim({ mqttPort: gateway.mqttPort, seed: SEED, devices: DEVICES, ratePerDevice: RATE_PER_DEVICE, bufferReadings: BUFFER_READINGS, ackLogFile, reportFile });
    await waitForStored(gateway, RECORDS_BETWEEN_FAULTS, 'devices to publish before the first fill');

    const refusedSeries = 'edgelog_ingest_refused_total{code="LOG_FULL"}';
    let recoveryMsMax = 0;
    let ackLinesAtLastFree = 0;
    let storedWhileFull = 0;
    const notReadyReasons = new Set<string>();
    let deviceSaw = '';
    const filler = join(fs, 'filler');
    for (let fill = 0; fill < FILLS; fill++) {
      // Every other fill leaves half the reserve (the log refuses at its reserve); the others fill
      // the disk to ENOSPC, so a commit may meet the full disk before the log's estimate does.
      const how = fill % 2 === 0 ? 'to ENOSPC' : 'below the reserve';
      fillDisk(filler, fs, fill % 2 === 0 ? 0 : MIN_FREE_DISK_BYTES / 2);
      await waitFor(async () => (await readiness(gateway)).status === 503, `/readyz to say not ready after fill ${fill + 1} (${how})`, 15_000);
      for (const reason of (await readiness(gateway)).reasons) notReadyReasons.add(reason);
      const storedAtFull = await storedReadings(gateway);
      if (fill === 0) deviceSaw = await probePublish(gateway.mqttPort, 'faults-probe', { seq: 0 });
      await hold(FULL_MS_MIN + random() * (FULL_MS_MAX - FULL_MS_MIN));
      expect((await readiness(gateway)).status, 'still not ready while the disk is full').toBe(503);
      storedWhileFull += (await storedReadings(gateway)) - storedAtFull;

      const storedAtFree = await storedReadings(gateway);
      ackLinesAtLastFree = ackLines(ackLogFile);
      rmSync(filler);
      const freedAtMs = performance.now();
      await waitFor(async () => (await storedReadings(gateway)) > storedAtFree, `a reading stored after freeing fill ${fill + 1}`, 30_000);
      recoveryMsMax = Math.max(recoveryMsMax, Math.round(performance.now() - freedAtMs));
      await waitFor(async () => (await readiness(gateway)).status === 200, `/readyz to say ready after freeing fill ${fill + 1}`, 15_000);
      await waitForStored(gateway, RECORDS_BETWEEN_FAULTS, `devices to publish after fill ${fill + 1}`, 30_000);
    }
    // The probe's reading, refused while full, is sent again now and stored: what a device does.
    expect(await probePublish(gateway.mqttPort, 'faults-probe', { seq: 0 })).toBe('PUBACK');
    const refusedWhileFull = await metricValue(gateway, refusedSeries);
    await stopAll(sim, gateway);
    const errorLines = logLines(gateway, (l) => Number(l['level']) >= PINO_ERROR_LEVEL);

    const audit = await auditLog(dataDir, READING_TOPICS);
    const figures = lossFigures(ackLogFile, reportFile, audit.stored);
    reportFigures({
      scenario: 'disk-full',
      seed: SEED,
      faults: FILLS,
      acked: figures.acked,
      found: figures.found,
      lost: figures.lost,
      duplicated: figures.duplicated,
      recoveryMsMax,
      elapsedS: Math.round((performance.now() - startedAtMs) / 1000),
      extra: { 'refused LOG_FULL': refusedWhileFull, 'stored while full': storedWhileFull, reconnects: figures.report.connections.connects - DEVICES, resent: figures.report.publishes.resent, 'device sees': deviceSaw },
    });
    expectNoLoss(figures);
    expect(audit.problems).toEqual([]);
    expect(errorLines, 'error lines the gateway logged').toEqual([]);
    // docs/ingest.md: "the log is full (LOG_FULL): connection closed, no PUBACK; the client retries".
    expect(deviceSaw).toBe('connection closed, no PUBACK');
    expect([...notReadyReasons].join('; ')).toMatch(/the log is full/);
    expect(refusedWhileFull, 'readings refused with LOG_FULL').toBeGreaterThan(0);
    expect(storedWhileFull, 'readings stored while the disk was full').toBe(0);
    expect(ackLines(ackLogFile) - ackLinesAtLastFree, 'readings acknowledged after the last free').toBeGreaterThan(RECORDS_BETWEEN_FAULTS);
    // A duplicate is a reading stored whose PUBACK the refusal's disconnect cut off: at most the in-flight windows per fill.
    expect(figures.duplicated).toBeLessThanOrEqual(FILLS * DEVICES * INFLIGHT);
    // The processor copies every climate reading and commits its input offsets with its output: full episodes change nothing of that.
    const committedInputs = [...(audit.committed.get('streams.faults-copy')?.values() ?? [])].reduce((sum, offset) => sum + offset, 0);
    expect(committedInputs).toBeGreaterThan(0);
    expect(audit.recordsByTopic.get('faults-climate-copy')).toBe(committedInputs);
  }, 200_000);
});

// ---------------------------------------------------------------------------------------- clock

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/**
 * The gateway's wall-clock offsets from the real time, in order; each change is one step, as NTP
 * makes them: back 2 h, forward again, back 10 min, forward a day, forward 30 more days (24 days
 * past the topics' 7-day retention), and back to the real time.
 */
const CLOCK_OFFSETS: ReadonlyArray<{ spec: string; ms: number }> = [
  { spec: '-2h', ms: -2 * HOUR_MS },
  { spec: '+0', ms: 0 },
  { spec: '-10m', ms: -10 * MINUTE_MS },
  { spec: '+1d', ms: DAY_MS },
  { spec: '+31d', ms: 31 * DAY_MS },
  { spec: '+0', ms: 0 },
];
/** Seeded time between steps: longer than two retention runs (every 2 s here), so retention sees every clock. */
const STEP_GAP_MS_MIN = 5000;
const STEP_GAP_MS_MAX = 9000;
/** Tumbling windows of the processors. */
const WINDOW_MS = 10_000;
/** The members' session timeout: heartbeats go every third of it, so a step lands between two of them. */
const SESSION_TIMEOUT_MS = 30_000;
/** A topic whose records expire quickly: retention must still delete what is really old. */
const SHORT_RETENTION_MS = 5000;

/** libfaketime's multi-threaded preload library (Debian package libfaketime), or undefined. */
function faketimeLibrary(): string | undefined {
  try {
    const listed = execFileSync('dpkg', ['-L', 'libfaketime'], { encoding: 'utf8' }).split('\n').find((p) => p.endsWith('/libfaketimeMT.so.1'));
    if (listed !== undefined && existsSync(listed)) return listed;
  } catch {
    // Not a Debian system, or the package is missing: try the usual paths.
  }
  return ['x86_64', 'aarch64', 'arm'].map((arch) => `/usr/lib/${arch}-linux-gnu${arch === 'arm' ? 'eabihf' : ''}/faketime/libfaketimeMT.so.1`).find(existsSync);
}
const FAKETIME = faketimeLibrary();

/** A group as /api/groups/{id} describes it. */
async function groupState(gateway: GatewayChild, group: string): Promise<{ generation: number; members: number }> {
  const { status, body } = await request<{ generation: number; members: unknown[] }>(gateway, `/api/groups/${group}`);
  if (status !== 200) throw new Error(`/api/groups/${group} answered ${status}: ${JSON.stringify(body)}`);
  return { generation: body.generation, members: body.members.length };
}

/** Reads a consumer to its end: the offsets it was given per partition must be dense (no skip). */
function drain(c: Consumer, gaps: string[]): Promise<unknown> {
  return (async () => {
    const next = new Map<string, number>();
    for await (const batch of c) {
      for (const r of batch.records) {
        const where = `${r.topic}/${r.partition}`;
        const expected = next.get(where) ?? r.offset;
        if (r.offset !== expected) gaps.push(`${where}: offset ${r.offset} after ${expected - 1}`);
        next.set(where, r.offset + 1);
      }
    }
    return null;
  })().catch((error: unknown) => error);
}

describe.skipIf(FAKETIME === undefined && !CI)('clock jumps', () => {
  it(`keeps every reading, its members and its retention through ${CLOCK_OFFSETS.length} wall-clock steps`, async () => {
    expect(FAKETIME, 'libfaketime (Debian package faketime) is needed for the clock scenario').toBeDefined();
    const startedAtMs = performance.now();
    const random = mulberry32(SEED);
    const work = tempDir('edgelog-faults-clock-');
    const dataDir = join(work, 'data');
    const clockFile = join(work, 'faketime');
    // libfaketime reads the file at every clock call: replace it whole (rename), never let it see a half-written one.
    const setClock = (spec: string) => {
      writeFileSync(`${clockFile}.next`, `${spec}\n`);
      renameSync(`${clockFile}.next`, clockFile);
    };
    setClock('+0');
    const configFile = join(work, 'edgelog.yaml');
    // Grace covers readings delayed on a loaded machine: with device time, a late reading is a finding.
    const window = (timeField: boolean) => ({ window: { size: `${WINDOW_MS}ms`, grace: '20s', field: 'temperature', ...(timeField ? { timeField: 'ts' } : {}) } });
    writeConfig(configFile, {
      // Retention runs often, so it sees every clock the gateway goes through.
      log: { retentionSchedule: '*/2 * * * * *' },
      streams: [
        // Event time from the devices' own clocks (the documented setup), and from the gateway's clock (the record timestamp).
        { name: 'faults-device-time', from: 'climate', to: 'faults-windows-device', pipeline: [window(true)] },
        { name: 'faults-gateway-time', from: 'climate', to: 'faults-windows-gateway', pipeline: [window(false)] },
      ],
    });
    // An NTP step moves the wall clock only: libfaketime moves Date.now(), never the monotonic clock.
    const env = { LD_PRELOAD: FAKETIME!, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_NO_CACHE: '1', DONT_FAKE_MONOTONIC: '1' };
    const gateway = await startGatewayChild({ configFile, dataDir, env });
    const url = `http://127.0.0.1:${gateway.httpPort}`;
    for (const topic of [{ name: 'faults-idle' }, { name: 'faults-short', retentionMs: SHORT_RETENTION_MS }]) {
      expect((await request(gateway, '/api/topics', { method: 'POST', body: topic })).status).toBe(201);
    }
    const [ackLogFile, reportFile] = [join(work, 'acks.ndjson'), join(work, 'report.json')];
    const sim = startSim({ mqttPort: gateway.mqttPort, seed: SEED, devices: DEVICES, ratePerDevice: RATE_PER_DEVICE, bufferReadings: BUFFER_READINGS, ackLogFile, reportFile });

    // A member that reads and commits, and one on a topic without traffic that only heartbeats.
    const warnings: ConsumerWarning[] = [];
    const gaps: string[] = [];
    const member = (groupId: string, topics: string[]) =>
      consumer({ url, groupId, topics, clientId: groupId, offsetReset: 'earliest', sessionTimeoutMs: SESSION_TIMEOUT_MS, autoCommit: { intervalMs: 1000 }, onWarning: (w) => warnings.push(w) });
    const members = [member('faults-clock', [...READING_TOPICS]), member('faults-clock-idle', ['faults-idle'])];
    onTestFinished(() => Promise.all(members.map((m) => m.close().catch(() => {}))).then(() => {}));
    const endings = members.map((m) => drain(m, gaps));
    await Promise.all(members.map((m) => m.ready()));
    await waitForStored(gateway, RECORDS_BETWEEN_FAULTS, 'devices to publish before the first step');
    const groups = ['faults-clock', 'faults-clock-idle', 'streams.faults-device-time', 'streams.faults-gateway-time'];
    const generations = new Map<string, number>();
    for (const g of groups) generations.set(g, (await groupState(gateway, g)).generation);

    // Seek probes: the gateway's time on both sides of every step.
    const probes: number[] = [];
    let offsetMs = 0;
    let recoveryMsMax = 0;
    for (const step of CLOCK_OFFSETS) {
      await hold(STEP_GAP_MS_MIN + random() * (STEP_GAP_MS_MAX - STEP_GAP_MS_MIN));
      probes.push(Date.now() + offsetMs);
      const storedAtStep = await storedReadings(gateway);
      setClock(step.spec);
      const steppedAtMs = performance.now();
      offsetMs = step.ms;
      probes.push(Date.now() + offsetMs);
      await waitFor(async () => (await storedReadings(gateway)) > storedAtStep, `a reading stored after the step to ${step.spec}`, START_TIMEOUT_MS);
      recoveryMsMax = Math.max(recoveryMsMax, Math.round(performance.now() - steppedAtMs));
      await waitForStored(gateway, RECORDS_BETWEEN_FAULTS, `devices to publish after the step to ${step.spec}`);
    }

    // Retention still deletes what is really past its retention after the clock went back 31 days.
    const shortProducer = producer({ url });
    await shortProducer.send('faults-short', Array.from({ length: 20 }, (_, i) => ({ value: `short-${i}` })));
    await shortProducer.close();
    // Asserted after the figures are out: a retention that stopped running must not hide the other findings.
    const shortRetention = await waitFor(async () => (await partitionsOf(gateway, 'faults-short')).every((p) => p.startOffset === 20), `retention to delete faults-short's records (retentionMs ${SHORT_RETENTION_MS})`, 30_000).then(
      () => 'deleted',
      (error: Error) => error.message,
    );

    // Seek by timestamp, with the log's timestamps out of order.
    const seeker = consumer({ url, groupId: 'faults-clock-seek', topics: ['climate'], offsetReset: 'latest', autoCommit: false });
    onTestFinished(() => seeker.close().catch(() => {}));
    await seeker.ready();
    const hwBefore = (await partitionsOf(gateway, 'climate'))[0]!.highWatermark;
    const seeks: SeekAnswer[] = [];
    for (const timestamp of [...probes, probes[0]! - DAY_MS, Date.now() + 40 * DAY_MS]) seeks.push({ timestamp, offset: await seeker.seek(0, { timestamp }), hwBefore });
    await seeker.close();

    const after = new Map<string, { generation: number; members: number }>();
    for (const g of groups) after.set(g, await groupState(gateway, g));
    await Promise.all(members.map((m) => m.close()));
    const memberErrors = (await Promise.all(endings)).filter((e) => e !== null).map(String);
    await stopAll(sim, gateway);
    const counters = new Map(logLines(gateway, (l) => l['msg'] === 'stream processor stopped').map((l) => [String(l['processor']), l]));
    const stepLines = logLines(gateway, (l) => String(l['msg']).startsWith('the wall clock stepped'));
    const errorLines = logLines(gateway, (l) => Number(l['level']) >= PINO_ERROR_LEVEL);

    const audit = await auditLog(dataDir, READING_TOPICS);
    const figures = lossFigures(ackLogFile, reportFile, audit.stored);
    const inspected = await inspectLog(dataDir, ['faults-windows-device', 'faults-windows-gateway']);
    const seekProblems = checkSeeks(inspected.climateTimestamps, seeks);
    const deviceWindows = checkWindows(inspected.outputs.get('faults-windows-device') ?? [], WINDOW_MS);
    const gatewayWindows = checkWindows(inspected.outputs.get('faults-windows-gateway') ?? [], WINDOW_MS);
    const lateOf = (name: string) => Number(counters.get(name)?.['late'] ?? NaN);
    reportFigures({
      scenario: 'clock-jumps',
      seed: SEED,
      faults: CLOCK_OFFSETS.length,
      acked: figures.acked,
      found: figures.found,
      lost: figures.lost,
      duplicated: figures.duplicated,
      recoveryMsMax,
      elapsedS: Math.round((performance.now() - startedAtMs) / 1000),
      extra: {
        'timestamps out of order': inspected.inversions,
        'seeks checked': seeks.length,
        'records deleted by retention': inspected.deletedOutside('faults-short'),
        'windows (device time)': deviceWindows.windows,
        'windows (gateway time)': gatewayWindows.windows,
        'late (gateway time)': lateOf('faults-gateway-time'),
      },
    });

    expectNoLoss(figures);
    expect(audit.problems).toEqual([]);
    expect(errorLines, 'error lines the gateway logged').toEqual([]);
    // One warning per step (one line per state change), saying the step is left out of retention ages.
    expect(stepLines.map((l) => l['stepMs'] as number).map((ms) => Math.round(ms / MINUTE_MS))).toEqual(
      CLOCK_OFFSETS.map((o, i) => Math.round((o.ms - (CLOCK_OFFSETS[i - 1]?.ms ?? 0)) / MINUTE_MS)),
    );
    expect(memberErrors, 'consumer members ended by an error (removed from their group?)').toEqual([]);
    for (const g of groups) expect(after.get(g), `group ${g} after the steps (a removed member rejoins with a new generation)`).toEqual({ generation: generations.get(g), members: 1 });
    // Retention measures how long a record has been stored, not how far the wall clock moved.
    expect(inspected.deletedOutside('faults-short'), 'records deleted by retention').toBe(0);
    expect(warnings.filter((w) => w.kind === 'skipped'), 'records skipped by members').toEqual([]);
    expect(gaps).toEqual([]);
    expect(inspected.inversions, 'the steps back put timestamps out of order in the log').toBeGreaterThan(0);
    expect(seekProblems).toEqual([]);
    expect(deviceWindows.problems).toEqual([]);
    expect(gatewayWindows.problems).toEqual([]);
    // Device time does not follow the gateway's clock: no reading was late; every processor read everything exactly once.
    expect(lateOf('faults-device-time')).toBe(0);
    for (const [name, topic] of [['faults-device-time', 'faults-windows-device'], ['faults-gateway-time', 'faults-windows-gateway']] as const) {
      const c = counters.get(name);
      expect(c?.['errors'], `${name} errors`).toEqual({});
      expect(c?.['skippedByRetention'], `${name} records skipped by retention`).toBe(0);
      expect(c?.['read'], `${name} read every climate record it committed`).toBe(audit.committed.get(`streams.${name}`)?.get('climate/0'));
      expect(c?.['emitted'], `${name} emitted what its topic holds`).toBe(audit.recordsByTopic.get(topic));
    }
    expect(deviceWindows.counted).toBeLessThanOrEqual(Number(counters.get('faults-device-time')?.['read']));
    expect(shortRetention, 'retention still runs after the steps').toBe('deleted');
  }, 200_000);
});
