import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { onTestFinished } from 'vitest';
import { CommitLog, type CommitLogOptions, type StoredRecord } from '../../src/index.js';
import { recordKey, topicDbName } from '../../src/log/storage.js';
import { tempDir } from './temp-dir.js';

/** Opens a log in a fresh temporary folder (or `dir`), closed when the test finishes. */
export async function openTestLog(options: Partial<CommitLogOptions> = {}): Promise<CommitLog> {
  const log = await CommitLog.open({ retentionSchedule: null, ...options, dir: options.dir ?? tempDir() });
  onTestFinished(() => log.close());
  return log;
}

export const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Every record of one partition from `fromOffset` on, paging through read()'s limits. */
export function readAll(log: CommitLog, topic: string, partition = 0, fromOffset = 0): StoredRecord[] {
  const records: StoredRecord[] = [];
  for (let offset = fromOffset; ; ) {
    const page = log.read(topic, partition, offset, { maxRecords: 10_000 }).records;
    if (page.length === 0) return records;
    records.push(...page);
    offset = page.at(-1)!.offset + 1;
  }
}

/**
 * Flips one bit inside the stored value of a record of a closed log behind the log's back, as a
 * rotting SD card would: reading it then fails its checksum (CORRUPT_RECORD).
 */
export async function corruptStoredRecord(dir: string, topicId: number, partition: number, offset: number): Promise<void> {
  const root = openLmdb({ path: join(dir, 'log'), maxDbs: 10 });
  const db = root.openDB(topicDbName(topicId), { encoding: 'binary' });
  const key = recordKey(partition, offset);
  const stored = Buffer.from(db.getBinary(key)!);
  stored[stored.length - 2]! ^= 0x01;
  await root.transaction(() => db.putSync(key, stored));
  await root.close();
}
