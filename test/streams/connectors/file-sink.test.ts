import { appendFileSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommitLog } from '../../../src/index.js';
import { FileSink } from '../../../src/streams/connectors/file-sink.js';
import { bytes, corruptStoredRecord, openTestLog } from '../../helpers/log.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/temp-dir.js';
import { waitFor } from '../../helpers/wait.js';
import { capturingLogger, numbered, startSink } from './helpers.js';

const fileLines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').slice(0, -1);

describe('file sink', () => {
  it("writes every partition's records as lines, each partition in order, and is woken by new appends", async () => {
    const log = await openTestLog();
    await log.createTopic('lines', { partitions: 3 });
    for (const p of [0, 1, 2]) await log.append('lines', numbered(`p${p}`, 0, 40).map((v) => ({ value: bytes(v), partition: p })));
    const file = join(tempDir(), 'out.log');
    const sink = await startSink(log, file, { batchRecords: 7 });
    await waitFor(() => sink.stats().recordsWritten === 120, 'the first 120 records');
    await log.append('lines', [{ value: bytes('p1-40'), partition: 1 }]);
    await waitFor(() => sink.stats().recordsWritten === 121, 'the appended record');
    const got = fileLines(file);
    expect(got).toHaveLength(121);
    for (const p of [0, 1, 2]) expect(got.filter((l) => l.startsWith(`p${p}-`))).toEqual(numbered(`p${p}`, 0, p === 1 ? 41 : 40));
    expect(log.committedOffsets('connect.sink').map((c) => c.offset)).toEqual([40, 41, 40]);
    expect(sink.stats().committedBytes).toBe(readFileSync(file).length);
  });

  it('stalls a partition at a record that cannot be read, after writing the lines before it, while the other partitions go on', async () => {
    const dir = tempDir();
    const setup = await CommitLog.open({ dir, retentionSchedule: null });
    await setup.createTopic('lines', { partitions: 2 });
    for (const p of [0, 1]) await setup.append('lines', numbered(`p${p}`, 0, 10).map((v) => ({ value: bytes(v), partition: p })));
    const topicId = setup.topicShape('lines')!.id;
    await setup.close();
    await corruptStoredRecord(dir, topicId, 0, 4);
    const log = await openTestLog({ dir });
    const file = join(tempDir(), 'out.log');
    const logs = capturingLogger();
    const sink = await startSink(log, file, { batchRecords: 3, logger: logs.logger });
    await waitFor(() => sink.stats().recordsWritten === 14, 'the 4 lines before the corrupt record and all of partition 1');
    await log.append('lines', [{ value: bytes('p1-10'), partition: 1 }, { value: bytes('p0-10'), partition: 0 }]);
    await waitFor(() => sink.stats().recordsWritten === 15, 'the record appended to partition 1');
    const stats = sink.stats();
    expect(stats.state).toBe('writing');
    expect(stats.stalled).toEqual([{ partition: 0, offset: 4, reason: expect.stringContaining("corrupt record in topic 'lines' partition 0 at offset 4") }]);
    expect(fileLines(file).filter((l) => l.startsWith('p0-'))).toEqual(numbered('p0', 0, 4));
    expect(fileLines(file).filter((l) => l.startsWith('p1-'))).toEqual(numbered('p1', 0, 11));
    expect(log.committedOffsets('connect.sink').map((c) => c.offset)).toEqual([4, 11]);
    expect(logs.lines.filter((l) => l.msg.includes('stalled'))).toHaveLength(1);
  });

  it('writes JSON lines with partition, offset, key and value, in base64 when a value is not UTF-8', async () => {
    const log = await openTestLog();
    await log.createTopic('lines');
    await log.append('lines', [{ key: 'dev-1', value: bytes('{"t":21.5}'), timestamp: 1000 }, { value: Buffer.from([0xff, 0x00, 0x0a]), timestamp: 2000 }]);
    const file = join(tempDir(), 'out.jsonl');
    const sink = await startSink(log, file, { format: 'json' });
    await waitFor(() => sink.stats().recordsWritten === 2, 'two records');
    expect(fileLines(file).map((l) => JSON.parse(l))).toEqual([
      { topic: 'lines', partition: 0, offset: 0, timestamp: 1000, key: 'dev-1', value: '{"t":21.5}' },
      { topic: 'lines', partition: 0, offset: 1, timestamp: 2000, key: null, valueBase64: Buffer.from([0xff, 0x00, 0x0a]).toString('base64') },
    ]);
  });

  it('resumes after a restart from the committed offsets, cutting off lines written after the last commit', async () => {
    const dir = tempDir();
    const file = join(tempDir(), 'out.log');
    let log = await CommitLog.open({ dir, retentionSchedule: null });
    await log.createTopic('lines');
    await log.append('lines', numbered('r', 0, 30).map((v) => ({ value: bytes(v) })));
    let sink = await startSink(log, file, { batchRecords: 8 });
    await waitFor(() => sink.stats().recordsWritten === 30, 'the first run');
    await sink.close();
    await log.append('lines', numbered('r', 30, 45).map((v) => ({ value: bytes(v) })));
    await log.close();
    // What a crash between a batch's fsync and its commit leaves: lines the offsets do not cover.
    appendFileSync(file, 'r-30\nr-31\nr-3');
    log = await openTestLog({ dir });
    const logs = capturingLogger();
    sink = await startSink(log, file, { batchRecords: 8, logger: logs.logger });
    await waitFor(() => sink.stats().recordsWritten === 15, 'the second run');
    expect(fileLines(file)).toEqual(numbered('r', 0, 45));
    expect(sink.stats().bytesTruncatedAtStart).toBe('r-30\nr-31\nr-3'.length);
    expect(logs.lines.map((l) => l.msg)).toContain('cut the file back to its committed size: the lines after it were written but not committed, and are written again');
  });

  it('says so when the file was cut shorter than it committed by someone else, and goes on appending', async () => {
    const dir = tempDir();
    const file = join(tempDir(), 'out.log');
    let log = await CommitLog.open({ dir, retentionSchedule: null });
    await log.createTopic('lines');
    await log.append('lines', numbered('r', 0, 10).map((v) => ({ value: bytes(v) })));
    let sink = await startSink(log, file);
    await waitFor(() => sink.stats().recordsWritten === 10, 'the first run');
    await sink.close();
    await log.close();
    truncateSync(file, 0);
    log = await openTestLog({ dir });
    const logs = capturingLogger();
    sink = await startSink(log, file, { logger: logs.logger });
    await log.append('lines', [{ value: bytes('r-10') }]);
    await waitFor(() => sink.stats().recordsWritten === 1, 'the new record');
    expect(fileLines(file)).toEqual(['r-10']);
    expect(logs.lines.find((l) => /shorter than the sink committed/.test(l.msg))).toMatchObject({ level: 40, size: 0, committedBytes: 40 });
  });

  it('waits for its topic without polling, and starts writing when records arrive', async () => {
    const log = await openTestLog();
    const file = join(tempDir(), 'out.log');
    const sink = await startSink(log, file);
    expect(sink.stats().state).toBe('waiting');
    await log.createTopic('lines');
    await log.append('lines', [{ value: bytes('hello') }]);
    await waitFor(() => sink.stats().recordsWritten === 1, 'the first record');
    expect(fileLines(file)).toEqual(['hello']);
  });

  it('refuses to start when the file cannot be opened, naming the connector, the file and why', async () => {
    const log = await openTestLog();
    const file = join(tempDir(), 'no-such-folder', 'out.log');
    const error = await refusal(() => FileSink.start({ name: 'archive', file, topic: 'lines', options: { format: 'value', batchRecords: 10 }, log, logger: capturingLogger().logger }));
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.message).toBe(`connector 'archive': cannot open ${file} for appending (ENOENT): its folder does not exist`);
  });
});
