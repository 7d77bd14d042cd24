import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { EdgelogError } from '../../src/errors.js';
import { startGateway } from '../helpers/gateway.js';
import { readAll } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';

const T0 = Date.UTC(2024, 0, 1);

function configFile(text: string): string {
  const file = join(tempDir(), 'edgelog.yaml');
  writeFileSync(file, text);
  return file;
}

const STREAMS = `
streams:
  - name: climate-1m
    from: climate
    to: climate-1m
    pipeline:
      - filter: { field: temperature, op: exists }
      - window: { size: 1m, grace: 10s, field: temperature, timeField: ts, aggregates: [count, min, max, mean] }
  - name: overheat
    from: [climate]
    to: alerts
    pipeline:
      - alert: { name: overheat, field: temperature, above: 30, clearBelow: 28 }
`;

describe('stream processors in the gateway', () => {
  it('runs the configured processors: records appended to the input come out aggregated and alerted', async () => {
    const gateway = await startGateway({}, { configFile: configFile(STREAMS) });
    // Like ingest does on a device's first reading: the input topic appears after the processors started.
    await gateway.log.createTopic('climate');
    const reading = (key: string, s: number, temperature: number) => ({ key, value: Buffer.from(JSON.stringify({ ts: T0 + s * 1000, temperature })) });
    await gateway.log.append('climate', [reading('env-1', 0, 20), reading('env-1', 20, 31), reading('env-2', 30, 22), reading('env-1', 40, 24)]);
    await gateway.log.append('climate', [reading('env-1', 75, 25)]);
    await waitFor(() => gateway.log.hasTopic('climate-1m') && readAll(gateway.log, 'climate-1m').length === 2, 'the first minute of env-1 and env-2');
    const windows = readAll(gateway.log, 'climate-1m').map((r) => JSON.parse(r.value.toString()) as Record<string, unknown>);
    expect(windows).toEqual([
      { key: 'env-1', field: 'temperature', windowStart: T0, windowEnd: T0 + 60_000, count: 3, min: 20, max: 31, mean: 25 },
      { key: 'env-2', field: 'temperature', windowStart: T0, windowEnd: T0 + 60_000, count: 1, min: 22, max: 22, mean: 22 },
    ]);
    await waitFor(() => gateway.log.hasTopic('alerts') && readAll(gateway.log, 'alerts').length === 2, 'the overheat alert and its clear');
    expect(readAll(gateway.log, 'alerts').map((r) => JSON.parse(r.value.toString()) as Record<string, unknown>)).toMatchObject([
      { alert: 'overheat', key: 'env-1', state: 'high', value: 31 },
      { alert: 'overheat', key: 'env-1', state: 'ok', value: 24 },
    ]);
    // `edgelog groups describe streams.climate-1m` shows the processor and its (zero) lag.
    await waitFor(() => gateway.groups.describe('streams.climate-1m').offsets[0]?.lag === 0, 'the processor to commit');
    expect(gateway.groups.describe('streams.climate-1m')).toMatchObject({ state: 'stable', members: [{ clientId: 'edgelog-streams', assignment: [{ topic: 'climate', partition: 0 }] }] });
    expect(gateway.streams.stats().map((s) => [s.name, s.counters.read, s.counters.emitted])).toEqual([
      ['climate-1m', 5, 2],
      ['overheat', 5, 2],
    ]);
  });

  it('refuses a bad processor in the config file naming its key path', () => {
    const bad = STREAMS.replace('size: 1m', 'size: 1 minute');
    try {
      loadConfig({ file: configFile(bad) });
      throw new Error('expected INVALID_CONFIG');
    } catch (error) {
      expect(error).toBeInstanceOf(EdgelogError);
      expect((error as EdgelogError).code).toBe('INVALID_CONFIG');
      expect((error as Error).message).toMatch(/config key 'streams\[0\]\.pipeline\[1\]\.window\.size' must be a duration like "500ms", "30s", "1m", "2h", "1d" or a whole number of milliseconds, got "1 minute"/);
    }
    expect(() => loadConfig({ file: configFile('streams: {}\n') })).toThrow(/config key 'streams' must be a list of at most 32 stream processors/);
  });
});
