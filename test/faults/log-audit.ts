import { readFileSync } from 'node:fs';
import { CommitLog } from '../../src/index.js';

/** Records per read() page: large pages keep the audit of ~100k records to a few hundred reads. */
const AUDIT_PAGE_RECORDS = 10_000;
/** A page of readings is ~100 bytes a record; never let maxBytes cut a page short of maxRecords. */
const AUDIT_PAGE_BYTES = 64 * 1024 * 1024;
/** Problems listed before the rest are only counted: a broken log must not fill the test's memory. */
const MAX_PROBLEMS_LISTED = 100;

/** Appends a problem, or past the bound counts it on the last line. */
function note(problems: string[], problem: string): void {
  if (problems.length < MAX_PROBLEMS_LISTED) problems.push(problem);
  else if (problems.length === MAX_PROBLEMS_LISTED) problems.push('... and more problems, not listed');
}

/** A reading as firmware-sim names it: `device/stream/seq`. */
export type ReadingId = string;

export function readingId(device: string, stream: string, seq: number): ReadingId {
  return `${device}/${stream}/${seq}`;
}

/** The distinct readings in a firmware-sim `--ack-log` file, and how many lines named each. */
export function readAckLog(file: string): Map<ReadingId, number> {
  const acked = new Map<ReadingId, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    const { device, stream, seq } = JSON.parse(line) as { device: string; stream: string; seq: number };
    const id = readingId(device, stream, seq);
    acked.set(id, (acked.get(id) ?? 0) + 1);
  }
  return acked;
}

/** What {@link auditLog} found; `problems` lists every broken invariant, each in words. */
export interface LogAudit {
  /** Copies stored of each reading, over the reading topics. */
  readonly stored: Map<ReadingId, number>;
  /** Records read back (so checksum-verified) over every topic. */
  readonly recordsVerified: number;
  /** Committed offsets per group and `topic/partition`. */
  readonly committed: Map<string, Map<string, number>>;
  /** Records per topic (high watermark minus start offset, summed over partitions). */
  readonly recordsByTopic: Map<string, number>;
  readonly problems: string[];
}

/**
 * Opens the gateway's data folder (the gateway must be stopped) and checks what a power loss must
 * not break: every partition's offsets run densely from its start offset to its high watermark;
 * every record reads back (read() verifies each checksum and throws CORRUPT_RECORD); no group's
 * committed offset is ahead of its partition's high watermark. Values of `readingTopics` are
 * firmware-sim readings (JSON with `seq`, keyed by device), counted by identity.
 */
export async function auditLog(dir: string, readingTopics: readonly string[]): Promise<LogAudit> {
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  const stored = new Map<ReadingId, number>();
  const committed = new Map<string, Map<string, number>>();
  const recordsByTopic = new Map<string, number>();
  const problems: string[] = [];
  let recordsVerified = 0;
  try {
    const highWatermarks = new Map<string, number>();
    for (const topic of log.listTopics()) {
      const isReadings = readingTopics.includes(topic);
      let topicRecords = 0;
      for (const p of log.describeTopic(topic).partitions) {
        highWatermarks.set(`${topic}/${p.partition}`, p.highWatermark);
        topicRecords += p.highWatermark - p.startOffset;
        let expected = p.startOffset;
        // Bounded: every pass reads at least one record or ends the loop.
        while (expected < p.highWatermark) {
          const { records } = log.read(topic, p.partition, expected, { maxRecords: AUDIT_PAGE_RECORDS, maxBytes: AUDIT_PAGE_BYTES });
          if (records.length === 0) {
            note(problems, `${topic}/${p.partition}: no record at offset ${expected} below the high watermark ${p.highWatermark}`);
            break;
          }
          for (const r of records) {
            if (r.offset !== expected) note(problems, `${topic}/${p.partition}: offset ${r.offset} where ${expected} was due`);
            expected = r.offset + 1;
            recordsVerified++;
            if (isReadings) countReading(topic, r.key, r.value, stored, problems);
          }
        }
      }
      recordsByTopic.set(topic, topicRecords);
    }
    for (const group of log.listGroups()) {
      const offsets = new Map<string, number>();
      for (const c of log.committedOffsets(group)) {
        const where = `${c.topic}/${c.partition}`;
        offsets.set(where, c.offset);
        const hw = highWatermarks.get(where);
        if (hw === undefined) note(problems, `group ${group} committed ${where}, which does not exist`);
        else if (c.offset > hw) note(problems, `group ${group} committed offset ${c.offset} on ${where}, ahead of its high watermark ${hw}`);
      }
      committed.set(group, offsets);
    }
  } finally {
    await log.close();
  }
  return { stored, recordsVerified, committed, recordsByTopic, problems };
}

function countReading(topic: string, key: string | Buffer | null, value: Buffer, stored: Map<ReadingId, number>, problems: string[]): void {
  let seq: unknown;
  try {
    seq = (JSON.parse(value.toString('utf8')) as { seq?: unknown }).seq;
  } catch {
    note(problems, `${topic}: a record that is not JSON: ${value.toString('utf8', 0, 80)}`);
    return;
  }
  if (key === null || typeof seq !== 'number') {
    note(problems, `${topic}: a record without a device key or a numeric seq`);
    return;
  }
  const id = readingId(key.toString(), topic, seq);
  stored.set(id, (stored.get(id) ?? 0) + 1);
}
