import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CommitLog, LogFullError, type AppendResult } from '../../src/index.js';
import { bytes, openTestLog } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';

async function appendUntilFull(log: CommitLog, topic: string, size: number, limit: number): Promise<{ acked: AppendResult[]; error: unknown }> {
  const acked: AppendResult[] = [];
  for (let i = 0; i < limit; i++) {
    try {
      acked.push(...(await log.append(topic, [{ value: Buffer.alloc(size, i % 251) }])));
    } catch (error) {
      return { acked, error };
    }
  }
  throw new Error(`the log took ${limit} appends without filling up`);
}

describe('a full log', () => {
  it('refuses appends past maxLogBytes with LogFullError, stays readable, and takes appends again once space is freed', async () => {
    const log = await openTestLog({ maxLogBytes: 100_000 });
    await log.createTopic('bulk');
    await log.createTopic('alerts');
    const { acked, error } = await appendUntilFull(log, 'bulk', 1000, 1000);
    expect(error).toBeInstanceOf(LogFullError);
    expect((error as LogFullError).retryable).toBe(true);
    expect((error as Error).message).toMatch(/the log is full: \d+ of 100000 bytes \(maxLogBytes\)/);
    expect(acked.length).toBeGreaterThan(90);
    // Other topics are full too, the failed append stored nothing, and everything acked is readable.
    await expect(log.append('alerts', [{ value: Buffer.alloc(2000) }])).rejects.toBeInstanceOf(LogFullError);
    expect(log.describeTopic('bulk').partitions[0]!.highWatermark).toBe(acked.length);
    expect(log.read('bulk', 0, 0, { maxRecords: 10_000, maxBytes: 1e9 }).records).toHaveLength(acked.length);
    await log.deleteTopic('bulk');
    expect(await log.append('alerts', [{ value: bytes('fire') }])).toEqual([{ partition: 0, offset: 0 }]);
  });

  it('frees space through retention', async () => {
    let now = 0;
    const log = await openTestLog({ maxLogBytes: 50_000, now: () => now });
    await log.createTopic('t', { retentionMs: 1000 });
    const { error } = await appendUntilFull(log, 't', 1000, 1000);
    expect(error).toBeInstanceOf(LogFullError);
    now = 5000;
    await log.enforceRetention();
    await expect(log.append('t', [{ value: Buffer.alloc(1000) }])).resolves.toHaveLength(1);
  });
});

// A real full filesystem: a small tmpfs. Mounting needs root, which CI has.
const canMount = process.getuid?.() === 0;
const mountTest = canMount || process.env['CI'] === 'true' ? it : it.skip;

function smallFilesystem(bytesSize: number): string {
  const dir = join(tempDir(), 'fs');
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytesSize}`, 'tmpfs', dir]);
  onTestFinished(() => {
    execFileSync('umount', ['-l', dir]);
  });
  return dir;
}

describe('a full disk', () => {
  mountTest('refuses appends at the free-space reserve before LMDB meets the full disk', async () => {
    const fs = smallFilesystem(8 * 1024 * 1024);
    const log = await CommitLog.open({ dir: join(fs, 'data'), retentionSchedule: null, minFreeDiskBytes: 2 * 1024 * 1024 });
    onTestFinished(() => log.close());
    await log.createTopic('t');
    const { acked, error } = await appendUntilFull(log, 't', 4000, 5000);
    expect(error).toBeInstanceOf(LogFullError);
    expect((error as Error).message).toMatch(/below the 2097152-byte reserve \(minFreeDiskBytes\)/);
    expect(log.read('t', 0, 0, { maxRecords: 10_000, maxBytes: 1e9 }).records).toHaveLength(acked.length);
  });

  mountTest('survives ENOSPC inside a commit: refuses with LogFullError, keeps what was acked, and recovers when space is freed', async () => {
    const fs = smallFilesystem(6 * 1024 * 1024);
    const dir = join(fs, 'data');
    // A frozen clock keeps the log's free-space estimate from being resampled on its own, so the
    // disk can fill up behind its back (as another process would do) and the commit meets ENOSPC.
    let log = await CommitLog.open({ dir, retentionSchedule: null, minFreeDiskBytes: 0, now: () => 1_000_000 });
    await log.createTopic('t');
    const acked: AppendResult[] = [];
    for (let i = 0; i < 20; i++) acked.push(...(await log.append('t', [{ value: Buffer.alloc(4000, i) }])));
    fillUp(join(fs, 'filler'));
    let error: unknown;
    for (let i = acked.length; i < 5000 && !error; i++) {
      await log.append('t', [{ value: Buffer.alloc(4000, i % 251) }]).then((r) => acked.push(...r), (e) => (error = e));
    }
    expect(error).toBeInstanceOf(LogFullError);
    expect((error as Error).message).toMatch(/disk .* is full .*the commit failed and nothing of it was stored/);
    expect(log.describeTopic('t').partitions[0]!.highWatermark).toBe(acked.length);
    expect(log.read('t', 0, 0, { maxRecords: 10_000, maxBytes: 1e9 }).records).toHaveLength(acked.length);
    rmSync(join(fs, 'filler'));
    const more = await log.append('t', [{ value: Buffer.alloc(4000, 250) }]);
    expect(more).toEqual([{ partition: 0, offset: acked.length }]);
    await log.close();
    log = await CommitLog.open({ dir, retentionSchedule: null, minFreeDiskBytes: 0 });
    const records = log.read('t', 0, 0, { maxRecords: 10_000, maxBytes: 1e9 }).records;
    expect(records).toHaveLength(acked.length + 1);
    records.forEach((r, i) => expect(r.value[0]).toBe(i < acked.length ? i % 251 : 250));
    await log.close();
  });
});

/** Writes a file until the filesystem has no space left. */
function fillUp(path: string): void {
  const chunk = Buffer.alloc(64 * 1024);
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < 100_000; i++) {
      try {
        writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
}
