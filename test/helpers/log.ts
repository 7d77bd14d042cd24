import { onTestFinished } from 'vitest';
import { CommitLog, type CommitLogOptions } from '../../src/index.js';
import { tempDir } from './temp-dir.js';

/** Opens a log in a fresh temporary folder (or `dir`), closed when the test finishes. */
export async function openTestLog(options: Partial<CommitLogOptions> = {}): Promise<CommitLog> {
  const log = await CommitLog.open({ retentionSchedule: null, ...options, dir: options.dir ?? tempDir() });
  onTestFinished(() => log.close());
  return log;
}

export const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
