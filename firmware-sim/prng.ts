/** A seeded pseudo-random source of floats in [0, 1). */
export type Random = () => number;

/**
 * mulberry32: a 32-bit state PRNG, small enough to give every simulated device its own
 * (4 bytes of state per device at 5,000 devices) and good enough for simulated sensor noise.
 */
export function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derives an independent 32-bit seed from a run seed and a few integers (device index, purpose),
 * so device 7's readings do not depend on how many devices run or on network timing.
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  // splitmix32-style avalanche of each part into the state.
  let h = seed >>> 0;
  for (const part of [...parts, parts.length]) {
    h = (h ^ (part >>> 0)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/** A standard normal sample (Box-Muller); uses two draws. */
export function gaussian(random: Random): number {
  const u = 1 - random(); // (0, 1], so log() is finite
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Uniform in [min, max). */
export function uniform(random: Random, min: number, max: number): number {
  return min + (max - min) * random();
}
