import { assert } from '../errors.js';
import type { AggregateName } from './config.js';

/**
 * One window's aggregate of a numeric field: count, min, max, sum, and for p95 the largest
 * values seen, in a bounded min-heap.
 *
 * p95 is the nearest-rank percentile: the value at rank ⌈0.95·n⌉ of the n values in ascending
 * order, which is the k-th largest with k = n − ⌈0.95·n⌉ + 1 (about n/20 + 1). Keeping the
 * MAX_P95_VALUES largest values is exact as long as k ≤ MAX_P95_VALUES, that is for windows of up
 * to 19,999 values (a reading every 3 ms for a minute). Past that, p95 is reported as null (and
 * counted), never as a guess.
 */

/** Values kept for p95 per window: 8 KiB, and an exact p95 for windows of up to 19,999 values. */
export const MAX_P95_VALUES = 1000;
/** The largest window p95 is exact for with MAX_P95_VALUES kept. */
export const P95_EXACT_MAX_COUNT = maxExactCount(MAX_P95_VALUES);

/** The emitted aggregate: the names asked for, p95 null when not exact (see above). */
export type AggregateResult = Partial<Record<AggregateName, number | null>>;

export class Aggregate {
  count = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  sum = 0;
  /** Min-heap of the largest values, or null when p95 is not asked for. */
  private readonly top: number[] | null;

  constructor(withP95: boolean) {
    this.top = withP95 ? [] : null;
  }

  add(value: number): void {
    assert(Number.isFinite(value), `aggregate of a non-finite value ${value}`);
    this.count++;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.sum += value;
    const top = this.top;
    if (top === null) return;
    if (top.length < MAX_P95_VALUES) heapPush(top, value);
    else if (value > top[0]!) heapReplaceMin(top, value);
  }

  /** The k-th largest value for the nearest-rank p95, or null when it was not kept. */
  p95(): number | null {
    if (this.top === null || this.count === 0) return null;
    const k = p95RankFromTop(this.count);
    if (k > this.top.length) return null;
    const descending = [...this.top].sort((a, b) => b - a);
    return descending[k - 1]!;
  }

  result(names: readonly AggregateName[]): AggregateResult {
    const out: AggregateResult = {};
    for (const name of names) {
      if (name === 'count') out.count = this.count;
      else if (name === 'min') out.min = this.min;
      else if (name === 'max') out.max = this.max;
      else if (name === 'mean') out.mean = this.sum / this.count;
      else out.p95 = this.p95();
    }
    return out;
  }

  /** Bytes of the encoded form (for one transaction's byte budget). */
  get encodedBytes(): number {
    return 8 * (5 + (this.top?.length ?? 0));
  }

  /** [flags, count, min, max, sum, ...top] as little-endian float64: exact, and no JSON parse on load. */
  encode(): Buffer {
    const top = this.top ?? [];
    const buf = Buffer.allocUnsafe(8 * (5 + top.length));
    buf.writeDoubleLE(this.top === null ? 0 : 1, 0);
    buf.writeDoubleLE(this.count, 8);
    buf.writeDoubleLE(this.min, 16);
    buf.writeDoubleLE(this.max, 24);
    buf.writeDoubleLE(this.sum, 32);
    // The heap array is stored as is: its order is a valid heap again when read back.
    top.forEach((v, i) => buf.writeDoubleLE(v, 40 + 8 * i));
    return buf;
  }

  static decode(buf: Buffer): Aggregate {
    assert(buf.length >= 40 && buf.length % 8 === 0 && buf.length <= 8 * (5 + MAX_P95_VALUES), `window state of ${buf.length} bytes`);
    const withP95 = buf.readDoubleLE(0) === 1;
    const agg = new Aggregate(withP95);
    agg.count = buf.readDoubleLE(8);
    agg.min = buf.readDoubleLE(16);
    agg.max = buf.readDoubleLE(24);
    agg.sum = buf.readDoubleLE(32);
    assert(Number.isSafeInteger(agg.count) && agg.count > 0, `window state with count ${agg.count}`);
    for (let at = 40; at < buf.length; at += 8) agg.top!.push(buf.readDoubleLE(at));
    assert(withP95 || buf.length === 40, 'window state holds values without p95');
    return agg;
  }
}

/** k such that the nearest-rank p95 of n values is the k-th largest; integer maths (0.95·n in floats can land above an integer). */
export function p95RankFromTop(n: number): number {
  const rank = Math.floor((95 * n + 99) / 100);
  return n - rank + 1;
}

/** The largest n for which the nearest-rank p95 is among the `kept` largest values. */
function maxExactCount(kept: number): number {
  let n = kept;
  while (p95RankFromTop(n + 1) <= kept) n++;
  return n;
}

function heapPush(heap: number[], v: number): void {
  heap.push(v);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]! <= v) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = v;
}

function heapReplaceMin(heap: number[], v: number): void {
  const n = heap.length;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && heap[r]! < heap[l]! ? r : l;
    if (heap[c]! >= v) break;
    heap[i] = heap[c]!;
    i = c;
  }
  heap[i] = v;
}
