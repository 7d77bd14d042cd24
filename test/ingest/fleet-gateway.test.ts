import { describe, expect, it } from 'vitest';
import { decodeReading } from '../../devices/payload-codec.js';
import { loadProfiles } from '../../devices/profile.js';
import { Fleet } from '../../firmware-sim/index.js';
import { startGateway, writeRegistry } from '../helpers/gateway.js';
import { readAll } from '../helpers/log.js';

const environment = loadProfiles().find((p) => p.name === 'environment-sensor')!;
const DEVICES = 60;
const PARTITIONS = 4;

describe('a firmware-sim fleet against the gateway', () => {
  it('stores every acknowledged reading exactly once, each device in order, malformed ones in _deadletter', async () => {
    const ids = Array.from({ length: DEVICES }, (_, i) => `device-${String(i + 1).padStart(4, '0')}`);
    const registryFile = await writeRegistry(ids.map((id) => ({ id, profile: 'environment-sensor', password: `pw-${id}-secret` })));
    const gateway = await startGateway({ 'devices.registryFile': registryFile, 'log.topicDefaults.partitions': String(PARTITIONS) });
    const report = await new Fleet({
      gateway: `mqtt://127.0.0.1:${gateway.ports.mqtt}`,
      devices: DEVICES,
      ratePerSecond: 25,
      durationS: 2,
      qos: 1,
      inflightMax: 32,
      profiles: [environment],
      password: 'pw-{deviceId}-secret',
      seed: 42,
      rampPerSecond: 1_000,
      faults: { malformed: 0.03 },
    }).run();
    expect(report.readings.sent).toBe(report.readings.generated);
    expect(report.readings.acknowledged).toBe(report.readings.sent);
    expect(report.publishes.malformedOnPurpose).toBeGreaterThan(0);

    let stored = 0;
    for (const stream of environment.streams.map((s) => s.name)) {
      for (let p = 0; p < PARTITIONS; p++) {
        const records = readAll(gateway.log, stream, p);
        expect(records.map((r) => r.offset)).toEqual(records.map((_, i) => i)); // dense
        const lastSeq = new Map<string, number>();
        for (const r of records) {
          const device = r.key as string;
          const { seq } = decodeReading(environment, stream, r.value);
          // In order and exactly once: each device's seqs strictly increase along its partition.
          expect(seq, `${device} in ${stream}/${p}`).toBeGreaterThan(lastSeq.get(device) ?? -1);
          lastSeq.set(device, seq);
        }
        stored += records.length;
      }
    }
    expect(stored).toBe(report.readings.acknowledged);
    const deadLetters = gateway.log.describeTopic('_deadletter').partitions.reduce((n, p) => n + p.records, 0);
    expect(deadLetters).toBe(report.publishes.malformedOnPurpose);
    expect(gateway.intake.stats()).toMatchObject({ stored: report.readings.acknowledged, deadLettered: report.publishes.malformedOnPurpose, refused: {} });
  });
});
