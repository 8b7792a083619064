// The outcome windows of the circuit breaker, one per strategy: `consecutive` (failures in a row),
// `count` (the last N calls, in a ring of bits) and `time` (calls in the last window, in buckets).
// Each records outcomes and says when the breaker should open.
import type { BreakerOpenReason, ResolvedCircuitBreakerOptions, SlowCallOptions } from './options.js';

/** Calls judged by a window, and how many of them failed or were slow. @internal */
export interface CallStats {
  calls: number;
  failures: number;
  slow: number;
}

/** Where a breaker keeps the outcomes it judges: one implementation per strategy. @internal */
export interface OutcomeWindow {
  record(failure: boolean, slow: boolean, now: number): void;
  stats(now: number): CallStats;
  /** The reason to open, judged after each record. */
  verdict(now: number, slowCall: SlowCallOptions | undefined): BreakerOpenReason | undefined;
  reset(): void;
}

function rateVerdict(stats: CallStats, minimum: number, failureRatio: number, slowCall: SlowCallOptions | undefined): BreakerOpenReason | undefined {
  if (stats.calls === 0 || stats.calls < minimum) return undefined;
  if (stats.failures / stats.calls >= failureRatio) return 'failure_rate';
  if (slowCall && stats.slow / stats.calls >= slowCall.rateThreshold) return 'slow_call_rate';
  return undefined;
}

class ConsecutiveWindow implements OutcomeWindow {
  private failuresInRow = 0;
  private slowInRow = 0;
  private totals: CallStats = { calls: 0, failures: 0, slow: 0 };

  constructor(private readonly threshold: number) {}

  record(failure: boolean, slow: boolean): void {
    this.failuresInRow = failure ? this.failuresInRow + 1 : 0;
    this.slowInRow = slow ? this.slowInRow + 1 : 0;
    this.totals.calls++;
    if (failure) this.totals.failures++;
    if (slow) this.totals.slow++;
  }

  stats(): CallStats {
    return { ...this.totals };
  }

  verdict(_now: number, slowCall: SlowCallOptions | undefined): BreakerOpenReason | undefined {
    if (this.failuresInRow >= this.threshold) return 'consecutive';
    if (slowCall && this.slowInRow >= this.threshold) return 'slow_call_rate';
    return undefined;
  }

  reset(): void {
    this.failuresInRow = 0;
    this.slowInRow = 0;
    this.totals = { calls: 0, failures: 0, slow: 0 };
  }
}

const FAILURE_BIT = 1;
const SLOW_BIT = 2;

class CountWindow implements OutcomeWindow {
  private readonly ring: Uint8Array;
  private next = 0;
  private totals: CallStats = { calls: 0, failures: 0, slow: 0 };

  constructor(
    size: number,
    private readonly minimumCalls: number,
    private readonly failureRatio: number,
  ) {
    this.ring = new Uint8Array(size);
  }

  record(failure: boolean, slow: boolean): void {
    if (this.totals.calls === this.ring.length) {
      const evicted = this.ring[this.next]!;
      if (evicted & FAILURE_BIT) this.totals.failures--;
      if (evicted & SLOW_BIT) this.totals.slow--;
    } else {
      this.totals.calls++;
    }
    this.ring[this.next] = (failure ? FAILURE_BIT : 0) | (slow ? SLOW_BIT : 0);
    this.next = (this.next + 1) % this.ring.length;
    if (failure) this.totals.failures++;
    if (slow) this.totals.slow++;
  }

  stats(): CallStats {
    return { ...this.totals };
  }

  verdict(_now: number, slowCall: SlowCallOptions | undefined): BreakerOpenReason | undefined {
    return rateVerdict(this.totals, Math.min(this.minimumCalls, this.ring.length), this.failureRatio, slowCall);
  }

  reset(): void {
    this.ring.fill(0);
    this.next = 0;
    this.totals = { calls: 0, failures: 0, slow: 0 };
  }
}

const TIME_BUCKETS = 10;

class TimeWindow implements OutcomeWindow {
  private readonly bucketMs: number;
  private readonly buckets: Array<CallStats & { epoch: number }>;

  constructor(
    window: number,
    private readonly minimumThroughput: number,
    private readonly failureRatio: number,
  ) {
    this.bucketMs = window / TIME_BUCKETS;
    this.buckets = Array.from({ length: TIME_BUCKETS }, () => ({ epoch: -Infinity, calls: 0, failures: 0, slow: 0 }));
  }

  record(failure: boolean, slow: boolean, now: number): void {
    const epoch = Math.floor(now / this.bucketMs);
    const bucket = this.buckets[((epoch % TIME_BUCKETS) + TIME_BUCKETS) % TIME_BUCKETS]!;
    if (bucket.epoch !== epoch) Object.assign(bucket, { epoch, calls: 0, failures: 0, slow: 0 });
    bucket.calls++;
    if (failure) bucket.failures++;
    if (slow) bucket.slow++;
  }

  stats(now: number): CallStats {
    const epoch = Math.floor(now / this.bucketMs);
    const stats = { calls: 0, failures: 0, slow: 0 };
    for (const bucket of this.buckets) {
      if (bucket.epoch <= epoch - TIME_BUCKETS) continue;
      stats.calls += bucket.calls;
      stats.failures += bucket.failures;
      stats.slow += bucket.slow;
    }
    return stats;
  }

  verdict(now: number, slowCall: SlowCallOptions | undefined): BreakerOpenReason | undefined {
    return rateVerdict(this.stats(now), this.minimumThroughput, this.failureRatio, slowCall);
  }

  reset(): void {
    for (const bucket of this.buckets) Object.assign(bucket, { epoch: -Infinity, calls: 0, failures: 0, slow: 0 });
  }
}

/** The window of a breaker's strategy. @internal */
export function createWindow(options: ResolvedCircuitBreakerOptions): OutcomeWindow {
  const { strategy } = options;
  if (strategy.type === 'consecutive') return new ConsecutiveWindow(strategy.threshold);
  if (strategy.type === 'count') return new CountWindow(strategy.size, strategy.minimumCalls, strategy.failureRatio);
  return new TimeWindow(strategy.window, strategy.minimumThroughput, strategy.failureRatio);
}
