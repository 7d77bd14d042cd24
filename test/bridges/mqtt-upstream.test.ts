import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, onTestFinished, test } from 'vitest';
import { MqttUpstream, type MqttUpstreamOptions } from '../../bridges/mqtt/mqtt-upstream.js';
import { IDENTITY } from '../../bridges/record-identity.js';
import type { SendResult } from '../../bridges/upstream.js';
import { EdgelogError } from '../../src/errors.js';
import { mosquittoSkipReason, startMosquitto } from '../helpers/mosquitto.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { centralSubscriber, decodeMessage } from './mqtt-central.js';
import { record } from './upstream-contract.js';

const skip = mosquittoSkipReason();
const MOSQUITTO_PASSWD_BIN = '/usr/bin/mosquitto_passwd';
const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
let clients = 0;

type Options = Partial<MqttUpstreamOptions> & { url: string };

/** An upstream with test-sized timeouts, disconnected when the test finishes. */
function makeUpstream(options: Options): MqttUpstream {
  const upstream = new MqttUpstream({
    protocolVersion: 5,
    clientId: `bridge-test-${process.pid}-${++clients}`,
    gatewayId: 'gw1',
    batch: null,
    commands: null,
    connectTimeoutMs: 5_000,
    ackTimeoutMs: 10_000,
    logger,
    ...options,
  });
  onTestFinished(() => upstream.disconnect());
  return upstream;
}

async function rejection(promise: Promise<unknown>): Promise<EdgelogError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected a rejection').toBeInstanceOf(EdgelogError);
  return error as EdgelogError;
}

/** A CA, a server certificate for 127.0.0.1 and localhost signed by it, a client certificate, and an unrelated CA. */
function makeCerts(dir: string) {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (name: string) => openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  for (const ca of ['ca', 'other-ca']) {
    key(ca);
    openssl('req', '-x509', '-new', '-key', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=edgelog test ${ca}`);
  }
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [
    ['server', 'localhost'],
    ['client', 'gw1'],
  ] as const) {
    key(name);
    openssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
  const at = (file: string) => join(dir, file);
  return { ca: at('ca.crt'), otherCa: at('other-ca.crt'), serverCert: at('server.crt'), serverKey: at('server.key'), clientCert: at('client.crt'), clientKey: at('client.key') };
}

describe.skipIf(skip !== undefined)('MqttUpstream with Mosquitto', () => {
  test('MQTT 5: a record arrives on the template topic, its identity and headers in user properties', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    const upstream = makeUpstream({ url: broker.url });
    await upstream.connect();
    const r = record(7, { key: 'sensor/1', value: Buffer.from([0, 1, 0xff]), headers: { unit: 'celsius', raw: Buffer.from([0xde, 0xad]) } });
    const encoded = upstream.encode({ topic: 'readings', partition: 2, records: [r] });
    expect(encoded.bytes).toBeGreaterThan(r.value.length + 'gateways/gw1/readings/sensor%2F1'.length);
    expect(await upstream.send(encoded)).toEqual({ duplicate: false });

    const [message, ...rest] = await central.settled();
    expect(rest).toHaveLength(0);
    // The key's '/' is escaped, so it cannot add a topic level.
    expect(message!.topic).toBe('gateways/gw1/readings/sensor%2F1');
    expect(message!.payload).toEqual(r.value);
    expect(message!.userProperties).toEqual({
      [IDENTITY.gateway]: 'gw1',
      [IDENTITY.topic]: 'readings',
      [IDENTITY.partition]: '2',
      [IDENTITY.offset]: '7',
      [IDENTITY.key]: 'sensor/1',
      [IDENTITY.timestamp]: String(r.timestamp),
      unit: 'celsius',
      raw: Buffer.from([0xde, 0xad]).toString('base64'),
      'edgelog-base64-headers': 'raw',
    });
  });

  test('MQTT 5: a gzip batch is NDJSON with its content type, content-encoding and offset range', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    const upstream = makeUpstream({ url: broker.url, batch: { records: 5, gzip: true } });
    await upstream.connect();
    const records = Array.from({ length: 5 }, (_, i) => record(20 + i));
    await upstream.send(upstream.encode({ topic: 'readings', partition: 0, records }));

    const [message] = await central.settled();
    expect(message!.topic).toBe('gateways/gw1/readings');
    expect(message!.contentType).toBe('application/x-ndjson');
    expect(message!.userProperties).toMatchObject({ 'content-encoding': 'gzip', [IDENTITY.offset]: '20', [IDENTITY.lastOffset]: '24', [IDENTITY.gateway]: 'gw1' });
    expect(decodeMessage(message!).map((x) => x.offset)).toEqual([20, 21, 22, 23, 24]);
  });

  test('MQTT 3.1.1: even one record travels as an NDJSON line carrying its identity', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 4);
    const upstream = makeUpstream({ url: broker.url, protocolVersion: 4 });
    await upstream.connect();
    const r = record(3, { key: 'd1', headers: { unit: 'celsius' } });
    await upstream.send(upstream.encode({ topic: 'readings', partition: 1, records: [r] }));

    const [message] = await central.settled();
    expect(message!.topic).toBe('gateways/gw1/readings/d1');
    const lines = message!.payload.toString('utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ gateway: 'gw1', topic: 'readings', partition: 1, offset: 3, key: 'd1', timestamp: r.timestamp, headers: { unit: 'celsius' } });
  });

  test('TLS with a CA and a client certificate works; a wrong CA or no client certificate is refused', async () => {
    const certs = makeCerts(tempDir('edgelog-mqtt-tls-'));
    const broker = await startMosquitto({ config: [`cafile ${certs.ca}`, `certfile ${certs.serverCert}`, `keyfile ${certs.serverKey}`, 'require_certificate true'] });
    const url = `mqtts://127.0.0.1:${broker.port}`;

    const good = makeUpstream({ url, tls: { caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey } });
    await good.connect();
    expect(await good.send(good.encode({ topic: 'readings', partition: 0, records: [record(0)] }))).toEqual({ duplicate: false });

    const wrongCa = makeUpstream({ url, tls: { caFile: certs.otherCa, certFile: certs.clientCert, keyFile: certs.clientKey } });
    const refused = await rejection(wrongCa.connect());
    expect(refused.code).toBe('UPSTREAM_REFUSED');
    expect(refused.message).toContain(url);
    expect(refused.message).toContain('tls.caFile');

    const noClientCert = makeUpstream({ url, tls: { caFile: certs.ca } });
    const error = await rejection(noClientCert.connect());
    // TLS 1.3: the server refuses the missing certificate after the client's handshake is done; Node reports the alert.
    expect(error.code, error.message).toBe('UPSTREAM_REFUSED');
  });

  test.skipIf(!existsSync(MOSQUITTO_PASSWD_BIN) && process.env['CI'] !== 'true')('username and password: right ones connect, a wrong password is refused (MQTT 5 and 3.1.1)', async () => {
    const dir = tempDir('edgelog-mqtt-passwd-');
    const passwordFile = join(dir, 'passwd');
    execFileSync(MOSQUITTO_PASSWD_BIN, ['-c', '-b', passwordFile, 'bridge', 'right-secret'], { stdio: 'pipe' });
    const broker = await startMosquitto({ config: ['allow_anonymous false', `password_file ${passwordFile}`] });
    for (const protocolVersion of [5, 4] as const) {
      const good = makeUpstream({ url: broker.url, protocolVersion, username: 'bridge', password: 'right-secret' });
      await good.connect();
      await good.send(good.encode({ topic: 'readings', partition: 0, records: [record(0)] }));
      await good.disconnect();

      const bad = makeUpstream({ url: broker.url, protocolVersion, username: 'bridge', password: 'wrong-secret' });
      const error = await rejection(bad.connect());
      expect(error.code).toBe('UPSTREAM_REFUSED');
      expect(error.message).toContain(broker.url);
      expect(error.message).toContain('username and password');
      expect(error.message).not.toContain('secret');
    }
  });

  test('a command reaches onCommand as its local topic; one outside allow is refused and counted', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    const delivered: [string, string][] = [];
    const upstream = makeUpstream({
      url: broker.url,
      commands: {},
      onCommand: async (topic, payload) => void delivered.push([topic, payload.toString()]),
    });
    await upstream.connect();
    await central.publish('gateways/gw1/commands/config/set', 'not for devices');
    await central.publish('gateways/gw1/commands/devices/d1/commands/reboot', 'now');
    await waitFor(() => delivered.length === 1 && upstream.commandsRefused === 1, 'one command delivered and one refused');
    expect(delivered).toEqual([['devices/d1/commands/reboot', 'now']]);
    expect(upstream.commandsDelivered).toBe(1);
  });

  for (const protocolVersion of [5, 4] as const) {
    test(`MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}: a command published while the bridge was disconnected arrives after it reconnects`, async () => {
      const broker = await startMosquitto();
      const central = await centralSubscriber(broker.url, protocolVersion);
      const delivered: string[] = [];
      const upstream = makeUpstream({ url: broker.url, protocolVersion, commands: {}, onCommand: async (topic) => void delivered.push(topic) });
      await upstream.connect();
      await upstream.disconnect();
      await central.publish('gateways/gw1/commands/devices/d7/commands/open', 'valve');
      await upstream.connect();
      await waitFor(() => delivered.length === 1, 'the command queued in the session');
      expect(delivered).toEqual(['devices/d7/commands/open']);
    });
  }

  test('a command is acked upstream only after onCommand resolved: a link cut during delivery brings it again', async () => {
    const broker = await startMosquitto();
    const proxy = await startTcpProxy(broker.port);
    const central = await centralSubscriber(broker.url, 5);
    const calls: string[] = [];
    const upstream = makeUpstream({
      url: `mqtt://127.0.0.1:${proxy.port}`,
      commands: {},
      // The first delivery never completes (a gateway about to die); later ones do.
      onCommand: (topic) => {
        calls.push(topic);
        return calls.length === 1 ? new Promise<void>(() => {}) : Promise.resolve();
      },
    });
    const drops: Error[] = [];
    upstream.onDisconnect((error) => drops.push(error));
    await upstream.connect();
    await central.publish('gateways/gw1/commands/devices/d2/commands/reboot', '1');
    await waitFor(() => calls.length === 1, 'the first delivery attempt');
    proxy.cut();
    await waitFor(() => drops.length === 1, 'onDisconnect after the cut');
    await upstream.disconnect();
    await upstream.connect();
    await waitFor(() => upstream.commandsDelivered === 1, 'the command delivered again after the reconnect');
    expect(calls).toEqual(['devices/d2/commands/reboot', 'devices/d2/commands/reboot']);
  });

  test('onCommand rejecting drops the link, and the broker delivers the command again after the reconnect', async () => {
    const broker = await startMosquitto();
    const central = await centralSubscriber(broker.url, 5);
    let attempts = 0;
    const upstream = makeUpstream({
      url: broker.url,
      commands: {},
      onCommand: async () => {
        if (++attempts === 1) throw new Error('local broker closing');
      },
    });
    const drops: Error[] = [];
    upstream.onDisconnect((error) => drops.push(error));
    await upstream.connect();
    await central.publish('gateways/gw1/commands/devices/d3/commands/reboot', '1');
    await waitFor(() => drops.length === 1, 'the link dropped after the failed delivery');
    expect((drops[0] as EdgelogError).code).toBe('UPSTREAM_UNAVAILABLE');
    await upstream.disconnect();
    await upstream.connect();
    await waitFor(() => upstream.commandsDelivered === 1, 'the redelivered command');
    expect(attempts).toBe(2);
  });

  test('the proxy cutting the link mid-stream rejects sends in flight with UPSTREAM_UNAVAILABLE and fires onDisconnect once', async () => {
    const broker = await startMosquitto();
    const proxy = await startTcpProxy(broker.port);
    const upstream = makeUpstream({ url: `mqtt://127.0.0.1:${proxy.port}` });
    const drops: Error[] = [];
    upstream.onDisconnect((error) => drops.push(error));
    await upstream.connect();
    await upstream.send(upstream.encode({ topic: 'readings', partition: 0, records: [record(0)] }));

    // Cut after about half of 200 messages of ~1 kB have gone up: in the middle of one of them.
    proxy.cutAfterBytes(100_500);
    const sends: Promise<SendResult>[] = [];
    for (let i = 1; i <= 200; i++) sends.push(upstream.send(upstream.encode({ topic: 'readings', partition: 0, records: [record(i, { value: Buffer.alloc(1_000, 1) })] })));
    const settled = await Promise.allSettled(sends);
    const rejected = settled.filter((s) => s.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(0);
    for (const s of rejected) expect((s.reason as EdgelogError).code).toBe('UPSTREAM_UNAVAILABLE');
    await waitFor(() => drops.length > 0, 'onDisconnect');
    expect((drops[0] as EdgelogError).code).toBe('UPSTREAM_UNAVAILABLE');
    expect((await rejection(upstream.send(upstream.encode({ topic: 'readings', partition: 0, records: [record(201)] })))).code).toBe('UPSTREAM_UNAVAILABLE');
    await upstream.disconnect();
    expect(drops).toHaveLength(1);
  });

  test('an unreachable broker is UPSTREAM_UNAVAILABLE naming it; connect() works once it is back', async () => {
    const broker = await startMosquitto();
    const proxy = await startTcpProxy(broker.port);
    const url = `mqtt://127.0.0.1:${proxy.port}`;
    const upstream = makeUpstream({ url, username: 'bridge', password: 'pw-not-in-messages' });
    proxy.refuse();
    const error = await rejection(upstream.connect());
    expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(error.message).toContain(url);
    expect(error.message).not.toContain('pw-not-in-messages');
    proxy.restore();
    await upstream.connect();
    await upstream.send(upstream.encode({ topic: 'readings', partition: 0, records: [record(0)] }));

    await upstream.disconnect();
    await broker.stop();
    expect((await rejection(upstream.connect())).code).toBe('UPSTREAM_UNAVAILABLE');
  });
});
