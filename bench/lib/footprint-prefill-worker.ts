/**
 * Fills a data folder with a large log for the footprint benchmark's start-up runs
 * (bench/footprint.ts, through footprint-prefill.ts): CommitLog from src/log directly, big append
 * batches, several in flight. A child process of its own, so the benchmark's process never holds
 * the log open while the gateway starts on the same folder.
 *
 *   (forked) footprint-prefill-worker.ts DIR RECORDS TOPIC[,TOPIC...]
 * Sends { type: 'progress' | 'done', records, elapsedMs } over IPC.
 */
import { CommitLog } from '../../src/log/commit-log.js';
import type { AppendRecord } from '../../src/log/prepare-records.js';
import type { PrefillMessage } from './footprint-prefill.js';

/** Records per append call: the log's maxBatchRecords default, so one call is one group commit at most. */
const BATCH_RECORDS = 10_000;
/** Calls in flight: while one batch commits (fsync), the next ones are encoded. ~6 MB of pending bytes. */
const IN_FLIGHT = 4;
/** Device ids the records are keyed by (device-0000..device-0999), as a 1,000-device fleet writes. */
const DEVICES = 1_000;
/** A progress message every this many records. */
const PROGRESS_RECORDS = 1_000_000;
/**
 * Timestamps spread over the last day, well inside the default 7-day retention, so the gateway's
 * retention never deletes them while it is being timed.
 */
const SPAN_MS = 24 * 3600 * 1000;

const [dir, recordsText, topicsText] = process.argv.slice(2);
const records = Number(recordsText);
const topics = (topicsText ?? '').split(',').filter((t) => t !== '');
if (dir === undefined || !Number.isInteger(records) || records < 1 || topics.length === 0) {
  throw new Error(`usage: footprint-prefill-worker.ts DIR RECORDS TOPIC[,TOPIC...], got ${process.argv.slice(2).join(' ')}`);
}
const send = (message: PrefillMessage) => process.send?.(message);

/** A JSON reading of 70-90 bytes, like firmware-sim's. */
function value(i: number, topic: string): Buffer {
  const device = i % DEVICES;
  const reading = (20 + ((i * 7919) % 1000) / 100).toFixed(2);
  return Buffer.from(`{"deviceId":"device-${String(device).padStart(4, '0')}","seq":${Math.floor(i / DEVICES)},"${topic}":${reading},"battery":3.${device % 10}}`);
}

function batch(from: number, count: number, topic: string, startMs: number): AppendRecord[] {
  const out: AppendRecord[] = [];
  for (let i = from; i < from + count; i++) {
    out.push({ key: `device-${String(i % DEVICES).padStart(4, '0')}`, value: value(i, topic), timestamp: startMs + Math.floor((i * SPAN_MS) / records) });
  }
  return out;
}

const t0 = performance.now();
const log = await CommitLog.open({ dir, retentionSchedule: null });
try {
  for (const topic of topics) if (!log.hasTopic(topic)) await log.createTopic(topic, { partitions: 1 });
  const startMs = Date.now() - SPAN_MS;
  let next = 0;
  let done = 0;
  let reported = 0;
  const worker = async () => {
    // Bounded by `records`: every turn takes the next batch or stops.
    while (next < records) {
      const from = next;
      const count = Math.min(BATCH_RECORDS, records - from);
      next += count;
      const topic = topics[Math.floor(from / BATCH_RECORDS) % topics.length] as string;
      await log.append(topic, batch(from, count, topic, startMs));
      done += count;
      if (done - reported >= PROGRESS_RECORDS) {
        reported = done;
        send({ type: 'progress', records: done, elapsedMs: performance.now() - t0 });
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
} finally {
  await log.close();
}
send({ type: 'done', records, elapsedMs: performance.now() - t0 });
