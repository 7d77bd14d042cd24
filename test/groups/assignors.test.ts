import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../firmware-sim/prng.js';
import {
  assignRoundRobin,
  assignSticky,
  compareTopicPartitions,
  topicPartitionKey,
  type GroupAssignment,
  type MemberSubscription,
  type PartitionCounts,
  type TopicPartition,
} from '../../src/groups/assignors.js';

const tp = (topic: string, partition: number): TopicPartition => ({ topic, partition });
const counts = (o: Record<string, number>): PartitionCounts => new Map(Object.entries(o));
const members = (o: Record<string, string[]>): MemberSubscription[] => Object.entries(o).map(([memberId, topics]) => ({ memberId, topics }));
const asObject = (a: GroupAssignment): Record<string, string[]> => Object.fromEntries([...a].map(([m, tps]) => [m, tps.map(topicPartitionKey)]));

/** firmware-sim's seeded generator, so a failing case can be rerun from its seed. */
const random = mulberry32;

interface Case {
  members: MemberSubscription[];
  partitionCounts: Map<string, number>;
  total: number;
}

/** Up to 20 members, 10 topics (some not created yet) and 32 partitions per topic. */
function randomCase(seed: number, identical: boolean): Case {
  const rnd = random(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const topics = Array.from({ length: int(1, 10) }, (_, i) => `t${i}`);
  const partitionCounts = new Map<string, number>();
  for (const t of topics) if (rnd() < 0.9) partitionCounts.set(t, int(1, 32));
  const pick = (): string[] => {
    const some = topics.filter(() => rnd() < 0.5);
    return some.length > 0 ? some : [topics[int(0, topics.length - 1)]!];
  };
  const shared = pick();
  const ms = Array.from({ length: int(1, 20) }, (_, i) => ({ memberId: `m${String(i).padStart(2, '0')}-${int(0, 999)}`, topics: identical ? shared : pick() }));
  const subscribed = new Set(ms.flatMap((m) => m.topics));
  const total = [...partitionCounts].filter(([t]) => subscribed.has(t)).reduce((sum, [, n]) => sum + n, 0);
  return { members: ms, partitionCounts, total };
}

/**
 * Every partition of every subscribed topic exactly once, to a subscribed member; every member
 * present; lists sorted. Collects the problems and expects none (one expect per case keeps 300
 * cases fast).
 */
function expectValid(c: Case, a: GroupAssignment, label: string): void {
  const problems: string[] = [];
  if ([...a.keys()].sort().join() !== c.members.map((m) => m.memberId).sort().join()) problems.push('members differ');
  const seen = new Set<string>();
  for (const m of c.members) {
    const list = a.get(m.memberId) ?? [];
    if (list.map(topicPartitionKey).join() !== [...list].sort(compareTopicPartitions).map(topicPartitionKey).join()) problems.push(`${m.memberId}: not sorted`);
    for (const p of list) {
      const key = topicPartitionKey(p);
      if (!m.topics.includes(p.topic)) problems.push(`${key} went to ${m.memberId}, not subscribed`);
      if (!(p.partition < (c.partitionCounts.get(p.topic) ?? 0))) problems.push(`${key} does not exist`);
      if (seen.has(key)) problems.push(`${key} assigned twice`);
      seen.add(key);
    }
  }
  if (seen.size !== c.total) problems.push(`${seen.size} of ${c.total} partitions assigned`);
  expect(problems, label).toEqual([]);
}

/** Pairs where a member could take a partition from one holding at least two more. */
function unevenPairs(c: Case, a: GroupAssignment): string[] {
  const out: string[] = [];
  for (const from of c.members) {
    const topics = new Set(a.get(from.memberId)!.map((p) => p.topic));
    for (const to of c.members) {
      if (a.get(from.memberId)!.length - a.get(to.memberId)!.length >= 2 && to.topics.some((t) => topics.has(t))) out.push(`${from.memberId}→${to.memberId}`);
    }
  }
  return out;
}

function spread(a: GroupAssignment): number {
  const sizes = [...a.values()].map((l) => l.length);
  return Math.max(...sizes) - Math.min(...sizes);
}

/** Partitions whose owner changed between two assignments (a partition with no owner before does not count). */
function moved(before: GroupAssignment, after: GroupAssignment): number {
  const owner = new Map<string, string>();
  for (const [m, list] of before) for (const p of list) owner.set(topicPartitionKey(p), m);
  let n = 0;
  for (const [m, list] of after) for (const p of list) if (owner.has(topicPartitionKey(p)) && owner.get(topicPartitionKey(p)) !== m) n++;
  return n;
}

describe('assignRoundRobin', () => {
  it("deals partitions out like Kafka's RoundRobinAssignor", () => {
    const a = assignRoundRobin(members({ c1: ['t1', 't0'], c0: ['t0', 't1'] }), counts({ t0: 3, t1: 2 }));
    expect(asObject(a)).toEqual({ c0: ['t0/0', 't0/2', 't1/1'], c1: ['t0/1', 't1/0'] });
  });

  it('skips members not subscribed to a topic, and ignores topics that do not exist', () => {
    const a = assignRoundRobin(members({ a: ['t0'], b: ['t0', 't1'], c: ['t1', 'missing'] }), counts({ t0: 2, t1: 3, other: 4 }));
    expect(asObject(a)).toEqual({ a: ['t0/0'], b: ['t0/1', 't1/1'], c: ['t1/0', 't1/2'] });
  });

  it('gives every member an entry, with nothing when there is nothing to read', () => {
    expect(asObject(assignRoundRobin(members({ a: ['t'], b: ['t'], c: ['t'] }), counts({ t: 2 })))).toEqual({ a: ['t/0'], b: ['t/1'], c: [] });
    expect(asObject(assignRoundRobin(members({ a: ['nope'] }), counts({})))).toEqual({ a: [] });
    expect(assignRoundRobin([], counts({ t: 2 })).size).toBe(0);
  });

  it('holds its invariants over 300 seeded random groups', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const identical = seed % 2 === 0;
      const c = randomCase(seed, identical);
      const a = assignRoundRobin(c.members, c.partitionCounts);
      expectValid(c, a, `seed ${seed}`);
      if (identical) expect(spread(a), `seed ${seed}`).toBeLessThanOrEqual(1);
    }
  });
});

describe('assignSticky', () => {
  const t4 = counts({ t: 4 });

  it('starts as balanced as round-robin', () => {
    expect(asObject(assignSticky(members({ a: ['t'], b: ['t'] }), t4, new Map()))).toEqual({ a: ['t/0', 't/2'], b: ['t/1', 't/3'] });
  });

  it('keeps partitions where they were when nothing changed', () => {
    const previous = new Map([['a', [tp('t', 3), tp('t', 0)]], ['b', [tp('t', 1), tp('t', 2)]]]);
    expect(asObject(assignSticky(members({ a: ['t'], b: ['t'] }), t4, previous))).toEqual({ a: ['t/0', 't/3'], b: ['t/1', 't/2'] });
  });

  it('gives a joiner only the surplus of the others', () => {
    const previous = new Map([['a', [tp('t', 0), tp('t', 1), tp('t', 2)]], ['b', [tp('t', 3), tp('t', 4), tp('t', 5)]]]);
    const a = assignSticky(members({ a: ['t'], b: ['t'], c: ['t'] }), counts({ t: 6 }), previous);
    expect(asObject(a)).toEqual({ a: ['t/0', 't/1'], b: ['t/3', 't/4'], c: ['t/2', 't/5'] });
  });

  it("moves only a leaver's partitions", () => {
    const previous = new Map([['a', [tp('t', 0), tp('t', 3)]], ['b', [tp('t', 1), tp('t', 4)]], ['c', [tp('t', 2), tp('t', 5)]]]);
    const a = assignSticky(members({ a: ['t'], c: ['t'] }), counts({ t: 6 }), previous);
    expect(asObject(a)).toEqual({ a: ['t/0', 't/1', 't/3'], c: ['t/2', 't/4', 't/5'] });
  });

  it('drops partitions that no longer exist or are no longer subscribed, and resolves double claims', () => {
    const previous = new Map([['a', [tp('gone', 0), tp('t', 0), tp('u', 0)]], ['b', [tp('t', 0), tp('t', 9)]]]);
    const a = assignSticky(members({ a: ['t'], b: ['t', 'u'] }), counts({ t: 2, u: 1 }), previous);
    expect(asObject(a)).toEqual({ a: ['t/0', 't/1'], b: ['u/0'] });
  });

  it('gives the most constrained partitions out first', () => {
    // Only b reads u: u's partitions must go to b, so a takes more of t.
    const a = assignSticky(members({ a: ['t'], b: ['t', 'u'] }), counts({ t: 4, u: 2 }), new Map());
    expect(asObject(a)).toEqual({ a: ['t/0', 't/1', 't/2'], b: ['t/3', 'u/0', 'u/1'] });
  });

  it('holds its invariants over 300 seeded random groups, and moves nothing when nothing changed', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const identical = seed % 2 === 0;
      const c = randomCase(seed, identical);
      const a = assignSticky(c.members, c.partitionCounts, new Map());
      expectValid(c, a, `seed ${seed}`);
      if (identical) expect(spread(a), `seed ${seed}`).toBeLessThanOrEqual(1);
      // No member could take a partition from one holding two more: as even as single moves make it.
      expect(unevenPairs(c, a), `seed ${seed}`).toEqual([]);
      expect(moved(a, assignSticky(c.members, c.partitionCounts, a)), `seed ${seed}`).toBe(0);
      expect(asObject(assignSticky(c.members, c.partitionCounts, a))).toEqual(asObject(a));
    }
  });

  it('moves at most ceil(total / members) when a member joins, and only the leaver\'s when one leaves (300 seeded groups)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const c = randomCase(seed, true);
      const before = assignSticky(c.members, c.partitionCounts, new Map());

      const joiner: MemberSubscription = { memberId: `joiner-${seed}`, topics: c.members[0]!.topics };
      const joined: Case = { ...c, members: [...c.members, joiner] };
      const afterJoin = assignSticky(joined.members, joined.partitionCounts, before);
      expectValid(joined, afterJoin, `seed ${seed} join`);
      expect(spread(afterJoin), `seed ${seed}`).toBeLessThanOrEqual(1);
      expect(moved(before, afterJoin), `seed ${seed}`).toBeLessThanOrEqual(Math.ceil(c.total / joined.members.length));

      if (c.members.length < 2) continue;
      const leaver = c.members[Math.floor(random(seed)() * c.members.length)]!;
      const left: Case = { ...c, members: c.members.filter((m) => m !== leaver) };
      const afterLeave = assignSticky(left.members, left.partitionCounts, before);
      expectValid(left, afterLeave, `seed ${seed} leave`);
      expect(spread(afterLeave), `seed ${seed}`).toBeLessThanOrEqual(1);
      expect(moved(before, afterLeave), `seed ${seed}`).toBe(before.get(leaver.memberId)!.length);
      const lost = left.members.filter((m) => before.get(m.memberId)!.some((p) => !afterLeave.get(m.memberId)!.some((q) => compareTopicPartitions(p, q) === 0)));
      expect(lost.map((m) => m.memberId), `seed ${seed}`).toEqual([]);
    }
  });
});
