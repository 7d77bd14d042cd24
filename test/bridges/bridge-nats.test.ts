import { fileURLToPath } from 'node:url';
import type { StreamInfo } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, onTestFinished, test } from 'vitest';
import { BRIDGE_GROUP_PREFIX } from '../../bridges/bridge.js';
import type { BridgeReport } from '../../bridges/bridges.js';
import { loadProfiles } from '../../devices/profile.js';
import { Fleet } from '../../firmware-sim/index.js';
import { CommitLog, type AppendRecord } from '../../src/index.js';
import { WARN, type LogLine } from '../helpers/gateway.js';
import { natsSkipReason, startNats, startNatsCluster } from '../helpers/nats-server.js';
import { spawnTs, type Spawned } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { bridgeConfigFile, bridgeStatus, checkReplica, startBridgedGateway, TEST_GATEWAY_ID, waitDrained } from './bridged-gateway.js';
import { createStream, receivedRecords, watchStream } from './nats-central.js';
import type { ReceivedRecord } from './upstream-contract.js';

/**
 * The NATS JetStream bridge through the real gateway (issue 6, "Tests with the real engines"):
 * a long outage under a live fleet, gateway crashes during replication, a cluster node failure,
 * and retention that leaves unreplicated records alone. JetStream's duplicate window (Nats-Msg-Id
 * from the record identity) must make every case exactly-once upstream.
 */

const skip = natsSkipReason();
const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const BRIDGE = 'central';
/** Reconnect quickly: the tests restart servers and wait for the bridge, not for production backoff. */
const FAST_RECONNECT = { initialDelayMs: 50, maxDelayMs: 500 };
let streamCount = 0;
/** A stream name unique within this file's run. */
const uniqueStream = () => `EDGELOG_BRIDGE_${process.pid}_${++streamCount}`;

/** A `bridges:` entry replicating `topics` into a stream the bridge creates. */
function natsBridge(
  servers: string[],
  stream: string,
  opts: { topics?: string[]; settings?: Record<string, unknown>; nats?: Record<string, unknown>; replicas?: number } = {},
): Record<string, unknown> {
  return {
    name: BRIDGE,
    type: 'nats',
    topics: opts.topics ?? ['*'],
    reconnect: FAST_RECONNECT,
    ...opts.settings,
    nats: {
      servers,
      stream: { name: stream, create: true, replicas: opts.replicas ?? 1 },
      connectTimeoutMs: 2_000,
      ackTimeoutMs: 5_000,
      ...opts.nats,
    },
  };
}

/** Fills a data folder's log with `total` keyed records of `topic` over `partitions`, then closes it. */
async function prefillLog(dir: string, topic: string, partitions: number, total: number): Promise<void> {
  /** Records per append call: well under the log's batch bound, few calls for tens of thousands. */
  const APPEND_BATCH_RECORDS = 2_000;
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  try {
    await log.createTopic(topic, { partitions });
    for (let from = 0; from < total; from += APPEND_BATCH_RECORDS) {
      const n = Math.min(APPEND_BATCH_RECORDS, total - from);
      await log.append(
        topic,
        Array.from({ length: n }, (_, i) => ({ key: `device-${(from + i) % 50}`, value: Buffer.from(JSON.stringify({ seq: from + i, t: 20 + ((from + i) % 97) / 10 })) })),
      );
    }
  } finally {
    await log.close();
  }
}

/** Records below the bridge's committed checkpoints, over every partition, read from a stopped gateway's folder. */
async function checkpointedRecords(dir: string): Promise<number> {
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  try {
    return log.committedOffsets(BRIDGE_GROUP_PREFIX + BRIDGE).reduce((sum, c) => sum + c.offset, 0);
  } finally {
    await log.close();
  }
}

/** The bridge's status from a gateway's GET /api/bridges; undefined until it lists the bridge. */
async function apiBridge(httpPort: number): Promise<BridgeReport | undefined> {
  const body = (await (await fetch(`http://127.0.0.1:${httpPort}/api/bridges`)).json()) as { bridges: BridgeReport[] };
  return body.bridges.find((b) => b.name === BRIDGE);
}

/** Records below the committed checkpoints a status reports, over its partitions. */
function checkpointSum(status: BridgeReport | undefined): number {
  return status?.partitions.reduce((sum, p) => sum + p.checkpoint, 0) ?? 0;
}

/** Appends to a topic created on first use with the gateway's topic defaults, as ingest does. */
async function append(log: CommitLog, topic: string, records: AppendRecord[]): Promise<void> {
  await log.ensureTopic(topic);
  await log.append(topic, records);
}

/** `count` keyed readings numbered from `from`. */
function readings(from: number, count: number): { key: string; value: Buffer }[] {
  return Array.from({ length: count }, (_, i) => ({ key: `device-${(from + i) % 20}`, value: Buffer.from(JSON.stringify({ seq: from + i, t: 21.5 })) }));
}

function startOffsets(log: CommitLog, topic: string): number[] {
  return log.describeTopic(topic).partitions.map((p) => p.startOffset);
}

function storedRecords(log: CommitLog, topic: string): number {
  return log.describeTopic(topic).partitions.reduce((sum, p) => sum + p.highWatermark - p.startOffset, 0);
}

/** Every record of the topic was deleted (by retention). */
function emptied(log: CommitLog, topic: string): boolean {
  return log.describeTopic(topic).partitions.every((p) => p.startOffset === p.highWatermark);
}

/** Every record upstream came from this gateway. */
function expectFromTestGateway(received: readonly ReceivedRecord[]): void {
  expect(received.filter((r) => r.gateway !== TEST_GATEWAY_ID)).toEqual([]);
}

describe.skipIf(skip !== undefined)('NATS JetStream bridge through the gateway', () => {
  test('a long outage under a live fleet: after the restart every acknowledged reading is upstream once, in order', async () => {
    const environment = loadProfiles().find((p) => p.name === 'environment-sensor')!;
    const topics = environment.streams.map((s) => s.name);
    const nats = await startNats();
    const stream = uniqueStream();
    const gateway = await startBridgedGateway([natsBridge([nats.url], stream)], { overrides: { 'log.topicDefaults.partitions': '4' } });

    const fleet = new Fleet({
      gateway: `mqtt://127.0.0.1:${gateway.ports.mqtt}`,
      devices: 30,
      ratePerSecond: 10,
      durationS: 3,
      qos: 1,
      inflightMax: 16,
      profiles: [environment],
      seed: 6,
      rampPerSecond: 1_000,
    });
    fleet.start();
    // The link goes down while readings flow: wait for the first ones to be replicated live.
    await waitFor(() => bridgeStatus(gateway, BRIDGE).counters.ackedRecords > 0, 'the first readings upstream');
    await nats.stop('SIGKILL');
    const report = await fleet.done();
    expect(report.readings.sent).toBe(report.readings.generated);
    expect(report.readings.acknowledged).toBe(report.readings.sent);
    // Readings kept coming during the outage and wait in the log.
    const during = bridgeStatus(gateway, BRIDGE);
    expect(during.state).not.toBe('connected');
    expect(during.backlogRecords).toBeGreaterThan(0);

    await nats.start();
    const status = await waitDrained(gateway, BRIDGE);
    const received = await receivedRecords([nats.url], stream);
    expectFromTestGateway(received);
    const check = checkReplica(gateway.log, topics, received);
    expect(check).toEqual({ expected: report.readings.acknowledged, found: report.readings.acknowledged, missing: [], duplicates: 0, outOfOrder: [], wrongValues: 0 });
    expect(status.counters.reconnects).toBeGreaterThanOrEqual(1);
    expect(status.backlogRecords).toBe(0);
  });

  test('gateway SIGKILLs during replication: JetStream holds every record exactly once', async () => {
    const TOTAL = 30_000;
    const PARTITIONS = 4;
    const KILLS = 3;
    const topic = 'telemetry';
    const dir = tempDir();
    await prefillLog(dir, topic, PARTITIONS, TOTAL);
    const nats = await startNats();
    const stream = uniqueStream();
    // A small window and frequent checkpoints, so each kill lands between two checkpoints with
    // records in flight: the next run resends from the checkpoint what JetStream may already hold.
    const configFile = bridgeConfigFile([natsBridge([nats.url], stream, { settings: { maxInFlight: 200, checkpointIntervalMs: 100 } })]);
    const start = (): Spawned => spawnTs(CLI, ['start', '--config', configFile, '--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']);
    const central = await watchStream([nats.url], stream);

    let resentAfterKills = 0;
    for (let run = 1; run <= KILLS; run++) {
      const before = await central.messages();
      const checkpointedBefore = await checkpointedRecords(dir);
      const gw = start();
      const { httpPort } = JSON.parse(await gw.waitForLine(/edgelog gateway started/)) as { httpPort: number };
      // Progress in this run, upstream and in a committed checkpoint, then the crash.
      const step = Math.floor(TOTAL / (2 * KILLS + 2));
      let reported = 0;
      await waitFor(
        async () => {
          reported = checkpointSum(await apiBridge(httpPort));
          return reported > checkpointedBefore && (await central.messages()) >= before + step;
        },
        `run ${run} to replicate ${step} more records and commit a checkpoint`,
        30_000,
      );
      gw.child.kill('SIGKILL');
      expect(await gw.exited).toBe('SIGKILL');
      const held = await central.messages();
      expect(held, `run ${run} was killed before it replicated everything`).toBeLessThan(TOTAL);
      const checkpointed = await checkpointedRecords(dir);
      // A checkpoint the status reported was durable, and it never ran ahead of what the upstream
      // acknowledged (DESIGN "Contracts").
      expect(checkpointed).toBeGreaterThanOrEqual(reported);
      expect(checkpointed).toBeLessThanOrEqual(held);
      resentAfterKills += held - checkpointed;
    }
    // At least one kill landed between checkpoints, with records upstream beyond the checkpoint.
    expect(resentAfterKills).toBeGreaterThan(0);

    const heldBeforeLast = await central.messages();
    const checkpointedBeforeLast = await checkpointedRecords(dir);
    const last = start();
    const { httpPort } = JSON.parse(await last.waitForLine(/edgelog gateway started/)) as { httpPort: number };
    let status: BridgeReport | undefined;
    await waitFor(
      async () => {
        status = await apiBridge(httpPort);
        return status !== undefined && status.state === 'connected' && status.partitions.length === PARTITIONS && status.backlogRecords === 0;
      },
      'the last run to drain the backlog',
      30_000,
    );
    // duplicateRecords counts what the last run resent from its checkpoint that JetStream already
    // held (the killed run had sent it after its last checkpoint): the PubAcks said duplicate and
    // nothing was stored twice. One connection stores each partition's records in order, so that
    // is exactly what the stream held beyond the checkpoint when the last run started.
    expect(status!.counters.duplicateRecords).toBe(heldBeforeLast - checkpointedBeforeLast);
    last.child.kill('SIGTERM');
    expect(await last.exited).toBe(0);

    expect(await central.messages()).toBe(TOTAL);
    const received = await receivedRecords([nats.url], stream);
    expectFromTestGateway(received);
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    try {
      expect(checkReplica(log, [topic], received)).toEqual({ expected: TOTAL, found: TOTAL, missing: [], duplicates: 0, outOfOrder: [], wrongValues: 0 });
    } finally {
      await log.close();
    }
  });

  test('a JetStream cluster node failure: the stream leader dies while a backlog drains, every record arrives once and in order', async () => {
    const TOTAL = 20_000;
    /** The leader dies once the stream holds this many: early in the drain, well before its end. */
    const STARTED_RECORDS = 1_000;
    const PARTITIONS = 4;
    const topic = 'telemetry';
    const dir = tempDir();
    await prefillLog(dir, topic, PARTITIONS, TOTAL);
    const cluster = await startNatsCluster();
    const stream = uniqueStream();
    // The central side's stream, made first so its leader is known before the drain loads the
    // cluster (API requests then answer late); the bridge accepts it as it is.
    await createStream(cluster.urls, { name: stream, subjects: ['edgelog.>'], num_replicas: 3 });
    const central = await watchStream(cluster.urls, stream);
    let info: StreamInfo | null = null;
    await waitFor(async () => ((info = await central.info()), info?.cluster?.leader !== undefined), 'the new stream to elect a leader', 30_000);
    await central.close();
    expect(info!.config.num_replicas).toBe(3);
    const leader = info!.cluster!.leader!;
    const node = cluster.nodes.find((n) => n.name === leader);
    expect(node, `the stream leader ${leader}`).toBeDefined();

    const gateway = await startBridgedGateway(
      // An election takes seconds: time out sooner and resend, as a bridge to a cluster should be set up.
      [natsBridge(cluster.urls, stream, { replicas: 3, nats: { ackTimeoutMs: 2_000, connectTimeoutMs: 3_000 } })],
      { dataDir: dir },
    );
    // The bridge's own status is read in-process: the kill lands early in the drain, not after it.
    await waitFor(() => bridgeStatus(gateway, BRIDGE).counters.ackedRecords >= STARTED_RECORDS, 'the first records upstream', 30_000);
    const stopping = node!.stop('SIGKILL');
    // Read in the tick of the kill: the backlog the bridge still had to replicate through the failover.
    const backlogAtKill = bridgeStatus(gateway, BRIDGE).backlogRecords;
    await stopping;
    expect(backlogAtKill).toBeGreaterThan(0);

    const status = await waitDrained(gateway, BRIDGE, 60_000);
    expect(status.backlogRecords).toBe(0);
    const survivors = cluster.nodes.filter((n) => n !== node).map((n) => n.url);
    const received = await receivedRecords(survivors, stream);
    expectFromTestGateway(received);
    expect(checkReplica(gateway.log, [topic], received)).toEqual({ expected: TOTAL, found: TOTAL, missing: [], duplicates: 0, outOfOrder: [], wrongValues: 0 });
  }, 120_000);

  test('an upstream that does not acknowledge gets one probe message per connection, not a window', async () => {
    // Why it matters: a stream electing a leader refuses at once, and a window sent into the
    // instant it gets one is stored from its middle, later records before earlier ones (seen in
    // the cluster test above). One message first, and the window opens only on its ack.
    const nats = await startNats();
    const nc = await connect({ servers: [nats.url], reconnect: false });
    onTestFinished(() => nc.close());
    // A plain subscriber: the subject has interest, so no 503, but nobody answers with a PubAck.
    let seen = 0;
    nc.subscribe('silent.>', {
      callback: () => {
        seen++;
      },
    });
    await nc.flush();
    const gateway = await startBridgedGateway([
      {
        name: BRIDGE,
        type: 'nats',
        topics: ['readings'],
        reconnect: { initialDelayMs: 10, maxDelayMs: 20 },
        nats: { servers: [nats.url], subject: 'silent.{gatewayId}.{topic}.{partition}', ackTimeoutMs: 100 },
      },
    ]);
    await append(gateway.log, 'readings', readings(0, 1_000));
    await waitFor(() => bridgeStatus(gateway, BRIDGE).counters.reconnects >= 3, 'the bridge to time out and reconnect 3 times', 20_000);
    // Each connection (the first and every reconnect) sent its probe and no more.
    const { counters } = bridgeStatus(gateway, BRIDGE);
    expect(counters.ackedRecords).toBe(0);
    expect(counters.sentRecords).toBe(counters.reconnects + 1);
    await waitFor(() => seen >= 3, 'the probes to reach the subscriber');
    expect(seen).toBeLessThanOrEqual(bridgeStatus(gateway, BRIDGE).counters.sentRecords);
  });

  describe('retention leaves unreplicated records alone', () => {
    /** Retention every second, and records past their retention after one. */
    const FAST_RETENTION = { 'log.retentionSchedule': '* * * * * *', 'log.topicDefaults.retentionMs': '1000', 'log.topicDefaults.partitions': '2' };

    test('records past their retention stay while NATS is down, and go once replicated', async () => {
      const RECORDS = 200;
      const nats = await startNats();
      // Down from the start; start() brings it back on the same port with the same store.
      await nats.stop('SIGKILL');
      const stream = uniqueStream();
      const gateway = await startBridgedGateway([natsBridge([nats.url], stream, { topics: ['readings'] })], { overrides: FAST_RETENTION });
      await append(gateway.log, 'readings', readings(0, RECORDS));
      // 'scratch' is not bridged: each marker appended after the last one went and then deleted
      // is a later retention run, with the readings (appended earlier) past their retention too.
      for (let run = 1; run <= 3; run++) {
        await append(gateway.log, 'scratch', [{ value: Buffer.from(`marker ${run}`) }]);
        await waitFor(() => emptied(gateway.log, 'scratch'), `retention run ${run} to delete the unbridged marker`, 10_000);
        expect(startOffsets(gateway.log, 'readings')).toEqual([0, 0]);
      }
      expect(storedRecords(gateway.log, 'readings')).toBe(RECORDS);
      expect(bridgeStatus(gateway, BRIDGE).backlogRecords).toBe(RECORDS);

      await nats.start();
      await waitDrained(gateway, BRIDGE);
      const received = await receivedRecords([nats.url], stream);
      expectFromTestGateway(received);
      // Retention may already delete what is replicated: compare with what is left, count all.
      expect(checkReplica(gateway.log, ['readings'], received)).toMatchObject({ found: RECORDS, missing: [], duplicates: 0, outOfOrder: [], wrongValues: 0 });
      // Replicated and checkpointed, the records are retention's again.
      await waitFor(() => emptied(gateway.log, 'readings'), 'retention to delete the replicated readings', 10_000);
      expect(bridgeStatus(gateway, BRIDGE).counters.lostRecords).toBe(0);
    });

    test("'drop-oldest' under disk pressure drops unreplicated records; the bridge counts them lost and says so", async () => {
      /** Small enough to fill in a second of appends; 90% of it is disk pressure (DISK_PRESSURE_FRACTION). */
      const MAX_LOG_BYTES = 64 * 1024;
      const PRESSURE_BYTES = 0.9 * MAX_LOG_BYTES;
      const nats = await startNats();
      await nats.stop('SIGKILL');
      const stream = uniqueStream();
      const logs: LogLine[] = [];
      const gateway = await startBridgedGateway([natsBridge([nats.url], stream, { topics: ['readings'] })], {
        logs,
        overrides: { ...FAST_RETENTION, 'log.diskPressurePolicy': 'drop-oldest', 'log.maxLogBytes': String(MAX_LOG_BYTES) },
      });
      // Small appends up to the pressure mark, so none is refused LOG_FULL.
      let appended = 0;
      for (let i = 0; i < 10_000 && gateway.log.bytesStored < PRESSURE_BYTES; i++) {
        await append(gateway.log, 'readings', readings(appended, 10));
        appended += 10;
      }
      expect(gateway.log.bytesStored).toBeGreaterThanOrEqual(PRESSURE_BYTES);
      // Retention drops the held records past their retention until the pressure is gone; no
      // appends follow, so the count then stays.
      await waitFor(() => gateway.log.droppedHeldRecords > 0 && gateway.log.bytesStored < PRESSURE_BYTES, 'retention to drop unreplicated records', 10_000);
      const dropped = gateway.log.droppedHeldRecords;
      expect(storedRecords(gateway.log, 'readings')).toBe(appended - dropped);
      expect(logs.some((l) => l.level === WARN && /retention deleted records a bridge had not replicated/.test(l.msg))).toBe(true);
      // Visible while the link is still down, not only once the bridge reads again.
      await waitFor(() => bridgeStatus(gateway, BRIDGE).counters.lostRecords === dropped, `the bridge status to count the ${dropped} lost records`, 5_000);
      expect(bridgeStatus(gateway, BRIDGE).backlogRecords).toBe(appended - dropped);

      await nats.start();
      const status = await waitDrained(gateway, BRIDGE);
      expect(status.counters.lostRecords).toBe(dropped);
      const lostLines = logs.filter((l) => l.level === WARN && /deleted from the log before they were replicated/.test(l.msg));
      expect(lostLines.reduce((sum, l) => sum + (l['lostRecords'] as number), 0)).toBe(dropped);
      const received = await receivedRecords([nats.url], stream);
      expectFromTestGateway(received);
      expect(checkReplica(gateway.log, ['readings'], received)).toMatchObject({ found: appended - dropped, missing: [], duplicates: 0, outOfOrder: [], wrongValues: 0 });
    });
  });
});
