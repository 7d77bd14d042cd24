// The footprint benchmark's start-up reference (bench/footprint.ts): open the commit log's LMDB
// environment with the `lmdb` package alone and read the last record of one partition, then print
// one JSON line and exit. Plain JavaScript run by plain `node`, as the compiled gateway is: a
// TypeScript loader (tsx) would add its own start-up time to the reference.
//
//   node bench/lib/lmdb-open-child.mjs LOG_DIR TOPIC MAX_DBS MAX_OFFSET
// The layout it reads is src/log/storage.ts's: meta ['t', name] -> { id }, ['p', id, partition]
// -> { next }, records in database t<id> under key partition * MAX_OFFSET + offset.
import { open } from 'lmdb';

const [logDir, topic, maxDbsText, maxOffsetText] = process.argv.slice(2);
if (logDir === undefined || topic === undefined || maxDbsText === undefined || maxOffsetText === undefined) {
  process.stderr.write('usage: lmdb-open-child.mjs LOG_DIR TOPIC MAX_DBS MAX_OFFSET\n');
  process.exit(2);
}
const root = open({ path: logDir, maxDbs: Number(maxDbsText), overlappingSync: false, eventTurnBatching: false, useWritemap: false, encoding: 'msgpack' });
const meta = root.openDB('meta', { encoding: 'msgpack' });
const topicMeta = meta.get(['t', topic]);
if (topicMeta === undefined) throw new Error(`no topic ${topic} in ${logDir}`);
const state = meta.get(['p', topicMeta.id, 0]);
if (state === undefined || state.next <= state.start) throw new Error(`partition 0 of ${topic} is empty`);
const records = root.openDB(`t${topicMeta.id}`, { encoding: 'binary' });
const value = records.get(0 * Number(maxOffsetText) + state.next - 1);
if (value === undefined) throw new Error(`no record at offset ${state.next - 1} of ${topic}/0`);
process.stdout.write(`${JSON.stringify({ ready: true, offset: state.next - 1, valueBytes: value.length, rssBytes: process.memoryUsage().rss })}\n`);
await root.close();
