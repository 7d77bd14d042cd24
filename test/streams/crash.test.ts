import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { CommitLog } from '../../src/index.js';
import { StreamProcessor, type StreamProcessorStats } from '../../src/streams/processor.js';
import { readAll } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { crashInput, flushInput, INPUT_PARTITIONS, INPUT_TOPIC, PROCESSORS } from './fixtures/crash-setup.js';

const CHILD = fileURLToPath(new URL('./fixtures/processor-child.ts', import.meta.url));
/** Small batches in the child: hundreds of transactions, so kills land in all their phases. */
const CHILD_BATCH_RECORDS = 40;

async function writeInput(dir: string): Promise<number> {
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  try {
    await log.createTopic(INPUT_TOPIC, { partitions: INPUT_PARTITIONS });
    const input = crashInput();
    for (let i = 0; i < input.length; i += 1000) await log.append(INPUT_TOPIC, input.slice(i, i + 1000));
    await log.append(INPUT_TOPIC, flushInput());
    return input.length + INPUT_PARTITIONS;
  } finally {
    await log.close();
  }
}

/** Runs the child; SIGKILLs it `killAfterMs` after it is ready, or lets it finish. Resolves how it ended. */
async function runChild(dir: string, killAfterMs: number | undefined): Promise<'killed' | 'done'> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(CHILD_BATCH_RECORDS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<string | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  for await (const line of createInterface({ input: child.stdout })) {
    if (line === 'ready' && killAfterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    if (line === 'done') {
      // The work is finished and the log closed: a kill timer firing now would only race the exit.
      clearTimeout(timer);
      done = true;
    }
  }
  const how = await exited;
  clearTimeout(guard);
  clearTimeout(timer);
  if (how === 'SIGKILL' && !done) return 'killed';
  // 'done' is printed after the log closed, so a kill that still lands before the exit changes nothing.
  if (done && (how === 0 || how === 'SIGKILL')) return 'done';
  throw new Error(`processor child exited ${how}: ${stderr}`);
}

interface Outcome {
  /** Output values per topic and key, in order: a key's records come from one input partition, so their order is fixed. */
  byKey: Record<string, Record<string, string[]>>;
  windows: Record<string, unknown>[];
  counters: Record<string, StreamProcessorStats['counters']>;
}

function outcome(log: CommitLog, counters: Outcome['counters']): Outcome {
  const byKey: Outcome['byKey'] = {};
  for (const p of PROCESSORS) {
    const perKey: Record<string, string[]> = {};
    for (const r of readAll(log, p.to)) (perKey[String(r.key)] ??= []).push(r.value.toString());
    byKey[p.to] = perKey;
  }
  const windows = readAll(log, PROCESSORS[0]!.to).map((r) => JSON.parse(r.value.toString()) as Record<string, unknown>);
  return { byKey, windows, counters };
}

/** The same processors over the same input in this process, never interrupted, in large batches. */
async function reference(): Promise<Outcome> {
  const dir = tempDir();
  const total = await writeInput(dir);
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  try {
    const processors = PROCESSORS.map((config) => new StreamProcessor({ log, logger: pino({ level: 'silent' }), config }));
    for (const p of processors) p.start();
    await waitFor(() => processors.every((p) => p.stats().counters.read >= total && p.stats().status === 'waiting'), 'the reference run', 60_000);
    for (const p of processors) await p.close();
    return outcome(log, Object.fromEntries(processors.map((p) => [p.name, p.stats().counters])));
  } finally {
    await log.close();
  }
}

describe('stream processors under SIGKILL', () => {
  it('after kills at arbitrary moments, the output equals an uninterrupted run exactly: no window twice, no count off', async () => {
    const expected = await reference();
    const dir = tempDir();
    const total = await writeInput(dir);
    const progress: number[] = [];
    // Kills at moments spread over the child's work, deterministic so a failure can be rerun.
    for (let kill = 0; kill < 12; kill++) {
      const how = await runChild(dir, 40 + ((kill * 97) % 500));
      const log = await CommitLog.open({ dir, retentionSchedule: null });
      progress.push(log.committedOffsets(`streams.${PROCESSORS[0]!.name}`).reduce((sum, c) => sum + c.offset, 0));
      await log.close();
      if (how === 'done') break;
    }
    expect(await runChild(dir, undefined)).toBe('done');
    // The kills must have landed mid-work, or this test proves nothing.
    expect(progress.filter((p) => p > 0 && p < total).length).toBeGreaterThanOrEqual(4);

    const log = await CommitLog.open({ dir, retentionSchedule: null });
    try {
      const counters: Outcome['counters'] = {};
      for (const config of PROCESSORS) {
        // The processors' counters live in their state stores: read them back through a processor.
        const p = new StreamProcessor({ log, logger: pino({ level: 'silent' }), config });
        p.start();
        await waitFor(() => p.stats().status === 'waiting', 'the processor to load its state');
        counters[p.name] = p.stats().counters;
        await p.close();
      }
      const got = outcome(log, counters);
      expect(got.counters).toEqual(expected.counters);
      expect(got.byKey).toEqual(expected.byKey);

      // Independently of the reference: each window once, and every reading accounted for.
      const ids = got.windows.map((w) => `${w['key']}@${w['windowStart']}`);
      expect(new Set(ids).size).toBe(ids.length);
      const c = got.counters[PROCESSORS[0]!.name]!;
      const counted = got.windows.reduce((sum, w) => sum + (w['count'] as number), 0);
      // The two flush readings stay in their open windows.
      expect(counted + c.late + c.filtered + (c.errors.notJson ?? 0) + INPUT_PARTITIONS).toBe(total);
      expect(c.read).toBe(total);
      expect(c.late).toBeGreaterThan(0);
      // Alerts chain per key: each change starts from the level the previous one reached.
      for (const values of Object.values(got.byKey[PROCESSORS[1]!.to]!)) {
        let level = 'ok';
        for (const v of values.map((s) => JSON.parse(s) as { previous: string; state: string })) {
          expect(v.previous).toBe(level);
          level = v.state;
        }
      }
    } finally {
      await log.close();
    }
  }, 240_000);
});
