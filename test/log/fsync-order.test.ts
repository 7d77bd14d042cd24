import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertSyncedBeforeEachAck, durabilityEvents, haveStrace, STRACE, TRACED_CALLS } from '../helpers/strace.js';
import { tempDir } from '../helpers/temp-dir.js';

const CHILD = fileURLToPath(new URL('./fixtures/sequential-acks.ts', import.meta.url));

// A SIGKILL test cannot catch a missing flush (the page cache survives the process), so the order
// of syscalls is checked instead.
describe('durability order', () => {
  (haveStrace ? it : it.skip)('fsyncs the transaction holding a record before the append resolves', () => {
    const dir = tempDir();
    const trace = join(dir, 'trace');
    const run = spawnSync(STRACE, ['-f', '-o', trace, '-e', TRACED_CALLS, process.execPath, '--import', 'tsx', CHILD, join(dir, 'data')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(0);
    // The child prints TOPIC once the topic exists, then "ACK n" after each append resolves.
    const events = durabilityEvents(trace, /write\(1, "(ACK \d+|TOPIC)\\n"/);
    const acks = assertSyncedBeforeEachAck(events.slice(events.indexOf('ack') + 1));
    expect(acks).toBe(5);
  });
});
