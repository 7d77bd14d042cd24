import { join } from 'node:path';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { CommitLog, CorruptRecordError } from '../../src/index.js';
import { recordKey, topicDbName } from '../../src/log/storage.js';
import { bytes } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Changes the stored bytes of one record behind the log's back, as a rotting SD card would. */
async function tamper(dir: string, topicId: number, partition: number, offset: number, change: (b: Buffer) => Buffer | null): Promise<void> {
  const root = open({ path: join(dir, 'log'), maxDbs: 10 });
  const db = root.openDB(topicDbName(topicId), { encoding: 'binary' });
  const key = recordKey(partition, offset);
  const changed = change(Buffer.from(db.getBinary(key)!));
  await root.transaction(() => (changed ? db.putSync(key, changed) : db.removeSync(key)));
  await root.close();
}

async function logWithRecords(dir: string): Promise<void> {
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  await log.createTopic('readings', { partitions: 2 });
  await log.append('readings', Array.from({ length: 10 }, (_, i) => ({ value: bytes(`reading ${i}`), partition: 1 })));
  await log.close();
}

describe('corruption', () => {
  it('a flipped bit in a stored record raises CorruptRecordError naming topic, partition and offset', async () => {
    const dir = tempDir();
    await logWithRecords(dir);
    await tamper(dir, 1, 1, 5, (b) => {
      b[b.length - 2]! ^= 0x01; // inside the value
      return b;
    });
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    let caught: unknown;
    try {
      log.read('readings', 1, 0);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CorruptRecordError);
    expect(caught).toMatchObject({ code: 'CORRUPT_RECORD', topic: 'readings', partition: 1, offset: 5 });
    expect((caught as Error).message).toMatch(/corrupt record in topic 'readings' partition 1 at offset 5: checksum mismatch/);
    // The records around it are still served.
    expect(log.read('readings', 1, 0, { maxRecords: 5 }).records).toHaveLength(5);
    expect(log.read('readings', 1, 6).records.map((r) => r.value.toString())).toEqual(['reading 6', 'reading 7', 'reading 8', 'reading 9']);
    await log.close();
  });

  it('a record moved to another offset is caught by its own offset', async () => {
    const dir = tempDir();
    await logWithRecords(dir);
    let copy: Buffer | null = null;
    await tamper(dir, 1, 1, 2, (b) => ((copy = b), b));
    await tamper(dir, 1, 1, 3, () => copy);
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    expect(() => log.read('readings', 1, 3)).toThrow(/offset 3: record claims offset 2/);
    await log.close();
  });
});
