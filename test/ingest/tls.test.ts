import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startGateway, writeRegistry, type LogLine } from '../helpers/gateway.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
const ca = readFileSync(fixture('ca.pem'));
const clientCert = (cn: string) => ({ cert: readFileSync(fixture(`client-${cn}.pem`)), key: readFileSync(fixture(`client-${cn}.key`)) });

async function tlsGateway(logs?: LogLine[]): Promise<Gateway> {
  const registryFile = await writeRegistry([
    { id: 'env-0001', profile: 'environment-sensor' }, // no password: certificate only
    { id: 'env-0002', profile: 'environment-sensor', password: 'pw-env-0002-secret' },
  ]);
  return startGateway(
    {
      'devices.registryFile': registryFile,
      'tls.certFile': fixture('server.pem'),
      'tls.keyFile': fixture('server.key'),
      'tls.caFile': fixture('ca.pem'),
      'tls.mqttPort': '0',
      'tls.httpsPort': '0',
    },
    logs ? { logs } : {},
  );
}

function connect(url: string, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, ca, ...options });
  onTestFinished(() => client.endAsync(true));
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

describe('TLS listeners', () => {
  it('serve MQTT over TLS with a password, and with a client certificate whose CN is the device id', async () => {
    const gateway = await tlsGateway();
    const port = gateway.ports.mqttTls!;
    const withPassword = await connect(`mqtts://localhost:${port}`, { clientId: 'p', username: 'env-0002', password: 'pw-env-0002-secret' });
    await withPassword.publishAsync('devices/env-0002/climate', '{"seq":1,"ts":1,"temperature":20,"humidity":40,"pressure":1000}', { qos: 1 });
    const withCertificate = await connect(`mqtts://localhost:${port}`, { clientId: 'c', ...clientCert('env-0001') });
    await withCertificate.publishAsync('devices/env-0001/climate', '{"seq":1,"ts":1,"temperature":20,"humidity":40,"pressure":1000}', { qos: 1 });
    const keys = gateway.log.read('climate', 0, 0).records.map((r) => r.key);
    expect(keys).toEqual(['env-0002', 'env-0001']);
    // The certificate names the device: it may not publish as another one.
    const closed = new Promise<void>((resolve) => withCertificate.once('close', () => resolve()));
    withCertificate.publish('devices/env-0002/climate', 'x', { qos: 1 });
    await closed;
    expect(gateway.log.read('climate', 0, 0).records).toHaveLength(2);
  });

  it('refuses a certificate for an unregistered device with CONNACK 5', async () => {
    const gateway = await tlsGateway();
    const error = await connect(`mqtts://localhost:${gateway.ports.mqttTls!}`, { clientId: 's', ...clientCert('stranger') }).then(
      () => null,
      (e: unknown) => e as { code?: number },
    );
    expect(error?.code).toBe(5);
  });

  it('refuses a certificate from another CA or an expired one with CONNACK 5, and logs the verification error', async () => {
    const logs: LogLine[] = [];
    const gateway = await tlsGateway(logs);
    for (const [name, code] of [['rogue-env-0001', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'], ['expired-env-0001', 'CERT_HAS_EXPIRED']] as const) {
      const error = await connect(`mqtts://localhost:${gateway.ports.mqttTls!}`, { clientId: name, ...clientCert(name) }).then(
        () => null,
        (e: unknown) => e as { code?: number },
      );
      expect(error?.code, name).toBe(5);
      const refusal = logs.find((l) => l.msg === 'connection refused' && l['clientId'] === name);
      expect(refusal?.['reason'], name).toMatch(new RegExp(`^client certificate not accepted \\(${code}\\) for CN 'env-0001'`));
    }
  });

  it('does not speak plaintext MQTT on the TLS port', async () => {
    const gateway = await tlsGateway();
    const raw = await RawMqtt.connect(gateway.ports.mqttTls!);
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, keepalive: 30, clean: true, clientId: 'plain' });
    await raw.whenClosed();
    await expect(raw.next('connack', 100)).rejects.toThrow(/no connack/);
  });

  it('serves MQTT over WSS at /mqtt on the HTTPS port, with client certificates', async () => {
    const gateway = await tlsGateway();
    const client = await connect(`wss://localhost:${gateway.ports.https!}/mqtt`, { clientId: 'w', ...clientCert('env-0001') });
    await client.publishAsync('devices/env-0001/climate', '{"seq":2,"ts":1,"temperature":20,"humidity":40,"pressure":1000}', { qos: 1 });
    expect(gateway.log.read('climate', 0, 0).records.map((r) => r.key)).toEqual(['env-0001']);
  });
});
