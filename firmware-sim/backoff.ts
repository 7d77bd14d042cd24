import type { Random } from './prng.js';

/** Reconnect backoff of one device. */
export interface BackoffPolicy {
  /** Delay before the first retry, before jitter. */
  readonly initialMs: number;
  /** Ceiling of the delay, before jitter: a device never waits longer than this. */
  readonly maxMs: number;
  readonly multiplier: number;
}

/** A firmware-like default: retry after about a second, back off to at most half a minute. */
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ initialMs: 1_000, maxMs: 30_000, multiplier: 2 });

/**
 * Delay before reconnect attempt number `attempt` (0 for the first retry): exponential growth
 * capped at `maxMs`, with "equal jitter" (half fixed, half random). The fixed half stops a device
 * from hammering a gateway that is down; the random half spreads a fleet that lost its gateway at
 * the same instant, so the reconnects do not arrive as one thundering herd.
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: Random): number {
  const exponent = Math.min(Math.max(attempt, 0), 64); // bounded: 2^64 is already past any cap
  const ceiling = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** exponent);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
