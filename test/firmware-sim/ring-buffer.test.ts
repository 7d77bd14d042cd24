import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../firmware-sim/prng.js';
import { RingBuffer } from '../../firmware-sim/ring-buffer.js';

describe('RingBuffer', () => {
  it('is FIFO and drops the oldest when full', () => {
    const ring = new RingBuffer<number>(3);
    expect([ring.push(1), ring.push(2), ring.push(3)]).toEqual([undefined, undefined, undefined]);
    expect(ring.push(4)).toBe(1);
    expect([ring.shift(), ring.shift(), ring.shift(), ring.shift()]).toEqual([2, 3, 4, undefined]);
    expect(ring.length).toBe(0);
  });

  it('puts requeued entries back in front, refusing them when full', () => {
    const ring = new RingBuffer<number>(4);
    ring.push(5);
    ring.push(6);
    expect(ring.unshift(4)).toBeUndefined();
    expect(ring.unshift(3)).toBeUndefined();
    expect(ring.unshift(2)).toBe(2);
    expect(Array.from({ length: ring.length }, (_, i) => ring.at(i))).toEqual([3, 4, 5, 6]);
    expect(ring.push(7)).toBe(3);
    expect([ring.shift(), ring.shift(), ring.shift(), ring.shift()]).toEqual([4, 5, 6, 7]);
  });

  it('keeps order across many wraps against a plain array model', () => {
    const random = mulberry32(77);
    const ring = new RingBuffer<number>(7);
    const model: number[] = [];
    let next = 0;
    for (let step = 0; step < 10_000; step++) {
      const r = random();
      if (r < 0.5) {
        const evicted = ring.push(next);
        model.push(next++);
        expect(evicted).toBe(model.length > 7 ? model.shift() : undefined);
      } else if (r < 0.6) {
        const value = -step;
        const refused = ring.unshift(value);
        if (model.length < 7) model.unshift(value);
        expect(refused).toBe(model.length === 7 && model[0] !== value ? value : undefined);
      } else {
        expect(ring.shift()).toBe(model.shift());
      }
      expect(ring.length).toBe(model.length);
    }
  });
});
