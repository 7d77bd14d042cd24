/**
 * Durations in stream processor config: "500ms", "30s", "1m", "2h", "1d", or a whole number of
 * milliseconds. One unit per value keeps them unambiguous; windows and grace are whole ms.
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** What a duration may look like, for refusal messages. */
export const DURATION_RULE = 'a duration like "500ms", "30s", "1m", "2h", "1d" or a whole number of milliseconds';

/** Milliseconds of `value`, or undefined when it is not a duration (or not whole milliseconds). */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = DURATION.exec(value.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  // "1.5s" is 1500 ms; "0.3ms" is not a whole millisecond.
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** A short human form of `ms` for logs and messages ("1m", "90s", "250ms"). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
