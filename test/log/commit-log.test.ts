import { describe, expect, it } from 'vitest';
import { CommitLog, EdgelogError, OffsetOutOfRangeError, partitionForKey } from '../../src/index.js';
import { bytes, openTestLog } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Asserts that `fn` fails with an EdgelogError of `code` whose message matches `message`. */
async function expectCode(fn: () => unknown, code: string, message?: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected an error').toBeInstanceOf(EdgelogError);
  expect((caught as EdgelogError).code).toBe(code);
  if (message) expect((caught as Error).message).toMatch(message);
}

describe('topics', () => {
  it('creates, lists, describes and deletes topics', async () => {
    const log = await openTestLog();
    await log.createTopic('temperature', { partitions: 3, retentionMs: 60_000 });
    await log.createTopic('humidity');
    expect(log.listTopics()).toEqual(['humidity', 'temperature']);
    const d = log.describeTopic('temperature');
    expect(d.config).toMatchObject({ partitions: 3, retentionMs: 60_000, retentionBytes: -1 });
    expect(d.partitions).toHaveLength(3);
    expect(d.partitions[0]).toEqual({ partition: 0, startOffset: 0, highWatermark: 0, records: 0, bytes: 0, oldestTimestamp: null });
    await log.append('temperature', [{ key: 'd1', value: bytes('x'), timestamp: 1000 }]);
    expect(log.describeTopic('temperature').partitions[partitionForKey(bytes('d1'), 3)]).toMatchObject({
      highWatermark: 1,
      records: 1,
      oldestTimestamp: 1000,
    });
    await log.deleteTopic('temperature');
    expect(log.listTopics()).toEqual(['humidity']);
    await expectCode(() => log.describeTopic('temperature'), 'UNKNOWN_TOPIC', /unknown topic "temperature".*existing topics: humidity/);
  });

  it('a recreated topic starts empty, and a deleted topic stays deleted after restart', async () => {
    const dir = tempDir();
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    await log.createTopic('a');
    await log.append('a', [{ value: bytes('old') }]);
    await log.deleteTopic('a');
    await log.createTopic('a');
    expect(log.read('a', 0, 0).records).toHaveLength(0);
    await log.createTopic('b');
    await log.deleteTopic('b');
    await log.close();
    const again = await CommitLog.open({ dir, retentionSchedule: null });
    expect(again.listTopics()).toEqual(['a']);
    expect(again.describeTopic('a').partitions[0]!.highWatermark).toBe(0);
    await again.close();
  });

  it('refuses bad names and options with a clear message', async () => {
    const log = await openTestLog();
    await expectCode(() => log.createTopic('bad/name'), 'INVALID_TOPIC_NAME', /a-z, A-Z, 0-9/);
    await expectCode(() => log.createTopic('..'), 'INVALID_TOPIC_NAME');
    await expectCode(() => log.createTopic('x'.repeat(250)), 'INVALID_TOPIC_NAME');
    await expectCode(() => log.createTopic(42 as unknown as string), 'INVALID_TOPIC_NAME', /must be a string/);
    await expectCode(() => log.createTopic('t', { partitions: 0 }), 'INVALID_ARGUMENT', /partitions must be an integer from 1 to 4096, got 0/);
    await expectCode(() => log.createTopic('t', { retentionMs: 1.5 }), 'INVALID_ARGUMENT', /retentionMs/);
    await expectCode(() => log.createTopic('t', { partitons: 2 } as never), 'INVALID_ARGUMENT', /unknown topic option 'partitons'/);
    await log.createTopic('t');
    await expectCode(() => log.createTopic('t'), 'TOPIC_EXISTS', /'t' already exists/);
    expect(log.listTopics()).toEqual(['t']);
  });

  it('ensureTopic creates a topic once for concurrent first uses, and waits for a creation already in flight', async () => {
    const log = await openTestLog();
    await Promise.all([log.ensureTopic('a'), log.ensureTopic('a'), log.ensureTopic('a')]);
    expect(log.listTopics()).toEqual(['a']);
    // Someone creates 'b' with its own settings; a first use meanwhile waits and keeps them.
    const creating = log.createTopic('b', { partitions: 3 });
    await log.ensureTopic('b');
    expect(log.describeTopic('b').partitions).toHaveLength(3);
    await creating;
    await log.ensureTopic('b');
    expect(log.listTopics()).toEqual(['a', 'b']);
  });

  it('enforces maxTopics', async () => {
    const log = await openTestLog({ maxTopics: 3 });
    await log.createTopic('a');
    await log.createTopic('b');
    await log.createTopic('c');
    await expectCode(() => log.createTopic('d'), 'INVALID_ARGUMENT', /at most 3 topics/);
    await log.deleteTopic('a');
    // LMDB database slots are freed by deletion: create and delete well past maxTopics.
    for (let i = 0; i < 10; i++) {
      await log.createTopic(`tmp${i}`);
      await log.deleteTopic(`tmp${i}`);
    }
    expect(log.listTopics()).toEqual(['b', 'c']);
  });
});

describe('append and read', () => {
  it('assigns dense offsets from 0 and reads them back in order with every field', async () => {
    const log = await openTestLog();
    await log.createTopic('t');
    const results = await log.append('t', [
      { value: bytes('a'), key: 'k', timestamp: 5, headers: { 'content-type': 'text/plain', bin: Uint8Array.from([9]) } },
      { value: Uint8Array.from([1, 2]) },
    ]);
    expect(results).toEqual([
      { partition: 0, offset: 0 },
      { partition: 0, offset: 1 },
    ]);
    expect(await log.append('t', [{ value: bytes('c') }])).toEqual([{ partition: 0, offset: 2 }]);
    const { records, highWatermark, startOffset } = log.read('t', 0, 0);
    expect(highWatermark).toBe(3);
    expect(startOffset).toBe(0);
    expect(records.map((r) => r.offset)).toEqual([0, 1, 2]);
    expect(records[0]).toMatchObject({ key: 'k', timestamp: 5 });
    expect(records[0]!.value.toString()).toBe('a');
    expect(records[0]!.headers['content-type']).toBe('text/plain');
    expect([...(records[0]!.headers['bin'] as Buffer)]).toEqual([9]);
    expect([...records[1]!.value]).toEqual([1, 2]);
    expect(records[1]!.key).toBeNull();
    expect(records[2]!.timestamp).toBeGreaterThan(1_600_000_000_000);
    expect(log.read('t', 0, 3).records).toEqual([]);
    expect(log.read('t', 0, 1, { maxRecords: 1 }).records.map((r) => r.offset)).toEqual([1]);
  });

  it('stops at maxBytes but always returns at least one record', async () => {
    const log = await openTestLog();
    await log.createTopic('t');
    await log.append('t', [0, 1, 2, 3].map(() => ({ value: Buffer.alloc(100) })));
    expect(log.read('t', 0, 0, { maxBytes: 250 }).records).toHaveLength(3);
    expect(log.read('t', 0, 0, { maxBytes: 1 }).records).toHaveLength(1);
  });

  it('puts a key on the partition Kafka would, and keeps one key in order', async () => {
    const log = await openTestLog();
    await log.createTopic('t', { partitions: 8 });
    const appends = [];
    for (let i = 0; i < 200; i++) {
      const key = `device-${i % 20}`;
      appends.push(log.append('t', [{ key, value: bytes(`${key}:${i}`) }]).then(([r]) => ({ key, r: r! })));
    }
    const done = await Promise.all(appends);
    for (const { key, r } of done) expect(r.partition).toBe(partitionForKey(bytes(key), 8));
    for (let p = 0; p < 8; p++) {
      const seen = new Map<string, number>();
      for (const rec of log.read('t', p, 0, { maxRecords: 1000 }).records) {
        const [key, n] = rec.value.toString().split(':') as [string, string];
        expect(rec.key).toBe(key);
        expect(Number(n)).toBeGreaterThan(seen.get(key) ?? -1);
        seen.set(key, Number(n));
      }
    }
  });

  it('spreads records without a key over partitions, one partition per append call', async () => {
    const log = await openTestLog();
    await log.createTopic('t', { partitions: 4 });
    const calls = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => log.append('t', [{ value: bytes('a') }, { value: bytes('b') }])));
    for (const results of calls) expect(results[0]!.partition).toBe(results[1]!.partition);
    const perPartition = log.describeTopic('t').partitions.map((p) => p.records);
    expect(perPartition).toEqual([4, 4, 4, 4]);
  });

  it('honours an explicit partition', async () => {
    const log = await openTestLog();
    await log.createTopic('t', { partitions: 3 });
    expect(await log.append('t', [{ key: 'k', value: bytes('v'), partition: 2 }])).toEqual([{ partition: 2, offset: 0 }]);
  });

  it('groups appends of one event-loop turn into one transaction', async () => {
    const log = await openTestLog();
    await log.createTopic('t');
    // 500 concurrent appends; each transaction's fsync is what makes a durable ack cost, so they
    // must share one transaction, and get consecutive offsets in the order they were called.
    const before = log.commitCount;
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => log.append('t', [{ value: bytes(String(i)) }])));
    expect(log.commitCount - before).toBe(1);
    expect(results.map(([r]) => r!.offset)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('with commitIntervalMs, holds the next commit until the interval has passed, gathering the appends of many turns into it', async () => {
    const INTERVAL_MS = 300;
    const latencies: number[] = [];
    const log = await openTestLog({ commitIntervalMs: INTERVAL_MS, observeAppendMs: (ms) => latencies.push(ms) });
    await log.createTopic('t');
    const firstStart = performance.now();
    await log.append('t', [{ value: bytes('first') }]);
    const before = log.commitCount;
    // One append per event-loop turn: without the interval each would get a commit of its own.
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      pending.push(log.append('t', [{ value: bytes(String(i)) }]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(pending);
    expect(log.commitCount - before).toBe(1);
    // A lower bound, which a timer cannot undercut: the second commit started an interval after the first.
    expect(performance.now() - firstStart).toBeGreaterThanOrEqual(INTERVAL_MS - 5);
    expect(latencies).toHaveLength(21);
    expect(latencies.every((ms) => ms >= 0)).toBe(true);
    await expectCode(() => CommitLog.open({ dir: tempDir(), commitIntervalMs: 5000 }), 'INVALID_ARGUMENT', /commitIntervalMs/);
  });

  it('refuses bad records with a clear message and stores nothing', async () => {
    const log = await openTestLog();
    await log.createTopic('t', { partitions: 2, maxMessageBytes: 200 });
    await expectCode(() => log.append('nope', [{ value: bytes('x') }]), 'UNKNOWN_TOPIC', /unknown topic "nope".*existing topics: t/);
    await expectCode(() => log.append('t', []), 'INVALID_ARGUMENT', /at least one record/);
    await expectCode(() => log.append('t', 'x' as never), 'INVALID_ARGUMENT', /records must be an array/);
    await expectCode(() => log.append('t', [{ value: 'text' } as never]), 'INVALID_ARGUMENT', /records\[0\]\.value must be a Buffer or Uint8Array, got "text"/);
    await expectCode(() => log.append('t', [{ value: bytes('ok') }, { value: bytes('x'), key: 5 } as never]), 'INVALID_ARGUMENT', /records\[1\]\.key/);
    await expectCode(() => log.append('t', [{ value: bytes('x'), timestamp: -1 }]), 'INVALID_ARGUMENT', /timestamp/);
    await expectCode(() => log.append('t', [{ value: bytes('x'), timestamp: Number.NaN }]), 'INVALID_ARGUMENT', /timestamp/);
    await expectCode(() => log.append('t', [{ value: bytes('x'), headers: { h: 5 } } as never]), 'INVALID_ARGUMENT', /headers\['h'\] must be a string or bytes/);
    await expectCode(() => log.append('t', [{ value: bytes('x'), partition: 2 }]), 'UNKNOWN_PARTITION', /partitions 0 to 1/);
    await expectCode(() => log.append('t', [{ value: Buffer.alloc(300) }]), 'RECORD_TOO_LARGE', /records\[0\] is \d+ bytes stored, over topic 't' maxMessageBytes of 200/);
    const d = log.describeTopic('t');
    expect(d.partitions.map((p) => p.highWatermark)).toEqual([0, 0]);
  });

  it('limits records per call and bytes waiting to commit', async () => {
    const log = await openTestLog({ maxBatchRecords: 10, maxPendingBytes: 4096 });
    await log.createTopic('t');
    await expectCode(() => log.append('t', Array.from({ length: 11 }, () => ({ value: bytes('x') }))), 'INVALID_ARGUMENT', /at most 10 records \(maxBatchRecords\)/);
    const first = log.append('t', [{ value: Buffer.alloc(3000) }]);
    await expectCode(() => log.append('t', [{ value: Buffer.alloc(3000) }]), 'LOG_OVERLOADED', /maxPendingBytes 4096/);
    await first;
    expect(await log.append('t', [{ value: Buffer.alloc(3000) }])).toEqual([{ partition: 0, offset: 1 }]);
  });

  it('refuses out-of-range reads naming the valid range', async () => {
    const log = await openTestLog();
    await log.createTopic('t', { partitions: 2 });
    await log.append('t', [{ value: bytes('a'), partition: 0 }]);
    const err = await (async () => {
      try {
        log.read('t', 0, 5);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(OffsetOutOfRangeError);
    expect((err as Error).message).toMatch(/offset 5 is out of range for topic 't' partition 0: valid offsets are 0 to 1/);
    await expectCode(() => log.read('t', 0, -1), 'OFFSET_OUT_OF_RANGE');
    await expectCode(() => log.read('t', 0, 0.5), 'OFFSET_OUT_OF_RANGE');
    await expectCode(() => log.read('t', 7, 0), 'UNKNOWN_PARTITION', /partitions 0 to 1/);
    await expectCode(() => log.read('t', 0, 0, { maxRecords: 0 }), 'INVALID_ARGUMENT', /maxRecords/);
  });

  it('refuses every call after close, and close is idempotent', async () => {
    const log = await CommitLog.open({ dir: tempDir(), retentionSchedule: null });
    await log.createTopic('t');
    const pending = log.append('t', [{ value: bytes('in flight') }]);
    const closing = log.close();
    await expectCode(() => log.append('t', [{ value: bytes('late') }]), 'LOG_CLOSED');
    await closing;
    await log.close();
    expect(await pending).toEqual([{ partition: 0, offset: 0 }]);
    await expectCode(() => log.read('t', 0, 0), 'LOG_CLOSED');
  });

  it('refuses a second process-level owner of the data folder', async () => {
    const dir = tempDir();
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    // The lock is per process; a second open in this process is told who owns it only if the
    // owner is another live process, so fake one with our parent's pid.
    await log.close();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${dir}/edgelog.pid`, `${process.ppid}\n`);
    await expectCode(() => CommitLog.open({ dir, retentionSchedule: null }), 'LOG_LOCKED', new RegExp(`in use by process ${process.ppid}`));
    writeFileSync(`${dir}/edgelog.pid`, '999999999\n'); // a dead owner's lock is taken over
    const again = await CommitLog.open({ dir, retentionSchedule: null });
    await again.close();
  });
});

describe('offsetForTimestamp', () => {
  it('finds the first offset at or after a timestamp, also with unordered device clocks', async () => {
    const log = await openTestLog();
    await log.createTopic('t');
    // 1,000 records (many index blocks) with timestamps that mostly rise but jump back now and then.
    const ts: number[] = [];
    for (let i = 0; i < 1000; i++) ts.push(1_000_000 + i * 10 - (i % 7 === 3 ? 500 : 0));
    for (let i = 0; i < 1000; i += 100) await log.append('t', ts.slice(i, i + 100).map((t) => ({ value: bytes('v'), timestamp: t })));
    const brute = (t: number) => {
      const i = ts.findIndex((x) => x >= t);
      return i === -1 ? ts.length : i;
    };
    for (const t of [0, 1_000_000, 1_000_005, 1_000_640, 1_003_333, 1_009_990, 1_009_991, 2_000_000]) {
      expect(log.offsetForTimestamp('t', 0, t), `timestamp ${t}`).toBe(brute(t));
    }
    for (let k = 0; k < 200; k++) {
      const t = 999_000 + Math.floor(Math.random() * 12_000);
      expect(log.offsetForTimestamp('t', 0, t), `timestamp ${t}`).toBe(brute(t));
    }
  });

  it('answers the high watermark for an empty partition or a future time', async () => {
    const log = await openTestLog();
    await log.createTopic('t');
    expect(log.offsetForTimestamp('t', 0, 0)).toBe(0);
    await log.append('t', [{ value: bytes('a'), timestamp: 10 }]);
    expect(log.offsetForTimestamp('t', 0, 11)).toBe(1);
    await expectCode(() => log.offsetForTimestamp('t', 0, Number.NaN), 'INVALID_ARGUMENT');
  });
});

describe('restart', () => {
  it('keeps every committed record, offsets continue, nothing is rescanned wrongly', async () => {
    const dir = tempDir();
    let log = await CommitLog.open({ dir, retentionSchedule: null });
    await log.createTopic('t', { partitions: 4 });
    for (let i = 0; i < 20; i++) await log.append('t', Array.from({ length: 50 }, (_, j) => ({ key: `k${j}`, value: bytes(`${i}-${j}`) })));
    const before = log.describeTopic('t');
    await log.close();
    log = await CommitLog.open({ dir, retentionSchedule: null });
    expect(log.describeTopic('t')).toEqual(before);
    const [r] = await log.append('t', [{ key: 'k0', value: bytes('after') }]);
    expect(r!.offset).toBe(before.partitions[r!.partition]!.highWatermark);
    let total = 0;
    for (let p = 0; p < 4; p++) {
      const read = log.read('t', p, 0, { maxRecords: 10_000 });
      read.records.forEach((rec, i) => expect(rec.offset).toBe(i));
      total += read.records.length;
    }
    expect(total).toBe(1001);
    await log.close();
  });

  it('refuses bad options with the option named', async () => {
    await expectCode(() => CommitLog.open({} as never), 'INVALID_ARGUMENT', /needs \{ dir \}/);
    await expectCode(() => CommitLog.open({ dir: tempDir(), maxTopics: 0 }), 'INVALID_ARGUMENT', /maxTopics/);
    await expectCode(() => CommitLog.open({ dir: tempDir(), retentionSchedule: 'every minute' }), 'INVALID_ARGUMENT', /retentionSchedule must be a cron expression/);
    await expectCode(() => CommitLog.open({ dir: tempDir(), topicDefaults: { partitions: -2 } }), 'INVALID_ARGUMENT', /partitions/);
  });
});
