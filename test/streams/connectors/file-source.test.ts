import { appendFileSync, copyFileSync, mkdirSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readAll, openTestLog } from '../../helpers/log.js';
import { tempDir } from '../../helpers/temp-dir.js';
import { waitFor } from '../../helpers/wait.js';
import { CommitLog } from '../../../src/index.js';
import { decodeSourcePosition } from '../../../src/streams/connectors/file-position.js';
import { capturingLogger, numbered, startSource, values } from './helpers.js';

const lines = (xs: string[]): string => xs.map((x) => `${x}\n`).join('');

describe('file source', () => {
  it('appends each line as a record, in order, without its newline, and stores its position with them', async () => {
    const log = await openTestLog();
    const file = join(tempDir(), 'app.log');
    writeFileSync(file, lines(['first', '', 'third']));
    const source = await startSource(log, file);
    await waitFor(() => values(log).length === 3, 'the first lines');
    appendFileSync(file, lines(numbered('l', 0, 200)));
    await waitFor(() => values(log).length === 203, 'the appended lines');
    expect(values(log)).toEqual(['first', '', 'third', ...numbered('l', 0, 200)]);
    const stored = decodeSourcePosition(log.getState('connect.src', 'position')).position!;
    expect(stored.offset).toBe(Buffer.byteLength(lines(['first', '', 'third', ...numbered('l', 0, 200)])));
    expect(source.stats()).toMatchObject({ state: 'tailing', recordsAppended: 203, position: { offset: stored.offset } });
  });

  it('puts every line under the configured key', async () => {
    const log = await openTestLog();
    await log.createTopic('lines', { partitions: 4 });
    const file = join(tempDir(), 'app.log');
    writeFileSync(file, lines(['a', 'b']));
    await startSource(log, file, { key: 'gw-7' });
    await waitFor(() => log.describeTopic('lines').partitions.reduce((n, p) => n + p.records, 0) === 2, 'two records');
    const p = log.describeTopic('lines').partitions.find((x) => x.records === 2)!;
    expect(readAll(log, 'lines', p.partition).map((r) => [r.key, r.value.toString()])).toEqual([['gw-7', 'a'], ['gw-7', 'b']]);
  });

  it('holds a partial last line until its newline comes', async () => {
    const log = await openTestLog();
    const file = join(tempDir(), 'app.log');
    writeFileSync(file, 'one\ntw');
    await startSource(log, file);
    // 'one' and 'tw' arrive in one read: once 'one' is in, 'tw' has been seen and held.
    await waitFor(() => values(log).length === 1, "'one'");
    appendFileSync(file, 'o\nthr');
    await waitFor(() => values(log).length === 2, "'two'");
    expect(values(log)).toEqual(['one', 'two']);
  });

  it('follows a rename rotation: finishes the old file (its partial last line too), then reads the new one', async () => {
    const log = await openTestLog();
    const dir = tempDir();
    const file = join(dir, 'app.log');
    writeFileSync(file, lines(numbered('old', 0, 50)));
    const source = await startSource(log, file);
    await waitFor(() => values(log).length === 50, 'the first 50 lines');
    // As logrotate: the writer adds lines, the file is renamed away, a new one is created.
    appendFileSync(file, `${lines(numbered('old', 50, 100))}old-partial`);
    renameSync(file, `${file}.1`);
    writeFileSync(file, lines(numbered('new', 0, 30)));
    await waitFor(() => values(log).length === 131, 'old and new lines');
    expect(values(log)).toEqual([...numbered('old', 0, 100), 'old-partial', ...numbered('new', 0, 30)]);
    expect(source.stats().rotations).toBe(1);
    appendFileSync(file, lines(['new-30']));
    await waitFor(() => values(log).at(-1) === 'new-30', 'a line appended to the new file');
  });

  it('follows a copytruncate rotation: reads the file again from its beginning once it shrinks', async () => {
    const log = await openTestLog();
    const file = join(tempDir(), 'app.log');
    writeFileSync(file, lines(numbered('before', 0, 100)));
    const source = await startSource(log, file);
    await waitFor(() => values(log).length === 100, 'the lines before the rotation');
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    appendFileSync(file, lines(numbered('after', 0, 10)));
    await waitFor(() => values(log).length === 110, 'the lines after the truncation');
    expect(values(log)).toEqual([...numbered('before', 0, 100), ...numbered('after', 0, 10)]);
    expect(source.stats().truncations).toBe(1);
  });

  it('resumes after a restart exactly where it stopped, finishing a file rotated meanwhile', async () => {
    const dir = tempDir();
    const file = join(tempDir(), 'app.log');
    writeFileSync(file, lines(numbered('a', 0, 10)));
    let log = await CommitLog.open({ dir, retentionSchedule: null });
    let source = await startSource(log, file);
    await waitFor(() => values(log).length === 10, 'the first run');
    await source.close();
    await log.close();
    // While stopped: more lines, a rotation, lines in the new file.
    appendFileSync(file, `${lines(numbered('a', 10, 20))}a-20`);
    renameSync(file, `${file}-20240101`);
    writeFileSync(file, lines(numbered('b', 0, 5)));
    log = await openTestLog({ dir });
    const logs = capturingLogger();
    source = await startSource(log, file, { logger: logs.logger });
    await waitFor(() => values(log).length === 26, 'the second run');
    expect(values(log)).toEqual([...numbered('a', 0, 21), ...numbered('b', 0, 5)]);
    expect(logs.lines.map((l) => l.msg)).toContain('the file was rotated while the source was stopped: finishing the rotated file first');
  });

  it('appends a line longer than the topic allows in parts that join to the line, and counts it', async () => {
    const log = await openTestLog();
    await log.createTopic('lines', { maxMessageBytes: 200 });
    const file = join(tempDir(), 'app.log');
    const long = 'x'.repeat(450) + 'END';
    writeFileSync(file, lines(['short', long, 'after']));
    const logs = capturingLogger();
    const source = await startSource(log, file, { logger: logs.logger, readChunkBytes: 64 });
    await waitFor(() => values(log).at(-1) === 'after', 'the line after the long one');
    const records = readAll(log, 'lines');
    const parts = records.slice(1, -1);
    expect(parts.length).toBeGreaterThan(2);
    expect(Buffer.concat(parts.map((r) => r.value)).toString()).toBe(long);
    expect(parts.map((r) => r.headers['line-part'])).toEqual(parts.map((_, i) => String(i + 1)));
    expect(parts.map((r) => r.headers['line-more'])).toEqual(parts.map((_, i) => String(i < parts.length - 1)));
    expect(records[0]!.headers).toEqual({});
    expect(source.stats().linesSplit).toBe(1);
    expect(logs.lines.filter((l) => /is longer than topic 'lines' allows/.test(l.msg))).toHaveLength(1);
  });

  it('waits for a file that does not exist yet (nor its folder), saying so once', async () => {
    const log = await openTestLog();
    const dir = join(tempDir(), 'later');
    const file = join(dir, 'app.log');
    const logs = capturingLogger();
    const source = await startSource(log, file, { logger: logs.logger, pollIntervalMs: 100 });
    await waitFor(() => source.stats().state === 'waiting' && logs.lines.some((l) => l.msg === 'waiting for the file to appear'), 'the waiting state');
    mkdirSync(dir);
    writeFileSync(file, lines(['hello']));
    await waitFor(() => values(log).length === 1, 'the line of the new file');
    expect(logs.lines.filter((l) => l.msg === 'waiting for the file to appear')).toHaveLength(1);
    expect(source.stats().state).toBe('tailing');
  });

  it('retries an append the log refuses (LOG_FULL) until it fits, skipping no line and saying so once', async () => {
    const log = await openTestLog({ maxLogBytes: 3000 });
    await log.createTopic('lines', { retentionBytes: 600 });
    const file = join(tempDir(), 'app.log');
    writeFileSync(file, lines(numbered('reading', 0, 100)));
    const logs = capturingLogger();
    const source = await startSource(log, file, { logger: logs.logger, readChunkBytes: 64 });
    await waitFor(() => source.stats().state === 'retrying', 'the log to fill up');
    const hw = () => log.describeTopic('lines').partitions[0]!.highWatermark;
    expect(hw()).toBeLessThan(100);
    // Retention frees space; the source goes on where the log refused it.
    await waitFor(async () => (await log.enforceRetention(), hw() === 100 && source.stats().state === 'tailing'), 'every line', 30_000);
    const kept = readAll(log, 'lines', 0, log.describeTopic('lines').partitions[0]!.startOffset);
    expect(kept.map((r) => r.value.toString())).toEqual(kept.map((r) => `reading-${r.offset}`));
    expect(logs.lines.filter((l) => l.msg.startsWith('file source cannot go on'))).toHaveLength(1);
    expect(logs.lines.some((l) => l.msg === 'file source recovered')).toBe(true);
  });

  it('creates its topic again when it is deleted under it, and goes on', async () => {
    const log = await openTestLog();
    const file = join(tempDir(), 'app.log');
    writeFileSync(file, lines(['a']));
    await startSource(log, file);
    await waitFor(() => values(log).length === 1, "'a'");
    await log.deleteTopic('lines');
    appendFileSync(file, lines(['b']));
    await waitFor(() => values(log).length === 1 && values(log)[0] === 'b', "'b' in the new topic");
  });
});
