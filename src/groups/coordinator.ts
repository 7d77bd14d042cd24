import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { assert, EdgelogError } from '../errors.js';
import type { CommitLog, PartitionDescription } from '../log/commit-log.js';
import { checkOffsetCommits, validateGroupId, type CommittedOffset, type OffsetCommit } from '../log/offsets.js';
import { describe as describeValue, integerIn } from '../log/topic-config.js';
import { assignRoundRobin, assignSticky, compareTopicPartitions, topicPartitionKey, type PartitionCounts } from './assignors.js';
import { assignmentOf, Group, startingOffset, type Member } from './group.js';
import { parseJoinRequest } from './join-request.js';
import type { AssignedPartition, Assignment, GroupDescription, GroupSummary, JoinRequest, OffsetResetTarget, PartitionLag } from './types.js';

export type {
  AssignedPartition,
  Assignment,
  AssignmentStrategy,
  GroupDescription,
  GroupState,
  GroupSummary,
  JoinRequest,
  MemberDescription,
  OffsetReset,
  OffsetResetTarget,
  PartitionLag,
} from './types.js';
export type { TopicPartition } from './assignors.js';

/** Options of {@link GroupCoordinator}; every bound has a default and a reason. */
export interface GroupCoordinatorOptions {
  log: CommitLog;
  logger: Logger;
  /**
   * The clock for session timeouts, in ms (tests move it). Default performance.now(): a monotonic
   * clock, so a step of the wall clock (NTP at boot) neither expires every session nor keeps a
   * dead member's partitions for the length of a step back (Kafka measures sessions the same way).
   */
  now?: () => number;
  /** Live groups (with members) at once: bounds the coordinator's memory. Default 1,000. */
  maxGroups?: number;
  /** Members of one group: bounds one rebalance's work and the callbacks it makes. Default 100. */
  maxMembersPerGroup?: number;
  /** How often session timeouts and topic changes are checked; a member is removed at most this late. Default 500. */
  checkIntervalMs?: number;
}

export const DEFAULT_MAX_GROUPS = 1000;
export const DEFAULT_MAX_MEMBERS_PER_GROUP = 100;
export const DEFAULT_CHECK_INTERVAL_MS = 500;
/** Member ids an error message lists at most, so a message stays one readable line. */
const MAX_LISTED = 20;

/** A rebalance computed but not yet applied: computing reads the log and may throw, applying cannot. */
interface Plan {
  /** `id/partitions` per existing subscribed topic (see Group.topicShapes). */
  topicShapes: Map<string, string>;
  assignments: Map<string, AssignedPartition[]>;
}

/**
 * The consumer-group coordinator (Kafka's GroupCoordinator, cut to one process): members join a
 * group, the coordinator shares out the partitions of their topics with the group's strategy,
 * rebalances when membership or a subscribed topic's partitions change, removes members that miss
 * their session timeout, and fences commits by generation. Committed offsets live in the log.
 */
export class GroupCoordinator {
  private readonly groups = new Map<string, Group>();
  private readonly log: CommitLog;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly maxGroups: number;
  private readonly maxMembersPerGroup: number;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private lastCheckError: string | null = null;
  // Callbacks run after the call that caused them returns: a member learns its id from join()
  // before its first assignment, and a callback that calls back in (leave() from onRemoved) never
  // runs in the middle of a rebalance.
  private readonly toAssign = new Set<Member>();
  private readonly toRemove = new Map<Member, string>();
  private flushQueued = false;

  constructor(opts: GroupCoordinatorOptions) {
    assert(opts?.log && opts.logger, 'GroupCoordinator needs { log, logger }');
    this.log = opts.log;
    this.logger = opts.logger.child({ component: 'groups' });
    this.now = opts.now ?? (() => performance.now());
    this.maxGroups = integerIn('maxGroups', opts.maxGroups ?? DEFAULT_MAX_GROUPS, 1, 1_000_000);
    this.maxMembersPerGroup = integerIn('maxMembersPerGroup', opts.maxMembersPerGroup ?? DEFAULT_MAX_MEMBERS_PER_GROUP, 1, 10_000);
    const checkIntervalMs = integerIn('checkIntervalMs', opts.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS, 10, 60_000);
    // One timer for every group; unref'd so a coordinator never keeps the process alive.
    this.timer = setInterval(() => this.check(), checkIntervalMs);
    this.timer.unref();
  }

  /**
   * Kafka's JoinGroup: adds a member to a group (created if new) and rebalances the group. The
   * member's assignment arrives through `onAssignment`, after this returns.
   */
  join(req: JoinRequest): { memberId: string } {
    if (this.closed) throw new EdgelogError('GATEWAY_CLOSING', 'the consumer-group coordinator is closed: the gateway is shutting down');
    const parsed = parseJoinRequest(req);
    const existing = this.groups.get(parsed.groupId);
    if (existing && existing.strategy !== parsed.strategy) {
      throw new EdgelogError(
        'INVALID_ARGUMENT',
        `group '${parsed.groupId}' uses strategy '${existing.strategy}' (its ${existing.members.size} member(s) joined with it), this member asked for '${parsed.strategy}': ` +
          `join with '${existing.strategy}', or use another group id`,
      );
    }
    if (!existing && this.groups.size >= this.maxGroups) {
      throw new EdgelogError('INVALID_ARGUMENT', `the coordinator already runs ${this.groups.size} groups with members, the most allowed (maxGroups ${this.maxGroups}); stop a group's consumers or raise maxGroups`);
    }
    if (existing && existing.members.size >= this.maxMembersPerGroup) {
      throw new EdgelogError(
        'INVALID_ARGUMENT',
        `group '${parsed.groupId}' already has ${existing.members.size} members, the most allowed (maxMembersPerGroup ${this.maxMembersPerGroup}); stop a member or raise maxMembersPerGroup`,
      );
    }
    const group = existing ?? new Group(parsed.groupId, parsed.strategy);
    const member: Member = {
      memberId: this.newMemberId(group, parsed.clientId),
      clientId: parsed.clientId,
      topics: parsed.topics,
      sessionTimeoutMs: parsed.sessionTimeoutMs,
      offsetReset: parsed.offsetReset,
      onAssignment: parsed.onAssignment,
      onRemoved: parsed.onRemoved,
      lastSeenMs: this.now(),
      generation: 0,
      assignment: [],
      removed: false,
    };
    // Plan before changing anything: if the log refuses, the group is as it was.
    const plan = this.plan(group, [...group.members.values(), member]);
    if (!existing) this.groups.set(group.id, group);
    group.members.set(member.memberId, member);
    this.apply(group, plan, 'member joined', { memberId: member.memberId, clientId: member.clientId, topics: member.topics });
    return { memberId: member.memberId };
  }

  /** Tells the coordinator the member is alive. Throws UNKNOWN_MEMBER when the group does not have it. */
  heartbeat(groupId: string, memberId: string): void {
    this.touch(groupId, memberId);
  }

  /** Kafka's LeaveGroup: removes the member and rebalances the rest. Idempotent; onRemoved is not called. */
  leave(groupId: string, memberId: string): void {
    const group = this.groups.get(groupId);
    const member = group?.members.get(memberId);
    if (!group || !member) return;
    this.remove(group, [member], 'member left', null);
  }

  /**
   * Kafka's OffsetCommit: commits offsets for partitions of the member's current assignment.
   * Refused with UNKNOWN_MEMBER, STALE_GENERATION (generation is not the group's current one),
   * NOT_ASSIGNED, or what the log refuses (OFFSET_AHEAD, ...). Resolves once durable.
   */
  async commit(groupId: string, memberId: string, generation: number, offsets: readonly OffsetCommit[]): Promise<void> {
    const { group, member } = this.touch(groupId, memberId);
    if (generation !== group.generation) {
      throw new EdgelogError(
        'STALE_GENERATION',
        `commit with generation ${describeValue(generation)} refused: group '${groupId}' moved to generation ${group.generation} (members joined or left and partitions were reassigned); ` +
          'take the new assignment, then commit again for the partitions it still gives this member',
      );
    }
    checkOffsetCommits(offsets);
    const mine = new Set(member.assignment.map(topicPartitionKey));
    offsets.forEach((c, i) => {
      if (!mine.has(topicPartitionKey(c))) {
        throw new EdgelogError(
          'NOT_ASSIGNED',
          `offsets[${i}]: ${c.topic}/${c.partition} is not assigned to member ${memberId} in generation ${group.generation} of group '${groupId}' ` +
            `(its partitions: ${listed(member.assignment.map(topicPartitionKey)) || 'none'}); commit only partitions of its own assignment`,
        );
      }
    });
    // A rebalance between this check and the durable commit is safe: the new owner started from
    // the offset committed before, at most re-reading records (at-least-once), never skipping.
    await this.log.commitOffsets(groupId, offsets);
  }

  /** The member's current assignment (counts as a heartbeat). Throws UNKNOWN_MEMBER when the group does not have it. */
  currentAssignment(groupId: string, memberId: string): Assignment {
    return assignmentOf(this.touch(groupId, memberId).member);
  }

  /** Members, assignment, committed offsets, high watermarks and lag of a group; also of a group with only committed offsets. */
  describe(groupId: string): GroupDescription {
    validateGroupId(groupId);
    const group = this.groups.get(groupId);
    const now = this.now();
    const members = [...(group?.members.values() ?? [])]
      .sort((a, b) => (a.memberId < b.memberId ? -1 : 1))
      .map((m) => ({
        memberId: m.memberId,
        clientId: m.clientId,
        topics: [...m.topics],
        assignment: m.assignment.map(({ topic, partition }) => ({ topic, partition })),
        lastSeenAgoMs: Math.max(0, now - m.lastSeenMs),
      }));
    const rows = new Map<string, { topic: string; partition: number; committed: number | null }>();
    for (const topic of group?.subscribedTopics() ?? []) {
      if (!this.log.hasTopic(topic)) continue;
      for (const { partition } of this.log.describeTopic(topic).partitions) rows.set(`${topic}/${partition}`, { topic, partition, committed: null });
    }
    for (const c of this.log.committedOffsets(groupId)) rows.set(topicPartitionKey(c), { topic: c.topic, partition: c.partition, committed: c.offset });
    const partitions = new Map<string, PartitionDescription[]>();
    const offsets: PartitionLag[] = [...rows.values()].sort(compareTopicPartitions).map((r) => {
      if (!partitions.has(r.topic)) partitions.set(r.topic, this.log.describeTopic(r.topic).partitions);
      const highWatermark = partitions.get(r.topic)![r.partition]!.highWatermark;
      return { ...r, highWatermark, lag: r.committed === null ? null : highWatermark - r.committed };
    });
    return {
      groupId,
      state: members.length > 0 ? 'stable' : 'empty',
      generation: group?.generation ?? 0,
      strategy: group?.strategy ?? null,
      members,
      offsets,
    };
  }

  /** Every group with members or committed offsets, sorted by id. */
  list(): GroupSummary[] {
    const ids = new Set([...this.groups.keys(), ...this.log.listGroups()]);
    return [...ids].sort().map((groupId) => {
      const members = this.groups.get(groupId)?.members.size ?? 0;
      return { groupId, state: members > 0 ? 'stable' : 'empty', members };
    });
  }

  /**
   * Moves a group's committed offsets for every partition of `topic`, or for one `partition` of it
   * (Kafka's kafka-consumer-groups --reset-offsets --topic T[:P]): to the start offset, the high watermark, an offset (clamped into the
   * partition's range, as Kafka does) or the first record at or after a timestamp. Only for a
   * group without members, since members would go on from their own positions and commit over it.
   */
  async resetOffsets(groupId: string, topic: string, to: OffsetResetTarget, partition?: number): Promise<CommittedOffset[]> {
    validateGroupId(groupId);
    const target = parseResetTarget(to);
    const group = this.groups.get(groupId);
    if (group && group.members.size > 0) {
      throw new EdgelogError(
        'INVALID_ARGUMENT',
        `group '${groupId}' has ${group.members.size} active member(s) (${listed([...group.members.keys()])}): ` +
          'stop them (or wait for their session timeout) before resetting its offsets',
      );
    }
    const all = this.log.describeTopic(topic).partitions;
    const chosen = partition === undefined ? all : all.filter((p) => p.partition === partition);
    if (chosen.length === 0) {
      throw new EdgelogError('UNKNOWN_PARTITION', `topic '${topic}' has no partition ${String(partition)}: its partitions are 0 to ${all.length - 1}`);
    }
    const offsets = chosen.map((p) => {
      let offset: number;
      if (target === 'earliest') offset = p.startOffset;
      else if (target === 'latest') offset = p.highWatermark;
      else if ('offset' in target) offset = Math.min(Math.max(target.offset, p.startOffset), p.highWatermark);
      else offset = this.log.offsetForTimestamp(topic, p.partition, target.timestamp);
      return { topic, partition: p.partition, offset };
    });
    await this.log.commitOffsets(groupId, offsets);
    this.logger.info({ group: groupId, topic, to: target, offsets: offsets.map(({ partition: p, offset }) => ({ partition: p, offset })) }, 'group offsets reset');
    return this.log.committedOffsets(groupId).filter((c) => c.topic === topic && (partition === undefined || c.partition === partition));
  }

  /** Stops the timer and removes every member, calling its onRemoved. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    let members = 0;
    for (const group of this.groups.values()) {
      for (const m of group.members.values()) {
        m.removed = true;
        this.toRemove.set(m, 'the consumer-group coordinator closed: the gateway is shutting down');
        members++;
      }
    }
    const groups = this.groups.size;
    this.groups.clear();
    this.flush();
    this.logger.info({ groups, members }, 'coordinator closed');
  }

  // ---------------------------------------------------------------- membership

  private touch(groupId: string, memberId: string): { group: Group; member: Member } {
    const group = this.groups.get(groupId);
    const member = group?.members.get(memberId);
    if (!group || !member) {
      throw new EdgelogError(
        'UNKNOWN_MEMBER',
        `member ${describeValue(memberId)} is not in group ${describeValue(groupId)}: it left, or missed heartbeats past its session timeout and was removed; ` +
          "join again (its partitions resume from the group's committed offsets)",
      );
    }
    member.lastSeenMs = this.now();
    return { group, member };
  }

  private newMemberId(group: Group, clientId: string): string {
    // Kafka's member ids are clientId-UUID; 64 random bits make a clash practically impossible, the loop makes it impossible.
    for (let attempt = 0; attempt < 10; attempt++) {
      const id = `${clientId}-${randomBytes(8).toString('hex')}`;
      if (!group.members.has(id)) return id;
    }
    assert(false, 'ten random member ids clashed');
  }

  /** Removes members; `removedReason` is given to onRemoved (null for a member that left by itself). */
  private remove(group: Group, members: readonly Member[], event: string, removedReason: string | null): void {
    const now = this.now();
    for (const m of members) {
      group.members.delete(m.memberId);
      m.removed = true;
      this.toAssign.delete(m);
      if (removedReason !== null) this.toRemove.set(m, removedReason);
      this.scheduleFlush();
    }
    const who = { memberIds: members.map((m) => m.memberId), lastSeenAgoMs: members.map((m) => now - m.lastSeenMs) };
    if (group.members.size === 0) {
      // Nothing left to fence: the group's state is its committed offsets, which stay in the log.
      this.groups.delete(group.id);
      this.logger.info({ group: group.id, generation: group.generation, members: 0, ...who }, `${event}; group is empty`);
      return;
    }
    this.rebalance(group, event, who);
  }

  // ---------------------------------------------------------------- rebalancing

  /** Rebalances after a change that has already happened; when the log refuses, the check retries. */
  private rebalance(group: Group, event: string, fields: Record<string, unknown>): void {
    let plan: Plan;
    try {
      plan = this.plan(group, [...group.members.values()]);
    } catch (error) {
      group.needsRebalance = true;
      this.logger.error({ err: error, group: group.id, ...fields }, `${event}; rebalance failed, will retry`);
      return;
    }
    this.apply(group, plan, event, fields);
  }

  /** The group's next assignment for `members`, with each partition's starting offset; reads the log. */
  private plan(group: Group, members: readonly Member[]): Plan {
    const partitions = new Map<string, PartitionDescription[]>();
    const topicShapes = new Map<string, string>();
    const topicIds = new Map<string, number>();
    for (const topic of group.subscribedTopics(members)) {
      const shape = this.log.topicShape(topic);
      if (shape === undefined) continue;
      partitions.set(topic, this.log.describeTopic(topic).partitions);
      topicShapes.set(topic, shapeKey(shape));
      topicIds.set(topic, shape.id);
    }
    const partitionCounts: PartitionCounts = new Map([...partitions].map(([topic, ps]) => [topic, ps.length]));
    const subscriptions = members.map((m) => ({ memberId: m.memberId, topics: m.topics }));
    const raw =
      group.strategy === 'sticky'
        ? assignSticky(subscriptions, partitionCounts, new Map(members.map((m) => [m.memberId, m.assignment])))
        : assignRoundRobin(subscriptions, partitionCounts);
    const committed = new Map(this.log.committedOffsets(group.id).map((c) => [topicPartitionKey(c), c.offset]));
    const assignments = new Map<string, AssignedPartition[]>();
    for (const m of members) {
      const tps = raw.get(m.memberId);
      assert(tps, `the assignor left out member ${m.memberId}`);
      assignments.set(
        m.memberId,
        tps.map((tp) => ({
          ...tp,
          offset: startingOffset(partitions.get(tp.topic)![tp.partition]!, committed.get(topicPartitionKey(tp)), m.offsetReset),
          topicId: topicIds.get(tp.topic)!,
        })),
      );
    }
    return { topicShapes, assignments };
  }

  /** Starts the next generation: every member gets its new assignment (and the new generation that fences commits). */
  private apply(group: Group, plan: Plan, event: string, fields: Record<string, unknown>): void {
    group.generation++;
    group.topicShapes = plan.topicShapes;
    group.needsRebalance = false;
    let partitions = 0;
    for (const m of group.members.values()) {
      const assignment = plan.assignments.get(m.memberId);
      assert(assignment, `no plan for member ${m.memberId}`);
      m.assignment = assignment;
      m.generation = group.generation;
      partitions += assignment.length;
      this.toAssign.add(m);
    }
    this.scheduleFlush();
    this.logger.info({ group: group.id, generation: group.generation, strategy: group.strategy, members: group.members.size, partitions, ...fields }, event);
  }

  /** The periodic check: session timeouts first, then topics created or deleted since the last assignment. */
  private check(): void {
    if (this.closed) return;
    const now = this.now();
    const shapes = new Map<string, string | undefined>();
    const shapeOf = (topic: string): string | undefined => {
      if (!shapes.has(topic)) {
        const shape = this.log.topicShape(topic);
        shapes.set(topic, shape === undefined ? undefined : shapeKey(shape));
      }
      return shapes.get(topic);
    };
    try {
      for (const group of [...this.groups.values()]) {
        const expired = [...group.members.values()].filter((m) => now - m.lastSeenMs >= m.sessionTimeoutMs);
        if (expired.length > 0) {
          const timeouts = [...new Set(expired.map((m) => m.sessionTimeoutMs))].join('/');
          this.remove(group, expired, 'member removed: session timeout', `not heard from within its session timeout (sessionTimeoutMs ${timeouts})`);
        } else if (group.needsRebalance) {
          this.rebalance(group, 'rebalance retried', {});
        } else {
          const changed = group.subscribedTopics().filter((t) => shapeOf(t) !== group.topicShapes.get(t));
          if (changed.length > 0) this.rebalance(group, 'subscribed topics changed', { topics: changed });
        }
      }
      this.lastCheckError = null;
    } catch (error) {
      if (error instanceof EdgelogError && error.code === 'LOG_CLOSED') {
        // The log closed under a running coordinator: nothing can be checked any more.
        clearInterval(this.timer);
        this.logger.warn('the log closed before the coordinator: stopped checking sessions and topics');
        return;
      }
      const message = (error as Error)?.message ?? String(error);
      if (message !== this.lastCheckError) this.logger.error({ err: error }, 'group check failed');
      this.lastCheckError = message;
    }
  }

  // ---------------------------------------------------------------- callbacks

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    const removals = [...this.toRemove];
    this.toRemove.clear();
    const assignments = [...this.toAssign];
    this.toAssign.clear();
    for (const [m, reason] of removals) {
      if (m.onRemoved) this.safely(m, 'onRemoved', m.onRemoved.bind(null, reason));
    }
    for (const m of assignments) {
      if (!m.removed) this.safely(m, 'onAssignment', m.onAssignment.bind(null, assignmentOf(m)));
    }
  }

  private safely(m: Member, callback: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      // A caller's bug must not stop the coordinator or the other members' notifications.
      this.logger.error({ err: error, memberId: m.memberId, callback }, 'consumer-group callback threw');
    }
  }
}

function listed(items: readonly string[]): string {
  return items.length <= MAX_LISTED ? items.join(', ') : `${items.slice(0, MAX_LISTED).join(', ')} and ${items.length - MAX_LISTED} more`;
}

function parseResetTarget(to: OffsetResetTarget): OffsetResetTarget {
  if (to === 'earliest' || to === 'latest') return to;
  if (typeof to === 'object' && to !== null) {
    if ('offset' in to && Number.isSafeInteger(to.offset) && to.offset >= 0) return { offset: to.offset };
    if ('timestamp' in to && Number.isFinite(to.timestamp)) return { timestamp: to.timestamp };
  }
  throw new EdgelogError(
    'INVALID_ARGUMENT',
    `reset target must be 'earliest', 'latest', { offset: N } with a whole N ≥ 0, or { timestamp: ms since the epoch }, got ${describeValue(to)}`,
  );
}

/** A topic's identity and partition count as one comparable value. */
function shapeKey(shape: { id: number; partitions: number }): string {
  return `${shape.id}/${shape.partitions}`;
}
