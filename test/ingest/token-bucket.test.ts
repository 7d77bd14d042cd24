import { describe, expect, it } from 'vitest';
import { newBucket, takeToken } from '../../src/ingest/token-bucket.js';

describe('token bucket', () => {
  it('lets a burst pass at once, then spaces readings at the rate', () => {
    const bucket = newBucket(3, 0);
    expect([1, 2, 3].map(() => takeToken(bucket, 0, 10, 3))).toEqual([0, 0, 0]);
    // 10/s: each further reading waits one more 100 ms slot, in order.
    expect(takeToken(bucket, 0, 10, 3)).toBe(100);
    expect(takeToken(bucket, 0, 10, 3)).toBe(200);
  });

  it('refills with time, never above the burst', () => {
    const bucket = newBucket(2, 0);
    takeToken(bucket, 0, 10, 2);
    takeToken(bucket, 0, 10, 2);
    expect(takeToken(bucket, 100, 10, 2)).toBe(0); // one token earned in 100 ms
    expect(takeToken(bucket, 100_000, 10, 2)).toBe(0);
    expect(takeToken(bucket, 100_000, 10, 2)).toBe(0);
    expect(takeToken(bucket, 100_000, 10, 2)).toBe(100); // the long pause earned only the burst
  });

  it('keeps the long-run rate exact for a sender far above it', () => {
    const bucket = newBucket(5, 0);
    let lastWaitMs = 0;
    for (let i = 0; i < 1005; i++) lastWaitMs = takeToken(bucket, 0, 100, 5);
    // 1,005 readings at 100/s with a burst of 5: the last may pass at 10 s.
    expect(lastWaitMs).toBe(10_000);
  });

  it('ignores a clock that steps backwards', () => {
    const bucket = newBucket(1, 1000);
    takeToken(bucket, 1000, 1, 1);
    expect(takeToken(bucket, 0, 1, 1)).toBe(1000);
  });
});
