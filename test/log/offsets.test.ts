import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CommitLog } from '../../src/index.js';
import { MAX_OFFSET_METADATA_BYTES } from '../../src/log/offsets.js';
import { bytes, openTestLog, readAll } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';
import { refusal } from '../helpers/refusal.js';


async function logWithData(dir = tempDir()): Promise<CommitLog> {
  const log = await openTestLog({ dir });
  await log.createTopic('t', { partitions: 2 });
  await log.append('t', [{ value: bytes('a'), partition: 0 }, { value: bytes('b'), partition: 0 }, { value: bytes('c'), partition: 1 }]);
  return log;
}

describe('committed offsets', () => {
  it('commits durably, reads back per group, and survives a reopen', async () => {
    const dir = tempDir();
    const log = await logWithData(dir);
    await log.commitOffsets('g1', [{ topic: 't', partition: 0, offset: 2, metadata: 'note' }, { topic: 't', partition: 1, offset: 0 }]);
    await log.commitOffsets('g1', [{ topic: 't', partition: 1, offset: 1 }]);
    await log.commitOffsets('g2', [{ topic: 't', partition: 0, offset: 1 }]);
    await log.close();
    const again = await CommitLog.open({ dir, retentionSchedule: null });
    try {
      expect(again.listGroups()).toEqual(['g1', 'g2']);
      expect(again.committedOffsets('g1').map(({ committedAtMs, ...c }) => (expect(committedAtMs).toBeGreaterThan(0), c))).toEqual([
        { topic: 't', partition: 0, offset: 2, metadata: 'note' },
        { topic: 't', partition: 1, offset: 1, metadata: '' },
      ]);
      expect(again.committedOffsets('g2')).toMatchObject([{ topic: 't', partition: 0, offset: 1 }]);
      expect(again.committedOffsets('nobody')).toEqual([]);
      expect(await again.deleteGroupOffsets('g1')).toBe(2);
      expect(again.listGroups()).toEqual(['g2']);
    } finally {
      await again.close();
    }
  });

  it.each([
    ['a group id with a slash', 'a/b', [{ topic: 't', partition: 0, offset: 0 }], 'INVALID_ARGUMENT', /group id must be 1 to 249 of a-z A-Z 0-9 \. _ -, got "a\/b"/],
    ['no offsets', 'g', [], 'INVALID_ARGUMENT', /offsets must be an array of 1 to 10000/],
    ['an unknown topic', 'g', [{ topic: 'nope', partition: 0, offset: 0 }], 'UNKNOWN_TOPIC', /unknown topic "nope"/],
    ['an unknown partition', 'g', [{ topic: 't', partition: 5, offset: 0 }], 'UNKNOWN_PARTITION', /partition 5 does not exist: topic 't' has partitions 0 to 1/],
    ['a negative offset', 'g', [{ topic: 't', partition: 0, offset: -1 }], 'INVALID_ARGUMENT', /offsets\[0\]\.offset must be a whole number ≥ 0/],
    ['an offset past the data', 'g', [{ topic: 't', partition: 0, offset: 3 }], 'OFFSET_AHEAD', /offset 3 for t\/0 is above its high watermark 2/],
    ['one partition twice', 'g', [{ topic: 't', partition: 0, offset: 1 }, { topic: 't', partition: 0, offset: 2 }], 'INVALID_ARGUMENT', /offsets\[1\] names t\/0 a second time/],
    ['metadata too long', 'g', [{ topic: 't', partition: 0, offset: 0, metadata: 'x'.repeat(MAX_OFFSET_METADATA_BYTES + 1) }], 'INVALID_ARGUMENT', /metadata must be a string of at most 4096 bytes/],
  ])('refuses %s, naming what is wrong and what is allowed', async (_, group, offsets, code, message) => {
    const log = await logWithData();
    const error = await refusal(() => log.commitOffsets(group, offsets as never));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    expect(log.listGroups()).toEqual([]);
  });

  it('an append with a commit stores both in one transaction, or neither when the commit is refused', async () => {
    const log = await logWithData();
    await log.createTopic('out');
    const commit = { group: 'proc', offsets: [{ topic: 't', partition: 0, offset: 2 }] };
    const commitsBefore = log.commitCount;
    expect(await log.append('out', [{ value: bytes('sum=2') }], { commit })).toEqual([{ partition: 0, offset: 0 }]);
    expect(log.commitCount).toBe(commitsBefore + 1);
    expect(log.committedOffsets('proc')).toMatchObject([{ topic: 't', partition: 0, offset: 2 }]);

    const ahead = await refusal(() => log.append('out', [{ value: bytes('x') }], { commit: { group: 'proc', offsets: [{ topic: 't', partition: 1, offset: 9 }] } }));
    expect(ahead.code).toBe('OFFSET_AHEAD');
    expect(readAll(log, 'out')).toHaveLength(1);
    expect(log.committedOffsets('proc')).toHaveLength(1);
  });

  it('lets a group commit while the log is full, and forgets a deleted topic\'s offsets', async () => {
    const log = await openTestLog({ maxLogBytes: 200 });
    await log.createTopic('t');
    await log.append('t', [{ value: Buffer.alloc(120) }]);
    expect((await refusal(() => log.append('t', [{ value: Buffer.alloc(120) }]))).code).toBe('LOG_FULL');
    await log.commitOffsets('g', [{ topic: 't', partition: 0, offset: 1 }]);
    expect(log.committedOffsets('g')).toMatchObject([{ offset: 1 }]);
    await log.deleteTopic('t');
    await log.createTopic('t');
    expect(log.committedOffsets('g')).toEqual([]);
    expect(log.listGroups()).toEqual([]);
  });

  it('tells listeners which partitions moved and to where, and survives a listener that throws', async () => {
    const log = await openTestLog();
    await log.createTopic('t', { partitions: 3 });
    const seen: string[] = [];
    const stop = log.onAppend((topic, partition, hw) => seen.push(`${topic}/${partition}@${hw}`));
    log.onAppend(() => {
      throw new Error('a buggy listener');
    });
    await Promise.all([log.append('t', [{ value: bytes('a'), partition: 0 }, { value: bytes('b'), partition: 2 }]), log.append('t', [{ value: bytes('c'), partition: 2 }])]);
    expect(seen.sort()).toEqual(['t/0@1', 't/2@2']);
    await log.commitOffsets('g', [{ topic: 't', partition: 0, offset: 1 }]);
    expect(seen).toHaveLength(2);
    stop();
    await log.append('t', [{ value: bytes('d'), partition: 1 }]);
    expect(seen).toHaveLength(2);
    expect(log.describeTopic('t').partitions[1]!.highWatermark).toBe(1);
  });
});

describe('append with commit under SIGKILL', () => {
  const CHILD = fileURLToPath(new URL('./fixtures/process-child.ts', import.meta.url));

  /**
   * Runs the processor child and SIGKILLs it `killAfterMs` after it is ready (at a moment that
   * bears no relation to its transactions), or lets it finish when undefined.
   */
  async function runAndKill(dir: string, killAfterMs: number | undefined): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<string | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    let timer: NodeJS.Timeout | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'ready' && killAfterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    }
    const how = await exited;
    clearTimeout(guard);
    clearTimeout(timer);
    if (how !== 'SIGKILL' && how !== 0) throw new Error(`processor child exited ${how}: ${stderr}`);
  }

  it('never loses or doubles an output: the output holds each input offset exactly once, up to the committed offset', async () => {
    const dir = tempDir();
    const INPUT = 3000;
    const setup = await CommitLog.open({ dir, retentionSchedule: null });
    await setup.createTopic('in');
    await setup.createTopic('out');
    for (let i = 0; i < INPUT; i += 500) await setup.append('in', Array.from({ length: 500 }, (_, j) => ({ value: bytes(`r${i + j}`) })));
    await setup.close();
    // Ten kills at moments spread over the child's work (deterministic, so a failure can be rerun).
    for (let kill = 0; kill < 10; kill++) await runAndKill(dir, 20 + ((kill * 37) % 150));
    await runAndKill(dir, undefined);

    const log = await CommitLog.open({ dir, retentionSchedule: null });
    try {
      const committed = log.committedOffsets('proc')[0]!.offset;
      const outputs = readAll(log, 'out').map((r) => Number(r.value.toString()));
      expect(committed).toBe(INPUT);
      expect(outputs.length).toBe(INPUT);
      expect(outputs.findIndex((v, i) => v !== i)).toBe(-1);
    } finally {
      await log.close();
    }
  }, 120_000);
});
