import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { onTestFinished } from 'vitest';

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

export interface TracedGateway {
  /** The trace file, complete once `stop()` has resolved. */
  trace: string;
  /** The gateway's `edgelog gateway started` log line. */
  started: { mqttPort: number; httpPort: number; pid: number };
  /** SIGTERM to the gateway, then waits for strace to exit. */
  stop: () => Promise<void>;
}

/** Starts the gateway CLI under strace in a temporary folder; SIGKILLed by PID when the test finishes if still running. */
export async function startTracedGateway(cli: string, dir: string): Promise<TracedGateway> {
  const trace = join(dir, 'trace');
  const strace = spawnTraced(trace, [process.execPath, '--import', 'tsx', cli, 'start', '--data-dir', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0']);
  let gatewayPid: number | undefined;
  onTestFinished(() => {
    if (gatewayPid === undefined) return;
    try {
      process.kill(gatewayPid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  const started = await new Promise<TracedGateway['started']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the gateway did not start under strace within 30 s')), 30_000);
    createInterface({ input: strace.stdout! }).on('line', (line) => {
      if (line.includes('edgelog gateway started')) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as TracedGateway['started']);
      }
    });
  });
  gatewayPid = started.pid;
  const exited = once(strace, 'exit');
  return {
    trace,
    started,
    stop: async () => {
      process.kill(started.pid, 'SIGTERM');
      await exited;
    },
  };
}
