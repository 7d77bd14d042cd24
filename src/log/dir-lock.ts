import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EdgelogError } from '../errors.js';

const LOCK_FILE = 'edgelog.pid';

/**
 * One process owns a data folder: the log keeps partition state in memory, so a second writer
 * would assign the same offsets twice. The lock is a pid file; a lock left by a process that
 * died (SIGKILL, power loss) is taken over, since that process can no longer write.
 */
export function lockDir(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number.parseInt(safeRead(path), 10);
      if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
        throw new EdgelogError(
          'LOG_LOCKED',
          `data folder ${dir} is in use by process ${owner}: stop that gateway, or give this one another --data-dir`,
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new EdgelogError('LOG_LOCKED', `could not lock data folder ${dir}: another process keeps taking ${LOCK_FILE}`);
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
