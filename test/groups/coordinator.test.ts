import { pino, type Logger } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { CommitLog } from '../../src/index.js';
import { GroupCoordinator, type Assignment, type GroupCoordinatorOptions, type JoinRequest } from '../../src/groups/coordinator.js';
import { MAX_SUBSCRIBED_TOPICS } from '../../src/groups/join-request.js';
import { bytes, openTestLog } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { refusal } from '../helpers/refusal.js';

/** A pino logger whose lines land in `lines`, parsed. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

/** A coordinator on `log`, closed when the test finishes. */
function coordinator(log: CommitLog, opts: Partial<GroupCoordinatorOptions> = {}): GroupCoordinator {
  const c = new GroupCoordinator({ log, logger: pino({ level: 'silent' }), ...opts });
  onTestFinished(() => c.close());
  return c;
}

interface Watched {
  memberId: string;
  assignments: Assignment[];
  removed: string[];
  latest(): Assignment;
  keys(): string[];
}

type Join = Omit<JoinRequest, 'onAssignment' | 'onRemoved'>;

/** Joins and records every assignment and removal the member is told about. */
function join(c: GroupCoordinator, req: Join): Watched {
  const assignments: Assignment[] = [];
  const removed: string[] = [];
  const { memberId } = c.join({ ...req, onAssignment: (a) => assignments.push(a), onRemoved: (r) => removed.push(r) });
  return {
    memberId,
    assignments,
    removed,
    latest: () => {
      const a = assignments.at(-1);
      if (!a) throw new Error(`${memberId} has no assignment yet`);
      return a;
    },
    keys: () => (assignments.at(-1)?.partitions ?? []).map((p) => `${p.topic}/${p.partition}`),
  };
}

/** Waits until every member was told about `generation`. */
async function settled(generation: number, ...members: Watched[]): Promise<void> {
  await waitFor(() => members.every((m) => m.assignments.at(-1)?.generation === generation), `generation ${generation} at ${members.map((m) => m.memberId).join(', ')}`, 5000);
}


async function logWithTopic(topic: string, partitions: number, recordsPerPartition: number[] = []): Promise<CommitLog> {
  const log = await openTestLog();
  await log.createTopic(topic, { partitions });
  for (const [partition, n] of recordsPerPartition.entries()) {
    if (n > 0) await log.append(topic, Array.from({ length: n }, (_, i) => ({ value: bytes(`r${i}`), partition })));
  }
  return log;
}

describe('GroupCoordinator: assignment', () => {
  it('gives each of two groups every partition, and within a group each partition to exactly one member', async () => {
    const log = await logWithTopic('a', 3);
    await log.createTopic('b', { partitions: 2 });
    const c = coordinator(log);
    const g1 = [1, 2, 3].map((i) => join(c, { groupId: 'g1', clientId: `app${i}`, topics: ['a', 'b'] }));
    const g2 = join(c, { groupId: 'g2', clientId: 'other', topics: ['b', 'a'], strategy: 'round-robin' });
    await settled(3, ...g1);
    await settled(1, g2);
    const all = ['a/0', 'a/1', 'a/2', 'b/0', 'b/1'];
    expect(g2.keys()).toEqual(all);
    const split = g1.flatMap((m) => m.keys());
    expect(split.sort()).toEqual(all);
    expect(g1.map((m) => m.keys().length).sort()).toEqual([1, 2, 2]);
    expect(g1[0]!.memberId).toMatch(/^app1-[0-9a-f]{16}$/);
  });

  it('tells a member its assignment only after join() returned, so the callback can use the member id', async () => {
    const log = await logWithTopic('t', 1);
    const c = coordinator(log);
    const seen: string[] = [];
    const { memberId } = c.join({ groupId: 'g', clientId: 'app', topics: ['t'], onAssignment: () => seen.push(memberId) });
    expect(seen).toEqual([]);
    await waitFor(() => seen.length === 1, 'the first assignment');
    expect(seen).toEqual([memberId]);
  });

  it('rebalances on join and leave, keeping partitions where they were (sticky), with a new generation for every member', async () => {
    const log = await logWithTopic('t', 4);
    const c = coordinator(log);
    const a = join(c, { groupId: 'g', clientId: 'a', topics: ['t'] });
    await settled(1, a);
    expect(a.keys()).toEqual(['t/0', 't/1', 't/2', 't/3']);

    const b = join(c, { groupId: 'g', clientId: 'b', topics: ['t'] });
    await settled(2, a, b);
    expect(a.keys()).toHaveLength(2);
    expect(b.keys()).toHaveLength(2);
    expect([...a.keys(), ...b.keys()].sort()).toEqual(['t/0', 't/1', 't/2', 't/3']);
    expect(c.currentAssignment('g', b.memberId)).toEqual(b.latest());

    c.leave('g', b.memberId);
    c.leave('g', b.memberId);
    c.leave('nobody', 'nothing');
    await settled(3, a);
    expect(a.keys()).toEqual(['t/0', 't/1', 't/2', 't/3']);
    expect(a.assignments.map((x) => x.generation)).toEqual([1, 2, 3]);
    expect(b.removed).toEqual([]);
    expect(c.describe('g')).toMatchObject({ state: 'stable', generation: 3, strategy: 'sticky', members: [{ memberId: a.memberId }] });

    c.leave('g', a.memberId);
    expect(c.describe('g')).toMatchObject({ state: 'empty', generation: 0, strategy: null, members: [] });
    expect(c.list()).toEqual([]);
  });

  it('removes a member that misses its session timeout, logs it once, and hands its partitions to the others', async () => {
    const log = await logWithTopic('t', 4);
    const { logger, lines } = capturingLogger();
    const c = coordinator(log, { logger, checkIntervalMs: 50 });
    const steady = join(c, { groupId: 'g', clientId: 'steady', topics: ['t'], sessionTimeoutMs: 300_000 });
    const beating = join(c, { groupId: 'g', clientId: 'beating', topics: ['t'], sessionTimeoutMs: 1000 });
    const silent = join(c, { groupId: 'g', clientId: 'silent', topics: ['t'], sessionTimeoutMs: 1000 });
    const heartbeats = setInterval(() => c.heartbeat('g', beating.memberId), 200);
    onTestFinished(() => clearInterval(heartbeats));
    await settled(3, steady, beating, silent);

    await waitFor(() => silent.removed.length > 0, 'the silent member to be removed', 5000);
    expect(silent.removed).toEqual([expect.stringMatching(/session timeout \(sessionTimeoutMs 1000\)/)]);
    await settled(4, steady, beating);
    expect([...steady.keys(), ...beating.keys()].sort()).toEqual(['t/0', 't/1', 't/2', 't/3']);
    expect(c.describe('g').members.map((m) => m.memberId).sort()).toEqual([steady.memberId, beating.memberId].sort());
    expect((await refusal(() => c.heartbeat('g', silent.memberId))).code).toBe('UNKNOWN_MEMBER');
    const removals = lines.filter((l) => l.msg === 'member removed: session timeout');
    expect(removals).toEqual([expect.objectContaining({ level: 30, component: 'groups', group: 'g', generation: 4, memberIds: [silent.memberId] })]);
    expect(silent.assignments.at(-1)!.generation).toBe(3);
  });

  it('rebalances when a subscribed topic is created or deleted after the members joined', async () => {
    const log = await openTestLog();
    const c = coordinator(log, { checkIntervalMs: 50 });
    const a = join(c, { groupId: 'g', clientId: 'a', topics: ['later'] });
    const b = join(c, { groupId: 'g', clientId: 'b', topics: ['later'] });
    await settled(2, a, b);
    expect([...a.keys(), ...b.keys()]).toEqual([]);

    await log.createTopic('later', { partitions: 4 });
    await settled(3, a, b);
    expect(a.keys()).toHaveLength(2);
    expect([...a.keys(), ...b.keys()].sort()).toEqual(['later/0', 'later/1', 'later/2', 'later/3']);

    await log.deleteTopic('later');
    await settled(4, a, b);
    expect([...a.keys(), ...b.keys()]).toEqual([]);
  });

  it('notices a topic deleted and created again with the same partitions between two checks, and starts it afresh', async () => {
    const log = await logWithTopic('t', 2, [3, 3]);
    const c = coordinator(log, { checkIntervalMs: 300 });
    const a = join(c, { groupId: 'g', clientId: 'a', topics: ['t'], offsetReset: 'latest' });
    await settled(1, a);
    const before = a.latest().partitions;
    expect(before.map((p) => p.offset)).toEqual([3, 3]);
    // Well within one check interval: the partition count alone would not change.
    await log.deleteTopic('t');
    await log.createTopic('t', { partitions: 2 });
    await waitFor(() => a.latest().generation > 1, 'a rebalance after the topic was created again', 5000);
    const after = a.latest().partitions;
    expect(after.map((p) => p.offset)).toEqual([0, 0]);
    expect(after[0]!.topicId).not.toBe(before[0]!.topicId);
  });

  it('refuses a strategy different from the group\'s, naming both', async () => {
    const log = await logWithTopic('t', 1);
    const c = coordinator(log);
    join(c, { groupId: 'g', clientId: 'a', topics: ['t'], strategy: 'round-robin' });
    const error = await refusal(() => join(c, { groupId: 'g', clientId: 'b', topics: ['t'] }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(/group 'g' uses strategy 'round-robin'.*asked for 'sticky'/);
  });

  it('keeps notifying the other members when a callback throws, and logs the failure', async () => {
    const log = await logWithTopic('t', 2);
    const { logger, lines } = capturingLogger();
    const c = coordinator(log, { logger });
    c.join({
      groupId: 'g',
      clientId: 'buggy',
      topics: ['t'],
      onAssignment: () => {
        throw new Error('a buggy consumer');
      },
    });
    const ok = join(c, { groupId: 'g', clientId: 'ok', topics: ['t'] });
    await settled(2, ok);
    expect(ok.keys()).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'consumer-group callback threw')).toEqual([expect.objectContaining({ level: 50, callback: 'onAssignment' })]);
  });
});

describe('GroupCoordinator: commits and offsets', () => {
  it('refuses commits from unknown members, stale generations and partitions not assigned, saying what to do', async () => {
    const log = await logWithTopic('t', 2, [3, 3]);
    const c = coordinator(log);
    const a = join(c, { groupId: 'g', clientId: 'a', topics: ['t'] });
    await settled(1, a);
    await c.commit('g', a.memberId, 1, [{ topic: 't', partition: 0, offset: 1 }]);

    const b = join(c, { groupId: 'g', clientId: 'b', topics: ['t'] });
    await settled(2, a, b);
    const stale = await refusal(() => c.commit('g', a.memberId, 1, [{ topic: 't', partition: 0, offset: 2 }]));
    expect(stale.code).toBe('STALE_GENERATION');
    expect(stale.retryable).toBe(true);
    expect(stale.message).toMatch(/commit with generation 1 refused: group 'g' moved to generation 2 .*take the new assignment/);

    const [theirs] = b.latest().partitions;
    const notMine = await refusal(() => c.commit('g', a.memberId, 2, [{ topic: 't', partition: theirs!.partition, offset: 2 }]));
    expect(notMine.code).toBe('NOT_ASSIGNED');
    expect(notMine.message).toMatch(new RegExp(`offsets\\[0\\]: t/${theirs!.partition} is not assigned to member ${a.memberId} in generation 2 of group 'g' \\(its partitions: t/${1 - theirs!.partition}\\)`));

    const [mine] = a.latest().partitions;
    const ahead = await refusal(() => c.commit('g', a.memberId, 2, [{ topic: 't', partition: mine!.partition, offset: 4 }]));
    expect(ahead.code).toBe('OFFSET_AHEAD');
    await c.commit('g', a.memberId, 2, [{ topic: 't', partition: mine!.partition, offset: 3 }]);
    expect(log.committedOffsets('g')).toMatchObject([{ topic: 't', partition: mine!.partition, offset: 3 }]);

    c.leave('g', b.memberId);
    const zombie = await refusal(() => c.commit('g', b.memberId, 2, [{ topic: 't', partition: theirs!.partition, offset: 1 }]));
    expect(zombie.code).toBe('UNKNOWN_MEMBER');
    expect(zombie.message).toMatch(/member "b-[0-9a-f]+" is not in group "g": it left, or missed heartbeats .*join again/);
    expect((await refusal(() => c.currentAssignment('other', a.memberId))).code).toBe('UNKNOWN_MEMBER');
  });

  it('starts where the group committed, else at earliest or latest as the member asks, also after retention deleted the committed offset', async () => {
    let clock = 1_000_000;
    const log = await openTestLog({ now: () => clock });
    await log.createTopic('t', { partitions: 3, retentionMs: 60_000 });
    await log.append('t', [0, 0, 0, 1, 1].map((partition, i) => ({ value: bytes(`r${i}`), partition })));
    await log.commitOffsets('committed', [{ topic: 't', partition: 0, offset: 1 }]);
    await log.commitOffsets('retained-e', [{ topic: 't', partition: 0, offset: 1 }]);
    await log.commitOffsets('retained-l', [{ topic: 't', partition: 0, offset: 1 }]);
    const c = coordinator(log);
    const offsets = (m: Watched): number[] => m.latest().partitions.map((p) => p.offset);

    const earliest = join(c, { groupId: 'earliest', clientId: 'x', topics: ['t'], offsetReset: 'earliest' });
    const latest = join(c, { groupId: 'latest', clientId: 'x', topics: ['t'] });
    const committed = join(c, { groupId: 'committed', clientId: 'x', topics: ['t'] });
    await settled(1, earliest, latest, committed);
    expect(offsets(earliest)).toEqual([0, 0, 0]);
    expect(offsets(latest)).toEqual([3, 2, 0]);
    expect(offsets(committed)).toEqual([1, 2, 0]);

    clock += 120_000;
    await log.append('t', [{ value: bytes('new'), partition: 0 }]);
    await log.enforceRetention();
    expect(log.describeTopic('t').partitions.map((p) => [p.startOffset, p.highWatermark])).toEqual([[3, 4], [2, 2], [0, 0]]);
    const retainedE = join(c, { groupId: 'retained-e', clientId: 'x', topics: ['t'], offsetReset: 'earliest' });
    const retainedL = join(c, { groupId: 'retained-l', clientId: 'x', topics: ['t'], offsetReset: 'latest' });
    await settled(1, retainedE, retainedL);
    expect(offsets(retainedE)).toEqual([3, 2, 0]);
    expect(offsets(retainedL)).toEqual([4, 2, 0]);
  });

  it('keeps committed offsets for a new coordinator on a reopened log', async () => {
    const dir = tempDir();
    const log = await openTestLog({ dir });
    await log.createTopic('t');
    await log.append('t', Array.from({ length: 5 }, (_, i) => ({ value: bytes(`r${i}`) })));
    const first = coordinator(log);
    const a = join(first, { groupId: 'g', clientId: 'a', topics: ['t'], offsetReset: 'earliest' });
    await settled(1, a);
    expect(a.latest().partitions).toMatchObject([{ topic: 't', partition: 0, offset: 0 }]);
    await first.commit('g', a.memberId, 1, [{ topic: 't', partition: 0, offset: 3 }]);
    first.close();
    await log.close();

    const reopened = await openTestLog({ dir });
    const second = coordinator(reopened);
    expect(second.list()).toEqual([{ groupId: 'g', state: 'empty', members: 0 }]);
    const b = join(second, { groupId: 'g', clientId: 'b', topics: ['t'], offsetReset: 'earliest' });
    await settled(1, b);
    expect(b.latest().partitions).toMatchObject([{ topic: 't', partition: 0, offset: 3 }]);
    expect(second.describe('g').offsets).toEqual([{ topic: 't', partition: 0, committed: 3, highWatermark: 5, lag: 2 }]);
  });

  it('describes members, assignment, committed offsets, high watermarks and lag, also of a group with only committed offsets', async () => {
    let clock = 50_000;
    const log = await logWithTopic('t', 2, [5, 3]);
    const c = coordinator(log, { now: () => clock });
    const a = join(c, { groupId: 'live', clientId: 'a', topics: ['t'] });
    await settled(1, a);
    await c.commit('live', a.memberId, 1, [{ topic: 't', partition: 0, offset: 2 }]);
    clock += 1234;
    expect(c.describe('live')).toEqual({
      groupId: 'live',
      state: 'stable',
      generation: 1,
      strategy: 'sticky',
      members: [{ memberId: a.memberId, clientId: 'a', topics: ['t'], assignment: [{ topic: 't', partition: 0 }, { topic: 't', partition: 1 }], lastSeenAgoMs: 1234 }],
      offsets: [
        { topic: 't', partition: 0, committed: 2, highWatermark: 5, lag: 3 },
        { topic: 't', partition: 1, committed: null, highWatermark: 3, lag: null },
      ],
    });

    await log.commitOffsets('offline', [{ topic: 't', partition: 1, offset: 1 }]);
    expect(c.describe('offline')).toEqual({
      groupId: 'offline',
      state: 'empty',
      generation: 0,
      strategy: null,
      members: [],
      offsets: [{ topic: 't', partition: 1, committed: 1, highWatermark: 3, lag: 2 }],
    });
    expect(c.describe('nobody')).toMatchObject({ state: 'empty', members: [], offsets: [] });
    expect(c.list()).toEqual([
      { groupId: 'live', state: 'stable', members: 1 },
      { groupId: 'offline', state: 'empty', members: 0 },
    ]);
    expect((await refusal(() => c.describe('bad/id'))).code).toBe('INVALID_ARGUMENT');
  });

  it('resets offsets only for a group without members: to earliest, latest, an offset or a timestamp', async () => {
    let clock = 10_000;
    const log = await openTestLog({ now: () => clock, retentionSchedule: null });
    await log.createTopic('t', { partitions: 2, retentionMs: 5_000 });
    await log.append('t', [1000, 2000, 3000].map((timestamp, i) => ({ value: bytes(`r${i}`), partition: 0, timestamp })));
    await log.append('t', [{ value: bytes('x'), partition: 1, timestamp: 1500 }]);
    clock += 10_000;
    await log.append('t', [{ value: bytes('y'), partition: 1, timestamp: 2500 }]);
    await log.enforceRetention();
    expect(log.describeTopic('t').partitions.map((p) => [p.startOffset, p.highWatermark])).toEqual([[3, 3], [1, 2]]);
    await log.append('t', [4000, 5000].map((timestamp, i) => ({ value: bytes(`s${i}`), partition: 0, timestamp })));
    const c = coordinator(log);
    const committed = (offsets: Array<{ offset: number }>): number[] => offsets.map((o) => o.offset);

    const a = join(c, { groupId: 'g', clientId: 'busy', topics: ['t'] });
    const busy = await refusal(() => c.resetOffsets('g', 't', 'earliest'));
    expect(busy.code).toBe('INVALID_ARGUMENT');
    expect(busy.message).toContain(`group 'g' has 1 active member(s) (${a.memberId}): stop them`);
    c.leave('g', a.memberId);

    expect(committed(await c.resetOffsets('g', 't', 'earliest'))).toEqual([3, 1]);
    expect(committed(await c.resetOffsets('g', 't', 'latest'))).toEqual([5, 2]);
    expect(committed(await c.resetOffsets('g', 't', { offset: 4 }))).toEqual([4, 2]);
    expect(committed(await c.resetOffsets('g', 't', { offset: 0 }))).toEqual([3, 1]);
    expect(committed(await c.resetOffsets('g', 't', { timestamp: 4500 }))).toEqual([4, 2]);
    expect(committed(await c.resetOffsets('g', 't', { timestamp: 1 }))).toEqual([3, 1]);
    // One partition only (--topic t:1 in Kafka): the other keeps its offset.
    expect(committed(await c.resetOffsets('g', 't', 'latest', 1))).toEqual([2]);
    expect(committed(log.committedOffsets('g'))).toEqual([3, 2]);
    const noPartition = await refusal(() => c.resetOffsets('g', 't', 'earliest', 2));
    expect([noPartition.code, noPartition.message]).toEqual(['UNKNOWN_PARTITION', "topic 't' has no partition 2: its partitions are 0 to 1"]);
    await c.resetOffsets('g', 't', 'earliest', 1);
    expect((await refusal(() => c.resetOffsets('g', 't', { offset: -1 }))).message).toMatch(/reset target must be 'earliest', 'latest', \{ offset: N \}/);
    expect((await refusal(() => c.resetOffsets('g', 't', 'now' as never))).code).toBe('INVALID_ARGUMENT');
    expect((await refusal(() => c.resetOffsets('g', 'nope', 'earliest'))).code).toBe('UNKNOWN_TOPIC');

    await c.resetOffsets('g', 't', { timestamp: 4500 });
    const b = join(c, { groupId: 'g', clientId: 'after', topics: ['t'], offsetReset: 'earliest' });
    await settled(1, b);
    expect(b.latest().partitions.map((p) => p.offset)).toEqual([4, 2]);
  });
});

describe('GroupCoordinator: refusals, limits and close', () => {
  const base: Join = { groupId: 'g', clientId: 'app', topics: ['t'] };
  it.each([
    ['a bad group id', { groupId: 'a/b' }, /group id must be 1 to 249 of a-z A-Z 0-9 \. _ -, got "a\/b"/],
    ['a bad client id', { clientId: '' }, /client id must be 1 to 249 of a-z A-Z 0-9 \. _ -, got ""/],
    ['no topics', { topics: [] }, /topics must be an array of 1 to 1024 topic names, got an array of 0/],
    ['too many topics', { topics: Array.from({ length: MAX_SUBSCRIBED_TOPICS + 1 }, (_, i) => `t${i}`) }, /topics must be an array of 1 to 1024 topic names, got an array of 1025/],
    ['a bad topic name', { topics: ['ok', 'no/slash'] }, /invalid topic name "no\/slash"/],
    ['a session timeout too short', { sessionTimeoutMs: 999 }, /sessionTimeoutMs must be an integer from 1000 to 300000, got 999/],
    ['a session timeout too long', { sessionTimeoutMs: 300_001 }, /sessionTimeoutMs must be an integer from 1000 to 300000, got 300001/],
    ['an unknown strategy', { strategy: 'range' }, /strategy must be 'round-robin' or 'sticky', got "range"/],
    ['an unknown offset reset', { offsetReset: 'none' }, /offsetReset must be 'earliest' or 'latest', got "none"/],
  ])('refuses a join with %s, naming the field', async (_, change, message) => {
    const log = await logWithTopic('t', 1);
    const c = coordinator(log);
    const error = await refusal(() => join(c, { ...base, ...(change as Partial<Join>) }));
    expect(['INVALID_ARGUMENT', 'INVALID_TOPIC_NAME']).toContain(error.code);
    expect(error.message).toMatch(message);
    expect(c.list()).toEqual([]);
  });

  it('refuses groups and members past its limits, naming the option', async () => {
    const log = await logWithTopic('t', 1);
    const c = coordinator(log, { maxGroups: 2, maxMembersPerGroup: 2 });
    const g1 = join(c, { ...base, groupId: 'g1' });
    join(c, { ...base, groupId: 'g1' });
    join(c, { ...base, groupId: 'g2' });
    const members = await refusal(() => join(c, { ...base, groupId: 'g1' }));
    expect(members.message).toMatch(/group 'g1' already has 2 members, the most allowed \(maxMembersPerGroup 2\)/);
    const groups = await refusal(() => join(c, { ...base, groupId: 'g3' }));
    expect(groups.message).toMatch(/already runs 2 groups with members, the most allowed \(maxGroups 2\)/);

    c.leave('g1', g1.memberId);
    join(c, { ...base, groupId: 'g1' });
    expect(c.list()).toEqual([
      { groupId: 'g1', state: 'stable', members: 2 },
      { groupId: 'g2', state: 'stable', members: 1 },
    ]);
    expect(() => coordinator(log, { maxGroups: 0 })).toThrow(/maxGroups must be an integer from 1 to 1000000, got 0/);
  });

  it('close() removes every member once, calling onRemoved, and refuses joins after', async () => {
    const log = await logWithTopic('t', 2);
    const c = coordinator(log);
    const a = join(c, { ...base, groupId: 'g1' });
    const b = join(c, { ...base, groupId: 'g2' });
    await settled(1, a, b);
    c.close();
    c.close();
    expect(a.removed).toEqual(['the consumer-group coordinator closed: the gateway is shutting down']);
    expect(b.removed).toHaveLength(1);
    expect((await refusal(() => c.heartbeat('g1', a.memberId))).code).toBe('UNKNOWN_MEMBER');
    expect((await refusal(() => join(c, base))).code).toBe('GATEWAY_CLOSING');
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    expect(a.assignments).toHaveLength(1);
    expect(a.removed).toHaveLength(1);
  });
});
