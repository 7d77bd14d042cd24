import { EdgelogError } from '../errors.js';
import { GROUP_ID_PATTERN, GROUP_ID_RULE, validateGroupId } from '../log/offsets.js';
import { describe, validateTopicName } from '../log/topic-config.js';
import type { AssignmentStrategy, JoinRequest, OffsetReset } from './types.js';

/** Kafka's consumer default session.timeout.ms is 45 s; a local app on loopback is noticed dead sooner. */
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
/** Below a second, a GC pause or a busy event loop would remove healthy members. */
export const MIN_SESSION_TIMEOUT_MS = 1_000;
/** Past five minutes a dead member's partitions wait too long for a new owner (Kafka's broker caps it too: group.max.session.timeout.ms). */
export const MAX_SESSION_TIMEOUT_MS = 300_000;
/** Topics one member reads: bounds a member's state and the work of one rebalance. */
export const MAX_SUBSCRIBED_TOPICS = 1024;
export const DEFAULT_STRATEGY: AssignmentStrategy = 'sticky';
/** Kafka's auto.offset.reset default: a new group reads what arrives from now on. */
export const DEFAULT_OFFSET_RESET: OffsetReset = 'latest';

/**
 * Group ids the gateway's own readers use, and who uses them. An app joining one of them over
 * /consume would take a processor's partitions or commit over a bridge's checkpoint, so records
 * would be skipped there without a trace; apps are refused them (operators may still reset their
 * offsets through the admin API).
 */
export const INTERNAL_GROUP_PREFIXES: Readonly<Record<string, string>> = { 'bridge.': 'bridges', 'streams.': 'stream processors', 'connect.': 'connectors' };

/** Throws INVALID_ARGUMENT when an app asks for a group id the gateway keeps for itself. */
export function refuseInternalGroup(groupId: string): void {
  const prefix = Object.keys(INTERNAL_GROUP_PREFIXES).find((p) => groupId.startsWith(p));
  if (prefix === undefined) return;
  throw new EdgelogError(
    'INVALID_ARGUMENT',
    `group id '${groupId}' starts with '${prefix}', which the gateway keeps for its ${INTERNAL_GROUP_PREFIXES[prefix]}; ` +
      `apps may use any id that does not start with ${Object.keys(INTERNAL_GROUP_PREFIXES).map((p) => `'${p}'`).join(', ')}`,
  );
}

const STRATEGIES: readonly AssignmentStrategy[] = ['round-robin', 'sticky'];
const OFFSET_RESETS: readonly OffsetReset[] = ['earliest', 'latest'];

/** A join request checked and with its defaults filled in. */
export interface ParsedJoin {
  groupId: string;
  clientId: string;
  /** Sorted, without duplicates. */
  topics: string[];
  strategy: AssignmentStrategy;
  sessionTimeoutMs: number;
  offsetReset: OffsetReset;
  onAssignment: JoinRequest['onAssignment'];
  onRemoved: JoinRequest['onRemoved'];
}

/** Checks a join request; throws INVALID_ARGUMENT (or INVALID_TOPIC_NAME) naming the first bad field and what is allowed. */
export function parseJoinRequest(req: JoinRequest): ParsedJoin {
  if (typeof req !== 'object' || req === null) throw new EdgelogError('INVALID_ARGUMENT', `a join request must be an object, got ${describe(req)}`);
  validateGroupId(req.groupId);
  if (typeof req.clientId !== 'string' || !GROUP_ID_PATTERN.test(req.clientId)) {
    throw new EdgelogError('INVALID_ARGUMENT', `client id must be ${GROUP_ID_RULE}, got ${describe(req.clientId)}`);
  }
  if (!Array.isArray(req.topics) || req.topics.length === 0 || req.topics.length > MAX_SUBSCRIBED_TOPICS) {
    throw new EdgelogError('INVALID_ARGUMENT', `topics must be an array of 1 to ${MAX_SUBSCRIBED_TOPICS} topic names, got ${describe(req.topics)}${Array.isArray(req.topics) ? ` of ${req.topics.length}` : ''}`);
  }
  // A topic that does not exist yet is allowed (as in Kafka): its partitions are assigned once it is created.
  for (const topic of req.topics) validateTopicName(topic);
  const strategy = req.strategy ?? DEFAULT_STRATEGY;
  if (!STRATEGIES.includes(strategy)) throw new EdgelogError('INVALID_ARGUMENT', `strategy must be ${STRATEGIES.map((s) => `'${s}'`).join(' or ')}, got ${describe(strategy)}`);
  const sessionTimeoutMs = req.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
  if (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs < MIN_SESSION_TIMEOUT_MS || sessionTimeoutMs > MAX_SESSION_TIMEOUT_MS) {
    throw new EdgelogError('INVALID_ARGUMENT', `sessionTimeoutMs must be an integer from ${MIN_SESSION_TIMEOUT_MS} to ${MAX_SESSION_TIMEOUT_MS}, got ${describe(sessionTimeoutMs)}`);
  }
  const offsetReset = req.offsetReset ?? DEFAULT_OFFSET_RESET;
  if (!OFFSET_RESETS.includes(offsetReset)) throw new EdgelogError('INVALID_ARGUMENT', `offsetReset must be 'earliest' or 'latest', got ${describe(offsetReset)}`);
  if (typeof req.onAssignment !== 'function') throw new EdgelogError('INVALID_ARGUMENT', 'onAssignment must be a function');
  if (req.onRemoved !== undefined && typeof req.onRemoved !== 'function') throw new EdgelogError('INVALID_ARGUMENT', 'onRemoved must be a function when given');
  return {
    groupId: req.groupId,
    clientId: req.clientId,
    topics: [...new Set(req.topics)].sort(),
    strategy,
    sessionTimeoutMs,
    offsetReset,
    onAssignment: req.onAssignment,
    onRemoved: req.onRemoved,
  };
}
