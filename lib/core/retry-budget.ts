import type { Clock } from './clock.js';
import type { RetryBudgetWindow } from './options.js';

/** Buckets per window: calls are counted over whole buckets, so the budget gives up at most 1/20 of `ratio`. */
const BUCKETS = 20;

interface Bucket {
  epoch: number;
  calls: number;
  retries: number;
}

/**
 * What a retry budget allows now (the resilience console's budget bars).
 * @publicApi
 */
export interface RetryBudgetSnapshot {
  /** Logical calls inside the window. */
  readonly calls: number;
  /** Retries granted in the buckets overlapping the window. */
  readonly retries: number;
  /** Retries the window allows in all: `ratio × calls + minRetriesPerSecond × window / 1000`. */
  readonly allowance: number;
  /** Retries the next calls may still take now (`allowance - retries`, rounded down, at least 0). */
  readonly remaining: number;
  /** Share of calls that may be retried. */
  readonly ratio: number;
  /** Retries per second allowed regardless of traffic. */
  readonly minRetriesPerSecond: number;
  /** Length of the window, in ms. */
  readonly window: number;
}

/**
 * Finagle-style retry budget shared by every caller of one policy key. In **any** interval of
 * `window` ms, retries never exceed `ratio × calls in that interval + minRetriesPerSecond × window / 1000`;
 * memory stays constant (time buckets). Under a fully failing dependency this caps the calls of a
 * run of T ms at `(1 + ratio) × offered load + minRetriesPerSecond × window / 1000 × ⌈T / window⌉`,
 * which is what stops retry storms.
 *
 * The bound is exact, not approximate: a retry is granted only when every retry of the
 * *overlapping* buckets (a little more than the window) still fits under `ratio` × the calls of the
 * buckets *inside* the window (a little less). Retries are counted when granted, before their
 * back-off delay, so retries still waiting to run are included.
 * @publicApi
 */
export class RetryBudget {
  /** One more bucket than the window holds: the oldest straddles the window's start. */
  private readonly buckets: Bucket[];
  private readonly bucketMs: number;
  private floor: number;

  constructor(
    private options: RetryBudgetWindow,
    private readonly clock: Clock,
  ) {
    this.bucketMs = options.window / BUCKETS;
    this.floor = (options.minRetriesPerSecond * options.window) / 1000;
    this.buckets = Array.from({ length: BUCKETS + 1 }, () => ({ epoch: -Infinity, calls: 0, retries: 0 }));
  }

  /** The window, ratio and floor it decides with. */
  get settings(): RetryBudgetWindow {
    return this.options;
  }

  /**
   * Applies a new `ratio` and `minRetriesPerSecond` (an options reload) keeping the calls and
   * retries counted so far. A different `window` cannot keep them (the buckets are sized by it):
   * the registry replaces the budget then.
   */
  reconfigure(options: RetryBudgetWindow): void {
    if (options.window !== this.options.window) throw new Error('RetryBudget.reconfigure cannot change the window; create a new budget.');
    this.options = options;
    this.floor = (options.minRetriesPerSecond * options.window) / 1000;
  }

  /**
   * Records one logical call (its first attempt).
   * @param now the clock's current time, when the caller just read it
   */
  recordCall(now: number = this.clock.now()): void {
    this.current(this.epochOf(now)).calls++;
  }

  /** Takes one retry from the budget; `false` means the retry must not happen. */
  tryAcquireRetry(): boolean {
    const epoch = this.epochOf(this.clock.now());
    const { calls, retries } = this.count(epoch);
    if (retries + 1 > this.options.ratio * calls + this.floor) return false;
    this.current(epoch).retries++;
    return true;
  }

  /**
   * Calls inside the window and retries overlapping it (for health and tests): the two figures the
   * next {@link tryAcquireRetry} compares.
   */
  totals(): {
    /** Calls inside the window. */
    calls: number;
    /** Retries overlapping it. */
    retries: number;
  } {
    return this.count(this.epochOf(this.clock.now()));
  }

  /** The window's figures and what is left of it now. */
  snapshot(): RetryBudgetSnapshot {
    const { calls, retries } = this.totals();
    const { ratio, minRetriesPerSecond, window } = this.options;
    return { calls, retries, ...retryAllowance(calls, retries, ratio, this.floor), ratio, minRetriesPerSecond, window };
  }

  private count(epoch: number): { calls: number; retries: number } {
    let calls = 0;
    let retries = 0;
    for (const bucket of this.buckets) {
      const age = epoch - bucket.epoch;
      // Buckets 0…BUCKETS-1 old lie inside (now - window, now]; the one BUCKETS old straddles its start.
      if (age < BUCKETS) calls += bucket.calls;
      if (age <= BUCKETS) retries += bucket.retries;
    }
    return { calls, retries };
  }

  private epochOf(now: number): number {
    return Math.floor(now / this.bucketMs);
  }

  private current(epoch: number): Bucket {
    const slots = BUCKETS + 1;
    const bucket = this.buckets[((epoch % slots) + slots) % slots]!;
    if (bucket.epoch !== epoch) {
      bucket.epoch = epoch;
      bucket.calls = 0;
      bucket.retries = 0;
    }
    return bucket;
  }
}

/**
 * The allowance of a window and the retries left in it, by the rule of {@link RetryBudget.tryAcquireRetry}
 * (a retry is granted while `retries + 1 <= ratio × calls + floor`).
 * @internal
 */
export function retryAllowance(calls: number, retries: number, ratio: number, floor: number): { allowance: number; remaining: number } {
  const allowance = ratio * calls + floor;
  return { allowance, remaining: Math.max(0, Math.floor(allowance - retries)) };
}
