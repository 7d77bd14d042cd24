import type { TopicPartition } from './assignors.js';

/** How a group shares out partitions: Kafka's RoundRobinAssignor, or a sticky one that moves as few as possible. */
export type AssignmentStrategy = 'round-robin' | 'sticky';

/** Where a member starts a partition the group has no usable committed offset for (Kafka's auto.offset.reset). */
export type OffsetReset = 'earliest' | 'latest';

/** A partition assigned to a member. */
export interface AssignedPartition {
  topic: string;
  partition: number;
  /** Where this member starts reading: the group's committed offset, or its offsetReset's when there is none usable. */
  offset: number;
  /** The topic's id in the log: a member keeps its position on a partition only while this is the same (a topic deleted and created again starts afresh). */
  topicId: number;
}

/** A member's share of its group in one generation. */
export interface Assignment {
  /** Commits are fenced by it: only the current generation may commit. */
  generation: number;
  partitions: AssignedPartition[];
}

/** Kafka's JoinGroup, in one call: the coordinator computes the assignment itself (there is no group leader). */
export interface JoinRequest {
  groupId: string;
  /** Names the application; the member id starts with it. Same rule as a group id. */
  clientId: string;
  topics: readonly string[];
  /** Default 'sticky'. Every member of a group uses the group's strategy. */
  strategy?: AssignmentStrategy;
  /** A member not heard from for this long is removed and its partitions go to the others. Default 10,000, allowed 1,000 to 300,000. */
  sessionTimeoutMs?: number;
  /**
   * Where to start a partition when the group has no committed offset for it, or that offset is
   * below the partition's start offset (deleted by retention). Default 'latest' (Kafka's default).
   */
  offsetReset?: OffsetReset;
  /**
   * Called on every rebalance that concerns the member, including its first assignment; always
   * after join() has returned (in a microtask), with the newest assignment when several
   * rebalances happened in one turn of the event loop.
   */
  onAssignment: (assignment: Assignment) => void;
  /** Called once when the coordinator removes the member (session timeout, close()); not on leave(). */
  onRemoved?: (reason: string) => void;
}

/** 'stable' while the group has members (rebalances are synchronous, so there is no in-between state), else 'empty'. */
export type GroupState = 'empty' | 'stable';

/** One member as {@link GroupDescription} shows it. */
export interface MemberDescription {
  memberId: string;
  clientId: string;
  topics: string[];
  assignment: TopicPartition[];
  lastSeenAgoMs: number;
}

/** One partition's committed offset and lag. */
export interface PartitionLag {
  topic: string;
  partition: number;
  /** The group's committed offset (the next record it will read), or null when it has none. */
  committed: number | null;
  highWatermark: number;
  /** highWatermark − committed: records written that the group has not committed yet; null without a commit. */
  lag: number | null;
}

/** What `edgelog groups describe` shows. */
export interface GroupDescription {
  groupId: string;
  state: GroupState;
  /** 0 for a group without members. */
  generation: number;
  /** null for a group without members. */
  strategy: AssignmentStrategy | null;
  members: MemberDescription[];
  /** Every partition of the members' topics and every partition with a committed offset, sorted. */
  offsets: PartitionLag[];
}

/** One line of `edgelog groups list`. */
export interface GroupSummary {
  groupId: string;
  state: GroupState;
  members: number;
}

/** Where resetOffsets moves a group's offsets for one topic (Kafka's kafka-consumer-groups --reset-offsets --to-*). */
export type OffsetResetTarget = 'earliest' | 'latest' | { offset: number } | { timestamp: number };
