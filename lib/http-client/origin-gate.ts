import type { Cancellation } from '../core/cancellation.js';
import type { Clock } from '../core/clock.js';
import type { RateLimiter, RateLimiterSnapshot, RateLimitRefusal } from '../core/rate-limiter.js';

/**
 * Why a request may not go before its deadline: the origin's pause or the rate limit would hold it
 * `refusedForMs` longer.
 * @internal
 */
export type GateRefusal = RateLimitRefusal;

/**
 * When a request to one origin may be sent: the client's rate limit (in-process, or shared by every
 * instance with `rateLimit.shared`) and a pause set by the origin's `Retry-After` on a 429 or 503,
 * both kept by one {@link RateLimiter}. Shared by every call of one client to one origin.
 * @internal
 */
export class OriginGate {
  constructor(
    private readonly clock: Clock,
    private readonly limiter: RateLimiter,
    /** Whether `limiter` is an in-process one without a rate: only a `Retry-After` pause ever holds a request. */
    private readonly unlimited: boolean,
  ) {}

  /** Until when the origin asked to be left alone (clock ms), or `undefined` when it did not. */
  get pausedUntil(): number | undefined {
    return this.limiter.pausedUntil;
  }

  /** The pause left and the rate limit's tokens now (the resilience console's view of the origin). */
  snapshot(): RateLimiterSnapshot {
    return this.limiter.snapshot();
  }

  /** Pauses every request until `until` (clock ms); with a shared rate limit, on every instance. */
  halt(until: number): void {
    this.limiter.halt(until);
  }

  /**
   * Whether a request may go now without taking anything: no rate limit and no pause (checked
   * without a reservation, so the common call costs one clock read here).
   */
  opensNow(): boolean {
    return this.unlimited && this.limiter.pausedUntil === undefined;
  }

  /**
   * Waits (on the clock) until one request may go, then calls `go()`; calls `go(refusal)` as soon
   * as the wait is known to pass `deadline`. A `token` aborted while waiting hands the reservation
   * back and ends the wait (the caller sees the abort).
   */
  wait(deadline: number, token: Cancellation, go: (refusal?: GateRefusal) => void): void {
    if (this.opensNow()) {
      go();
      return;
    }
    this.limiter.acquire(deadline, (reservation) => {
      if ('refusedForMs' in reservation) {
        go(reservation);
        return;
      }
      if (reservation.waitMs <= 0 || token.aborted) {
        if (token.aborted) reservation.release();
        go();
        return;
      }
      const { clock } = this;
      const unsubscribe = token.onAbort(() => {
        clock.clearTimeout(timer);
        reservation.release();
        go();
      });
      const timer = clock.setTimeout(() => {
        unsubscribe();
        go();
      }, reservation.waitMs);
    });
  }
}
