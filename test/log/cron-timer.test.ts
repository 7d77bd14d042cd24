import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { CronTimer } from '../../src/log/cron-timer.js';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

describe('the retention schedule', () => {
  it('keeps its pace when the wall clock steps back 2 h or forward 30 days', async () => {
    // Fake timers and Date: setSystemTime steps the wall clock without moving timers, as NTP does.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    onTestFinished(() => void vi.useRealTimers());
    vi.setSystemTime(new Date('2026-01-01T00:00:00.500Z'));
    let runs = 0;
    const timer = new CronTimer('*/2 * * * * *', async () => void runs++);
    onTestFinished(() => timer.stop());
    const runsOver = async (ms: number): Promise<number> => {
      const before = runs;
      await vi.advanceTimersByTimeAsync(ms);
      return runs - before;
    };
    expect(await runsOver(10_000)).toBe(5);
    // node-cron's own runner waits out the two hours here, then walks 30 days of missed slots.
    vi.setSystemTime(Date.now() - 2 * HOUR_MS);
    expect(await runsOver(10_000)).toBeGreaterThanOrEqual(4);
    vi.setSystemTime(Date.now() + 30 * DAY_MS);
    const after = await runsOver(10_000);
    expect(after).toBeGreaterThanOrEqual(4);
    expect(after).toBeLessThanOrEqual(6);
  });

  it('runs once per slot, never overlapping a run still in progress', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    onTestFinished(() => void vi.useRealTimers());
    vi.setSystemTime(new Date('2026-01-01T00:00:00.000Z'));
    let running = 0;
    let overlapped = false;
    let runs = 0;
    const timer = new CronTimer('* * * * * *', async () => {
      runs++;
      overlapped ||= running > 0;
      running++;
      await new Promise((resolve) => setTimeout(resolve, 2500)); // longer than the 1 s between slots
      running--;
    });
    await vi.advanceTimersByTimeAsync(10_000);
    // stop() waits for the run in progress, which waits for the fake clock.
    const stopped = timer.stop();
    await vi.advanceTimersByTimeAsync(3000);
    await stopped;
    expect(overlapped).toBe(false);
    expect(runs).toBeGreaterThanOrEqual(3);
    expect(runs).toBeLessThanOrEqual(4);
  });
});
