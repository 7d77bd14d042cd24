import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Gateway } from '../../src/gateway.js';
import { CommitLog } from '../../src/index.js';
import { spawnTs } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

async function startGateway(): Promise<Gateway> {
  const config = loadConfig({ flags: { dataDir: tempDir(), 'mqtt.port': '0', 'http.port': '0' } });
  const gateway = await Gateway.start(config, pino({ level: 'silent' }));
  onTestFinished(() => gateway.close());
  return gateway;
}

async function connect(port: number, clientId: string): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0 });
  onTestFinished(() => client.endAsync(true));
  return client;
}

describe('MQTT ingest', () => {
  it('appends a QoS 1 reading to topic {stream} keyed by device before the PUBACK', async () => {
    const gateway = await startGateway();
    const client = await connect(gateway.ports.mqtt, 'device-0001');
    await client.publishAsync('devices/device-0001/temperature', '{"c":21.5}', { qos: 1 });
    // The PUBACK has arrived: the record must already be readable (and so committed).
    expect(gateway.log.listTopics()).toEqual(['temperature']);
    const [record] = gateway.log.read('temperature', 0, 0).records;
    expect(record).toMatchObject({ offset: 0, key: 'device-0001' });
    expect(record!.value.toString()).toBe('{"c":21.5}');
    expect(record!.headers).toMatchObject({ 'mqtt-topic': 'devices/device-0001/temperature', 'device-id': 'device-0001' });
  });

  it('follows topic rules declared in the config file', async () => {
    const file = join(tempDir(), 'rules.yaml');
    writeFileSync(file, "ingest:\n  topicRules:\n    - match: site/{site}/{deviceId}/{stream}\n      topic: '{site}-{stream}'\n      key: '{deviceId}'\n");
    const config = loadConfig({ file, flags: { dataDir: tempDir(), 'mqtt.port': '0', 'http.port': '0' } });
    const gateway = await Gateway.start(config, pino({ level: 'silent' }));
    onTestFinished(() => gateway.close());
    const client = await connect(gateway.ports.mqtt, 'device-0007');
    await client.publishAsync('site/north/device-0007/climate', 'v', { qos: 1 });
    expect(gateway.log.listTopics()).toEqual(['north-climate']);
    expect(gateway.log.read('north-climate', 0, 0).records[0]).toMatchObject({ key: 'device-0007' });
  });

  it('keeps each device in order in its partition', async () => {
    const gateway = await startGateway();
    const clients = await Promise.all([1, 2, 3].map((i) => connect(gateway.ports.mqtt, `device-${i}`)));
    await Promise.all(
      clients.map(async (c, i) => {
        const sends = [];
        for (let n = 0; n < 50; n++) sends.push(c.publishAsync(`devices/device-${i + 1}/humidity`, String(n), { qos: 1 }));
        await Promise.all(sends);
      }),
    );
    const seen = new Map<string, number[]>();
    for (const r of gateway.log.read('humidity', 0, 0, { maxRecords: 1000 }).records) {
      seen.set(r.key as string, [...(seen.get(r.key as string) ?? []), Number(r.value.toString())]);
    }
    for (const i of [1, 2, 3]) expect(seen.get(`device-${i}`)).toEqual(Array.from({ length: 50 }, (_, n) => n));
  });

  it('a PUBACK survives SIGKILL of the gateway right after it', async () => {
    const dir = tempDir();
    const gw = spawnTs(CLI, ['start', '--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']);
    const started = JSON.parse(await gw.waitForLine(/edgelog gateway started/)) as { mqttPort: number };
    const client = await connect(started.mqttPort, 'device-0009');
    for (let n = 0; n < 20; n++) await client.publishAsync('devices/device-0009/vibration', `reading ${n}`, { qos: 1 });
    gw.child.kill('SIGKILL');
    expect(await gw.exited).toBe('SIGKILL');
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    onTestFinished(() => log.close());
    const values = log.read('vibration', 0, 0, { maxRecords: 100 }).records.map((r) => r.value.toString());
    expect(values).toEqual(Array.from({ length: 20 }, (_, n) => `reading ${n}`));
  });
});
