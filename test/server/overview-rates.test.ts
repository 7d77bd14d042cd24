import { describe, expect, it } from 'vitest';
import { OverviewBuilder, RATE_HISTORY_SAMPLES, RATE_WINDOW_SAMPLES, type OverviewSources } from '../../src/server/overview.js';
import { bytes, openTestLog } from '../helpers/log.js';

describe('the overview rate sampler', () => {
  it('gives a steady rate for readings that fall either side of the sample instants, and keeps two minutes', async () => {
    const log = await openTestLog();
    await log.createTopic('climate');
    let nowMs = 0;
    // Only the log and the clock are used by sample().
    const builder = new OverviewBuilder({ log, now: () => nowMs } as unknown as OverviewSources);
    const rates: number[] = [];
    for (let second = 0; second < 30; second++) {
      nowMs = second * 1000;
      builder.sample();
      // Two readings a second, but bunched: 0, 4, 0, 4 per sample interval, as devices on whole seconds give.
      if (second % 2 === 0) await log.append('climate', Array.from({ length: 4 }, (_, i) => ({ value: bytes(String(i)) })));
      const last = (builder as unknown as { history: Array<{ topics: Record<string, number> }> }).history.at(-1);
      if (second > RATE_WINDOW_SAMPLES + 1 && last) rates.push(last.topics['climate']!);
    }
    // Over five seconds a 0/4 alternation reads 1.6 or 2.4 per second, never 0 or 4.
    expect(rates.length).toBeGreaterThan(10);
    for (const rate of rates) {
      expect(rate).toBeGreaterThanOrEqual(1.6 - 1e-9);
      expect(rate).toBeLessThanOrEqual(2.4 + 1e-9);
    }
    for (let second = 30; second < 30 + RATE_HISTORY_SAMPLES + 10; second++) {
      nowMs = second * 1000;
      builder.sample();
    }
    expect((builder as unknown as { history: unknown[] }).history).toHaveLength(RATE_HISTORY_SAMPLES);
  });
});
