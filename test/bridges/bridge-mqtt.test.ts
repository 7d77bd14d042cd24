import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { describe, expect, onTestFinished, test } from 'vitest';
import { MqttUpstream } from '../../bridges/mqtt/mqtt-upstream.js';
import type { CursorStatus } from '../../bridges/partition-cursor.js';
import type { MqttEncodedMessage } from '../../bridges/mqtt/mqtt-encode.js';
import { loadProfiles } from '../../devices/profile.js';
import { Fleet } from '../../firmware-sim/index.js';
import type { Gateway } from '../../src/gateway.js';
import { readAll } from '../helpers/log.js';
import { mosquittoSkipReason, startMosquitto } from '../helpers/mosquitto.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';
import { bridgeStatus, checkReplica, startBridgedGateway, TEST_GATEWAY_ID, waitDrained } from './bridged-gateway.js';
import { centralSubscriber, decodeMessage } from './mqtt-central.js';

/**
 * The MQTT bridge through the real gateway, with Debian's Mosquitto as the central broker and an
 * MQTT 5 subscriber reading what arrives (issue 6, "Tests with the real engines"): a long outage
 * under a firmware-sim fleet, a link cut in the middle of a batch, commands down to devices, and
 * `ack: upstream`.
 */

const skip = mosquittoSkipReason();
const environment = loadProfiles().find((p) => p.name === 'environment-sensor')!;
const BRIDGE = 'central';
/** Test-sized reconnects: the defaults (500 ms doubling to 30 s) would make a restored link wait. */
const RECONNECT = { initialDelayMs: 100, maxDelayMs: 500 };

/** A bridge entry of the gateway config: MQTT 5 to `url`, with test-sized reconnects. */
function mqttBridge(url: string, fields: Record<string, unknown> = {}, mqttFields: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: BRIDGE, type: 'mqtt', topics: ['*'], reconnect: RECONNECT, ...fields, mqtt: { url, protocolVersion: 5, ...mqttFields } };
}

/** An MQTT 3.1.1 client of the gateway's own broker (anonymous: the test gateway has no registry, so loopback only). */
async function localClient(gateway: Gateway, clientId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.ports.mqtt}`, { clientId, protocolVersion: 4, reconnectPeriod: 0 });
  onTestFinished(() => client.endAsync(true));
  return client;
}

/** A partition's replication status, undefined until the bridge tracks it. */
function partitionOf(gateway: Gateway, topic: string, partition = 0): CursorStatus | undefined {
  return bridgeStatus(gateway, BRIDGE).partitions.find((x) => x.topic === topic && x.partition === partition);
}

/** MQTT 5 variable byte integer length (§1.5.5). */
function varintBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/**
 * Exact bytes of the QoS 1 MQTT 5 PUBLISH that carries `m` (§3.3): fixed header, topic name, packet
 * id, properties (content type §3.3.2.3.9, user properties §3.3.2.3.7) and payload. The bridge's own
 * `bytes` is an upper bound (it assumes 4-byte lengths); cutting mid-message needs the exact figure.
 */
function publishBytes(m: MqttEncodedMessage): number {
  let properties = 0;
  if (m.properties?.contentType !== undefined) properties += 1 + 2 + Buffer.byteLength(m.properties.contentType);
  for (const [name, v] of Object.entries(m.properties?.userProperties ?? {})) {
    for (const value of Array.isArray(v) ? v : [v]) properties += 1 + 2 + Buffer.byteLength(name) + 2 + Buffer.byteLength(value);
  }
  const remaining = 2 + Buffer.byteLength(m.topic) + 2 + varintBytes(properties) + properties + m.payload.length;
  return 1 + varintBytes(remaining) + remaining;
}

describe.skipIf(skip !== undefined)('MQTT bridge through the gateway, into Mosquitto', () => {
  test('a long outage while a fleet publishes: every acknowledged reading arrives, in order per partition; MQTT duplicates are counted', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    const gateway = await startBridgedGateway([mqttBridge(broker.url)], { overrides: { 'log.topicDefaults.partitions': '2' } });
    const fleet = new Fleet({
      gateway: `mqtt://127.0.0.1:${gateway.ports.mqtt}`,
      devices: 20,
      ratePerSecond: 10,
      durationS: 3,
      qos: 1,
      profiles: [environment],
      seed: 6,
      rampPerSecond: 1_000,
    });
    const run = fleet.run();
    // Stop the central broker once replication is under way, so the outage cuts a live stream.
    await waitFor(() => bridgeStatus(gateway, BRIDGE).counters.ackedRecords > 0, 'the first readings to be replicated', 15_000);
    await broker.stop();
    await waitFor(() => bridgeStatus(gateway, BRIDGE).state !== 'connected', 'the bridge to notice the outage');
    const report = await run;
    expect(report.readings.acknowledged).toBe(report.readings.generated);
    // The fleet kept publishing during the outage: the gateway acked locally and holds a backlog.
    const during = bridgeStatus(gateway, BRIDGE);
    expect(during.state).not.toBe('connected');
    expect(during.backlogRecords).toBeGreaterThan(0);

    await broker.start();
    const drained = await waitDrained(gateway, BRIDGE, 30_000);
    expect(drained.counters.reconnects).toBeGreaterThanOrEqual(1);
    const received = await central.received();
    const topics = environment.streams.map((s) => s.name);
    const check = checkReplica(gateway.log, topics, received);
    expect(check.expected).toBe(report.readings.acknowledged);
    expect(check.missing).toEqual([]);
    expect(check.outOfOrder).toEqual([]);
    expect(check.wrongValues).toBe(0);
    expect(new Set(received.map((r) => r.gateway))).toEqual(new Set([TEST_GATEWAY_ID]));
    // MQTT has no deduplication: a record whose PUBACK was lost with the link is sent again and
    // the central side holds it twice. Copies the bridge sent again are at most what it counts as
    // resent; copies Mosquitto itself redelivered to the subscriber after its restart carry DUP.
    const bridgeCopies = central.messages.filter((m) => !m.dup).flatMap(decodeMessage);
    const bridgeDuplicates = checkReplica(gateway.log, topics, bridgeCopies).duplicates;
    expect(bridgeDuplicates).toBeLessThanOrEqual(drained.counters.resentRecords);
    expect(check.duplicates).toBeLessThanOrEqual(drained.counters.resentRecords + central.messages.filter((m) => m.dup).length);
    expect(drained.counters.duplicateRecords).toBe(0); // only JetStream reports duplicates
  });

  test('a link cut by a proxy in the middle of a gzip batch: the bridge reconnects through it and resends the whole batch', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    const proxy = await startTcpProxy(broker.port);
    const batch = { records: 50, gzip: true };
    const gateway = await startBridgedGateway([mqttBridge(`mqtt://127.0.0.1:${proxy.port}`, { topics: ['telemetry'], batch })]);
    await gateway.log.createTopic('telemetry', { partitions: 1 });
    // With nothing to send, the link carries only CONNECT: its size is what every reconnect costs.
    await waitFor(() => bridgeStatus(gateway, BRIDGE).state === 'connected', 'the bridge to connect');
    const connectBytes = proxy.bytesUp;
    // The same encoder as the bridge's, to know each batch's exact size on the wire.
    const encoder = new MqttUpstream({ url: broker.url, protocolVersion: 5, clientId: 'sizes', gatewayId: TEST_GATEWAY_ID, batch, commands: null, logger: pino({ level: 'silent' }) });
    const wireBytes = (from: number) => publishBytes(encoder.encode({ topic: 'telemetry', partition: 0, records: gateway.log.read('telemetry', 0, from, { maxRecords: batch.records }).records }) as MqttEncodedMessage);
    const value = (i: number) => Buffer.from(JSON.stringify({ seq: i, temperature: 20 + (i % 50) / 10, humidity: 40 + (i % 30) }));
    const append = async (from: number, count: number) => {
      await gateway.log.append('telemetry', Array.from({ length: count }, (_, i) => ({ key: `d${(from + i) % 10}`, value: value(from + i) })));
    };

    // One batch with the link up checks the size arithmetic against the proxy's count.
    await append(0, batch.records);
    await waitFor(() => partitionOf(gateway, 'telemetry')?.acked === batch.records, 'the first batch upstream');
    expect(proxy.bytesUp - connectBytes).toBe(wireBytes(0));
    const beforeBacklog = proxy.bytesUp;

    // A backlog of 5,000 records (100 batches) while the link is down.
    proxy.refuse();
    await waitFor(() => bridgeStatus(gateway, BRIDGE).state !== 'connected', 'the bridge to notice the refused link');
    const backlog = 5_000;
    await append(batch.records, backlog);
    const sizes = Array.from({ length: backlog / batch.records }, (_, k) => wireBytes(batch.records * (k + 1)));
    // The link comes back and is cut half-way through batch 40 (the 41st after reconnecting).
    const whole = 40;
    expect(sizes[whole]!).toBeGreaterThan(2);
    const cutAt = connectBytes + sizes.slice(0, whole).reduce((a, b) => a + b, 0) + Math.floor(sizes[whole]! / 2);
    proxy.cutAfterBytes(cutAt);
    proxy.restore();

    const drained = await waitDrained(gateway, BRIDGE, 30_000);
    // Connected at start, after the refusal, after the cut.
    expect(drained.counters.reconnects).toBe(2);
    // Batch 40 was in flight when the cut came (Mosquitto never got it whole): resent at least.
    expect(drained.counters.resentRecords).toBeGreaterThanOrEqual(batch.records);
    expect(proxy.connections).toBe(1);
    const received = await central.received();
    const check = checkReplica(gateway.log, ['telemetry'], received);
    expect(check.expected).toBe(batch.records + backlog);
    expect(check.missing).toEqual([]);
    expect(check.outOfOrder).toEqual([]);
    expect(check.wrongValues).toBe(0);
    expect(check.duplicates).toBeLessThanOrEqual(drained.counters.resentRecords);
    // Byte for byte: after the cut connection's `cutAt` bytes, the link carried one CONNECT and
    // whole batches from a batch boundary at or before the interrupted one to the end.
    const afterCut = proxy.bytesUp - beforeBacklog - cutAt - connectBytes;
    const resentFrom = sizes.findIndex((_, j) => sizes.slice(j).reduce((a, b) => a + b, 0) === afterCut);
    expect(resentFrom).toBeGreaterThanOrEqual(0);
    expect(resentFrom).toBeLessThanOrEqual(whole);
  });

  test('commands come down to devices through the gateway broker; a command outside the allowed filters is refused and counted', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    const gateway = await startBridgedGateway([mqttBridge(broker.url, {}, { commands: {} })]);
    await waitFor(() => bridgeStatus(gateway, BRIDGE).state === 'connected', 'the bridge to connect and subscribe to its commands');
    const device = await localClient(gateway, 'd1');
    // A wider watcher: a refused command must not reach anyone locally, whatever they subscribe to.
    const watcher = await localClient(gateway, 'watcher');
    const toDevice: Array<[string, string]> = [];
    const toWatcher: Array<[string, string]> = [];
    device.on('message', (topic, payload) => toDevice.push([topic, payload.toString()]));
    watcher.on('message', (topic, payload) => toWatcher.push([topic, payload.toString()]));
    await device.subscribeAsync('devices/d1/commands/#', { qos: 1 });
    await watcher.subscribeAsync('devices/#', { qos: 1 });

    const prefix = `gateways/${TEST_GATEWAY_ID}/commands/`;
    await central.publish(`${prefix}devices/d1/commands/reboot`, 'now');
    await waitFor(() => toDevice.length === 1, 'the reboot command to reach the device');
    expect(toDevice).toEqual([['devices/d1/commands/reboot', 'now']]);

    // A command posing as a reading: refused. The bridge handles commands in order, so once the
    // next allowed command arrived, the refused one has been dealt with.
    await central.publish(`${prefix}devices/d1/readings/x`, '{"temperature":99}');
    await central.publish(`${prefix}devices/d1/commands/ping`, '1');
    await waitFor(() => toDevice.length === 2, 'the ping command to reach the device');
    await waitFor(() => toWatcher.length >= 2, 'the watcher to see both allowed commands');
    expect(toDevice).toEqual([
      ['devices/d1/commands/reboot', 'now'],
      ['devices/d1/commands/ping', '1'],
    ]);
    expect(toWatcher.map(([topic]) => topic)).toEqual(['devices/d1/commands/reboot', 'devices/d1/commands/ping']);
    expect(gateway.log.hasTopic('readings')).toBe(false);
    expect(bridgeStatus(gateway, BRIDGE).commands).toEqual({ delivered: 2, refused: 1 });
    const api = (await (await fetch(`http://127.0.0.1:${gateway.ports.http}/api/bridges`)).json()) as { bridges: Array<{ name: string; commands?: unknown }> };
    expect(api.bridges.find((b) => b.name === BRIDGE)?.commands).toEqual({ delivered: 2, refused: 1 });
  });

  test('ack: upstream holds a device PUBACK until Mosquitto has the record, and falls back to the local ack while the link is down', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    // Longer than this test: a PUBACK that comes while the link is held or down did not time out.
    const upstreamAckTimeoutMs = 120_000;
    const gateway = await startBridgedGateway([mqttBridge(broker.url, { topics: [{ match: 'critical', ack: 'upstream' }], upstreamAckTimeoutMs })]);
    await waitFor(() => bridgeStatus(gateway, BRIDGE).state === 'connected', 'the bridge to connect');
    const d1 = await localClient(gateway, 'd1');
    const d2 = await localClient(gateway, 'd2');
    const pid = broker.pid!;

    // Link up, Mosquitto frozen (SIGSTOP): the record goes out and no PUBACK comes back upstream.
    process.kill(pid, 'SIGSTOP');
    let resumed = false;
    const resume = () => {
      if (!resumed) process.kill(pid, 'SIGCONT');
      resumed = true;
    };
    onTestFinished(resume);
    let acked = false;
    let ackedUpstreamAtPuback = -1;
    const published = d1.publishAsync('devices/d1/critical', '{"pressure":1.8}', { qos: 1 }).then(() => {
      acked = true;
      ackedUpstreamAtPuback = partitionOf(gateway, 'critical')?.acked ?? -1;
    });
    await waitFor(() => partitionOf(gateway, 'critical')?.inFlightRecords === 1, 'the critical reading to be sent upstream');
    // A reading of another device on a topic with the local ack, appended after it: once its
    // PUBACK is back, a local ack of the critical reading would have come too.
    await d2.publishAsync('devices/d2/telemetry', '{"t":1}', { qos: 1 });
    expect(acked).toBe(false);
    resume();
    await published;
    // When the device got its PUBACK, the bridge had Mosquitto's PUBACK for offset 0.
    expect(ackedUpstreamAtPuback).toBe(1);
    const upstream = await central.received();
    expect(upstream.map((r) => `${r.topic}/${r.offset}/${r.key}`)).toEqual(['critical/0/d1']);

    // Link down: the PUBACK follows the local fsync at once, not after upstreamAckTimeoutMs.
    await broker.stop();
    await waitFor(() => bridgeStatus(gateway, BRIDGE).state !== 'connected', 'the bridge to notice the outage');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      d1.publishAsync('devices/d1/critical', '{"pressure":1.9}', { qos: 1 }),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('the PUBACK waited for the upstream while the link was down')), upstreamAckTimeoutMs / 4))),
    ]).finally(() => clearTimeout(timer));
    expect(readAll(gateway.log, 'critical').map((r) => r.offset)).toEqual([0, 1]);
    expect(partitionOf(gateway, 'critical')?.acked).toBe(1);

    // And it goes upstream once the link is back.
    await broker.start();
    await waitDrained(gateway, BRIDGE);
    const after = await central.received();
    expect(checkReplica(gateway.log, ['critical'], after).missing).toEqual([]);
  });
});
