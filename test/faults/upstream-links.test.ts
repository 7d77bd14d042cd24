import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { FleetReport } from '../../firmware-sim/index.js';
import { mulberry32, type Random } from '../../firmware-sim/prng.js';
import { CommitLog, consumer } from '../../src/index.js';
import { checkReplica, type ReplicaCheck } from '../bridges/bridged-gateway.js';
import { centralSubscriber } from '../bridges/mqtt-central.js';
import { receivedRecords } from '../bridges/nats-central.js';
import type { ReceivedRecord } from '../bridges/upstream-contract.js';
import { mosquittoSkipReason, startMosquitto } from '../helpers/mosquitto.js';
import { natsSkipReason, startNats } from '../helpers/nats-server.js';
import { spawnTs } from '../helpers/process.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { reportFigures } from './fault-report.js';
import { LinkWatch } from './link-watch.js';
import { auditLog, readAckLog, readingId, type ReadingId } from './log-audit.js';

/**
 * Upstream outages and flapping links under load (issue 8): the gateway child replicates the
 * readings through two bridges at once, MQTT 5 to Mosquitto and NATS JetStream, each through its
 * own TCP proxy, while devices publish at QoS 1 and a local consumer group member reads and
 * commits. The links are cut (at once, and after a random number of bytes, in the middle of a
 * message), refused for a while (reconnects fail and back off), refused and then cut in the
 * middle of the catch-up burst, and finally both refused for a long outage. Afterwards every acknowledged reading must be upstream on both sides, in order per
 * partition, exactly once on JetStream; the consumer must have read everything; the log must audit
 * clean. The MQTT bridge batches (20 records, gzip) so cuts land inside batches and a resend takes
 * other batch boundaries; the NATS bridge sends one record per message, so JetStream's
 * deduplication by Nats-Msg-Id applies record by record and its copy must be exactly-once.
 */

const skip = mosquittoSkipReason() ?? natsSkipReason();
const GATEWAY_CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const FIRMWARE_SIM_CLI = fileURLToPath(new URL('../../firmware-sim/cli.ts', import.meta.url));
const PROFILE = fileURLToPath(new URL('../../devices/profiles/environment-sensor.json', import.meta.url));
/** The profile's streams: the default topic rule stores devices/{id}/{stream} in topic {stream}, keyed by device. */
const READING_TOPICS = ['climate', 'status'] as const;
const GATEWAY_ID = 'gw-links';
const MQTT_BRIDGE = 'links-mqtt';
const NATS_BRIDGE = 'links-nats';
const STREAM = 'EDGELOG_LINKS';
const CONSUMER_GROUP = 'links-app';
/** Several partitions per topic: order is checked per partition, and a bridge's partitions take turns. */
const PARTITIONS = 3;
/** Modest load (300 readings/s): the point is correctness under the faults, not throughput. */
const DEVICES = 30;
const RATE_PER_DEVICE = 10;
/** Longer than the faults take; the test stops the simulator (SIGTERM) once they are done. */
const SIM_DURATION_S = 600;
/** Records stored before the first fault: the bridges and the consumer are in full flow. */
const RECORDS_BEFORE_FAULTS = 500;
/**
 * The short faults, shuffled by the seed: cuts at once, cuts after some bytes of live traffic (in
 * the middle of a message), refusals (reconnects fail and back off), and refusals whose link is
 * then cut in the middle of the catch-up burst, with a full window in flight.
 */
const FLAP_KINDS: readonly FlapKind[] = ['cut', 'cut', 'cut', 'cut', 'cut-mid', 'cut-mid', 'cut-mid', 'refuse', 'refuse', 'catch-up-cut', 'catch-up-cut', 'catch-up-cut'];
/** A fault lands this long after both its links are up again: random, so faults hit every phase of a drain. */
const FLAP_GAP_MS_MIN = 500;
const FLAP_GAP_MS_MAX = 2500;
/** A refusal lasts long enough for a few failed reconnects with backoff. */
const REFUSE_MS_MIN = 1500;
const REFUSE_MS_MAX = 4000;
/** A mid-message cut forwards 1 to this many bytes first: an MQTT batch is ~1 kB, a NATS record ~0.5 kB. */
const CUT_AFTER_BYTES_MAX = 4000;
/** A catch-up cut forwards this many bytes of the catch-up first: less than a refusal's backlog (hundreds of records) takes. */
const CATCH_UP_CUT_BYTES_MIN = 2_000;
const CATCH_UP_CUT_BYTES_MAX = 20_000;
/** The long outage of both links: a backlog of thousands of records builds up on disk. */
const LONG_OUTAGE_MS = 25_000;
const MQTT_BATCH_RECORDS = 20;
/** Faster than production's 500 ms to 30 s so the scenario fits its budget, still backing off over a refusal. */
const RECONNECT = { initialDelayMs: 250, maxDelayMs: 4_000 };
/** The proxy never blackholes (it closes), so acks come fast or the link is gone; this only bounds a stuck broker. */
const ACK_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** A gateway under tsx starts in ~1.6 s here; ten times that on a loaded machine is a failure, not slowness. */
const START_TIMEOUT_MS = 20_000;
/** A bridge back up: its longest backoff, a connect and a loaded machine's slack. */
const RECONNECT_WAIT_MS = 30_000;
/** The outage's backlog (~7,500 records) drains in seconds; this is for a loaded machine. */
const DRAIN_TIMEOUT_MS = 90_000;
/** Enough of a child's output to show why it failed, without pages of connection lines. */
const OUTPUT_TAIL_CHARS = 3000;
/** Fixed so a failure can be rerun; FAULTS_SEED picks another sequence of faults and readings. */
const SEED = Number(process.env['FAULTS_SEED'] ?? 20_260_802);

type FlapKind = 'cut' | 'cut-mid' | 'refuse' | 'catch-up-cut';
type LinkName = 'mqtt' | 'nats';

/** One short fault of the plan, drawn from the seed before the run so the run does not change it. */
interface Flap {
  kind: FlapKind;
  links: LinkName[];
  gapMs: number;
  /** cut-mid, catch-up-cut: bytes forwarded before the cut, per link. */
  bytes: number[];
  /** refuse, catch-up-cut: how long the link refuses. */
  refuseMs: number;
}

/** Shuffles the kinds (Fisher-Yates on the seeded PRNG) and gives each a link (in turn: mqtt, nats, both) and its moments. */
function planFlaps(random: Random): Flap[] {
  const kinds = [...FLAP_KINDS];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const between = (min: number, max: number) => Math.round(min + random() * (max - min));
  return kinds.map((kind, i) => ({
    kind,
    links: ([['mqtt'], ['nats'], ['mqtt', 'nats']] as LinkName[][])[i % 3]!,
    gapMs: between(FLAP_GAP_MS_MIN, FLAP_GAP_MS_MAX),
    bytes: kind === 'catch-up-cut' ? [between(CATCH_UP_CUT_BYTES_MIN, CATCH_UP_CUT_BYTES_MAX), between(CATCH_UP_CUT_BYTES_MIN, CATCH_UP_CUT_BYTES_MAX)] : [between(1, CUT_AFTER_BYTES_MAX), between(1, CUT_AFTER_BYTES_MAX)],
    refuseMs: between(REFUSE_MS_MIN, REFUSE_MS_MAX),
  }));
}

function gatewayConfig(file: string, mqttProxy: TcpProxy, natsProxy: TcpProxy): void {
  const common = { topics: [...READING_TOPICS], reconnect: RECONNECT };
  const config = {
    gatewayId: GATEWAY_ID,
    log: { topicDefaults: { partitions: PARTITIONS } },
    bridges: [
      {
        name: MQTT_BRIDGE,
        type: 'mqtt',
        ...common,
        batch: { records: MQTT_BATCH_RECORDS, gzip: true },
        mqtt: { url: `mqtt://127.0.0.1:${mqttProxy.port}`, protocolVersion: 5, topic: 'gateways/{gatewayId}/{topic}', ackTimeoutMs: ACK_TIMEOUT_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS },
      },
      {
        name: NATS_BRIDGE,
        type: 'nats',
        ...common,
        nats: { servers: [`nats://127.0.0.1:${natsProxy.port}`], stream: { name: STREAM, create: true, replicas: 1 }, ackTimeoutMs: ACK_TIMEOUT_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS },
      },
    ],
  };
  writeFileSync(file, stringify(config));
}

/** What the local consumer read, per `topic/partition`: the next offset it expects, and what broke order. */
interface Consumed {
  next: Map<string, number>;
  records: number;
  duplicates: number;
  gaps: string[];
}

/** The distinct readings among upstream records (device key, topic, the payload's seq). */
function upstreamReadings(records: readonly ReceivedRecord[]): Set<ReadingId> {
  const ids = new Set<ReadingId>();
  for (const r of records) ids.add(readingId(String(r.key), r.topic, (JSON.parse(r.value.toString('utf8')) as { seq: number }).seq));
  return ids;
}

/** A replica check without the bulky parts, for one readable assertion. */
function replicaSummary(check: ReplicaCheck): Omit<ReplicaCheck, 'expected' | 'found' | 'duplicates'> & { complete: boolean } {
  return { complete: check.found === check.expected, missing: check.missing, outOfOrder: check.outOfOrder, wrongValues: check.wrongValues };
}

describe.skipIf(skip !== undefined)('upstream links', () => {
  it('through flapping links and a long outage of both, every acknowledged reading reaches Mosquitto and JetStream in order, and the local consumer reads on', async () => {
    const startedAtMs = performance.now();
    const random = mulberry32(SEED);
    const flaps = planFlaps(random);
    const dir = tempDir('edgelog-faults-');
    const work = tempDir('edgelog-faults-work-');
    // One after the other: each picks a free port, and two picks at once may pick the same one.
    const broker = await startMosquitto();
    const nats = await startNats();
    const links: Record<LinkName, { bridge: string; proxy: TcpProxy; faults: number }> = {
      mqtt: { bridge: MQTT_BRIDGE, proxy: await startTcpProxy(broker.port), faults: 0 },
      nats: { bridge: NATS_BRIDGE, proxy: await startTcpProxy(nats.port), faults: 0 },
    };
    // Subscribed (persistent session) before the gateway publishes anything, straight to the broker.
    const central = await centralSubscriber(broker.url, 5, `gateways/${GATEWAY_ID}/#`);
    const configFile = join(work, 'edgelog.yaml');
    gatewayConfig(configFile, links.mqtt.proxy, links.nats.proxy);

    const gateway = spawnTs(GATEWAY_CLI, ['start', '--config', configFile, '--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']);
    const { mqttPort, httpPort } = JSON.parse(await gateway.waitForLine(/edgelog gateway started/, START_TIMEOUT_MS)) as { mqttPort: number; httpPort: number };
    const watch = new LinkWatch(httpPort, gateway);
    const linksUp = (names: readonly LinkName[], what: string) =>
      watch.waitUntil((reports) => names.every((n) => reports.get(links[n].bridge)?.state === 'connected'), what, RECONNECT_WAIT_MS);

    // The local application: one member of a consumer group, committing as it goes (auto-commit every second).
    const consumed: Consumed = { next: new Map(), records: 0, duplicates: 0, gaps: [] };
    const app = consumer({ url: `http://127.0.0.1:${httpPort}`, groupId: CONSUMER_GROUP, topics: [...READING_TOPICS], clientId: 'links-app', offsetReset: 'earliest', autoCommit: { intervalMs: 1_000 } });
    let consumerFailure: unknown;
    const reading = (async () => {
      for await (const batch of app) {
        const where = `${batch.topic}/${batch.partition}`;
        for (const r of batch.records) {
          const expected = consumed.next.get(where) ?? 0;
          if (r.offset < expected) consumed.duplicates++;
          else {
            if (r.offset > expected && consumed.gaps.length < 20) consumed.gaps.push(`${where}: offset ${r.offset} where ${expected} was due`);
            consumed.next.set(where, r.offset + 1);
            consumed.records++;
          }
        }
      }
    })().catch((error: unknown) => {
      consumerFailure = error;
    });
    /** Throws at once when the consumer failed, so a wait on it says why rather than timing out. */
    const consumerAlive = (): true => {
      if (consumerFailure !== undefined) throw new Error(`the local consumer failed: ${String(consumerFailure)}`);
      return true;
    };

    const ackLogFile = join(work, 'acks.ndjson');
    const reportFile = join(work, 'report.json');
    const sim = spawnTs(FIRMWARE_SIM_CLI, [
      '--gateway', `mqtt://127.0.0.1:${mqttPort}`, '--devices', String(DEVICES), '--rate', String(RATE_PER_DEVICE), '--duration', String(SIM_DURATION_S),
      '--qos', '1', '--profile', PROFILE, '--format', 'json', '--seed', String(SEED), '--ack-log', ackLogFile, '--report', reportFile, '--log-level', 'error',
    ]);
    await waitFor(() => consumerAlive() && consumed.records >= RECORDS_BEFORE_FAULTS, `the consumer to read ${RECORDS_BEFORE_FAULTS} readings`, START_TIMEOUT_MS);

    // Short faults at seeded moments, each while its links are up, so each one drops a live connection.
    for (const [i, flap] of flaps.entries()) {
      await linksUp(flap.links, `links ${flap.links.join('+')} up before fault ${i + 1} (${flap.kind})`);
      // The gap is the fault's moment, the thing injected, not a wait for correctness.
      await new Promise((resolve) => setTimeout(resolve, flap.gapMs));
      expect(sim.child.exitCode, `firmware-sim exited early:\n${sim.output().slice(-OUTPUT_TAIL_CHARS)}`).toBeNull();
      for (const n of flap.links) {
        watch.faultOn(links[n].bridge);
        links[n].faults++;
      }
      if (flap.kind === 'cut') {
        for (const n of flap.links) links[n].proxy.cut();
        await Promise.all(flap.links.map((n) => watch.restored(links[n].bridge, flap.kind)));
        continue;
      }
      if (flap.kind === 'refuse' || flap.kind === 'catch-up-cut') {
        for (const n of flap.links) links[n].proxy.refuse();
        await new Promise((resolve) => setTimeout(resolve, flap.refuseMs));
      }
      if (flap.kind === 'refuse') {
        for (const n of flap.links) links[n].proxy.restore();
        await Promise.all(flap.links.map((n) => watch.restored(links[n].bridge, flap.kind)));
        continue;
      }
      await Promise.all(
        flap.links.map(async (n, j) => {
          const { proxy, bridge } = links[n];
          const bytes = flap.bytes[j]!;
          const before = proxy.bytesUp;
          // Armed before the restore for a catch-up cut: it lands in the burst of the backlog.
          proxy.cutAfterBytes(bytes);
          if (flap.kind === 'catch-up-cut') {
            proxy.restore();
            links[n].faults++; // the refusal was one fault, the cut is another
          }
          // The cut happens as the last allowed byte goes up: the bridge sends all the time under this load.
          await waitFor(() => proxy.bytesUp >= before + bytes, `${bridge} to send ${bytes} bytes and be cut`, RECONNECT_WAIT_MS);
          await watch.restored(bridge, flap.kind);
        }),
      );
    }

    // The long outage of both links: the backlog builds on disk while devices and the consumer go on.
    await linksUp(['mqtt', 'nats'], 'both links up before the long outage');
    for (const link of Object.values(links)) {
      watch.faultOn(link.bridge);
      link.faults++;
      link.proxy.refuse();
    }
    const consumedBeforeOutage = consumed.records;
    await new Promise((resolve) => setTimeout(resolve, LONG_OUTAGE_MS));
    await watch.waitUntil(() => true, 'a sample at the end of the outage', RECONNECT_WAIT_MS);
    const duringOutage = [...watch.latest.values()].map((b) => ({ name: b.name, connected: b.state === 'connected', backlog: b.backlogRecords > 0 }));
    const consumedDuringOutage = consumed.records - consumedBeforeOutage;
    for (const link of Object.values(links)) link.proxy.restore();
    await Promise.all(Object.values(links).map((link) => watch.restored(link.bridge, 'outage')));
    const outage = watch.recoveries.filter((r) => r.label === 'outage');
    // Recovery is measured under live load: the devices publish until both bridges caught up.
    await watch.waitUntil(() => outage.every((r) => r.recoveredMs !== undefined), 'both bridges to catch up after the outage', DRAIN_TIMEOUT_MS);

    // Stop cleanly: the simulator first, so its ack log is complete; then the bridges drain.
    sim.child.kill('SIGTERM');
    expect(await sim.exited, sim.output().slice(-OUTPUT_TAIL_CHARS)).toBe(130);
    const partitionsTracked = READING_TOPICS.length * PARTITIONS;
    await watch.waitUntil(
      (reports) => [MQTT_BRIDGE, NATS_BRIDGE].every((name) => {
        const b = reports.get(name);
        return b?.state === 'connected' && b.partitions.length === partitionsTracked && b.backlogRecords === 0;
      }),
      'both bridges connected with backlog 0',
      DRAIN_TIMEOUT_MS,
    );
    const final = new Map(watch.latest);
    const highWatermarks = new Map(final.get(NATS_BRIDGE)!.partitions.map((p) => [`${p.topic}/${p.partition}`, p.highWatermark]));
    await waitFor(() => consumerAlive() && [...highWatermarks].every(([where, hw]) => (consumed.next.get(where) ?? 0) >= hw), 'the consumer to read up to every high watermark', DRAIN_TIMEOUT_MS);
    await app.close();
    await reading;
    expect(consumerFailure).toBeUndefined();
    await watch.stop();
    expect(gateway.child.exitCode, 'the gateway exited by itself').toBeNull();
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited, gateway.output().slice(-OUTPUT_TAIL_CHARS)).toBe(0);

    // What the central side holds, read straight from the servers (not through the proxies).
    const mqttRecords = await central.received();
    const natsRecords = await receivedRecords([nats.url], STREAM);
    const acked = readAckLog(ackLogFile);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as FleetReport;
    const audit = await auditLog(dir, READING_TOPICS);
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    let mqttCheck: ReplicaCheck;
    let natsCheck: ReplicaCheck;
    try {
      mqttCheck = checkReplica(log, READING_TOPICS, mqttRecords);
      natsCheck = checkReplica(log, READING_TOPICS, natsRecords);
    } finally {
      await log.close();
    }
    const inMqtt = upstreamReadings(mqttRecords);
    const inNats = upstreamReadings(natsRecords);
    const lostIds = [...acked.keys()].filter((id) => !audit.stored.has(id) || !inMqtt.has(id) || !inNats.has(id));
    const recovered = watch.recoveries.filter((r) => r.recoveredMs !== undefined);
    const faults = links.mqtt.faults + links.nats.faults - 1; // the outage of both links counts once
    const figures = reportFigures({
      scenario: 'upstream-links',
      seed: SEED,
      faults,
      acked: acked.size,
      found: [...acked.keys()].filter((id) => inMqtt.has(id) && inNats.has(id)).length,
      lost: lostIds.length,
      duplicated: mqttCheck.duplicates,
      recoveryMsMax: Math.max(0, ...recovered.map((r) => r.recoveredMs!)),
      elapsedS: Math.round((performance.now() - startedAtMs) / 1000),
      extra: {
        'outage recovery ms': Math.max(...outage.map((r) => r.recoveredMs ?? -1)),
        'recoveries timed': recovered.length,
        'jetstream duplicates': natsCheck.duplicates,
        'mqtt duplicates': mqttCheck.duplicates,
        'jetstream deduplicated': final.get(NATS_BRIDGE)!.counters.duplicateRecords,
        'records replicated': natsCheck.expected,
        'consumer records': consumed.records,
        'reconnects mqtt/nats': `${final.get(MQTT_BRIDGE)!.counters.reconnects}/${final.get(NATS_BRIDGE)!.counters.reconnects}`,
      },
    });

    // Nothing acknowledged is missing: in the log, in Mosquitto and in JetStream.
    expect(audit.problems).toEqual([]);
    expect(lostIds.slice(0, 20), `${lostIds.length} acknowledged readings are missing (log ${audit.stored.size}, mqtt ${inMqtt.size}, jetstream ${inNats.size})`).toEqual([]);
    expect([...acked.values()].every((n) => n === 1)).toBe(true);
    expect(acked.size).toBe(report.readings.acknowledged);
    // Both upstreams hold every record of the log, from this gateway, with its value, first copies in offset order per partition.
    expect(mqttRecords.filter((r) => r.gateway !== GATEWAY_ID).length).toBe(0);
    expect(natsRecords.filter((r) => r.gateway !== GATEWAY_ID).length).toBe(0);
    const clean = { complete: true, missing: [], outOfOrder: [], wrongValues: 0 };
    expect(replicaSummary(mqttCheck), 'Mosquitto').toEqual(clean);
    expect(replicaSummary(natsCheck), 'JetStream').toEqual(clean);
    // JetStream drops resends by Nats-Msg-Id: exactly once there, whatever the cuts interrupted.
    expect(natsCheck.duplicates).toBe(0);
    // Every MQTT duplicate is a resend of what was in flight at a cut: never more copies than resent records.
    expect(mqttCheck.duplicates).toBeLessThanOrEqual(final.get(MQTT_BRIDGE)!.counters.resentRecords);
    // The bridges' invariants held on every sample; every fault dropped a live connection that came back.
    expect([...watch.violations]).toEqual([]);
    for (const link of Object.values(links)) expect(final.get(link.bridge)!.counters.reconnects, `${link.bridge} reconnects`).toBeGreaterThanOrEqual(link.faults);
    expect(duringOutage).toEqual([
      { name: MQTT_BRIDGE, connected: false, backlog: true },
      { name: NATS_BRIDGE, connected: false, backlog: true },
    ]);
    expect(outage.every((r) => r.recoveredMs !== undefined)).toBe(true);
    // The local consumer read every record once, in order, during the outage too, and committed its position.
    expect(consumed.gaps).toEqual([]);
    expect(consumed.duplicates).toBe(0);
    expect(consumed.records).toBe(natsCheck.expected);
    expect(consumedDuringOutage).toBeGreaterThan(0);
    const committed = (group: string) => Object.fromEntries(audit.committed.get(group) ?? []);
    const atEnd = Object.fromEntries(highWatermarks);
    expect(committed(CONSUMER_GROUP)).toEqual(atEnd);
    // Bridge checkpoints (never ahead: audited above) reached the end, committed at the clean close.
    expect(committed(`bridge.${MQTT_BRIDGE}`)).toEqual(atEnd);
    expect(committed(`bridge.${NATS_BRIDGE}`)).toEqual(atEnd);
    // The run had real load: at least the readings of the outage alone.
    expect(figures.acked).toBeGreaterThan((DEVICES * RATE_PER_DEVICE * LONG_OUTAGE_MS) / 1000);
  }, 230_000);
});
