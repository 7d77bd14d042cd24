import { newBucket, takeToken, type TokenBucket } from './token-bucket.js';

/** Failed authentications a source may make at once before it is throttled. */
export const AUTH_FAILURE_BURST = 10;
/** Then one more failure allowed per this many ms. */
export const AUTH_FAILURE_INTERVAL_MS = 6_000;
/** Sources tracked at once; past it the oldest half is forgotten (a bound, not an LRU). */
const SOURCES_MAX = 10_000;
/**
 * Logins of one source waiting for its checks under way to finish; more are refused as throttled.
 * Each waiter is a connection the gateway holds anyway (until its connect or auth timeout), so
 * this bounds a flood from one address, not normal reconnect storms (a whole site behind one NAT
 * address is rarely more than a few hundred devices).
 */
const WAITING_PER_SOURCE_MAX = 1_000;

/** A credential check under way for one source (see {@link AuthThrottle.begin}). */
export interface AuthAttempt {
  /** The credentials were right: the attempt is not counted. */
  succeeded(): void;
  /** The credentials were wrong; true when this failure starts the source's throttling (log that once). */
  failed(): boolean;
}

interface SourceState {
  bucket: TokenBucket;
  /** Checks started and not yet settled. */
  inFlight: number;
  /** Logins waiting for a check under way to settle before they may start (FIFO). */
  waiting: ((attempt: AuthAttempt | null) => void)[];
}

/**
 * Failed logins per source address. Every credential check costs a scrypt run (tens of ms, on a
 * thread the whole gateway shares), so a source that keeps failing is refused without checking
 * until it has waited: a password-guessing loop can neither guess fast nor starve real devices'
 * connects. Successful logins are not counted.
 */
export class AuthThrottle {
  private readonly sources = new Map<string, SourceState>();

  /** `now`: a monotonic clock in ms (a step back of the wall clock would stop the refill for as long). */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Whether a source may try credentials now (for checks that finish at once, with {@link failed}). */
  mayTry(source: string): boolean {
    const state = this.sources.get(source);
    return state === undefined || this.tokens(state) >= 1;
  }

  /** Counts a failed attempt of a source; returns true when this failure starts its throttling. */
  failed(source: string): boolean {
    return this.countFailure(this.stateOf(source));
  }

  /**
   * Starts an asynchronous credential check (a scrypt run that queues for the hash threads),
   * resolving with the attempt to settle, or null when the source is throttled. A check starts
   * only while the source could afford it failing on top of every check it has under way; else
   * it waits for those to settle. Counting failures only once known would let a burst of
   * concurrent guesses all start before the first one failed; waiting, rather than refusing,
   * keeps a burst of right logins from one address (devices behind NAT) from being refused.
   */
  begin(source: string): Promise<AuthAttempt | null> {
    const state = this.stateOf(source);
    if (state.waiting.length === 0) {
      const started = this.tryStart(source, state);
      if (started !== undefined) return Promise.resolve(started);
    }
    if (state.waiting.length >= WAITING_PER_SOURCE_MAX) return Promise.resolve(null);
    return new Promise((resolve) => state.waiting.push(resolve));
  }

  /** An attempt when one may start, null when the source is throttled, undefined when it must wait. */
  private tryStart(source: string, state: SourceState): AuthAttempt | null | undefined {
    if (this.tokens(state) - state.inFlight >= 1) {
      state.inFlight += 1;
      return this.attempt(source, state);
    }
    return state.inFlight === 0 ? null : undefined;
  }

  private attempt(source: string, state: SourceState): AuthAttempt {
    let settled = false;
    const settle = (failed: boolean): boolean => {
      if (settled) return false;
      settled = true;
      state.inFlight -= 1;
      const startsThrottling = failed && this.countFailure(state);
      while (state.waiting.length > 0) {
        const next = this.tryStart(source, state);
        if (next === undefined) break;
        state.waiting.shift()!(next);
      }
      // A source with nothing under way and no failures to remember leaves no trace (most sources: devices that log in).
      if (state.inFlight === 0 && state.waiting.length === 0 && this.tokens(state) >= AUTH_FAILURE_BURST && this.sources.get(source) === state) this.sources.delete(source);
      return startsThrottling;
    };
    return { succeeded: () => void settle(false), failed: () => settle(true) };
  }

  /** Tokens the source has now (failures it may still make), refilled to now. */
  private tokens(state: SourceState): number {
    const peek = { ...state.bucket };
    takeToken(peek, this.now(), 1000 / AUTH_FAILURE_INTERVAL_MS, AUTH_FAILURE_BURST, 0);
    return peek.tokens;
  }

  private countFailure(state: SourceState): boolean {
    takeToken(state.bucket, this.now(), 1000 / AUTH_FAILURE_INTERVAL_MS, AUTH_FAILURE_BURST);
    return state.bucket.tokens < 1 && state.bucket.tokens >= 0;
  }

  private stateOf(source: string): SourceState {
    let state = this.sources.get(source);
    if (!state) {
      if (this.sources.size >= SOURCES_MAX) {
        let n = 0;
        for (const key of this.sources.keys()) if (n++ < SOURCES_MAX / 2) this.sources.delete(key);
      }
      state = { bucket: newBucket(AUTH_FAILURE_BURST, this.now()), inFlight: 0, waiting: [] };
      this.sources.set(source, state);
    }
    return state;
  }
}
