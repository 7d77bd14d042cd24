import { describe, expect, it } from 'vitest';
import { consumer } from '../../src/client/consumer.js';
import type { EdgelogClientError } from '../../src/client/errors.js';
import type { Batch } from '../../src/client/records.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/loopback.js';
import { waitFor } from '../helpers/wait.js';
import { fill, pull, sorted, testConsumer } from './helpers.js';

async function rejection(p: Promise<unknown>): Promise<EdgelogClientError> {
  try {
    await p;
  } catch (error) {
    return error as EdgelogClientError;
  }
  throw new Error('expected a rejection');
}

describe('consumer', () => {
  it('iterates every record of every partition with for await, in offset order per partition', async () => {
    const gateway = await startGateway();
    const all = await fill(gateway, 'readings', 3, 300);
    const c = testConsumer(gateway, { groupId: 'g', topics: ['readings'], offsetReset: 'earliest', maxBufferedRecords: 50 });
    const got: Batch[] = [];
    let count = 0;
    for await (const batch of c) {
      got.push(batch);
      count += batch.records.length;
      if (count >= 300) break;
    }
    const ids = got.flatMap((b) => b.records.map((r) => `${r.topic}/${r.partition}@${r.offset}`));
    expect(sorted(ids)).toEqual(sorted(all));
    for (const p of [0, 1, 2]) {
      const offsets = got.filter((b) => b.partition === p).flatMap((b) => b.records.map((r) => r.offset));
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    }
    const r = got[0]!.records[0]!;
    expect(r.value.toString()).toMatch(/^r\d+$/);
    expect(r.key).toMatch(/^device-\d+$/);
    expect(got[0]!.highWatermark).toBeGreaterThan(0);
    // Breaking out of the loop closed the consumer: its member left the group.
    await waitFor(() => gateway.groups.describe('g').members.length === 0, 'the member to leave');
  });

  it('accepts the gateway base URL and reads records appended after it joined', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('live');
    const c = testConsumer(gateway, { url: `http://127.0.0.1:${gateway.ports.http}`, groupId: 'g', topics: ['live'] });
    await c.ready();
    await fill(gateway, 'live', 1, 5);
    const { ids } = await pull(c, (ids) => ids.length >= 5);
    expect(ids).toEqual(['live/0@0', 'live/0@1', 'live/0@2', 'live/0@3', 'live/0@4']);
  });

  it('commits the position after the last record handed out; a new consumer of the group goes on from there', async () => {
    const gateway = await startGateway();
    await fill(gateway, 'orders', 1, 100);
    const first = testConsumer(gateway, { groupId: 'billing', topics: ['orders'], offsetReset: 'earliest', autoCommit: false, maxBufferedRecords: 10 });
    const { ids } = await pull(first, (ids) => ids.length >= 30);
    await first.commit();
    expect(gateway.log.committedOffsets('billing')).toMatchObject([{ topic: 'orders', partition: 0, offset: ids.length }]);
    await first.close();
    const second = testConsumer(gateway, { groupId: 'billing', topics: ['orders'], offsetReset: 'earliest', autoCommit: false });
    const rest = await pull(second, (got) => got.length >= 100 - ids.length);
    expect(rest.ids[0]).toBe(`orders/0@${ids.length}`);
    expect(rest.ids).toHaveLength(100 - ids.length);
  });

  it('rejects a commit with the gateway code and reason', async () => {
    const gateway = await startGateway();
    await fill(gateway, 'c', 1, 3);
    const c = testConsumer(gateway, { groupId: 'g', topics: ['c'], autoCommit: false });
    await c.ready();
    const error = await rejection(c.commit([{ topic: 'c', partition: 0, offset: 99 }]));
    expect(error).toMatchObject({ name: 'EdgelogClientError', code: 'OFFSET_AHEAD', message: expect.stringMatching(/above its high watermark 3/) });
    const other = await rejection(c.commit([{ topic: 'c', partition: 7, offset: 0 }]));
    expect(other).toMatchObject({ code: 'NOT_ASSIGNED', message: expect.stringMatching(/c\/7/) });
  });

  it('drops records of a partition buffered or on the way from before a seek', async () => {
    const gateway = await startGateway();
    await fill(gateway, 's', 1, 200);
    const c = testConsumer(gateway, { groupId: 'g', topics: ['s'], offsetReset: 'earliest', maxBufferedRecords: 10, autoCommit: false });
    const iterator = c[Symbol.asyncIterator]();
    const first = (await iterator.next()).value as Batch;
    expect(first.records[0]!.offset).toBe(0);
    // Let the buffer fill from offset `first` on: those records are stale once the seek is made.
    await waitFor(() => c.buffered.records > 0, 'records buffered ahead of the application');
    const seeking = c.seek(0, 150);
    const next = (await iterator.next()).value as Batch;
    expect(await seeking).toBe(150);
    expect(next.records[0]!.offset).toBe(150);
    expect(c.assignment).toEqual([{ topic: 's', partition: 0, offset: next.records.at(-1)!.offset + 1 }]);
    // By timestamp and to the ends as well.
    expect(await c.seek({ topic: 's', partition: 0 }, 'earliest')).toBe(0);
    expect((await iterator.next()).value!.records[0]!.offset).toBe(0);
    expect(await c.seek(0, { timestamp: 0 })).toBe(0);
    expect(await c.seek(0, 'latest')).toBe(200);
    expect((await rejection(c.seek(0, 500))).code).toBe('OFFSET_OUT_OF_RANGE');
    expect((await rejection(c.seek({ topic: 'other', partition: 0 }, 0))).code).toBe('NOT_ASSIGNED');
  });

  it('keeps the buffer within the credit window while the application is slow', async () => {
    const gateway = await startGateway();
    await fill(gateway, 'bulk', 2, 2000);
    const c = testConsumer(gateway, { groupId: 'g', topics: ['bulk'], offsetReset: 'earliest', maxBufferedRecords: 40, autoCommit: false });
    const iterator = c[Symbol.asyncIterator]();
    await iterator.next();
    await waitFor(() => c.buffered.records >= 20, 'the buffer to fill');
    // The application holds its batch; the gateway may not send past the window.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(c.buffered.records).toBeLessThanOrEqual(40);
    let total = 0;
    for (let i = 0; i < 200 && total < 1000; i++) {
      const b = await iterator.next();
      total += b.value!.records.length;
      expect(c.buffered.records).toBeLessThanOrEqual(40);
    }
    expect(total).toBeGreaterThanOrEqual(1000);
  });

  it('holds back paused partitions until they are resumed', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('p', { partitions: 2 });
    await gateway.log.append('p', [{ value: Buffer.from('a0'), partition: 0 }]);
    const c = testConsumer(gateway, { groupId: 'g', topics: ['p'], offsetReset: 'earliest', autoCommit: false });
    await c.ready();
    c.pause([0]);
    await gateway.log.append('p', [{ value: Buffer.from('b0'), partition: 1 }]);
    const before = await pull(c, (ids) => ids.length >= 1);
    expect(before.ids).toEqual(['p/1@0']);
    c.resume([0]);
    const after = await pull(c, (ids) => ids.length >= 1);
    expect(after.ids).toEqual(['p/0@0']);
    expect(() => c.pause([{ topic: 'nope', partition: 0 }])).toThrow(/nope\/0 is not assigned to this consumer/);
  });

  it('shares partitions between two members, and drops buffered records of a partition it loses', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('shared', { partitions: 4 });
    const append = async (perPartition: number) => {
      const results = await gateway.log.append('shared', Array.from({ length: 4 * perPartition }, (_, i) => ({ value: Buffer.from(`v${i}`), partition: i % 4 })));
      return results.map((r) => `shared/${r.partition}@${r.offset}`);
    };
    // Few records per partition: the first frames are small, so a buffers some of every partition.
    const all = await append(5);
    const revokedAt = new Map<string, number>();
    let handedAfterRevoke = 0;
    const a = testConsumer(gateway, {
      groupId: 'split',
      topics: ['shared'],
      offsetReset: 'earliest',
      autoCommit: false,
      maxBufferedRecords: 40,
      onAssignment: (x) => x.revoked.forEach((p) => revokedAt.set(`${p.topic}/${p.partition}`, Date.now())),
    });
    const iterA = a[Symbol.asyncIterator]();
    const seenA: string[] = [];
    const take = async () => {
      const b = (await iterA.next()).value as Batch;
      if (revokedAt.has(`${b.topic}/${b.partition}`)) handedAfterRevoke++;
      seenA.push(...b.records.map((r) => `${r.topic}/${r.partition}@${r.offset}`));
    };
    await take();
    // One partition's frame handed out, the other three buffered: at least one of them is revoked below.
    await waitFor(() => a.buffered.records === 15, 'a buffering records of its three other partitions');
    const b = testConsumer(gateway, { groupId: 'split', topics: ['shared'], offsetReset: 'earliest', autoCommit: false });
    await b.ready();
    await waitFor(() => a.assignment.length === 2 && b.assignment.length === 2, 'two partitions each');
    expect(revokedAt.size).toBe(2);
    const mine = new Set(a.assignment.map((p) => `${p.topic}/${p.partition}`));
    expect(b.assignment.every((p) => !mine.has(`${p.topic}/${p.partition}`))).toBe(true);
    all.push(...(await append(50)));
    const inA = (id: string) => mine.has(id.split('@')[0]!);
    const expectA = all.filter(inA).length;
    while (seenA.filter(inA).length < expectA) await take();
    expect(handedAfterRevoke).toBe(0);
    // b starts its partitions from the group's position: nothing committed, so from the earliest.
    const restB = await pull(b, (ids) => ids.length >= all.length - expectA);
    expect(sorted([...seenA.filter(inA), ...restB.ids])).toEqual(sorted(all));
  });

  it('auto-commits processed batches on its interval and on close', async () => {
    const gateway = await startGateway();
    await fill(gateway, 'auto', 1, 50);
    const c = testConsumer(gateway, { groupId: 'auto-g', topics: ['auto'], offsetReset: 'earliest', autoCommit: { intervalMs: 100 }, maxBufferedRecords: 10 });
    const iterator = c[Symbol.asyncIterator]();
    const first = (await iterator.next()).value as Batch;
    const end = first.records.at(-1)!.offset + 1;
    // The batch in hand is not processed until the next is asked for: nothing is committed for it yet.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(gateway.log.committedOffsets('auto-g').map((o) => o.offset)).not.toContain(end);
    const second = (await iterator.next()).value as Batch;
    await waitFor(() => gateway.log.committedOffsets('auto-g')[0]?.offset === end, 'the first batch to be auto-committed');
    await c.close();
    expect(gateway.log.committedOffsets('auto-g')[0]?.offset).toBe(second.records.at(-1)!.offset + 1);
  });

  it('ends the iteration on close()', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('quiet');
    const c = testConsumer(gateway, { groupId: 'g', topics: ['quiet'] });
    await c.ready();
    const loop = (async () => {
      let batches = 0;
      for await (const _ of c) batches++;
      return batches;
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await c.close();
    expect(await loop).toBe(0);
    expect((await rejection(c.commit())).code).toBe('CLIENT_CLOSED');
  });

  it('throws from the iteration when the gateway shuts down', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('t');
    const c = testConsumer(gateway, { groupId: 'g', topics: ['t'] });
    await c.ready();
    const loop = (async () => {
      for await (const _ of c) {
        // nothing arrives
      }
    })();
    await gateway.close();
    const error = await rejection(loop);
    expect(error).toMatchObject({ code: 'GATEWAY_CLOSING', message: expect.stringMatching(/closed the connection because it is shutting down/) });
  });

  it('throws UNKNOWN_MEMBER from the iteration when the coordinator removes it', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('t');
    const c = testConsumer(gateway, { groupId: 'g', topics: ['t'] });
    await c.ready();
    const loop = (async () => {
      for await (const _ of c) {
        // nothing arrives
      }
    })();
    gateway.groups.close();
    const error = await rejection(loop);
    expect(error).toMatchObject({ code: 'UNKNOWN_MEMBER', message: expect.stringMatching(/removed this consumer from group 'g': .*create a new consumer/) });
  });

  it('fails clearly when the gateway cannot be reached or refuses the join', async () => {
    const port = await freePort();
    const c = consumer({ url: `ws://127.0.0.1:${port}/consume`, groupId: 'g', topics: ['t'] });
    const error = await rejection(c.ready());
    expect(error).toMatchObject({ code: 'GATEWAY_UNREACHABLE', message: expect.stringMatching(/cannot reach the gateway at ws:\/\/127\.0\.0\.1:\d+\/consume \(ECONNREFUSED\)/) });
    await expect(c[Symbol.asyncIterator]().next()).rejects.toBe(error);
    await c.close();

    const gateway = await startGateway();
    const bad = testConsumer(gateway, { groupId: 'no/slashes', topics: ['t'] });
    expect(await rejection(bad.ready())).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/group id must be 1 to 249 of/) });
  });
});
