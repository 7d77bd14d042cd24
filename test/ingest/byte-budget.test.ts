import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../src/ingest/byte-budget.js';

describe('byte budget', () => {
  it('grants until the limit, then makes takers wait in FIFO order', async () => {
    const budget = new ByteBudget(100);
    expect(budget.tryAcquire(60)).toBe(true);
    expect(budget.tryAcquire(50)).toBe(false);
    const order: string[] = [];
    const a = budget.acquire(50).then(() => order.push('a'));
    const b = budget.acquire(10).then(() => order.push('b'));
    // b would fit now, but it may not overtake a: a waiting taker blocks later ones.
    expect(budget.tryAcquire(10)).toBe(false);
    budget.release(60);
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
    expect(budget.used).toBe(60);
  });

  it('lets one taker larger than the whole budget pass when nothing else is held', async () => {
    const budget = new ByteBudget(100);
    expect(budget.tryAcquire(10)).toBe(true);
    let granted = false;
    const big = budget.acquire(500).then(() => (granted = true));
    await Promise.resolve();
    expect(granted).toBe(false);
    budget.release(10);
    await big;
    expect(budget.used).toBe(500);
  });
});
