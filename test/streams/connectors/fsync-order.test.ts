import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { haveStrace, STRACE, TRACED_CALLS } from '../../helpers/strace.js';
import { tempDir } from '../../helpers/temp-dir.js';

const CHILD = fileURLToPath(new URL('./fixtures/sink-fsync-child.ts', import.meta.url));

/**
 * Walks an `strace -f` trace in order and checks that the sink file never has written-but-unsynced
 * bytes while LMDB writes or syncs (the commit of the batch's offsets). Returns the sink's writes
 * and syncs, or throws at the first LMDB event that came too early.
 */
function checkOrder(trace: string, sinkName: string): { writes: number; syncs: number; lmdbEvents: number } {
  const lmdbFds = new Set<string>();
  let sinkFd: string | undefined;
  /** Threads inside an unfinished fdatasync/fsync of the sink file. */
  const syncing = new Set<string>();
  let unsynced = 0;
  const counts = { writes: 0, syncs: 0, lmdbEvents: 0 };
  for (const line of readFileSync(trace, 'utf8').split('\n')) {
    const pid = /^(\d+)\s/.exec(line)?.[1] ?? '';
    const opened = /openat\(.*"([^"]*)".*= (\d+)$/.exec(line);
    if (opened?.[1]!.endsWith('.mdb')) lmdbFds.add(opened[2]!);
    if (opened?.[1]!.endsWith(sinkName)) sinkFd = opened[2]!;
    const call = /\b(write|writev|pwrite64|pwritev|pwritev2|fdatasync|fsync)\((\d+)/.exec(line);
    if (sinkFd !== undefined && call?.[2] === sinkFd) {
      if (call[1]!.includes('write')) {
        unsynced++;
        counts.writes++;
      } else if (/<unfinished/.test(line)) syncing.add(pid);
      else if (/= 0$/.test(line)) {
        unsynced = 0;
        counts.syncs++;
      }
      continue;
    }
    if (syncing.has(pid) && /<\.\.\. (fdatasync|fsync) resumed>.*= 0$/.test(line)) {
      syncing.delete(pid);
      unsynced = 0;
      counts.syncs++;
      continue;
    }
    const lmdb = /\bmsync\(/.test(line) || (call !== null && lmdbFds.has(call[2]!));
    if (lmdb) {
      counts.lmdbEvents++;
      if (unsynced > 0) throw new Error(`LMDB wrote or synced while ${unsynced} write(s) to the sink file were not yet fsync'd: ${line}`);
    }
  }
  return counts;
}

/**
 * The sink's lines must be durable before the commit that says they are there: a SIGKILL test
 * cannot catch a missing fsync (the page cache outlives the process), so the order of syscalls is
 * checked instead (DESIGN.md "Traps").
 */
describe('file sink durability order', () => {
  (haveStrace ? it : it.skip)("fsyncs each batch's lines before the LMDB transaction that commits their offsets", () => {
    const dir = tempDir();
    const trace = join(dir, 'trace');
    const out = join(dir, 'out.log');
    const run = spawnSync(STRACE, ['-f', '-o', trace, '-e', TRACED_CALLS, process.execPath, '--import', 'tsx', CHILD, join(dir, 'data'), out], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(0);
    expect(readFileSync(out, 'utf8').split('\n')).toHaveLength(41);
    const counts = checkOrder(trace, 'out.log');
    // 40 records in batches of 5: 8 writes, each fsync'd, and LMDB busy committing around them.
    expect(counts.writes).toBe(8);
    expect(counts.syncs).toBeGreaterThanOrEqual(8);
    expect(counts.lmdbEvents).toBeGreaterThan(8);
  });
});
