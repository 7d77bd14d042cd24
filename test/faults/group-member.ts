/**
 * One member of a consumer group, as its own process, for the group-churn fault scenario
 * (test/faults/group-churn.test.ts). It reads with the package's client (`consumer()` from
 * src/client), writes one line per record it is handed to its output file, then commits; the
 * scenario SIGKILLs it, closes it with SIGTERM, and audits the files of every member afterwards.
 *
 * Every line is written with a synchronous append before the batch is committed, so a SIGKILL
 * loses nothing that was printed and nothing is committed that was not (at least once). Lines are
 * tab-separated, one kind per first field (parsed by group-churn-output.ts):
 *   J  nowMs                                         about to join (written before connecting)
 *   A  nowMs  generation  memberId  partitions-json  added-json   an assignment, before any of its records
 *   R  nowMs  generation  memberId  topic  partition  offset  key  seq   a record handed to this member
 *   S  nowMs  generation  code                       a commit refused after a rebalance (STALE_GENERATION, NOT_ASSIGNED)
 *   X  nowMs  how                                     the member stops: 'closed' or an error code
 *
 * Usage: group-member.ts --url http://127.0.0.1:PORT --group G --topics a,b --client-id ID --out FILE
 *        [--session-timeout-ms N] [--max-buffered-records N]
 */
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { consumer, EdgelogClientError, type ConsumerAssignment } from '../../src/client/index.js';

/** Exit codes the scenario tells apart: 0 closed by SIGTERM, this one for a member that failed. */
const EXIT_FAILED = 2;

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    group: { type: 'string' },
    topics: { type: 'string' },
    'client-id': { type: 'string' },
    out: { type: 'string' },
    'session-timeout-ms': { type: 'string' },
    'max-buffered-records': { type: 'string' },
  },
  strict: true,
});
const required = (name: 'url' | 'group' | 'topics' | 'client-id' | 'out'): string => {
  const value = values[name];
  if (value === undefined || value === '') throw new Error(`group-member needs --${name}`);
  return value;
};
const out = required('out');
const topics = required('topics').split(',');

/** One synchronous append per call: a SIGKILL after it returns cannot take the lines back. */
function write(lines: readonly string[]): void {
  if (lines.length > 0) appendFileSync(out, `${lines.join('\n')}\n`);
}

let generation = -1;
write([['J', Date.now()].join('\t')]);
const c = consumer({
  url: required('url'),
  groupId: required('group'),
  topics,
  clientId: required('client-id'),
  offsetReset: 'earliest',
  // The member commits itself, after writing each batch: auto-commit would commit on a timer.
  autoCommit: false,
  ...(values['session-timeout-ms'] === undefined ? {} : { sessionTimeoutMs: Number(values['session-timeout-ms']) }),
  ...(values['max-buffered-records'] === undefined ? {} : { maxBufferedRecords: Number(values['max-buffered-records']) }),
  onAssignment: (a: ConsumerAssignment) => {
    // Called before any record of the assignment is handed out, so every later R line belongs to it.
    generation = a.generation;
    write([['A', Date.now(), a.generation, c.memberId, JSON.stringify(a.partitions), JSON.stringify(a.added)].join('\t')]);
  },
  onWarning: (w) => write([['W', Date.now(), generation, w.kind, w.message.replace(/\s+/g, ' ')].join('\t')]),
});

let stopping = false;
let busy = false;
process.on('SIGTERM', () => {
  stopping = true;
  // Between batches the loop waits for records: closing ends that wait. Mid-batch, the loop stops after its commit.
  if (!busy) void c.close();
});

try {
  for await (const batch of c) {
    busy = true;
    const now = Date.now();
    write(
      batch.records.map((r) => {
        const seq = (JSON.parse(r.value.toString('utf8')) as { seq?: unknown }).seq;
        return ['R', now, generation, c.memberId, r.topic, r.partition, r.offset, String(r.key), String(seq)].join('\t');
      }),
    );
    try {
      await c.commit();
    } catch (error) {
      // A rebalance between the batch and its commit: the records are delivered again to the partition's new owner.
      if (!(error instanceof EdgelogClientError) || (error.code !== 'STALE_GENERATION' && error.code !== 'NOT_ASSIGNED')) throw error;
      write([['S', Date.now(), generation, error.code].join('\t')]);
    }
    busy = false;
    if (stopping) break;
  }
  // Waits for the leave to reach the gateway and the socket to close, so the group rebalances at once.
  await c.close();
  write([['X', Date.now(), 'closed'].join('\t')]);
  process.exit(0);
} catch (error) {
  const code = error instanceof EdgelogClientError ? error.code : 'ERROR';
  write([['X', Date.now(), code].join('\t')]);
  process.stderr.write(`group-member ${c.memberId}: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(EXIT_FAILED);
}
