/**
 * Window math (pure). Windows are aligned to the epoch: a window of `size` starts at every
 * multiple of `advance` and covers [start, start + size). Tumbling windows have advance = size,
 * so each record falls in exactly one; hopping windows overlap, and a record falls in
 * ⌈size / advance⌉ of them (or one fewer when advance does not divide size).
 *
 * Event time moves per input partition (stream time, as Kafka Streams): it is the largest event
 * time seen in that partition. A window closes, and is emitted once, when stream time reaches
 * end + grace; a record arriving for a window that has closed is late: counted and dropped.
 */

export interface WindowSpec {
  readonly sizeMs: number;
  readonly advanceMs: number;
  readonly graceMs: number;
}

/** Starts of the windows holding event time `t` (ms ≥ 0), ascending. */
export function windowStartsFor(t: number, spec: WindowSpec): number[] {
  const last = Math.floor(t / spec.advanceMs) * spec.advanceMs;
  const starts: number[] = [];
  for (let start = last; start > t - spec.sizeMs && start >= 0; start -= spec.advanceMs) starts.push(start);
  return starts.reverse();
}

/** Whether the window starting at `start` has closed once stream time is `streamTimeMs`. */
export function isClosed(start: number, streamTimeMs: number, spec: WindowSpec): boolean {
  return start + spec.sizeMs + spec.graceMs <= streamTimeMs;
}

/** The stream time at which the window starting at `start` closes. */
export function closesAt(start: number, spec: WindowSpec): number {
  return start + spec.sizeMs + spec.graceMs;
}

/**
 * An event time from a payload field: ms since the epoch as a number, or an ISO 8601 string.
 * Undefined when it is neither, or before the epoch.
 */
export function eventTimeOf(value: unknown): number | undefined {
  let ms: number;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value)) ms = Date.parse(value);
  else return undefined;
  return Number.isFinite(ms) && ms >= 0 && ms <= 8.64e15 ? Math.floor(ms) : undefined;
}
