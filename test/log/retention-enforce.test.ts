import { describe, expect, it } from 'vitest';
import { CommitLog } from '../../src/index.js';
import { bytes, openTestLog } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';

describe('retention', () => {
  it('deletes records older than retentionMs by append time; offsets are never reused', async () => {
    let now = 1_000_000;
    const dir = tempDir();
    const log = await CommitLog.open({ dir, retentionSchedule: null, now: () => now });
    await log.createTopic('t', { retentionMs: 60_000 });
    // A device clock far in the past must not make fresh data expire.
    await log.append('t', Array.from({ length: 100 }, () => ({ value: bytes('old'), timestamp: 5 })));
    now += 30_000;
    await log.append('t', Array.from({ length: 50 }, () => ({ value: bytes('new'), timestamp: 5 })));
    expect(await log.enforceRetention()).toEqual({ deletedRecords: 0, deletedBytes: 0, droppedHeldRecords: 0 });
    now += 40_000; // the first 100 are now 70 s old, the last 50 are 40 s old
    const report = await log.enforceRetention();
    expect(report.deletedRecords).toBe(100);
    const p = log.describeTopic('t').partitions[0]!;
    expect(p).toMatchObject({ startOffset: 100, highWatermark: 150, records: 50 });
    expect(p.bytes).toBe(report.deletedBytes / 2);
    expect(() => log.read('t', 0, 99)).toThrow(/valid offsets are 100 to 150/);
    expect(log.read('t', 0, 100).records[0]!.value.toString()).toBe('new');
    expect(log.offsetForTimestamp('t', 0, 0)).toBe(100);
    await log.close();
    const again = await CommitLog.open({ dir, retentionSchedule: null, now: () => now });
    expect(again.describeTopic('t').partitions[0]).toMatchObject({ startOffset: 100, highWatermark: 150 });
    expect(await again.append('t', [{ value: bytes('x') }])).toEqual([{ partition: 0, offset: 150 }]);
    now += 120_000;
    await again.enforceRetention();
    expect(again.describeTopic('t').partitions[0]).toMatchObject({ startOffset: 151, highWatermark: 151, records: 0, bytes: 0 });
    expect(await again.append('t', [{ value: bytes('y') }])).toEqual([{ partition: 0, offset: 151 }]);
    await again.close();
  });

  it('deletes the oldest records past retentionBytes, per partition', async () => {
    const log = await openTestLog();
    await log.createTopic('t', { partitions: 2, retentionBytes: 1000 });
    for (let i = 0; i < 10; i++) await log.append('t', [{ value: Buffer.alloc(200), partition: i % 2 }]);
    const sizeOfOne = log.describeTopic('t').partitions[0]!.bytes / 5;
    await log.enforceRetention();
    for (const p of log.describeTopic('t').partitions) {
      expect(p.bytes).toBeLessThanOrEqual(1000);
      expect(p.bytes + sizeOfOne).toBeGreaterThan(1000); // deleted no more than needed
      expect(p.highWatermark).toBe(5);
    }
  });

  it('deletes in small transactions and lets appends commit in between', async () => {
    let now = 0;
    const log = await openTestLog({ retentionBatchRecords: 10, now: () => now });
    await log.createTopic('t', { retentionMs: 10 });
    for (let i = 0; i < 10; i++) await log.append('t', Array.from({ length: 100 }, () => ({ value: bytes('v') })));
    now = 1000;
    const order: string[] = [];
    const retention = log.enforceRetention().then((r) => order.push(`retention ${r.deletedRecords}`));
    // Let the first deletion chunk start, then append: the append must not wait for all 100 chunks.
    await new Promise((resolve) => setImmediate(resolve));
    const append = log.append('t', [{ value: bytes('during') }]).then(() => order.push('append'));
    await Promise.all([retention, append]);
    expect(order).toEqual(['append', 'retention 1000']);
  });

  it('runs on its node-cron schedule', async () => {
    let now = 0;
    const log = await openTestLog({ retentionSchedule: '* * * * * *', now: () => now });
    await log.createTopic('t', { retentionMs: 1000 });
    await log.append('t', [{ value: bytes('a') }, { value: bytes('b') }]);
    now = 10_000;
    await waitFor(() => log.describeTopic('t').partitions[0]!.startOffset === 2, 'the scheduled retention run', 5000);
    expect(log.describeTopic('t').partitions[0]!.startOffset).toBe(2);
  });
});
