import { describe, expect, it } from 'vitest';
import { applyRetentionHold, recordsToDelete } from '../../src/log/retention.js';

const rec = (appendTime: number, bytes = 10) => ({ appendTime, bytes });

describe('recordsToDelete', () => {
  it('deletes nothing without limits', () => {
    expect(recordsToDelete([rec(0), rec(1)], 20, { retentionMs: -1, retentionBytes: -1 }, 1e12)).toBe(0);
  });

  it('deletes the prefix older than retentionMs and stops at the first young record', () => {
    const now = 10_000;
    const c = [rec(1000), rec(2000), rec(9500), rec(1000)];
    expect(recordsToDelete(c, 40, { retentionMs: 5000, retentionBytes: -1 }, now)).toBe(2);
  });

  it('deletes the oldest records until the partition fits retentionBytes', () => {
    const c = [rec(0, 100), rec(0, 100), rec(0, 100), rec(0, 100)];
    expect(recordsToDelete(c, 400, { retentionMs: -1, retentionBytes: 250 }, 0)).toBe(2);
    expect(recordsToDelete(c, 400, { retentionMs: -1, retentionBytes: 400 }, 0)).toBe(0);
    expect(recordsToDelete(c, 400, { retentionMs: -1, retentionBytes: 0 }, 0)).toBe(4);
  });

  it('applies whichever limit deletes more', () => {
    const c = [rec(0, 100), rec(0, 100), rec(9999, 100), rec(9999, 100)];
    expect(recordsToDelete(c, 400, { retentionMs: 1000, retentionBytes: 150 }, 10_000)).toBe(3);
  });
});

describe('applyRetentionHold', () => {
  it('changes nothing without a hold, or when the hold is past what retention deletes', () => {
    expect(applyRetentionHold(10, 5, undefined, false)).toEqual({ toDelete: 5, droppedHeld: 0 });
    expect(applyRetentionHold(10, 5, 15, false)).toEqual({ toDelete: 5, droppedHeld: 0 });
  });

  it('keeps every record from the held offset on', () => {
    expect(applyRetentionHold(10, 5, 12, false)).toEqual({ toDelete: 2, droppedHeld: 0 });
    expect(applyRetentionHold(10, 5, 0, false)).toEqual({ toDelete: 0, droppedHeld: 0 });
  });

  it('under the drop policy deletes them anyway and counts exactly the held ones', () => {
    expect(applyRetentionHold(10, 5, 12, true)).toEqual({ toDelete: 5, droppedHeld: 3 });
    expect(applyRetentionHold(10, 5, 3, true)).toEqual({ toDelete: 5, droppedHeld: 5 });
  });
});
