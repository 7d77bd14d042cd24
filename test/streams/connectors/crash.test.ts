import { appendFileSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CommitLog } from '../../../src/index.js';
import { readAll } from '../../helpers/log.js';
import { spawnTs, type Spawned } from '../../helpers/process.js';
import { tempDir } from '../../helpers/temp-dir.js';
import { numbered } from './helpers.js';

const SOURCE_CHILD = fileURLToPath(new URL('./fixtures/source-child.ts', import.meta.url));
const SINK_CHILD = fileURLToPath(new URL('./fixtures/sink-child.ts', import.meta.url));
const ROUNDS = 10;

/** A kill delay after "ready" for each round: spread over the child's work, the same on every run so a failure can be rerun. */
const killDelayMs = (round: number): number => 20 + ((round * 53) % 220);

async function kill(child: Spawned): Promise<void> {
  child.child.kill('SIGKILL');
  const how = await child.exited;
  if (how !== 'SIGKILL') throw new Error(`child exited ${how} before it was killed:\n${child.output()}`);
}

async function finish(child: Spawned): Promise<void> {
  await child.waitForLine(/^done$/, 30_000);
  expect(await child.exited).toBe(0);
}

describe('file source under SIGKILL', () => {
  it('after kills at arbitrary moments while lines flow and files rotate, the topic holds every line exactly once, in order', async () => {
    const dir = tempDir();
    const file = join(tempDir(), 'app.log');
    const TOTAL = ROUNDS * 500;
    let written = 0;
    let rotations = 0;
    let reportedIno = '';

    /**
     * Writes `count` lines in bursts, some cut in the middle of a line between two writes. Renames
     * the file away now and then, like logrotate, but only once the source stands on the current
     * file: a source follows the path, so a file rotated away before it ever opened it is not read
     * (docs/connectors.md).
     */
    async function write(count: number): Promise<void> {
      for (const end = written + count; written < end; ) {
        const n = Math.min(end - written, 1 + (written % 23));
        const text = numbered('line', written, written + n).map((l) => `${l}\n`).join('');
        const cut = (written * 7) % text.length;
        appendFileSync(file, text.slice(0, cut));
        appendFileSync(file, text.slice(cut));
        written += n;
        if (written % 150 < n && reportedIno === String(statSync(file).ino)) {
          renameSync(file, `${file}.${++rotations}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
    function spawnSource(expected: number): Spawned {
      const child = spawnTs(SOURCE_CHILD, [dir, file, String(expected)]);
      child.child.stdout.on('data', () => {
        const last = child.output().trimEnd().split('\n').findLast((l) => l.startsWith('pos '));
        if (last !== undefined) reportedIno = last.split(' ')[1]!;
      });
      return child;
    }

    for (let round = 0; round < ROUNDS; round++) {
      const child = spawnSource(0);
      await child.waitForLine(/^ready$/);
      const writing = write(TOTAL / ROUNDS);
      await new Promise((resolve) => setTimeout(resolve, killDelayMs(round)));
      await kill(child);
      // The rest of the round's lines are written while the source is down.
      await writing;
    }
    const last = spawnSource(TOTAL);
    await finish(last);

    const log = await CommitLog.open({ dir, retentionSchedule: null });
    try {
      const got = readAll(log, 'lines').map((r) => r.value.toString());
      expect(got.length).toBe(TOTAL);
      const firstWrong = got.findIndex((v, i) => v !== `line-${i}`);
      expect(firstWrong, `first wrong record at ${firstWrong}: ${got[firstWrong]}`).toBe(-1);
    } finally {
      await log.close();
    }
    expect(rotations).toBeGreaterThan(2);
  }, 180_000);
});

describe('file sink under SIGKILL', () => {
  it('after kills at arbitrary moments while records flow, the file holds every record exactly once, each partition in order', async () => {
    const dir = tempDir();
    const file = join(tempDir(), 'out.log');
    const setup = await CommitLog.open({ dir, retentionSchedule: null });
    await setup.createTopic('readings', { partitions: 3 });
    await setup.close();

    for (let round = 0; round < ROUNDS; round++) {
      const child = spawnTs(SINK_CHILD, [dir, file, `r${round}`, '400', '']);
      await child.waitForLine(/^ready$/);
      await new Promise((resolve) => setTimeout(resolve, killDelayMs(round)));
      await kill(child);
    }
    await finish(spawnTs(SINK_CHILD, [dir, file, 'last', '0', 'final']));

    const log = await CommitLog.open({ dir, retentionSchedule: null });
    try {
      const where = new Map<string, [number, number]>();
      for (const p of log.describeTopic('readings').partitions) {
        for (const r of readAll(log, 'readings', p.partition)) where.set(r.value.toString(), [p.partition, r.offset]);
      }
      const lines = readFileSync(file, 'utf8').split('\n');
      expect(lines.pop()).toBe('');
      expect(new Set(lines).size, 'no line twice').toBe(lines.length);
      expect(lines.length, 'every record once').toBe(where.size);
      const lastOffset = [-1, -1, -1];
      for (const line of lines) {
        const at = where.get(line);
        expect(at, `line ${line} is a record of the topic`).toBeDefined();
        const [p, offset] = at!;
        expect(offset, `partition ${p} in order at ${line}`).toBe(lastOffset[p]! + 1);
        lastOffset[p] = offset;
      }
      expect(where.size).toBeGreaterThan(ROUNDS * 50);
    } finally {
      await log.close();
    }
  }, 180_000);
});
