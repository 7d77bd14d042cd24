import { newBucket, takeToken, type TokenBucket } from './token-bucket.js';

/** Failed authentications a source may make at once before it is throttled. */
export const AUTH_FAILURE_BURST = 10;
/** Then one more failure allowed per this many ms. */
export const AUTH_FAILURE_INTERVAL_MS = 6_000;
/** Sources tracked at once; past it the oldest half is forgotten (a bound, not an LRU). */
const SOURCES_MAX = 10_000;

/**
 * Failed logins per source address. Every credential check costs a scrypt run (tens of ms, on a
 * thread the whole gateway shares), so a source that keeps failing is refused without checking
 * until it has waited: a password-guessing loop can neither guess fast nor starve real devices'
 * connects. Successful logins are not counted.
 */
export class AuthThrottle {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Whether a source may try credentials now. */
  mayTry(source: string): boolean {
    const bucket = this.buckets.get(source);
    if (!bucket) return true;
    const peek = { ...bucket };
    return takeToken(peek, this.now(), 1000 / AUTH_FAILURE_INTERVAL_MS, AUTH_FAILURE_BURST) === 0;
  }

  /** Counts a failed attempt of a source; returns true when this failure starts its throttling. */
  failed(source: string): boolean {
    let bucket = this.buckets.get(source);
    if (!bucket) {
      if (this.buckets.size >= SOURCES_MAX) {
        let n = 0;
        for (const key of this.buckets.keys()) if (n++ < SOURCES_MAX / 2) this.buckets.delete(key);
      }
      bucket = newBucket(AUTH_FAILURE_BURST, this.now());
      this.buckets.set(source, bucket);
    }
    takeToken(bucket, this.now(), 1000 / AUTH_FAILURE_INTERVAL_MS, AUTH_FAILURE_BURST);
    return bucket.tokens < 1 && bucket.tokens >= 0;
  }
}
