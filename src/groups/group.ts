import type { PartitionDescription } from '../log/commit-log.js';
import type { ParsedJoin } from './join-request.js';
import type { AssignedPartition, Assignment, AssignmentStrategy, OffsetReset } from './types.js';

/** One member's state in the coordinator. */
export interface Member extends Readonly<Omit<ParsedJoin, 'groupId' | 'strategy'>> {
  readonly memberId: string;
  /** The coordinator's clock when the member was last heard from (any call of its own). */
  lastSeenMs: number;
  /** The generation of {@link assignment}: the group's current one once rebalanced. */
  generation: number;
  assignment: AssignedPartition[];
  /** Set when it leaves or is removed, so a notification queued before is dropped. */
  removed: boolean;
}

/**
 * One live consumer group: its members, its generation (Kafka's generation id, which fences
 * commits from members of an earlier rebalance) and the partition counts its last assignment saw.
 * A group exists while it has members; its committed offsets live on in the log.
 */
export class Group {
  generation = 0;
  readonly members = new Map<string, Member>();
  /** Id and partition count per subscribed topic at the last rebalance (existing topics only): a change means a topic was created, deleted or created again since. */
  topicShapes: ReadonlyMap<string, string> = new Map();
  /** Set when a rebalance could not be computed (the log refused); the periodic check retries it. */
  needsRebalance = false;

  constructor(
    readonly id: string,
    /** Fixed while the group has members: mixing strategies would make assignments disagree. */
    readonly strategy: AssignmentStrategy,
  ) {}

  /** The topics any member reads, sorted. */
  subscribedTopics(members: Iterable<Member> = this.members.values()): string[] {
    const topics = new Set<string>();
    for (const m of members) for (const t of m.topics) topics.add(t);
    return [...topics].sort();
  }
}

/** A copy of a member's assignment, safe to hand to callers. */
export function assignmentOf(member: Member): Assignment {
  return { generation: member.generation, partitions: member.assignment.map((p) => ({ ...p })) };
}

/**
 * Where a member starts an assigned partition: the group's committed offset when there is one the
 * log still holds, else what offsetReset says (Kafka's auto.offset.reset: earliest is the start
 * offset, latest the high watermark). A committed offset below the start offset points at records
 * retention deleted, so reading there would fail with OFFSET_OUT_OF_RANGE.
 */
export function startingOffset(partition: PartitionDescription, committed: number | undefined, reset: OffsetReset): number {
  if (committed !== undefined && committed >= partition.startOffset) return committed;
  return reset === 'earliest' ? partition.startOffset : partition.highWatermark;
}
