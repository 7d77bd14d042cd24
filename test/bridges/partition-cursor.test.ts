import { describe, expect, it } from 'vitest';
import { PartitionCursor } from '../../bridges/partition-cursor.js';
import { bytes, openTestLog } from '../helpers/log.js';

const RULE = { match: 't', priority: 0, syncWindow: null, ack: 'local' as const };

async function logWith(records: number) {
  let now = 0;
  const log = await openTestLog({ now: () => now });
  await log.createTopic('t', { retentionMs: 10 });
  await log.append('t', Array.from({ length: records }, (_, i) => ({ value: bytes(`v${i}`) })));
  return { log, age: () => (now += 1000) };
}

describe('a partition cursor', () => {
  it('starts at the checkpoint, or at the oldest record when there is none', async () => {
    const { log } = await logWith(10);
    expect(new PartitionCursor('t', 0, log.topicShape('t')!.id, RULE, null, log).acked).toBe(0);
    const c = new PartitionCursor('t', 0, log.topicShape('t')!.id, RULE, 7, log);
    expect(c.read(log, 100).records.map((r) => r.offset)).toEqual([7, 8, 9]);
  });

  it('moves its acknowledged position only over a contiguous prefix of acked messages', async () => {
    const { log } = await logWith(10);
    const c = new PartitionCursor('t', 0, log.topicShape('t')!.id, RULE, null, log);
    c.read(log, 10);
    const a = c.sent(0, 3);
    const b = c.sent(3, 3);
    const d = c.sent(6, 4);
    expect(c.ack(b)).toBe(3);
    expect(c.acked).toBe(0); // 0..2 not confirmed yet: a checkpoint must not skip them
    c.ack(d);
    expect(c.acked).toBe(0);
    c.ack(a);
    expect(c.acked).toBe(10);
    expect(c.hasBacklog()).toBe(false);
  });

  it('on rewind sends again from the acknowledged position and says how many records go twice', async () => {
    const { log } = await logWith(10);
    const c = new PartitionCursor('t', 0, log.topicShape('t')!.id, RULE, null, log);
    c.ack(c.sent(0, 4));
    c.sent(4, 4);
    expect(c.rewind()).toBe(4);
    expect(c.read(log, 2).records.map((r) => r.offset)).toEqual([4, 5]);
  });

  it('skips over records deleted before they were sent, and counts them', async () => {
    const { log, age } = await logWith(10);
    const c = new PartitionCursor('t', 0, log.topicShape('t')!.id, RULE, 2, log);
    age();
    await log.enforceRetention(); // no hold here: all 10 go
    await log.append('t', [{ value: bytes('late') }]);
    const read = c.read(log, 100);
    expect(read).toMatchObject({ lost: 8, gone: false });
    expect(read.records.map((r) => r.offset)).toEqual([10]);
    expect(c.acked).toBe(10);
  });

  it('says when its topic is gone', async () => {
    const { log } = await logWith(3);
    const c = new PartitionCursor('t', 0, log.topicShape('t')!.id, RULE, null, log);
    await log.deleteTopic('t');
    expect(c.read(log, 10).gone).toBe(true);
  });

  it('lets waiters for an offset go once it is acknowledged, or with false on release', async () => {
    const { log } = await logWith(5);
    const c = new PartitionCursor('t', 0, log.topicShape('t')!.id, RULE, null, log);
    const slot = c.sent(0, 3);
    const two = c.waitAcked(2, 10_000);
    const four = c.waitAcked(4, 10_000);
    c.ack(slot);
    expect(await two).toBe(true);
    c.releaseWaiters();
    expect(await four).toBe(false);
    expect(await c.waitAcked(4, 5)).toBe(false); // timed out
  });
});
