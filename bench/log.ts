/**
 * Commit log benchmark (not a test): durable append throughput and latency, sequential reads and
 * reopen time, with raw lmdb puts and reads of the same bytes measured in the same run as the
 * reference. The figure that matters is the ratio log / raw; absolute numbers vary with the machine.
 *
 *   npm run bench:log [-- --records N --reopen-records N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import { open } from 'lmdb';
import { CommitLog } from '../src/index.js';
import { printTable, writeResults, type Row } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '300000' },
    'reopen-records': { type: 'string', default: '2000000' },
    concurrency: { type: 'string', default: '1000' },
  },
});
const RECORDS = Number(args.records);
const REOPEN_RECORDS = Number(args['reopen-records']);
const CONCURRENCY = Number(args.concurrency);
const VALUE_BYTES = 100;
const RAW_BATCH = 1000;

const scratch = mkdtempSync(join(tmpdir(), 'edgelog-bench-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(scratch, `d${dirs++}`);
const value = (i: number) => {
  const b = Buffer.alloc(VALUE_BYTES, 0x61);
  b.writeUInt32BE(i, 0);
  return b;
};

function histogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

/** Durable raw lmdb puts: RAW_BATCH puts per transaction, each transaction awaited (fsync'd) before the next. */
async function rawPuts(n: number): Promise<{ perSec: number; dir: string }> {
  const dir = freshDir();
  const root = open({ path: dir, overlappingSync: false, eventTurnBatching: false });
  const db = root.openDB('r', { encoding: 'binary' });
  const t0 = performance.now();
  for (let i = 0; i < n; i += RAW_BATCH) {
    await root.transaction(() => {
      for (let j = i; j < Math.min(n, i + RAW_BATCH); j++) db.putSync(j, value(j));
    });
  }
  const perSec = n / ((performance.now() - t0) / 1000);
  await root.close();
  return { perSec, dir };
}

function rawRead(dir: string, n: number): number {
  const root = open({ path: dir });
  const db = root.openDB('r', { encoding: 'binary' });
  const t0 = performance.now();
  let count = 0;
  for (const { value: v } of db.getRange({ start: 0 })) if ((v as Buffer).length === VALUE_BYTES) count++;
  const perSec = count / ((performance.now() - t0) / 1000);
  if (count !== n) throw new Error(`raw read found ${count} of ${n}`);
  void root.close();
  return perSec;
}

/**
 * `producers` producers, each appending `perCall` records per call and awaiting the call before the
 * next. One record per call with many producers is the ingest pattern (one QoS 1 publish each).
 */
async function logAppends(n: number, partitions: number, producers = CONCURRENCY, perCall = 1): Promise<{ perSec: number; p50Ms: number; p99Ms: number; log: CommitLog }> {
  const log = await CommitLog.open({ dir: freshDir(), retentionSchedule: null });
  await log.createTopic('bench', { partitions });
  const h = histogram();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: producers }, async () => {
      while (next < n) {
        const first = next;
        next += perCall;
        const records = Array.from({ length: Math.min(perCall, n - first) }, (_, j) => ({ key: `device-${(first + j) % 1000}`, value: value(first + j) }));
        const start = performance.now();
        await log.append('bench', records);
        h.recordValue(Math.max(1, Math.round((performance.now() - start) * 1000)));
      }
    }),
  );
  const perSec = n / ((performance.now() - t0) / 1000);
  const result = { perSec, p50Ms: h.getValueAtPercentile(50) / 1000, p99Ms: h.getValueAtPercentile(99) / 1000, log };
  h.destroy();
  return result;
}

/** One append at a time: the latency of a lone durable append (one fsync each). */
async function lonelyAppends(n: number): Promise<{ p50Ms: number; p99Ms: number }> {
  const log = await CommitLog.open({ dir: freshDir(), retentionSchedule: null });
  await log.createTopic('bench');
  const h = histogram();
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await log.append('bench', [{ value: value(i) }]);
    h.recordValue(Math.max(1, Math.round((performance.now() - start) * 1000)));
  }
  await log.close();
  const r = { p50Ms: h.getValueAtPercentile(50) / 1000, p99Ms: h.getValueAtPercentile(99) / 1000 };
  h.destroy();
  return r;
}

function logRead(log: CommitLog, partitions: number): number {
  const t0 = performance.now();
  let count = 0;
  for (let p = 0; p < partitions; p++) {
    for (let offset = 0; ; ) {
      const { records, highWatermark } = log.read('bench', p, offset, { maxRecords: 1000, maxBytes: 1 << 24 });
      count += records.length;
      offset += records.length;
      if (offset >= highWatermark) break;
    }
  }
  return count / ((performance.now() - t0) / 1000);
}

async function reopenTime(n: number): Promise<{ openMs: number; records: number }> {
  const dir = freshDir();
  let log = await CommitLog.open({ dir, retentionSchedule: null });
  await log.createTopic('bench', { partitions: 8 });
  const batch = 5000;
  for (let i = 0; i < n; i += batch) {
    await log.append('bench', Array.from({ length: Math.min(batch, n - i) }, (_, j) => ({ key: `device-${(i + j) % 1000}`, value: value(i + j) })));
  }
  await log.close();
  const t0 = performance.now();
  log = await CommitLog.open({ dir, retentionSchedule: null });
  const openMs = performance.now() - t0;
  const records = log.describeTopic('bench').partitions.reduce((s, p) => s + p.records, 0);
  await log.close();
  return { openMs, records };
}

const rows: Row[] = [];
const mb = (perSec: number) => (perSec * VALUE_BYTES) / 1e6;
console.log(`edgelog log benchmark: ${RECORDS.toLocaleString()} records of ${VALUE_BYTES} bytes, ${CONCURRENCY} producers in flight`);

// Interleave reference and log runs so machine noise hits both alike; keep the better of two runs each.
const raw = [await rawPuts(RECORDS), await rawPuts(RECORDS)];
const rawBest = Math.max(...raw.map((r) => r.perSec));
const one = await logAppends(RECORDS, 1);
const eight = await logAppends(RECORDS, 8);
const batched = await logAppends(RECORDS, 8, 10, 100);
await batched.log.close();
const rawAgain = await rawPuts(RECORDS);
const rawRef = Math.max(rawBest, rawAgain.perSec);
rows.push({ case: 'raw lmdb puts (reference), 1000/txn', 'records/s': rawRef, 'MB/s': mb(rawRef), 'p50 ms': '-', 'p99 ms': '-', 'ratio to raw': 1 });
for (const [name, r] of [
  [`log append, 1 record/call x ${CONCURRENCY} in flight, 1 partition`, one],
  [`log append, 1 record/call x ${CONCURRENCY} in flight, 8 partitions`, eight],
  ['log append, 100 records/call x 10 in flight, 8 partitions', batched],
] as const) {
  rows.push({ case: name, 'records/s': r.perSec, 'MB/s': mb(r.perSec), 'p50 ms': r.p50Ms, 'p99 ms': r.p99Ms, 'ratio to raw': r.perSec / rawRef });
}
const lonely = await lonelyAppends(2000);
rows.push({ case: 'log append, one at a time', 'records/s': '-', 'MB/s': '-', 'p50 ms': lonely.p50Ms, 'p99 ms': lonely.p99Ms, 'ratio to raw': '-' });
printTable('Durable appends', rows);

const rawReadPerSec = rawRead(raw[0]!.dir, RECORDS);
const read1 = logRead(one.log, 1);
const read8 = logRead(eight.log, 8);
await one.log.close();
await eight.log.close();
const readRows: Row[] = [
  { case: 'raw lmdb getRange (reference)', 'records/s': rawReadPerSec, 'MB/s': mb(rawReadPerSec), 'ratio to raw': 1 },
  { case: 'log read, 1 partition (checksums verified)', 'records/s': read1, 'MB/s': mb(read1), 'ratio to raw': read1 / rawReadPerSec },
  { case: 'log read, 8 partitions (checksums verified)', 'records/s': read8, 'MB/s': mb(read8), 'ratio to raw': read8 / rawReadPerSec },
];
printTable('Sequential reads', readRows);

const reopen = await reopenTime(REOPEN_RECORDS);
printTable('Restart', [{ case: `reopen a log of ${reopen.records.toLocaleString()} records in 8 partitions`, 'open ms': reopen.openMs }]);

const path = writeResults('log', {
  parameters: { records: RECORDS, valueBytes: VALUE_BYTES, concurrency: CONCURRENCY, rawBatch: RAW_BATCH },
  appends: rows,
  reads: readRows,
  reopen,
  ratio: { onePartition: one.perSec / rawRef, eightPartitions: eight.perSec / rawRef, batched: batched.perSec / rawRef },
});
console.log(`\nresults written to ${path}`);
