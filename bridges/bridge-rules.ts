import { createTask, type ScheduledTask } from 'node-cron';

/**
 * Which topics a bridge replicates and how: name patterns with a priority, an optional sync
 * window and the ack mode. Pure apart from node-cron's matcher, and unit-tested without clocks.
 */

/** One `topics:` entry of a bridge's config. */
export interface BridgeTopicRule {
  /** A topic name, or a pattern where `*` matches any run of characters (`climate-*`). */
  readonly match: string;
  /** Higher drains first when a backlog drains (alerts before bulk telemetry). Default 0. */
  readonly priority: number;
  /**
   * A cron expression: the topic is sent only during the minutes (the seconds, with a six-field
   * expression) it matches, e.g. '* 1-5 * * *' for 01:00 to 05:59 on a metered link. null: always.
   */
  readonly syncWindow: string | null;
  /**
   * 'upstream': a device's QoS 1 PUBACK for this topic waits until the upstream acknowledged the
   * reading (falling back to the local durable ack when the link is down or upstreamAckTimeoutMs
   * passes). 'local' (default): the PUBACK follows the local fsync.
   */
  readonly ack: 'local' | 'upstream';
}

/** A rule's pattern as a RegExp: `*` matches any run of topic-name characters, nothing else is special. */
export function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.split('*').map((part) => part.replace(/[.\\^$+?()[\]{}|-]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

/** The first rule matching a topic wins, as with ingest's topic rules; undefined when none does. */
export function ruleFor<R extends { readonly match: string }>(rules: readonly R[], compiled: readonly RegExp[], topic: string): R | undefined {
  const i = compiled.findIndex((re) => re.test(topic));
  return i < 0 ? undefined : rules[i];
}

/**
 * A sync window: open during every minute (or second, for a six-field expression) that its cron
 * expression matches. Matching the current time unit, rather than scheduling a start event,
 * makes a gateway that starts in the middle of a window send at once.
 */
export class SyncWindow {
  private readonly task: ScheduledTask;
  private readonly perSecond: boolean;

  constructor(readonly expression: string) {
    // createTask only registers the expression; it never runs unless started, and close() destroys it.
    this.task = createTask(expression, () => {});
    this.perSecond = expression.trim().split(/\s+/).length === 6;
  }

  isOpen(nowMs: number): boolean {
    const at = new Date(nowMs);
    if (!this.perSecond) at.setSeconds(0, 0);
    else at.setMilliseconds(0);
    return this.task.match(at);
  }

  close(): void {
    void this.task.destroy();
  }
}

/**
 * The delay before reconnect attempt `attempt` (1 for the first retry): exponential from
 * `initialMs` up to `maxMs`, with "equal jitter" (half fixed, half random) so a fleet of gateways
 * that lost the same central cluster does not come back in lockstep.
 */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
