import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export const STRACE = '/usr/bin/strace';
/** strace is installed by .ci/run; in CI a missing strace is a failure, elsewhere the test is skipped. */
export const haveStrace = existsSync(STRACE) || process.env['CI'] === 'true';
export const TRACED_CALLS = 'trace=openat,fdatasync,fsync,msync,write,writev,sendto,sendmsg,pwrite64,pwritev,pwritev2';

/** Runs `argv` under `strace -f`, writing the trace to `traceFile`. */
export function spawnTraced(traceFile: string, argv: string[]): ChildProcess {
  return spawn(STRACE, ['-f', '-o', traceFile, '-e', TRACED_CALLS, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Reduces a trace to the events that matter for durability, in order: 'sync' (fdatasync/fsync/
 * msync, or a write through the descriptor LMDB opens with O_DSYNC for its meta page, which is
 * durable when it returns), 'page' (any other write to an LMDB data file: not yet durable; LMDB
 * uses pwrite or writev), and 'ack' for each syscall whose line matches `ackPattern`.
 */
export function durabilityEvents(traceFile: string, ackPattern: RegExp): Array<'sync' | 'page' | 'ack'> {
  const dsyncFds = new Set<string>();
  const dataFds = new Set<string>();
  return readFileSync(traceFile, 'utf8')
    .split('\n')
    .flatMap((l): Array<'sync' | 'page' | 'ack'> => {
      const opened = /openat\(.*"[^"]*\.mdb".*= (\d+)$/.exec(l);
      if (opened) (/O_DSYNC/.test(l) ? dsyncFds : dataFds).add(opened[1]!);
      if (/\b(fdatasync|fsync|msync)\(/.test(l) && !/= -1/.test(l)) return ['sync'];
      const written = /\b(?:p?write(?:64|v|v2)?)\((\d+),/.exec(l);
      if (written && dsyncFds.has(written[1]!)) return ['sync'];
      if (written && dataFds.has(written[1]!)) return ['page'];
      return ackPattern.test(l) ? ['ack'] : [];
    });
}

/**
 * Checks that every ack was preceded, since the previous ack, by a sync and that no page write
 * was left unsynced when it went out. Returns the number of acks, or throws naming the bad one.
 */
export function assertSyncedBeforeEachAck(events: Array<'sync' | 'page' | 'ack'>): number {
  let syncsSinceAck = 0;
  let unsyncedPages = 0;
  let acks = 0;
  for (const e of events) {
    if (e === 'page') unsyncedPages++;
    else if (e === 'sync') {
      syncsSinceAck++;
      unsyncedPages = 0;
    } else {
      acks++;
      if (syncsSinceAck === 0) throw new Error(`ack ${acks} was written before its transaction was synced`);
      if (unsyncedPages > 0) throw new Error(`ack ${acks} was written while ${unsyncedPages} page writes were not yet synced`);
      syncsSinceAck = 0;
    }
  }
  return acks;
}
