import type { Logger } from 'pino';
import { EdgelogError } from '../../src/errors.js';
import { isTopicName, topicMatches } from './mqtt-topics.js';

/**
 * Refused command topics remembered for "log once per topic". Past this many the log says so once
 * and stays quiet: a sender cycling through topics must not grow memory or flood the log.
 */
const REFUSED_TOPICS_LOGGED_MAX = 1_000;

/** What the router needs; see MqttUpstreamOptions.commands and onCommand. */
export interface CommandRouterOptions {
  /** The upstream filter without its final '#', e.g. `gateways/gw1/commands/`. */
  prefix: string;
  allow: readonly string[];
  /** Bounds one local delivery, so a stuck local broker cannot hold the upstream link forever. */
  deliveryTimeoutMs: number;
  onCommand: (localTopic: string, payload: Buffer) => Promise<void>;
  logger: Logger;
}

/**
 * The command downlink: maps an upstream topic `<prefix><rest>` to the local topic `<rest>` and
 * delivers it when `<rest>` matches an allowed filter. Refused commands are counted and dropped
 * (acknowledged upstream: sending them again would not change the answer).
 */
export class CommandRouter {
  private delivered = 0;
  private refused = 0;
  private readonly refusedTopics = new Set<string>();
  private refusedTopicsFull = false;

  constructor(private readonly opts: CommandRouterOptions) {}

  get commandsDelivered(): number {
    return this.delivered;
  }

  get commandsRefused(): number {
    return this.refused;
  }

  /**
   * Delivers or refuses one command. Resolves once it is delivered locally or refused (then the
   * upstream PUBACK may go); rejects when the local delivery failed or timed out.
   */
  async handle(upstreamTopic: string, payload: Buffer): Promise<void> {
    const rest = upstreamTopic.startsWith(this.opts.prefix) ? upstreamTopic.slice(this.opts.prefix.length) : undefined;
    if (rest === undefined || !isTopicName(rest) || !this.opts.allow.some((filter) => topicMatches(filter, rest))) {
      this.refuse(upstreamTopic, rest);
      return;
    }
    await withTimeout(this.opts.onCommand(rest, payload), this.opts.deliveryTimeoutMs, rest);
    this.delivered++;
  }

  private refuse(upstreamTopic: string, rest: string | undefined): void {
    this.refused++;
    if (this.refusedTopics.has(upstreamTopic)) return;
    if (this.refusedTopics.size >= REFUSED_TOPICS_LOGGED_MAX) {
      if (!this.refusedTopicsFull) {
        this.refusedTopicsFull = true;
        this.opts.logger.warn({ topicsLogged: REFUSED_TOPICS_LOGGED_MAX }, 'more refused command topics than are logged one by one: refusing the rest quietly (see commandsRefused)');
      }
      return;
    }
    this.refusedTopics.add(upstreamTopic);
    const reason = rest === undefined ? `not under ${this.opts.prefix}#` : `local topic '${rest}' matches no allowed filter`;
    this.opts.logger.warn({ topic: upstreamTopic, allow: this.opts.allow }, `command refused: ${reason} (logged once per topic)`);
  }
}

async function withTimeout(work: Promise<void>, timeoutMs: number, localTopic: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new EdgelogError('UPSTREAM_UNAVAILABLE', `command for '${localTopic}' was not delivered locally within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
