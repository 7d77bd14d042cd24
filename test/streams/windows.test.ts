import { describe, expect, it } from 'vitest';
import { closesAt, eventTimeOf, isClosed, windowStartsFor } from '../../src/streams/windows.js';
import { formatDuration, parseDurationMs } from '../../src/streams/duration.js';

describe('window math', () => {
  const tumbling = { sizeMs: 60_000, advanceMs: 60_000, graceMs: 10_000 };
  const hopping = { sizeMs: 60_000, advanceMs: 20_000, graceMs: 0 };

  it('puts a time in exactly one tumbling window, aligned to the epoch', () => {
    expect(windowStartsFor(0, tumbling)).toEqual([0]);
    expect(windowStartsFor(59_999, tumbling)).toEqual([0]);
    expect(windowStartsFor(60_000, tumbling)).toEqual([60_000]);
    expect(windowStartsFor(Date.UTC(2024, 0, 1, 12, 30, 59, 999), tumbling)).toEqual([Date.UTC(2024, 0, 1, 12, 30)]);
  });

  it('puts a time in size / advance hopping windows, ascending', () => {
    expect(windowStartsFor(65_000, hopping)).toEqual([20_000, 40_000, 60_000]);
    expect(windowStartsFor(60_000, hopping)).toEqual([20_000, 40_000, 60_000]);
    expect(windowStartsFor(59_999, hopping)).toEqual([0, 20_000, 40_000]);
    // No window starts before the epoch.
    expect(windowStartsFor(5_000, hopping)).toEqual([0]);
    // An advance that does not divide the size: 2 or 3 windows.
    expect(windowStartsFor(50_000, { sizeMs: 50_000, advanceMs: 20_000, graceMs: 0 })).toEqual([20_000, 40_000]);
    expect(windowStartsFor(41_000, { sizeMs: 50_000, advanceMs: 20_000, graceMs: 0 })).toEqual([0, 20_000, 40_000]);
  });

  it('closes a window once stream time reaches end + grace, not before', () => {
    expect(closesAt(0, tumbling)).toBe(70_000);
    expect(isClosed(0, 69_999, tumbling)).toBe(false);
    expect(isClosed(0, 70_000, tumbling)).toBe(true);
    expect(isClosed(0, 60_000, hopping)).toBe(true);
  });

  it('reads event times as ms or ISO 8601, refusing anything else', () => {
    expect(eventTimeOf(1_700_000_000_123.7)).toBe(1_700_000_000_123);
    expect(eventTimeOf('2024-01-01T00:00:01.500Z')).toBe(Date.UTC(2024, 0, 1, 0, 0, 1, 500));
    expect(eventTimeOf('1700000000000')).toBeUndefined();
    expect(eventTimeOf('yesterday')).toBeUndefined();
    expect(eventTimeOf(-1)).toBeUndefined();
    expect(eventTimeOf(Number.NaN)).toBeUndefined();
    expect(eventTimeOf(null)).toBeUndefined();
  });

  it('parses durations with one unit, or whole milliseconds', () => {
    expect(parseDurationMs('1m')).toBe(60_000);
    expect(parseDurationMs('30s')).toBe(30_000);
    expect(parseDurationMs('1.5s')).toBe(1500);
    expect(parseDurationMs('250ms')).toBe(250);
    expect(parseDurationMs('2h')).toBe(7_200_000);
    expect(parseDurationMs('1d')).toBe(86_400_000);
    expect(parseDurationMs(500)).toBe(500);
    for (const bad of ['1 minute', '1m30s', '-1s', '0.5ms', '', 'm', 1.5, -1, null]) expect(parseDurationMs(bad)).toBeUndefined();
    expect(formatDuration(60_000)).toBe('1m');
    expect(formatDuration(90_000)).toBe('90s');
    expect(formatDuration(250)).toBe('250ms');
  });
});
