import type { Logger } from 'pino';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { EdgelogError } from '../../errors.js';
import { Trouble } from './trouble.js';

export interface RetryLoopOptions {
  /** Names the connector kind in log lines ('file sink'). */
  name: string;
  /** One pass of work; resolves true when there may be more to do at once. */
  step: () => Promise<boolean>;
  /** Forgets what is not durable after a failed pass, so the retry does it again. */
  onFailure: () => void;
  /** Ends the warn line of a failure: what the retry does ('nothing is skipped'). */
  retryNote: string;
  logger: Logger;
}

/**
 * The run loop of the file connectors: passes of `step` never overlap, wake-ups during a pass
 * coalesce into one more, and a failed pass is retried after Trouble's backoff, logged once per
 * run of failures (and once when it ends).
 */
export class RetryLoop {
  private running: Promise<void> | null = null;
  private dirty = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly trouble = new Trouble();

  constructor(private readonly o: RetryLoopOptions) {}

  /** True from a failed pass until a pass succeeds. */
  get failing(): boolean {
    return this.trouble.failing;
  }

  /** Asks for a pass; one in flight or a retry pending takes it over. */
  kick(): void {
    if (this.closed) return;
    this.dirty = true;
    if (this.running === null && this.retryTimer === null) this.running = this.run();
  }

  /** Starts no more passes and waits for the one in flight. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    await this.running;
  }

  private async run(): Promise<void> {
    try {
      while (this.dirty && !this.closed) {
        this.dirty = false;
        try {
          const more = await this.o.step();
          const ended = this.trouble.ok();
          if (ended > 0) this.o.logger.info({ failures: ended }, `${this.o.name} recovered`);
          if (more) {
            this.dirty = true;
            await nextTurn();
          }
        } catch (error) {
          this.retryLater(error);
          return;
        }
      }
    } finally {
      this.running = null;
    }
  }

  private retryLater(error: unknown): void {
    this.o.onFailure();
    // By code, not message: a message carrying changing numbers (bytes used) is still the same trouble.
    const reason = error instanceof EdgelogError ? error.code : String((error as NodeJS.ErrnoException)?.code ?? error);
    const { delayMs, log } = this.trouble.fail(reason);
    if (log) this.o.logger.warn({ err: error, retryInMs: delayMs }, `${this.o.name} cannot go on; retrying (${this.o.retryNote})`);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick();
    }, delayMs);
  }
}
