import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import type { IConnackPacket, ISubackPacket } from 'mqtt-packet';
import { describe, expect, it, onTestFinished } from 'vitest';
import { encodeReading } from '../../devices/payload-codec.js';
import { loadProfiles } from '../../devices/profile.js';
import { AUTH_FAILURE_BURST } from '../../src/ingest/auth-throttle.js';
import { startGateway, WARN, writeRegistry, type LogLine } from '../helpers/gateway.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { waitFor } from '../helpers/wait.js';

const environment = loadProfiles().find((p) => p.name === 'environment-sensor')!;
const climate = (seq: number) => encodeReading(environment, 'climate', { seq, ts: 1_769_846_400_000 + seq, values: { temperature: 21.5, humidity: 45, pressure: 1013 } });

const DEVICES = [
  { id: 'env-0001', profile: 'environment-sensor', password: 'pw-env-0001-secret' },
  { id: 'env-0002', profile: 'environment-sensor', password: 'pw-env-0002-secret' },
];

async function registryGateway(overrides: Record<string, string | boolean> = {}, logs?: LogLine[]) {
  const registryFile = await writeRegistry(DEVICES);
  return startGateway({ 'devices.registryFile': registryFile, ...overrides }, logs ? { logs } : {});
}

async function connect(port: number, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...options });
  onTestFinished(() => client.endAsync(true));
  return client;
}

/** The CONNACK return code a connection attempt gets (0: accepted), read off the wire. */
async function connackCode(port: number, connect: { clientId: string; clean?: boolean; username?: string; password?: string }): Promise<number> {
  const raw = await RawMqtt.connect(port);
  raw.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    keepalive: 30,
    clean: connect.clean ?? true,
    clientId: connect.clientId,
    ...(connect.username === undefined ? {} : { username: connect.username }),
    ...(connect.password === undefined ? {} : { password: Buffer.from(connect.password) }),
  });
  const connack = (await raw.next('connack')) as IConnackPacket;
  return connack.returnCode ?? -1;
}

/** Publishes and resolves to 'acked', or 'closed' when the gateway refuses by closing the connection. */
function publishOutcome(client: mqtt.MqttClient, topic: string, payload: Buffer | string, qos: 0 | 1 | 2 = 1): Promise<'acked' | 'closed'> {
  return Promise.race([
    client.publishAsync(topic, payload, { qos }).then(() => 'acked' as const),
    new Promise<'closed'>((resolve) => client.once('close', () => resolve('closed'))),
  ]);
}

describe('MQTT device identity', () => {
  it('a registered device with its password publishes; the record names its profile and content type', async () => {
    const gateway = await registryGateway();
    const client = await connect(gateway.ports.mqtt, { clientId: 'env-0001', username: 'env-0001', password: 'pw-env-0001-secret' });
    await client.publishAsync('devices/env-0001/climate', climate(1), { qos: 1 });
    const [record] = gateway.log.read('climate', 0, 0).records;
    expect(record!.key).toBe('env-0001');
    expect(record!.value).toEqual(climate(1));
    expect(record!.headers).toMatchObject({ 'device-id': 'env-0001', profile: 'environment-sensor', 'content-type': 'application/json', 'mqtt-topic': 'devices/env-0001/climate' });
    expect(Number(record!.headers['received-at'])).toBeGreaterThan(0);
  });

  it('refuses a wrong password and an unknown device with CONNACK 4, no credentials with 5, and logs each at warn', async () => {
    const logs: LogLine[] = [];
    const gateway = await registryGateway({}, logs);
    const port = gateway.ports.mqtt;
    expect(await connackCode(port, { clientId: 'a', username: 'env-0001', password: 'wrong' })).toBe(4);
    expect(await connackCode(port, { clientId: 'b', username: 'nobody', password: 'x' })).toBe(4);
    expect(await connackCode(port, { clientId: 'c' })).toBe(5);
    const refusals = logs.filter((l) => l.level === WARN && l.msg === 'connection refused').map((l) => l['reason']);
    expect(refusals).toEqual([
      "wrong password for device 'env-0001'",
      "unknown device 'nobody'",
      'no credentials: this gateway requires a device username and password or a client certificate',
    ]);
    expect(JSON.stringify(logs)).not.toContain('wrong"'); // the secret is never logged
    expect(gateway.intake.stats().refused['AUTH_FAILED']).toBe(3);
  });

  it('stops checking credentials from a source after repeated failures, so guessing is slow and cheap to refuse', async () => {
    const logs: LogLine[] = [];
    const gateway = await registryGateway({}, logs);
    const port = gateway.ports.mqtt;
    for (let i = 0; i < AUTH_FAILURE_BURST; i++) expect(await connackCode(port, { clientId: `g${i}`, username: 'env-0001', password: `guess-${i}` })).toBe(4);
    // Now even the right password is not checked from this address until it has waited.
    expect(await connackCode(port, { clientId: 'right', username: 'env-0001', password: 'pw-env-0001-secret' })).toBe(5);
    expect(logs.filter((l) => l.msg === 'too many failed logins: refusing this source without checking for a while')).toHaveLength(1);
    expect(logs.filter((l) => l.msg === 'connection refused')).toHaveLength(AUTH_FAILURE_BURST);
  });

  it('refuses a publish under another device id: no PUBACK, the connection closes, nothing is stored', async () => {
    const logs: LogLine[] = [];
    const gateway = await registryGateway({}, logs);
    const client = await connect(gateway.ports.mqtt, { clientId: 'env-0001', username: 'env-0001', password: 'pw-env-0001-secret' });
    expect(await publishOutcome(client, 'devices/env-0002/climate', climate(1))).toBe('closed');
    expect(gateway.log.hasTopic('climate')).toBe(false);
    const warning = logs.find((l) => l.level === WARN && l.msg === 'publish refused');
    expect(warning).toMatchObject({ code: 'NOT_AUTHORIZED', reason: "device 'env-0001' may publish only under its own id (devices/env-0001/{stream}), not as 'env-0002'" });
  });

  it('grants subscriptions the profile allows and refuses others with SUBACK 0x80', async () => {
    const gateway = await registryGateway();
    const client = await connect(gateway.ports.mqtt, { clientId: 'env-0001', username: 'env-0001', password: 'pw-env-0001-secret' });
    const suback = new Promise<ISubackPacket>((resolve) => client.on('packetreceive', (p) => p.cmd === 'suback' && resolve(p)));
    client.subscribe(['devices/env-0001/commands/#', 'devices/env-0002/commands/#', '#'], () => {});
    expect((await suback).granted).toEqual([0, 128, 128]);
    expect(gateway.intake.stats().refused['NOT_AUTHORIZED']).toBe(2);
  });

  it('with allowAnonymous, anonymous clients publish for unregistered ids but never as a registered device', async () => {
    const gateway = await registryGateway({ allowAnonymous: true });
    const anonymous = await connect(gateway.ports.mqtt, { clientId: 'anon-1' });
    await anonymous.publishAsync('devices/bench-1/climate', '{"free":"form"}', { qos: 1 });
    const [record] = gateway.log.read('climate', 0, 0).records;
    expect(record!.headers).toMatchObject({ 'device-id': 'bench-1', 'content-type': 'application/json' });
    expect(record!.headers['profile']).toBeUndefined(); // no profile to decode by: stored as sent
    expect(await publishOutcome(anonymous, 'devices/env-0001/climate', climate(1))).toBe('closed');
    expect(gateway.log.read('climate', 0, 0).records).toHaveLength(1);
  });

  it('stores a reading that does not decode by its profile in _deadletter with the reason, and acks it', async () => {
    const logs: LogLine[] = [];
    const gateway = await registryGateway({}, logs);
    const client = await connect(gateway.ports.mqtt, { clientId: 'env-0001', username: 'env-0001', password: 'pw-env-0001-secret' });
    const cases: [string, string | Buffer, RegExp][] = [
      ['devices/env-0001/climate', '{"seq":1,"ts":1769846400000,"temperature":500,"humidity":45,"pressure":1013}', /'temperature' is 500, outside \[-40, 85\]/],
      ['devices/env-0001/climate', 'not json', /unknown format/],
      ['devices/env-0001/vibration', climate(2), /stream 'vibration'/],
    ];
    for (const [topic, payload] of cases) await client.publishAsync(topic, payload, { qos: 1 });
    await client.publishAsync('devices/env-0001/climate', climate(3), { qos: 1 }); // the connection is fine
    const dead = gateway.log.read('_deadletter', 0, 0).records;
    expect(dead).toHaveLength(3);
    dead.forEach((record, i) => {
      const [topic, payload, reason] = cases[i]!;
      expect(record.value).toEqual(Buffer.from(payload)); // the original bytes
      expect(record.key).toBe('env-0001');
      expect(record.headers['mqtt-topic']).toBe(topic);
      expect(record.headers['original-topic']).toBe(topic.split('/')[2]);
      expect(record.headers['deadletter-reason']).toMatch(reason);
    });
    expect(gateway.log.read('climate', 0, 0).records).toHaveLength(1);
    expect(gateway.intake.stats()).toMatchObject({ stored: 1, deadLettered: 3 });
    // One warning per device per minute, not one per reading.
    expect(logs.filter((l) => l.msg === 'reading stored in the dead-letter topic')).toHaveLength(1);
  });

  it('the example production config requires credentials from every client', async () => {
    const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
    const gateway = await startGateway(
      {
        'devices.registryFile': await writeRegistry(DEVICES),
        'tls.certFile': fixture('server.pem'),
        'tls.keyFile': fixture('server.key'),
        'tls.caFile': fixture('ca.pem'),
        'tls.mqttPort': '0',
        'tls.httpsPort': '0',
      },
      { configFile: fileURLToPath(new URL('../../config/production.example.yaml', import.meta.url)) },
    );
    expect(await connackCode(gateway.ports.mqtt, { clientId: 'anonymous' })).toBe(5);
    expect(await connackCode(gateway.ports.mqtt, { clientId: 'env-0001', username: 'env-0001', password: 'pw-env-0001-secret' })).toBe(0);
  });

  it('answers an empty client id with clean session 0 with CONNACK 2 (MQTT-3.1.3-8)', async () => {
    const gateway = await startGateway();
    const raw = await RawMqtt.connect(gateway.ports.mqtt);
    // CONNECT, MQTT 3.1.1, connect flags 0x00 (clean session 0), keepalive 30, client id ''.
    raw.sendBytes(Buffer.from([0x10, 12, 0, 4, ...Buffer.from('MQTT'), 4, 0x00, 0, 30, 0, 0]));
    expect(((await raw.next('connack')) as IConnackPacket).returnCode).toBe(2);
    await raw.whenClosed();
    expect(await connackCode(gateway.ports.mqtt, { clientId: '', clean: true })).toBe(0);
  });

  it('refuses a publish to a topic outside devices/{deviceId}/{stream} by closing the connection, and says why', async () => {
    const logs: LogLine[] = [];
    const gateway = await startGateway({}, { logs });
    const client = await connect(gateway.ports.mqtt, { clientId: 'x' });
    expect(await publishOutcome(client, 'sensors/x/temperature', '1')).toBe('closed');
    expect(gateway.log.listTopics()).toEqual([]);
    await waitFor(() => logs.some((l) => l.msg === 'publish refused'), 'the refusal warning');
    expect(logs.find((l) => l.msg === 'publish refused')).toMatchObject({ level: WARN, code: 'UNMAPPED_TOPIC', reason: "topic 'sensors/x/temperature' does not match devices/{deviceId}/{stream}" });
  });
});
