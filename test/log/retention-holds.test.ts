import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LogFullError } from '../../src/index.js';
import { bytes, openTestLog } from '../helpers/log.js';

/** 100 records of `v` bytes in topic 't', appended at time 0, then a clock at 1 s so all are past retentionMs 10. */
async function expiredLog(options: Parameters<typeof openTestLog>[0] = {}) {
  let now = 0;
  const log = await openTestLog({ now: () => now, ...options });
  await log.createTopic('t', { retentionMs: 10 });
  await log.createTopic('other', { retentionMs: 10 });
  await log.append('t', Array.from({ length: 100 }, () => ({ value: Buffer.alloc(100) })));
  await log.append('other', Array.from({ length: 10 }, () => ({ value: bytes('o') })));
  now = 1000;
  return log;
}

describe('retention holds (records a bridge has not replicated)', () => {
  it('keeps every record from the holding group\'s committed offset on, and only in the topics it covers', async () => {
    const log = await expiredLog();
    log.holdRetention({ group: 'bridge.up', covers: (t) => t === 't' });
    // Nothing committed yet: nothing of 't' has been replicated, so all of it stays.
    let report = await log.enforceRetention();
    expect(report).toMatchObject({ deletedRecords: 10, droppedHeldRecords: 0 });
    expect(log.describeTopic('t').partitions[0]).toMatchObject({ startOffset: 0, records: 100 });
    expect(log.describeTopic('other').partitions[0]).toMatchObject({ startOffset: 10, records: 0 });

    await log.commitOffsets('bridge.up', [{ topic: 't', partition: 0, offset: 60 }]);
    report = await log.enforceRetention();
    expect(report).toMatchObject({ deletedRecords: 60, droppedHeldRecords: 0 });
    expect(log.describeTopic('t').partitions[0]).toMatchObject({ startOffset: 60, records: 40 });
    expect(log.read('t', 0, 60).records[0]!.offset).toBe(60);
  });

  it('takes the lowest position of several holds, and lets go once released', async () => {
    const log = await expiredLog();
    const releaseA = log.holdRetention({ group: 'bridge.a', covers: () => true });
    log.holdRetention({ group: 'bridge.b', covers: (t) => t === 't' });
    await log.commitOffsets('bridge.a', [{ topic: 't', partition: 0, offset: 80 }, { topic: 'other', partition: 0, offset: 10 }]);
    await log.commitOffsets('bridge.b', [{ topic: 't', partition: 0, offset: 30 }]);
    await log.enforceRetention();
    expect(log.describeTopic('t').partitions[0]!.startOffset).toBe(30);
    expect(log.describeTopic('other').partitions[0]!.startOffset).toBe(10);
    releaseA();
    await log.commitOffsets('bridge.b', [{ topic: 't', partition: 0, offset: 100 }]);
    await log.enforceRetention();
    expect(log.describeTopic('t').partitions[0]!.startOffset).toBe(100);
  });

  it("with the default policy keeps held records even when the log is full, and refuses appends instead", async () => {
    const log = await expiredLog({ maxLogBytes: 20_000 });
    log.holdRetention({ group: 'bridge.up', covers: () => true });
    await expect(log.append('t', Array.from({ length: 100 }, () => ({ value: Buffer.alloc(100) })))).rejects.toBeInstanceOf(LogFullError);
    const report = await log.enforceRetention();
    expect(report).toMatchObject({ deletedRecords: 0, droppedHeldRecords: 0 });
    expect(log.droppedHeldRecords).toBe(0);
    expect(log.describeTopic('t').partitions[0]!.records).toBe(100);
  });

  it("with 'drop-oldest' under disk pressure deletes held records past retention, counts them and says so at warn", async () => {
    const lines: Array<{ level: number; msg: string; droppedHeldRecords?: number }> = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    // 100 records of ~140 stored bytes: about 14 KB of a 15 KB log is past the 90% pressure mark.
    const log = await expiredLog({ maxLogBytes: 15_000, diskPressurePolicy: 'drop-oldest', logger });
    log.holdRetention({ group: 'bridge.up', covers: () => true });
    await log.commitOffsets('bridge.up', [{ topic: 't', partition: 0, offset: 25 }]);
    const report = await log.enforceRetention();
    // 't' goes (75 of its records were held); that relieves the pressure, so 'other' keeps its held records.
    expect(report).toMatchObject({ deletedRecords: 100, droppedHeldRecords: 75 });
    expect(log.describeTopic('other').partitions[0]!.records).toBe(10);
    expect(log.droppedHeldRecords).toBe(75);
    expect(lines.find((l) => l.level === 40 && /had not replicated/.test(l.msg))?.droppedHeldRecords).toBe(75);
  });

  it("with 'drop-oldest' but no disk pressure still keeps held records", async () => {
    const log = await expiredLog({ maxLogBytes: 1_000_000, diskPressurePolicy: 'drop-oldest' });
    log.holdRetention({ group: 'bridge.up', covers: () => true });
    expect(await log.enforceRetention()).toMatchObject({ deletedRecords: 0, droppedHeldRecords: 0 });
  });

  it('refuses a hold with an invalid group id and an unknown policy, naming what is allowed', async () => {
    const log = await openTestLog();
    expect(() => log.holdRetention({ group: 'no spaces', covers: () => true })).toThrow(/group id must be/);
    await expect(openTestLog({ diskPressurePolicy: 'forget' as never })).rejects.toThrow(/diskPressurePolicy must be one of keep, drop-oldest/);
  });
});
