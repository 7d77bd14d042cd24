/**
 * A connector's run of failures (log full, disk full, file unreadable): logged once when it
 * starts and once when it ends (STYLE.md §9, one line per state change), retried with a bounded
 * exponential backoff so a lasting condition costs a few wake-ups a minute, not a busy loop.
 */

/** The first retry comes soon: most conditions (LOG_OVERLOADED) clear within a commit or two. */
export const RETRY_DELAY_MS_MIN = 100;
/** A lasting condition (a full disk) is retried every 10 s: prompt recovery, negligible cost. */
export const RETRY_DELAY_MS_MAX = 10_000;

/** The delay before retry number `failures` (1 for the first): doubling from the minimum, capped. */
export function retryDelayMs(failures: number): number {
  return Math.min(RETRY_DELAY_MS_MAX, RETRY_DELAY_MS_MIN * 2 ** Math.min(Math.max(failures - 1, 0), 20));
}

export class Trouble {
  private failures = 0;
  private reason = '';

  /** Records a failure; returns the delay before the retry and whether this failure should be logged (the first, or a different reason). */
  fail(reason: string): { delayMs: number; log: boolean } {
    this.failures++;
    const log = this.failures === 1 || reason !== this.reason;
    this.reason = reason;
    return { delayMs: retryDelayMs(this.failures), log };
  }

  /** Records a success; returns how many failures it ended (0 when there was no trouble). */
  ok(): number {
    const ended = this.failures;
    this.failures = 0;
    this.reason = '';
    return ended;
  }

  get failing(): boolean {
    return this.failures > 0;
  }
}
