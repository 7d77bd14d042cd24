import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { hashSecret } from '../../devices/credentials.js';
import { decodeReading } from '../../devices/payload-codec.js';
import { loadProfiles, type DeviceProfile } from '../../devices/profile.js';
import { Fleet, deviceId, type FleetReport } from '../../firmware-sim/index.js';
import { loadConfig } from '../../src/config.js';
import { Gateway } from '../../src/gateway.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';

const profiles = new Map(loadProfiles().map((p) => [p.name, p]));
const env = profiles.get('environment-sensor') as DeviceProfile;
const vibration = profiles.get('motor-vibration') as DeviceProfile;
// Fast reconnects keep the outage test short; ramp fast so a test does not wait for its devices.
const quick = { rampPerSecond: 1_000, backoff: { initialMs: 100, maxMs: 400 }, drainTimeoutMs: 10_000 } as const;

async function startGateway(dataDir: string, flags: Record<string, string> = {}): Promise<Gateway> {
  const config = loadConfig({ flags: { dataDir, 'mqtt.port': '0', 'http.port': '0', ...flags } });
  const gateway = await Gateway.start(config, pino({ level: 'silent' }));
  onTestFinished(() => gateway.close());
  return gateway;
}

/** Every reading in the log, decoded with its device's profile: seqs by device, and how many came more than once. */
function readingsInLog(gateway: Gateway, fleetProfiles: readonly DeviceProfile[]): Map<string, { seqs: Set<number>; duplicates: number }> {
  const byDevice = new Map<string, { seqs: Set<number>; duplicates: number }>();
  for (const topic of gateway.log.listTopics().filter((t) => !t.startsWith('_'))) {
    const { records } = gateway.log.read(topic, 0, 0, { maxRecords: 100_000 });
    for (const r of records) {
      const device = r.key as string;
      const index = Number(device.slice('device-'.length)) - 1;
      const { seq } = decodeReading(fleetProfiles[index % fleetProfiles.length]!, topic, r.value);
      let entry = byDevice.get(device);
      if (entry === undefined) byDevice.set(device, (entry = { seqs: new Set(), duplicates: 0 }));
      if (entry.seqs.has(seq)) entry.duplicates++;
      else entry.seqs.add(seq);
    }
  }
  return byDevice;
}

const count = (byDevice: Map<string, { seqs: Set<number> }>): number => [...byDevice.values()].reduce((n, d) => n + d.seqs.size, 0);

describe('Fleet against the gateway WebSocket ingest (/ingest)', () => {
  it('sends JSON and edgebin readings; every reading acknowledged is in the log, once', async () => {
    const gateway = await startGateway(tempDir());
    const fleetProfiles = [env, vibration];
    const report = await new Fleet({
      ...quick,
      gateway: `ws://127.0.0.1:${gateway.ports.http}/ingest`,
      devices: 20,
      ratePerSecond: 20,
      durationS: 2,
      profiles: fleetProfiles,
      seed: 31,
    }).run();
    expect(report.settings.transport).toBe('ws-ingest');
    expect(report.readings).toEqual({ generated: 800, sent: 800, acknowledged: 800, deadLettered: 0, rejected: 0, dropped: 0, droppedAfterSend: 0, unsent: 0 });
    expect(report.publishes).toMatchObject({ total: 800, acknowledged: 800, refused: 0 });
    expect(report.connections).toMatchObject({ connects: 20, errors: 0 });
    expect(report.latency.count).toBe(800);
    const byDevice = readingsInLog(gateway, fleetProfiles);
    expect(byDevice.size).toBe(20);
    for (const [device, got] of byDevice) {
      expect(got.duplicates, device).toBe(0);
      expect([...got.seqs].sort((a, b) => a - b), device).toEqual(Array.from({ length: 40 }, (_, i) => i));
    }
  });

  it('authenticates with a token per device, counts dead letters and refusals, and refuses a wrong token', async () => {
    const dir = tempDir();
    const devices = 4;
    const ids = Array.from({ length: devices }, (_, i) => deviceId({ idPrefix: 'device-', devices }, i));
    const hashes = await Promise.all(ids.map((id) => hashSecret(`secret-${id}`, { logN: 10 })));
    const registryFile = join(dir, 'devices.yaml');
    writeFileSync(registryFile, `devices:\n${ids.map((id, i) => `  - { id: ${id}, profile: environment-sensor, tokenHash: '${hashes[i]}' }\n`).join('')}`);
    const gateway = await startGateway(join(dir, 'data'), { 'devices.registryFile': registryFile, 'log.topicDefaults.maxMessageBytes': '4096' });
    const url = `ws://127.0.0.1:${gateway.ports.http}/ingest`;
    const report = await new Fleet({
      ...quick,
      gateway: url,
      devices,
      ratePerSecond: 50,
      durationS: 1,
      profiles: [env],
      seed: 32,
      token: 'secret-{deviceId}',
      faults: { malformed: 0.1, oversize: 0.05, oversizeBytes: 8_000 },
    }).run();
    expect(report.readings).toMatchObject({ generated: 200, acknowledged: 200, deadLettered: 0, rejected: 0 });
    const { malformedOnPurpose, oversizeOnPurpose } = report.publishes;
    expect(malformedOnPurpose).toBeGreaterThan(0);
    expect(oversizeOnPurpose).toBeGreaterThan(0);
    // A registered device's malformed payload is stored in the dead-letter topic; an oversize one is refused.
    expect(report.publishes.deadLettered).toBe(malformedOnPurpose);
    expect(report.publishes.refusedByCode).toEqual({ RECORD_TOO_LARGE: oversizeOnPurpose });
    expect(gateway.log.read('_deadletter', 0, 0, { maxRecords: 1000 }).records).toHaveLength(malformedOnPurpose);
    expect(count(readingsInLog(gateway, [env]))).toBe(200);

    const refused = await new Fleet({ ...quick, gateway: url, devices: 2, ratePerSecond: 10, durationS: 0.5, profiles: [env], token: 'wrong-{deviceId}', drainTimeoutMs: 300 }).run();
    expect(refused.readings).toMatchObject({ sent: 0, acknowledged: 0, unsent: 10 });
    expect(refused.connections.errorsByCode['AUTH_FAILED']).toBeGreaterThan(0);
  });

  it('buffers while the gateway restarts and delivers every reading; shutdown refusals are sent again', async () => {
    const dir = tempDir();
    let gateway = await startGateway(dir);
    const port = gateway.ports.http;
    const fleet = new Fleet({ ...quick, gateway: `ws://127.0.0.1:${port}/ingest`, devices: 10, ratePerSecond: 20, durationS: 4, profiles: [env], seed: 33 });
    fleet.start();
    await waitFor(() => fleet.snapshot().acknowledged >= 100, 'the fleet to publish');
    await gateway.close();
    await waitFor(() => fleet.snapshot().connected === 0, 'every device to notice the gateway is gone');
    await waitFor(() => fleet.snapshot().buffered >= 10 * 5, 'the devices to buffer readings');
    gateway = await startGateway(dir, { 'http.port': String(port) });
    const report: FleetReport = await fleet.done();
    expect(report.readings).toMatchObject({ generated: 800, acknowledged: 800, dropped: 0, unsent: 0, rejected: 0 });
    const byDevice = readingsInLog(gateway, [env]);
    expect(count(byDevice)).toBe(800);
  });
});
