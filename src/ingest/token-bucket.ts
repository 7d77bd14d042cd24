/**
 * A token bucket per connection: `ratePerSecond` readings on average, up to `burst` at once.
 * Pure, so the rate math is unit-tested without clocks (STYLE.md §8).
 */
export interface TokenBucket {
  /** Tokens left; negative while readings are waiting for tokens not yet earned. */
  tokens: number;
  updatedMs: number;
}

export function newBucket(burst: number, nowMs: number): TokenBucket {
  return { tokens: burst, updatedMs: nowMs };
}

/**
 * Takes `cost` tokens (1 per reading; a message's bytes for a bridge's bandwidth cap; 0 only asks)
 * and returns how many ms the taker must wait before it may pass (0: now). Tokens refill at
 * `ratePerSecond` up to `burst`. A taker that must wait keeps its tokens reserved, so the ones
 * queued behind it wait their turn in order and the long-run rate is exact.
 */
export function takeToken(bucket: TokenBucket, nowMs: number, ratePerSecond: number, burst: number, cost = 1): number {
  const elapsedMs = Math.max(0, nowMs - bucket.updatedMs);
  bucket.tokens = Math.min(burst, bucket.tokens + (elapsedMs * ratePerSecond) / 1000);
  bucket.updatedMs = Math.max(bucket.updatedMs, nowMs);
  bucket.tokens -= cost;
  return bucket.tokens >= 0 ? 0 : Math.ceil((-bucket.tokens * 1000) / ratePerSecond);
}
