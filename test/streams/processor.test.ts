import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { CommitLog } from '../../src/index.js';
import { GroupCoordinator } from '../../src/groups/coordinator.js';
import { parseStreamsConfig } from '../../src/streams/config.js';
import { StreamProcessor, type StreamProcessorOptions } from '../../src/streams/processor.js';
import { openTestLog, readAll } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

/** Midnight, 1 January 2024 UTC: windows are aligned to the epoch, so to minutes here. */
const T0 = Date.UTC(2024, 0, 1);
const S = 1000;

const reading = (key: string | null, tsS: number, temperature: number) => ({ key, value: Buffer.from(JSON.stringify({ ts: T0 + tsS * S, temperature })) });

function processor(log: CommitLog, raw: Record<string, unknown>, extra: Partial<StreamProcessorOptions> = {}): StreamProcessor {
  const [config] = parseStreamsConfig([raw]);
  const p = new StreamProcessor({ log, logger: pino({ level: 'silent' }), config: config!, ...extra });
  p.start();
  onTestFinished(() => p.close());
  return p;
}

/** The output topic's values, parsed. */
const outputs = (log: CommitLog, topic: string): Record<string, unknown>[] =>
  log.hasTopic(topic) ? readAll(log, topic).map((r) => JSON.parse(r.value.toString()) as Record<string, unknown>) : [];

async function caughtUp(log: CommitLog, p: StreamProcessor, topic: string): Promise<void> {
  const hw = () => log.describeTopic(topic).partitions.reduce((sum, q) => sum + q.highWatermark, 0);
  await waitFor(() => p.stats().counters.read + p.stats().counters.skippedByRetention >= hw() && p.stats().status === 'waiting', `processor ${p.name} to read all of ${topic}`);
}

const windowStep = { window: { size: '1m', grace: '10s', field: 'temperature', timeField: 'ts' } };

describe('stream processor', () => {
  it('emits exact one-minute aggregates per key once event time passes end + grace, and counts late and bad records', async () => {
    const log = await openTestLog();
    await log.createTopic('climate');
    const p = processor(log, { name: 'agg', from: 'climate', to: 'climate-1m', pipeline: [windowStep] });
    const shuffled = [7, 3, 20, 1, 15, 11, 2, 19, 4, 18, 5, 17, 6, 16, 8, 14, 9, 13, 10, 12];
    await log.append('climate', shuffled.map((v, i) => reading('A', i * 3, v)));
    await log.append('climate', [reading('B', 5, 10), reading('B', 15, 30), reading('B', 59, 20), reading('A', 65, 5)]);
    // Out of order but within grace: stream time is 65 s, B's window closes at 70 s.
    await log.append('climate', [reading('B', 50, 40)]);
    await caughtUp(log, p, 'climate');
    expect(outputs(log, 'climate-1m')).toEqual([]);
    await log.append('climate', [
      reading('A', 70, 7), // stream time reaches 60 + 10: the first minute closes for A and B
      reading('B', 30, 99), // late: its window was emitted
      { key: 'A', value: Buffer.from('not json') },
      { key: 'A', value: Buffer.from(JSON.stringify({ ts: T0 + 80 * S, humidity: 40 })) },
      { key: 'A', value: Buffer.from(JSON.stringify({ ts: 'soon', temperature: 1 })) },
    ]);
    await log.append('climate', [reading('A', 200, 1)]);
    await caughtUp(log, p, 'climate');

    const minute = (start: number) => ({ windowStart: T0 + start * S, windowEnd: T0 + (start + 60) * S, field: 'temperature' });
    expect(outputs(log, 'climate-1m')).toEqual([
      { key: 'A', ...minute(0), count: 20, min: 1, max: 20, mean: 10.5, p95: 19 },
      { key: 'B', ...minute(0), count: 4, min: 10, max: 40, mean: 25, p95: 40 },
      { key: 'A', ...minute(60), count: 2, min: 5, max: 7, mean: 6, p95: 7 },
    ]);
    const records = readAll(log, 'climate-1m');
    expect(records.map((r) => r.key)).toEqual(['A', 'B', 'A']);
    expect(records.map((r) => r.timestamp)).toEqual([T0 + 60 * S, T0 + 60 * S, T0 + 120 * S]);
    const stats = p.stats();
    expect(stats.counters).toMatchObject({ read: 31, emitted: 3, late: 1, errors: { notJson: 1, missingField: 1, badTime: 1 } });
    expect(stats.openWindows).toBe(1); // A's window from 180 s
    expect(stats.lag).toBe(0);
    // The group's committed offset is the input's high watermark: the position went with the output.
    expect(log.committedOffsets('streams.agg')).toMatchObject([{ topic: 'climate', partition: 0, offset: 31 }]);
  });

  it('raises and clears alerts with hysteresis, one record per change, per key', async () => {
    const log = await openTestLog();
    await log.createTopic('climate');
    const p = processor(log, {
      name: 'alerts',
      from: 'climate',
      to: 'alerts',
      pipeline: [{ alert: { name: 'temp', field: 'temperature', above: 25, clearBelow: 15, below: 2, clearAbove: 4, timeField: 'ts' } }],
    });
    const x = [10, 26, 20, 24, 14, 1, 3, 5, 30, 1, 26];
    // Y interleaved: it raises once and stays raised.
    await log.append('climate', x.flatMap((v, i) => [reading('X', i, v), reading('Y', i, i === 0 ? 10 : 26 + i)]));
    await caughtUp(log, p, 'climate');
    const got = outputs(log, 'alerts').map((a) => `${a['key']}:${a['previous']}→${a['state']}@${a['threshold']} v=${a['value']} t=${(a['at'] as number) - T0}`);
    expect(got).toEqual([
      'X:ok→high@25 v=26 t=1000',
      'Y:ok→high@25 v=27 t=1000',
      'X:high→ok@15 v=14 t=4000',
      'X:ok→low@2 v=1 t=5000',
      'X:low→ok@4 v=5 t=7000',
      'X:ok→high@25 v=30 t=8000',
      'X:high→low@2 v=1 t=9000',
      'X:low→high@25 v=26 t=10000',
    ]);
    expect(outputs(log, 'alerts')[0]).toEqual({ alert: 'temp', key: 'X', state: 'high', previous: 'ok', field: 'temperature', value: 26, threshold: 25, at: T0 + 1000 });
    expect(p.stats().raisedAlerts).toBe(2);
  });

  it('filters and maps: celsius to fahrenheit, renamed fields, the record key, before a window', async () => {
    const log = await openTestLog();
    await log.createTopic('climate');
    const p = processor(log, {
      name: 'fahrenheit',
      from: 'climate',
      to: 'climate-f',
      pipeline: [
        { filter: { all: [{ field: 'temperature', op: '>=', value: -40 }, { field: 'status', op: '!=', value: 'fault' }] } },
        { map: { fields: { device: '$key', tempF: { from: 'temperature', scale: 1.8, offset: 32, decimals: 2 }, ts: 'ts' } } },
      ],
    });
    await log.append('climate', [
      reading('A', 0, 21.3), // no status: '!=' is the opposite of '==', so it passes
      reading('A', 1, -50), // filtered: below -40
      { key: 'B', value: Buffer.from(JSON.stringify({ ts: T0, temperature: 100, status: 'fault' })) }, // filtered
      { key: 'B', value: Buffer.from(JSON.stringify({ ts: T0, temperature: 0, status: 'ok' })) },
      { key: 'C', value: Buffer.from(JSON.stringify({ ts: T0, temperature: 'warm' })) }, // filtered: '>=' needs a number
    ]);
    await caughtUp(log, p, 'climate');
    expect(outputs(log, 'climate-f')).toEqual([
      { device: 'A', tempF: 70.34, ts: T0 },
      { device: 'B', tempF: 32, ts: T0 },
    ]);
    expect(p.stats().counters).toMatchObject({ read: 5, emitted: 2, filtered: 3, errors: {} });
  });

  it('waits for an input topic that does not exist yet, and as a group member shows in describe with its lag', async () => {
    const log = await openTestLog();
    const groups = new GroupCoordinator({ log, logger: pino({ level: 'silent' }), checkIntervalMs: 50 });
    onTestFinished(() => groups.close());
    const p = processor(log, { name: 'late-topic', from: ['climate', 'other'], to: 'climate-1m', pipeline: [windowStep] }, { groups });
    await waitFor(() => groups.describe('streams.late-topic').members.length === 1, 'the processor to join its group');
    expect(groups.describe('streams.late-topic')).toMatchObject({ state: 'stable', members: [{ clientId: 'edgelog-streams', topics: ['climate', 'other'], assignment: [] }], offsets: [] });
    // The output topic is created at start, with the log's defaults.
    await waitFor(() => log.hasTopic('climate-1m'), 'the output topic');

    await log.createTopic('climate', { partitions: 2 });
    // Each partition has its own stream time: A's 130 s closes A's first two minutes, B's 200 s only B's first.
    const on = (partition: number, r: ReturnType<typeof reading>) => ({ ...r, partition });
    await log.append('climate', [on(0, reading('A', 0, 1)), on(0, reading('A', 61, 2)), on(0, reading('A', 130, 3)), on(1, reading('B', 0, 4)), on(1, reading('B', 200, 5))]);
    await waitFor(() => outputs(log, 'climate-1m').length === 3, 'the windows of A and B to be emitted');
    expect(outputs(log, 'climate-1m').map((o) => `${o['key']}@${(o['windowStart'] as number) - T0}:${o['count']}`).sort()).toEqual(['A@0:1', 'A@60000:1', 'B@0:1']);
    await caughtUp(log, p, 'climate');
    const described = groups.describe('streams.late-topic');
    expect(described.members[0]!.assignment).toEqual([{ topic: 'climate', partition: 0 }, { topic: 'climate', partition: 1 }]);
    const hws = log.describeTopic('climate').partitions.map((q) => q.highWatermark);
    expect(described.offsets).toEqual([
      { topic: 'climate', partition: 0, committed: hws[0], highWatermark: hws[0], lag: 0 },
      { topic: 'climate', partition: 1, committed: hws[1], highWatermark: hws[1], lag: 0 },
    ]);
    await p.close();
    expect(groups.describe('streams.late-topic').members).toEqual([]);
  });

  it('when the log is full, retries the failed batch from its last commit and, once there is room, emits each window once', async () => {
    const log = await openTestLog({ maxLogBytes: 16_000, minFreeDiskBytes: 0 });
    await log.createTopic('climate');
    await log.append('climate', Array.from({ length: 30 }, (_, i) => reading('A', i * 5, i)));
    await log.createTopic('filler');
    // Fill the log to within a few bytes of its capacity: the processor's first window cannot be written.
    while (log.bytesStored < 16_000 - 200) await log.append('filler', [{ value: Buffer.alloc(Math.min(1000, 16_000 - 200 - log.bytesStored)) }]).catch(() => undefined);
    const p = processor(log, { name: 'full', from: 'climate', to: 'climate-10s', pipeline: [{ window: { size: '10s', field: 'temperature', timeField: 'ts', aggregates: ['count', 'min', 'max', 'mean'] } }] }, { batchRecords: 3 });
    await waitFor(() => /the log is full/.test(p.stats().lastError ?? ''), 'the processor to meet the full log');
    expect(p.stats().status).toBe('retrying');
    expect(outputs(log, 'climate-10s')).toEqual([]);
    await log.deleteTopic('filler');
    await caughtUp(log, p, 'climate');
    expect(outputs(log, 'climate-10s').map((w) => `${((w['windowStart'] as number) - T0) / 1000}:${w['count']},${w['min']},${w['max']},${w['mean']}`)).toEqual(
      Array.from({ length: 14 }, (_, k) => `${k * 10}:2,${2 * k},${2 * k + 1},${2 * k + 0.5}`),
    );
    expect(p.stats()).toMatchObject({ lastError: null, counters: { read: 30, emitted: 14 } });
  });

  it('resumes after close with exactly the state of its last commit: no window twice, none lost', async () => {
    const log = await openTestLog();
    await log.createTopic('climate');
    const config = { name: 'resume', from: 'climate', to: 'climate-1m', pipeline: [windowStep] };
    const first = processor(log, config, { batchRecords: 7 });
    await log.append('climate', Array.from({ length: 100 }, (_, i) => reading(i % 2 ? 'A' : 'B', i * 2, i)));
    await caughtUp(log, first, 'climate');
    await first.close();
    const emittedBefore = outputs(log, 'climate-1m').length;
    // Stream time is 198 s: minutes 0, 1 and 2 closed (at 70, 130 and 190 s) for A and B; minute 3 is open.
    expect(emittedBefore).toBe(6);
    const second = processor(log, config, { batchRecords: 7 });
    await log.append('climate', Array.from({ length: 100 }, (_, i) => reading(i % 2 ? 'A' : 'B', 200 + i * 2, 1000 + i)));
    await caughtUp(log, second, 'climate');
    const windows = outputs(log, 'climate-1m');
    expect(windows.map((w) => `${w['key']}@${((w['windowStart'] as number) - T0) / 1000}:${w['count']}`)).toEqual([
      'A@0:15', 'B@0:15', 'A@60:15', 'B@60:15', 'A@120:15', 'B@120:15', 'A@180:15', 'B@180:15', 'A@240:15', 'B@240:15', 'A@300:15', 'B@300:15',
    ]);
    expect(second.stats().counters).toMatchObject({ read: 200, emitted: 12, late: 0 });
  });
});
