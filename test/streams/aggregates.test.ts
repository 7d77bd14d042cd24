import { describe, expect, it } from 'vitest';
import { Aggregate, MAX_P95_VALUES, P95_EXACT_MAX_COUNT, p95RankFromTop } from '../../src/streams/aggregates.js';

/** The nearest-rank p95 by sorting everything: the reference the bounded structure must match. */
function referenceP95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((95 * values.length) / 100) - 1]!;
}

/** A small seeded generator, so a failure can be rerun. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('aggregates', () => {
  it('computes count, min, max, mean and nearest-rank p95 exactly', () => {
    const agg = new Aggregate(true);
    for (const v of [7, 3, 20, 1, 15, 11, 2, 19, 4, 18, 5, 17, 6, 16, 8, 14, 9, 13, 10, 12]) agg.add(v);
    expect(agg.result(['count', 'min', 'max', 'mean', 'p95'])).toEqual({ count: 20, min: 1, max: 20, mean: 10.5, p95: 19 });
    const one = new Aggregate(true);
    one.add(-3.5);
    expect(one.result(['count', 'min', 'max', 'mean', 'p95'])).toEqual({ count: 1, min: -3.5, max: -3.5, mean: -3.5, p95: -3.5 });
  });

  it('returns only the aggregates asked for, and keeps no values without p95', () => {
    const agg = new Aggregate(false);
    for (let i = 0; i < 5000; i++) agg.add(i);
    expect(agg.result(['count', 'max'])).toEqual({ count: 5000, max: 4999 });
    expect(agg.encode().length).toBe(40);
    expect(agg.p95()).toBeNull();
  });

  it('p95 from the bounded largest values equals the sorted reference up to its exact limit, then is null', () => {
    expect(p95RankFromTop(20)).toBe(2);
    expect(p95RankFromTop(100)).toBe(6);
    expect(p95RankFromTop(P95_EXACT_MAX_COUNT)).toBeLessThanOrEqual(MAX_P95_VALUES);
    expect(p95RankFromTop(P95_EXACT_MAX_COUNT + 1)).toBe(MAX_P95_VALUES + 1);
    const random = lcg(7);
    for (const n of [1, 2, 19, 20, 21, 100, 999, 1000, 1001, 5000, P95_EXACT_MAX_COUNT]) {
      const values = Array.from({ length: n }, () => Math.round(random() * 10_000) / 100);
      const agg = new Aggregate(true);
      values.forEach((v) => agg.add(v));
      expect(agg.p95(), `n=${n}`).toBe(referenceP95(values));
    }
    const past = new Aggregate(true);
    for (let i = 0; i <= P95_EXACT_MAX_COUNT; i++) past.add(i);
    expect(past.p95()).toBeNull();
    expect(past.result(['count', 'p95'])).toEqual({ count: P95_EXACT_MAX_COUNT + 1, p95: null });
  });

  it('encodes and decodes to the same aggregate, and goes on growing after a decode', () => {
    const random = lcg(11);
    const values = Array.from({ length: 1500 }, () => random() * 100 - 50);
    const agg = new Aggregate(true);
    values.slice(0, 1200).forEach((v) => agg.add(v));
    const copy = Aggregate.decode(agg.encode());
    values.slice(1200).forEach((v) => {
      agg.add(v);
      copy.add(v);
    });
    expect(copy.result(['count', 'min', 'max', 'mean', 'p95'])).toEqual(agg.result(['count', 'min', 'max', 'mean', 'p95']));
    expect(copy.p95()).toBe(referenceP95(values));
    expect(agg.encode().length).toBe(8 * (5 + MAX_P95_VALUES));
  });
});
