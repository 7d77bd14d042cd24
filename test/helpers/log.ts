import { onTestFinished } from 'vitest';
import { CommitLog, type CommitLogOptions, type StoredRecord } from '../../src/index.js';
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
