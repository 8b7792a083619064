/**
 * The only source of randomness in the library (jitter, sampling). Swap in {@link seededRandom}
 * to make backoff sequences reproducible.
 * @publicApi
 */
export interface Random {
  /** A number in `[0, 1)`. */
  next(): number;
}

/**
 * `Math.random()` behind the {@link Random} interface.
 * @publicApi
 */
export const systemRandom: Random = { next: () => Math.random() };

/**
 * A deterministic generator (mulberry32): the same seed always yields the same sequence.
 * @example
 * const random = seededRandom(42);
 * random.next(); // always the same first value for seed 42
 * @publicApi
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return {
    next() {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}
