import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CommitLog } from '../../src/index.js';
import { tempDir } from '../helpers/temp-dir.js';

const CHILD = fileURLToPath(new URL('./fixtures/append-child.ts', import.meta.url));

interface Ack {
  run: string;
  b: number;
  n: number;
  at: Array<[number, number]>;
}

/** Runs the append child until it has acknowledged `records` records, then SIGKILLs it. */
async function appendThenKill(dir: string, run: string, records: number): Promise<Ack[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, run], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  const acks: Ack[] = [];
  let acked = 0;
  const lines = createInterface({ input: child.stdout });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child acked only ${acked} records in time; stderr: ${stderr}`)), 30_000);
    lines.on('line', (line) => {
      if (line === 'ready') return;
      const ack = JSON.parse(line) as Omit<Ack, 'run'>;
      acks.push({ run, ...ack });
      acked += ack.n;
      if (acked >= records && !child.killed) {
        child.kill('SIGKILL');
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((how) => {
      clearTimeout(timer);
      if (!child.killed) reject(new Error(`child exited (${how}) before it was killed; stderr: ${stderr}`));
    });
  });
  expect(await exited).toBe('SIGKILL');
  return acks;
}

describe('crash safety', () => {
  it('after SIGKILL at random moments, every acknowledged record is there, intact, dense and exactly once', async () => {
    const dir = tempDir();
    const acks: Ack[] = [];
    const rounds = [300, 5000, 50, 2000, 800];
    for (const [round, target] of rounds.entries()) {
      acks.push(...(await appendThenKill(dir, `r${round}`, target + Math.floor(Math.random() * target))));
      const log = await CommitLog.open({ dir, retentionSchedule: null });
      try {
        // Every record in the log, partition by partition; read() itself checks density and checksums.
        const found = new Map<string, [number, number]>();
        const batches = new Map<string, { n: number; seen: number }>();
        for (const p of log.describeTopic('crash').partitions) {
          expect(p.startOffset).toBe(0);
          for (let offset = 0; offset < p.highWatermark; ) {
            const { records } = log.read('crash', p.partition, offset, { maxRecords: 5000, maxBytes: 1e9 });
            for (const r of records) {
              const value = r.value.toString();
              expect(found.has(value), `duplicate record ${value}`).toBe(false);
              found.set(value, [p.partition, r.offset]);
              const [run, b, , n] = value.split(':');
              const batch = batches.get(`${run}:${b}`) ?? { n: Number(n), seen: 0 };
              batch.seen++;
              batches.set(`${run}:${b}`, batch);
            }
            offset += records.length;
          }
        }
        // Every acknowledged record is where its ack said.
        for (const ack of acks) {
          for (let i = 0; i < ack.n; i++) {
            expect(found.get(`${ack.run}:${ack.b}:${i}:${ack.n}`), `acked record ${ack.run}:${ack.b}:${i}`).toEqual(ack.at[i]);
          }
        }
        // A batch is all there or not at all: nothing half-present.
        for (const [id, { n, seen }] of batches) expect(seen, `batch ${id}`).toBe(n);
      } finally {
        await log.close();
      }
    }
    expect(acks.length).toBeGreaterThan(rounds.length);
  });
});
