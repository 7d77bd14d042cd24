import { describe, expect, it } from 'vitest';
import { loadProfiles } from '../../devices/profile.js';
import { deriveSeed } from '../../firmware-sim/prng.js';
import { SignalGenerator } from '../../firmware-sim/signal.js';

describe('SignalGenerator', () => {
  const profiles = loadProfiles();
  const start = Date.UTC(2026, 5, 1, 6);
  const take = (seed: number, device: number, n: number, profile = profiles[0]!) => {
    const g = new SignalGenerator(profile, { seed, deviceIndex: device, startTimeMs: start, clockSkewMaxMs: 0 });
    return Array.from({ length: n }, (_, i) => g.next(start + i * 60_000));
  };

  it('gives the same readings for the same seed and device, different ones otherwise', () => {
    expect(take(1, 0, 500)).toEqual(take(1, 0, 500));
    expect(take(1, 0, 50)).not.toEqual(take(2, 0, 50));
    expect(take(1, 0, 50)).not.toEqual(take(1, 1, 50));
    expect(deriveSeed(1, 2, 3)).not.toBe(deriveSeed(1, 3, 2));
  });

  it('stays in range, follows the day, drains the battery and counts energy upwards', () => {
    for (const profile of profiles) {
      const readings = take(5, 2, 24 * 60, profile); // one day, one reading a minute
      for (const { stream, reading } of readings) {
        for (const field of stream.fields) {
          const value = reading.values[field.name] as number;
          expect(value).toBeGreaterThanOrEqual(field.min);
          expect(value).toBeLessThanOrEqual(field.max);
        }
      }
      const series = (name: string): number[] => readings.map((r) => r.reading.values[name]).filter((v): v is number => v !== undefined);
      if (profile.name === 'environment-sensor') {
        const temperature = series('temperature');
        expect(Math.max(...temperature) - Math.min(...temperature)).toBeGreaterThan(4); // the daily cycle
        const battery = series('battery');
        expect(battery.every((v, i) => i === 0 || v <= (battery[i - 1] as number))).toBe(true);
      }
      if (profile.name === 'power-meter') {
        const energy = series('energyImported');
        expect(energy.every((v, i) => i === 0 || v >= (energy[i - 1] as number))).toBe(true);
        expect((energy.at(-1) as number) - (energy[0] as number)).toBeGreaterThan(1);
      }
    }
  });

  it('stamps readings with a skewed, drifting device clock when asked', () => {
    const exact = new SignalGenerator(profiles[0]!, { seed: 1, deviceIndex: 0, startTimeMs: start, clockSkewMaxMs: 0 });
    expect(exact.next(start + 1000).reading.ts).toBe(start + 1000);
    const offsets = Array.from({ length: 50 }, (_, device) => {
      const g = new SignalGenerator(profiles[0]!, { seed: 1, deviceIndex: device, startTimeMs: start, clockSkewMaxMs: 60_000 });
      return g.next(start).reading.ts - start;
    });
    expect(Math.max(...offsets.map(Math.abs))).toBeLessThanOrEqual(60_000);
    expect(new Set(offsets).size).toBeGreaterThan(40);
  });
});
