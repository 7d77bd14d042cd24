import { assert } from '../errors.js';

/**
 * Partition assignors as pure functions of the members' subscriptions and the topics' partition
 * counts (as platformatic/kafka and Kafka's ConsumerPartitionAssignor do): the coordinator decides
 * when to rebalance, these decide who reads what.
 */

/** One partition of one topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A member and the topics it reads. */
export interface MemberSubscription {
  memberId: string;
  topics: readonly string[];
}

/** Partition count per topic; only topics that exist are present. */
export type PartitionCounts = ReadonlyMap<string, number>;

/** Partitions per member id: every member is present (possibly with none), each list sorted. */
export type GroupAssignment = Map<string, TopicPartition[]>;

/** Orders partitions by topic, then partition number. */
export function compareTopicPartitions(a: TopicPartition, b: TopicPartition): number {
  return a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition;
}

/** A partition's identity as a string (topic names cannot hold '/'). */
export function topicPartitionKey(tp: TopicPartition): string {
  return `${tp.topic}/${tp.partition}`;
}

/**
 * Kafka's RoundRobinAssignor: members sorted by id, partitions of every subscribed topic sorted
 * by (topic, partition) and dealt out around the circle of members; a member not subscribed to a
 * partition's topic is skipped for that partition. Balanced when subscriptions are identical.
 */
export function assignRoundRobin(members: readonly MemberSubscription[], partitionCounts: PartitionCounts): GroupAssignment {
  const sorted = sortMembers(members);
  const subscribed = subscriptionSets(sorted);
  const out = emptyAssignment(sorted);
  let next = 0;
  for (const tp of subscribedPartitions(sorted, partitionCounts)) {
    // Some member is subscribed: the partition's topic came from a subscription.
    for (let step = 0; ; step++) {
      assert(step < sorted.length, `no member subscribed to ${tp.topic}`);
      const member = sorted[(next + step) % sorted.length]!;
      if (subscribed.get(member.memberId)!.has(tp.topic)) {
        out.get(member.memberId)!.push(tp);
        next = (next + step + 1) % sorted.length;
        break;
      }
    }
  }
  return out;
}

/**
 * A sticky assignor (the aim of Kafka's StickyAssignor, KIP-54): as balanced as round-robin and
 * moving as few partitions as possible between generations, since every moved partition costs its
 * new owner a restart from the last commit (records read again).
 *
 * 1. Each member keeps its previous partitions that still exist and that it still subscribes to
 *    (a partition claimed twice in `previous` stays with the first claimant by member id).
 * 2. Unowned partitions go, most constrained first (fewest subscribed members), to the subscribed
 *    member with the fewest partitions.
 * 3. While a member holds at least two more partitions than a member that could take one of them,
 *    one moves, taken first from those it got in step 2, then from those it kept.
 *
 * With identical subscriptions the result differs by at most one partition between members, a
 * member keeps its previous partitions up to its fair share, a leaver's partitions are the only
 * ones to move, and a joiner takes at most ceil(total / members). In general, step 3 stops at a
 * state where no single move makes the group more even.
 */
export function assignSticky(
  members: readonly MemberSubscription[],
  partitionCounts: PartitionCounts,
  previous: ReadonlyMap<string, readonly TopicPartition[]>,
): GroupAssignment {
  const sorted = sortMembers(members);
  const subscribed = subscriptionSets(sorted);
  const all = subscribedPartitions(sorted, partitionCounts);
  const exists = new Set(all.map(topicPartitionKey));
  const holdings = new Map<string, Holding>(sorted.map((m) => [m.memberId, new Holding()]));
  const holding = (id: string): Holding => holdings.get(id)!;
  const taken = new Set<string>();

  for (const m of sorted) {
    for (const tp of previous.get(m.memberId) ?? []) {
      const key = topicPartitionKey(tp);
      if (!exists.has(key) || taken.has(key) || !subscribed.get(m.memberId)!.has(tp.topic)) continue;
      taken.add(key);
      holding(m.memberId).add({ topic: tp.topic, partition: tp.partition }, true);
    }
  }

  const subscribers = new Map<string, string[]>();
  for (const m of sorted) {
    for (const topic of subscribed.get(m.memberId)!) {
      if (!subscribers.has(topic)) subscribers.set(topic, []);
      subscribers.get(topic)!.push(m.memberId);
    }
  }
  /** The member subscribed to `topic` with the fewest partitions (ties: lowest id), other than `except`. */
  const lightest = (topic: string, except?: string): string | undefined => {
    let best: string | undefined;
    for (const id of subscribers.get(topic) ?? []) {
      if (id !== except && (best === undefined || holding(id).size < holding(best).size)) best = id;
    }
    return best;
  };

  const unowned = all.filter((tp) => !taken.has(topicPartitionKey(tp)));
  // Array.prototype.sort is stable: equal constraint keeps (topic, partition) order.
  unowned.sort((a, b) => subscribers.get(a.topic)!.length - subscribers.get(b.topic)!.length);
  for (const tp of unowned) {
    const to = lightest(tp.topic);
    assert(to !== undefined, `no member subscribed to ${tp.topic}`);
    holding(to).add(tp, false);
  }

  // Each move lowers the sum of squared counts by at least 2, so there are at most total² / 2.
  const maxMoves = (all.length * all.length) / 2 + 1;
  const ids = sorted.map((m) => m.memberId);
  for (let moves = 0; ; moves++) {
    assert(moves <= maxMoves, 'sticky balancing did not converge');
    const move = findMove(ids, holding, lightest);
    if (move === null) break;
    holding(move.to).add(holding(move.from).take(move.topic), false);
  }

  return new Map(ids.map((id) => [id, holding(id).list()]));
}

/** What one member holds during {@link assignSticky}, per topic, split into kept (held before) and fresh. */
class Holding {
  private readonly byTopic = new Map<string, { fresh: TopicPartition[]; kept: TopicPartition[] }>();
  size = 0;

  add(tp: TopicPartition, kept: boolean): void {
    let t = this.byTopic.get(tp.topic);
    if (!t) this.byTopic.set(tp.topic, (t = { fresh: [], kept: [] }));
    (kept ? t.kept : t.fresh).push(tp);
    this.size++;
  }

  topics(): IterableIterator<string> {
    return this.byTopic.keys();
  }

  /** Gives up one partition of `topic`: one it did not hold before if any, since moving it costs nothing extra. */
  take(topic: string): TopicPartition {
    const t = this.byTopic.get(topic);
    const tp = t?.fresh.pop() ?? t?.kept.pop();
    assert(t && tp, `no partition of ${topic} to give up`);
    if (t.fresh.length === 0 && t.kept.length === 0) this.byTopic.delete(topic);
    this.size--;
    return tp;
  }

  list(): TopicPartition[] {
    return [...this.byTopic.values()].flatMap((t) => [...t.fresh, ...t.kept]).sort(compareTopicPartitions);
  }
}

/** A topic one of whose partitions can move from a member to one with at least two fewer, or null when none can. */
function findMove(
  ids: readonly string[],
  holding: (id: string) => Holding,
  lightest: (topic: string, except?: string) => string | undefined,
): { from: string; to: string; topic: string } | null {
  const donors = [...ids].sort((a, b) => holding(b).size - holding(a).size || (a < b ? -1 : 1));
  const last = donors.at(-1);
  if (last === undefined) return null;
  const fewest = holding(last).size;
  for (const from of donors) {
    const size = holding(from).size;
    if (size < fewest + 2) return null;
    for (const topic of holding(from).topics()) {
      const to = lightest(topic, from);
      if (to !== undefined && holding(to).size <= size - 2) return { from, to, topic };
    }
  }
  return null;
}

function sortMembers(members: readonly MemberSubscription[]): MemberSubscription[] {
  const sorted = [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) assert(sorted[i - 1]!.memberId !== sorted[i]!.memberId, `member ${sorted[i]!.memberId} appears twice`);
  return sorted;
}

function subscriptionSets(members: readonly MemberSubscription[]): Map<string, Set<string>> {
  return new Map(members.map((m) => [m.memberId, new Set(m.topics)]));
}

function emptyAssignment(members: readonly MemberSubscription[]): GroupAssignment {
  return new Map(members.map((m) => [m.memberId, []]));
}

/** Every partition of every topic some member subscribes to and that exists, sorted. */
function subscribedPartitions(members: readonly MemberSubscription[], partitionCounts: PartitionCounts): TopicPartition[] {
  const topics = [...new Set(members.flatMap((m) => m.topics))].filter((t) => partitionCounts.has(t)).sort();
  return topics.flatMap((topic) => Array.from({ length: partitionCounts.get(topic)! }, (_, partition) => ({ topic, partition })));
}
