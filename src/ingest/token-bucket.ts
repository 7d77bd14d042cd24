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
 * Takes one token for a reading and returns how many ms it must wait before it may pass (0: now).
 * Tokens refill at `ratePerSecond` up to `burst`. A reading that must wait reserves its token, so
 * readings queued behind it wait their turn in order and the long-run rate is exact.
 */
export function takeToken(bucket: TokenBucket, nowMs: number, ratePerSecond: number, burst: number): number {
  const elapsedMs = Math.max(0, nowMs - bucket.updatedMs);
  bucket.tokens = Math.min(burst, bucket.tokens + (elapsedMs * ratePerSecond) / 1000);
  bucket.updatedMs = Math.max(bucket.updatedMs, nowMs);
  bucket.tokens -= 1;
  return bucket.tokens >= 0 ? 0 : Math.ceil((-bucket.tokens * 1000) / ratePerSecond);
}
