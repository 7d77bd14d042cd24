import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';

const CHILD = fileURLToPath(new URL('./fixtures/sequential-acks.ts', import.meta.url));
const STRACE = '/usr/bin/strace';
// A SIGKILL test cannot catch a missing flush (the page cache survives the process), so the order
// of syscalls is checked instead. CI installs strace; elsewhere the test needs it too.
const haveStrace = existsSync(STRACE) || process.env['CI'] === 'true';

describe('durability order', () => {
  (haveStrace ? it : it.skip)('fsyncs the transaction holding a record before the append resolves', () => {
    const dir = tempDir();
    const trace = join(dir, 'trace');
    const run = spawnSync(STRACE, ['-f', '-o', trace, '-e', 'trace=openat,fdatasync,fsync,msync,write,pwrite64,pwritev,pwritev2', process.execPath, '--import', 'tsx', CHILD, join(dir, 'data')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const lines = readFileSync(trace, 'utf8').split('\n');
    // LMDB writes its meta page through a second descriptor opened with O_DSYNC: such a write is
    // durable when it returns, so it counts as a sync.
    const dsyncFds = new Set<string>();
    const events = lines.flatMap((l): string[] => {
      const opened = /openat\(.*O_DSYNC.*= (\d+)$/.exec(l);
      if (opened) dsyncFds.add(opened[1]!);
      if (/\b(fdatasync|fsync|msync)\(/.test(l) && !/= -1/.test(l)) return ['sync'];
      const page = /\bpwrite(?:64|v|v2)?\((\d+),/.exec(l);
      if (page) return [dsyncFds.has(page[1]!) ? 'sync' : 'page'];
      const ack = /write\(1, "(ACK \d+|TOPIC)\\n"/.exec(l);
      return ack ? [ack[1]!] : [];
    });
    const start = events.indexOf('TOPIC');
    expect(start).toBeGreaterThanOrEqual(0);
    const after = events.slice(start + 1);
    const acks = after.filter((e) => e.startsWith('ACK'));
    expect(acks).toEqual(['ACK 0', 'ACK 1', 'ACK 2', 'ACK 3', 'ACK 4']);
    // Each append is its own transaction here. Before each acknowledgement, that transaction must
    // have been synced, and no page write may be left unsynced when the ack goes out.
    let syncsSinceAck = 0;
    let unsyncedPages = 0;
    for (const e of after) {
      if (e === 'page') unsyncedPages++;
      else if (e === 'sync') {
        syncsSinceAck++;
        unsyncedPages = 0;
      } else {
        expect(syncsSinceAck, `${e} was written before its transaction was synced`).toBeGreaterThan(0);
        expect(unsyncedPages, `${e} was written while ${unsyncedPages} page writes were not yet synced`).toBe(0);
        syncsSinceAck = 0;
      }
    }
  });
});
