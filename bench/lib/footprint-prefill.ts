import { fork } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildSet } from './footprint-processes.js';

const WORKER = join(import.meta.dirname, 'footprint-prefill-worker.ts');
/**
 * Disk bytes one prefilled record takes, with room to spare: a ~80-byte value, its key and record
 * header, LMDB's page overhead and the time index (~150 bytes measured; the "~2 GB for 10
 * million" is this figure).
 */
export const DISK_BYTES_PER_RECORD = 200;
/** Free space left over after the prefill, for the gateway's own writes and everyone else on the disk. */
export const DISK_RESERVE_BYTES = 1024 ** 3;
/** The prefill is given at least this long, and never less than 10,000 records/s (it does ~100k/s here). */
const PREFILL_TIMEOUT_MIN_MS = 120_000;
const PREFILL_RATE_MIN_PER_S = 10_000;

/** What the prefill worker reports over IPC. */
export interface PrefillMessage {
  readonly type: 'progress' | 'done';
  readonly records: number;
  readonly elapsedMs: number;
}

/** Free bytes of the file system holding `dir` and what `records` need; `short` says whether to refuse. */
export function diskCheck(dir: string, records: number): { freeBytes: number; neededBytes: number; short: boolean } {
  const fs = statfsSync(dir);
  const freeBytes = fs.bavail * fs.bsize;
  const neededBytes = records * DISK_BYTES_PER_RECORD + DISK_RESERVE_BYTES;
  return { freeBytes, neededBytes, short: freeBytes < neededBytes };
}

/**
 * Fills `dir` with `records` records across `topics` in a forked worker
 * (footprint-prefill-worker.ts); `onProgress` is called about every million records.
 */
export function prefillLog(children: ChildSet, options: { dir: string; records: number; topics: readonly string[]; onProgress: (records: number, elapsedMs: number) => void }): Promise<{ elapsedMs: number }> {
  const child = fork(WORKER, [options.dir, String(options.records), options.topics.join(',')], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  children.adopt(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const timeoutMs = Math.max(PREFILL_TIMEOUT_MIN_MS, (options.records / PREFILL_RATE_MIN_PER_S) * 1000);
  return new Promise((resolve, reject) => {
    let done: PrefillMessage | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the prefill did not finish within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    child.on('message', (message: PrefillMessage) => {
      if (message.type === 'progress') options.onProgress(message.records, message.elapsedMs);
      else done = message;
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && done !== undefined) resolve({ elapsedMs: done.elapsedMs });
      else reject(new Error(`the prefill worker exited (${code ?? signal}) before it finished: ${stderr}`));
    });
  });
}
