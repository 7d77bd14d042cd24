import { createTask, type ScheduledTask } from 'node-cron';

/** setTimeout takes at most 2^31 − 1 ms: a longer wait is taken a day at a time, re-planned in between. */
const MAX_WAIT_MS = 24 * 60 * 60 * 1000;

/**
 * Runs a task on a cron schedule (node-cron's expressions and matcher) with a timer that wall-clock
 * steps cannot stall or flood. node-cron's own runner remembers the next slot as a wall time: after
 * the clock steps back by two hours it waits those two hours before running again (a year, after a
 * year), and after a step forward it walks every slot in between and logs each as a missed
 * execution (86,400 lines for 30 days at the retention default of every 30 s). Here the wait for
 * the next slot is computed from the wall clock when the timer is armed and measured by the timer
 * (on the monotonic clock): after a step the task runs when the wait is over, then the next slot
 * is computed from the new wall time. Runs never overlap: the next wait starts when a run ends.
 */
export class CronTimer {
  private readonly schedule: ScheduledTask;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** The wall time of the slot last run. */
  private lastSlotMs = Number.NEGATIVE_INFINITY;

  /** @param run must not reject: it handles and logs its own failures. */
  constructor(
    expression: string,
    private readonly run: () => Promise<void>,
  ) {
    // A task never started: only its matcher is used (getNextRuns). Destroyed by stop().
    this.schedule = createTask(expression, () => {});
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    // A timer may fire a little before its slot by the wall clock: never plan the slot just run
    // again. An earlier slot is fine: the clock stepped back, and the schedule goes on from there.
    const next = this.schedule.getNextRuns(2).find((d) => d.getTime() !== this.lastSlotMs);
    if (next === undefined) return; // an expression that never matches again
    const waitMs = Math.max(0, next.getTime() - Date.now());
    this.timer = setTimeout(() => this.fire(next.getTime(), waitMs <= MAX_WAIT_MS), Math.min(waitMs, MAX_WAIT_MS));
    // A schedule never keeps the process alive: close() ends it, and a process without work exits.
    this.timer.unref();
  }

  private fire(slotMs: number, due: boolean): void {
    this.timer = null;
    if (!due) return this.arm();
    this.lastSlotMs = slotMs;
    this.running = this.run().finally(() => {
      this.running = null;
      this.arm();
    });
  }

  /** Stops the schedule and waits for a run in progress. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.schedule.destroy();
    await this.running;
  }
}
