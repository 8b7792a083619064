import type { Clock } from './clock.js';
import type { RetryBudgetOptions } from './options.js';

const BUCKETS = 10;

interface Bucket {
  epoch: number;
  calls: number;
  retries: number;
}

/**
 * Finagle-style retry budget shared by every caller of one policy key. Over a sliding window
 * (ten time buckets, so memory stays constant), retries are allowed while
 * `retries < ratio × calls + minRetriesPerSecond × window / 1000`. Under a fully failing dependency
 * this caps total calls near `(1 + ratio) × offered load + floor`, which is what stops retry storms.
 * @publicApi
 */
export class RetryBudget {
  private readonly buckets: Bucket[];
  private readonly bucketMs: number;
  private readonly floor: number;

  constructor(
    private readonly options: Required<RetryBudgetOptions>,
    private readonly clock: Clock,
  ) {
    this.bucketMs = options.window / BUCKETS;
    this.floor = (options.minRetriesPerSecond * options.window) / 1000;
    this.buckets = Array.from({ length: BUCKETS }, () => ({ epoch: -Infinity, calls: 0, retries: 0 }));
  }

  /**
   * Records one logical call (its first attempt).
   * @param now the clock's current time, when the caller just read it
   */
  recordCall(now: number = this.clock.now()): void {
    this.current(now).calls++;
  }

  /** Takes one retry from the budget; `false` means the retry must not happen. */
  tryAcquireRetry(): boolean {
    const { calls, retries } = this.totals();
    if (retries + 1 > this.options.ratio * calls + this.floor) return false;
    this.current().retries++;
    return true;
  }

  /** Calls and retries currently in the window (for health and tests). */
  totals(): { calls: number; retries: number } {
    const epoch = this.epochNow();
    let calls = 0;
    let retries = 0;
    for (const bucket of this.buckets) {
      if (bucket.epoch > epoch - BUCKETS) {
        calls += bucket.calls;
        retries += bucket.retries;
      }
    }
    return { calls, retries };
  }

  private epochNow(now: number = this.clock.now()): number {
    return Math.floor(now / this.bucketMs);
  }

  private current(now?: number): Bucket {
    const epoch = this.epochNow(now);
    const bucket = this.buckets[((epoch % BUCKETS) + BUCKETS) % BUCKETS]!;
    if (bucket.epoch !== epoch) {
      bucket.epoch = epoch;
      bucket.calls = 0;
      bucket.retries = 0;
    }
    return bucket;
  }
}
