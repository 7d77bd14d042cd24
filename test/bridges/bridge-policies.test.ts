import { pino } from 'pino';
import { describe, expect, onTestFinished, test } from 'vitest';
import { Bridge, type BridgeSettings } from '../../bridges/bridge.js';
import type { BridgeTopicRule } from '../../bridges/bridge-rules.js';
import { MqttUpstream } from '../../bridges/mqtt/mqtt-upstream.js';
import type { CommitLog } from '../../src/index.js';
import type { Gateway } from '../../src/gateway.js';
import { openTestLog } from '../helpers/log.js';
import { mosquittoSkipReason, startMosquitto } from '../helpers/mosquitto.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';
import { bridgeStatus, checkReplica, startBridgedGateway, TEST_GATEWAY_ID, waitDrained } from './bridged-gateway.js';
import { centralSubscriber } from './mqtt-central.js';
import type { ReceivedRecord } from './upstream-contract.js';

/**
 * The bridge core's policies against a real upstream (Mosquitto, the simplest engine to run):
 * priorities while a backlog drains, the bandwidth cap, and sync windows (issue 6, "Priorities and
 * windows"). Sync windows are tested on the core with a clock the test moves (BridgeOptions.now).
 */

const skip = mosquittoSkipReason();
const BRIDGE = 'central';
/** Test-sized reconnects: the defaults (500 ms doubling to 30 s) would make a restored link wait. */
const RECONNECT = { initialDelayMs: 50, maxDelayMs: 200 };
const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

function mqttBridge(url: string, fields: Record<string, unknown>): Record<string, unknown> {
  return { name: BRIDGE, type: 'mqtt', reconnect: RECONNECT, ...fields, mqtt: { url, protocolVersion: 5 } };
}

async function appendMany(log: CommitLog, topic: string, count: number, value: (i: number) => Buffer = (i) => Buffer.from(`{"seq":${i}}`)): Promise<void> {
  await log.append(topic, Array.from({ length: count }, (_, i) => ({ key: `d${i % 10}`, value: value(i) })));
}

/** The first copy of each record, in arrival order at the central subscriber. */
function firstCopies(received: readonly ReceivedRecord[]): ReceivedRecord[] {
  const seen = new Set<string>();
  return received.filter((r) => {
    const id = `${r.topic}/${r.partition}/${r.offset}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

function inFlightRecords(gateway: Gateway, topic?: string): number {
  return bridgeStatus(gateway, BRIDGE)
    .partitions.filter((p) => topic === undefined || p.topic === topic)
    .reduce((n, p) => n + p.inFlightRecords, 0);
}

describe.skipIf(skip !== undefined)('bridge policies with Mosquitto', () => {
  test('priorities: a backlog of alerts drains before telemetry; a new alert overtakes everything not yet in flight', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    const proxy = await startTcpProxy(broker.port);
    // A small window (20 one-record messages): the alerts need many refills, and priority must hold at each.
    const maxInFlight = 20;
    proxy.refuse();
    const gateway = await startBridgedGateway([
      mqttBridge(`mqtt://127.0.0.1:${proxy.port}`, { topics: [{ match: 'alerts', priority: 10 }, { match: '*' }], maxInFlight }),
    ]);
    await gateway.log.createTopic('telemetry', { partitions: 2 });
    await gateway.log.createTopic('alerts', { partitions: 1 });
    const telemetry = 3_000;
    const alerts = 300;
    await appendMany(gateway.log, 'telemetry', telemetry);
    await appendMany(gateway.log, 'alerts', alerts);
    await waitFor(() => bridgeStatus(gateway, BRIDGE).backlogRecords === telemetry + alerts, 'the bridge to see the whole backlog');
    expect(bridgeStatus(gateway, BRIDGE).counters.sentRecords).toBe(0);

    // Nothing was in flight when the link came back, so the claim is strict: every alert first.
    proxy.restore();
    await waitDrained(gateway, BRIDGE, 30_000);
    const arrived = firstCopies(await central.received());
    expect(checkReplica(gateway.log, ['telemetry', 'alerts'], arrived)).toMatchObject({ expected: telemetry + alerts, missing: [], outOfOrder: [], wrongValues: 0 });
    expect(arrived.slice(0, alerts).every((r) => r.topic === 'alerts')).toBe(true);

    // Now with the window full of telemetry: Mosquitto frozen (SIGSTOP), so nothing is acked.
    // The core cannot recall what is in flight, but every later choice goes to the alerts: exactly
    // the window's telemetry arrives before the first new alert, then all new alerts together.
    const pid = broker.pid!;
    process.kill(pid, 'SIGSTOP');
    let resumed = false;
    const resume = () => {
      if (!resumed) process.kill(pid, 'SIGCONT');
      resumed = true;
    };
    onTestFinished(resume);
    const sentBefore = bridgeStatus(gateway, BRIDGE).counters.sentRecords;
    await appendMany(gateway.log, 'telemetry', 2_000);
    await waitFor(() => inFlightRecords(gateway) === maxInFlight, 'the window to fill with telemetry');
    const newAlerts = 50;
    await appendMany(gateway.log, 'alerts', newAlerts);
    const telemetryInFlight = bridgeStatus(gateway, BRIDGE).counters.sentRecords - sentBefore;
    expect(telemetryInFlight).toBe(maxInFlight);
    resume();
    await waitDrained(gateway, BRIDGE, 30_000);
    const all = firstCopies(await central.received());
    const later = all.slice(telemetry + alerts);
    const firstNewAlert = later.findIndex((r) => r.topic === 'alerts');
    expect(firstNewAlert).toBe(telemetryInFlight);
    expect(later.slice(firstNewAlert, firstNewAlert + newAlerts).map((r) => `${r.topic}/${r.offset}`)).toEqual(
      Array.from({ length: newAlerts }, (_, i) => `alerts/${alerts + i}`),
    );
    expect(checkReplica(gateway.log, ['telemetry', 'alerts'], all)).toMatchObject({ missing: [], outOfOrder: [], wrongValues: 0 });
  });

  test('bandwidth cap: a backlog drains no faster than the cap allows, on the wire', async () => {
    const broker = await startMosquitto();
    const proxy = await startTcpProxy(broker.port);
    const rate = 20_000;
    const gateway = await startBridgedGateway([mqttBridge(`mqtt://127.0.0.1:${proxy.port}`, { topics: ['bulk'], bandwidthBytesPerSecond: rate })]);
    await gateway.log.createTopic('bulk', { partitions: 1 });
    // With nothing to send the link carries only CONNECT; each reconnect costs that again.
    await waitFor(() => bridgeStatus(gateway, BRIDGE).state === 'connected', 'the bridge to connect');
    const connectBytes = proxy.bytesUp;
    proxy.refuse();
    await waitFor(() => bridgeStatus(gateway, BRIDGE).state !== 'connected', 'the bridge to notice the refused link');
    // About 110 KB on the wire: 220 records of 300 bytes, plus topic and identity properties each.
    const records = 220;
    await appendMany(gateway.log, 'bulk', records, (i) => Buffer.from(`{"seq":${i},"pad":"${'x'.repeat(280)}"}`.padEnd(300, ' ')));

    const restoredAt = Date.now();
    proxy.restore();
    await waitDrained(gateway, BRIDGE, 30_000);
    const elapsedMs = Date.now() - restoredAt;
    const bytes = proxy.bytesUp - 2 * connectBytes;
    expect(bytes).toBeGreaterThan(4 * rate);
    // The cap lets one second's worth go at once, and a message goes whole once any allowance is
    // left, so it may overshoot by one message (each is well under this bound here).
    const messageBoundBytes = 1_000;
    // Consistent with the cap on the wire: bytes <= one second's burst + rate × time + one message,
    // i.e. the drain takes at least (bytes − burst − one message) / rate, on any machine.
    expect(bytes).toBeLessThanOrEqual(rate + (rate * elapsedMs) / 1000 + messageBoundBytes);
    expect(bridgeStatus(gateway, BRIDGE).counters.ackedRecords).toBe(records);
  });

  test('sync windows: a bulk topic waits while its window is closed and drains when the clock enters it', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    const log = await openTestLog();
    await log.createTopic('bulk', { partitions: 1 });
    await log.createTopic('telemetry', { partitions: 1 });
    // Seconds 0 to 9 of every minute; the clock starts at second 30, outside the window.
    const rules: BridgeTopicRule[] = [
      { match: 'bulk', priority: 0, syncWindow: '0-9 * * * * *', ack: 'local' },
      { match: 'telemetry', priority: 0, syncWindow: null, ack: 'local' },
    ];
    const closedMs = new Date(2030, 0, 1, 12, 0, 30).getTime();
    const openMs = new Date(2030, 0, 1, 12, 1, 5).getTime();
    let nowMs = closedMs;
    const settings: BridgeSettings = {
      name: 'windows',
      gatewayId: TEST_GATEWAY_ID,
      topics: rules,
      maxInFlight: 100,
      maxInFlightBytes: 1024 * 1024,
      batch: null,
      bandwidthBytesPerSecond: 0,
      checkpointIntervalMs: 1_000,
      reconnect: RECONNECT,
      upstreamAckTimeoutMs: 5_000,
    };
    const upstream = new MqttUpstream({ url: broker.url, protocolVersion: 5, clientId: `windows-${process.pid}`, gatewayId: TEST_GATEWAY_ID, batch: null, commands: null, logger });
    const bridge = new Bridge({ log, settings, upstream, logger, now: () => nowMs });
    onTestFinished(() => bridge.close());
    const acked = (topic: string) => bridge.status().partitions.find((p) => p.topic === topic)?.acked ?? 0;
    const sent = (topic: string) => {
      const p = bridge.status().partitions.find((x) => x.topic === topic);
      return p === undefined ? 0 : p.acked + p.inFlightRecords;
    };

    await appendMany(log, 'bulk', 100);
    await appendMany(log, 'telemetry', 100);
    bridge.start();
    await waitFor(() => acked('telemetry') === 100, 'telemetry to drain');
    // Another append makes the core fill its window again with the bulk backlog in view: still closed.
    await appendMany(log, 'telemetry', 50);
    await waitFor(() => acked('telemetry') === 150, 'more telemetry to drain');
    expect(sent('bulk')).toBe(0);
    expect(bridge.status().counters.sentRecords).toBe(150);
    expect((await central.received()).filter((r) => r.topic === 'bulk')).toEqual([]);

    // The clock enters the window: no append is needed, the core's housekeeping opens it.
    nowMs = openMs;
    await waitFor(() => acked('bulk') === 100, 'bulk to drain inside its window');
    expect(checkReplica(log, ['bulk', 'telemetry'], await central.received())).toMatchObject({ expected: 250, missing: [], outOfOrder: [], wrongValues: 0 });

    // And the window closes again: new bulk waits, telemetry still flows.
    nowMs = closedMs + 60_000;
    await appendMany(log, 'bulk', 10);
    await appendMany(log, 'telemetry', 10);
    await waitFor(() => acked('telemetry') === 160, 'telemetry to drain with the window closed');
    expect(sent('bulk')).toBe(100);
  });
});
