import type { Cancellation } from '../core/cancellation.js';
import type { Clock } from '../core/clock.js';
import { once } from '../core/step.js';
import type { RateLimitOptions } from './http-client.options.js';

/**
 * Why a request may not go before its deadline: the origin's pause or the rate limit would hold it
 * `refusedForMs` longer.
 * @internal
 */
export interface GateRefusal {
  readonly refusedForMs: number;
  readonly reason: 'halted' | 'rate_limited';
}

/**
 * When a request to one origin may be sent: a token bucket (the client's `rateLimit`) and a pause
 * set by the origin's `Retry-After` on a 429 or 503. Shared by every call of one client to one
 * origin. Reservations are taken in call order: a request that must wait holds its token (the
 * bucket goes below zero), so later requests wait behind it instead of overtaking.
 * @internal
 */
export class OriginGate {
  private readonly ratePerMs: number;
  private readonly burst: number;
  private tokens: number;
  private refilledAt: number;
  private haltedUntil = -Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly rateLimit: RateLimitOptions | undefined,
  ) {
    this.ratePerMs = rateLimit ? rateLimit.requestsPerSecond / 1000 : Infinity;
    this.burst = rateLimit ? Math.max(1, rateLimit.burst ?? Math.floor(rateLimit.requestsPerSecond)) : Infinity;
    this.tokens = this.burst;
    this.refilledAt = clock.now();
  }

  /** Until when the origin asked to be left alone (clock ms), or `undefined` when it did not. */
  get pausedUntil(): number | undefined {
    return this.haltedUntil > this.clock.now() ? this.haltedUntil : undefined;
  }

  /** The pause left and the rate limit's tokens now (the resilience console's view of the origin). */
  snapshot(): { readonly pausedForMs?: number; readonly rateLimit?: { readonly tokens: number; readonly burst: number; readonly requestsPerSecond: number } } {
    const now = this.clock.now();
    const pausedForMs = this.haltedUntil > now ? this.haltedUntil - now : undefined;
    if (this.rateLimit === undefined) return pausedForMs === undefined ? {} : { pausedForMs };
    this.refill(now);
    const rateLimit = { tokens: this.tokens, burst: this.burst, requestsPerSecond: this.rateLimit.requestsPerSecond };
    return pausedForMs === undefined ? { rateLimit } : { pausedForMs, rateLimit };
  }

  /** Pauses every request until `until` (clock ms); a later pause extends it, an earlier one is ignored. */
  halt(until: number): void {
    if (until > this.haltedUntil) this.haltedUntil = until;
  }

  /**
   * Reserves the right to send one request: the wait in ms before it may go (0 = now), or a
   * refusal when the wait would end at or after `deadline` (nothing is reserved then).
   */
  reserve(deadline: number): { readonly waitMs: number; readonly release: () => void } | GateRefusal {
    const now = this.clock.now();
    const haltWait = Math.max(0, this.haltedUntil - now);
    if (haltWait > 0 && now + haltWait >= deadline) return { refusedForMs: haltWait, reason: 'halted' };
    if (this.rateLimit === undefined) return { waitMs: haltWait, release: noop };
    this.refill(now);
    // the token is taken at the moment the request may go: after the pause, if there is one
    const available = Math.min(this.burst, this.tokens + haltWait * this.ratePerMs);
    const tokenWait = available >= 1 ? 0 : (1 - available) / this.ratePerMs;
    const waitMs = Math.ceil(haltWait + tokenWait);
    if (waitMs > 0 && now + waitMs >= deadline) return { refusedForMs: waitMs, reason: haltWait > 0 ? 'halted' : 'rate_limited' };
    this.tokens -= 1;
    // a request that gives up while waiting hands its token back
    return {
      waitMs,
      release: once(() => {
        this.tokens = Math.min(this.burst, this.tokens + 1);
      }),
    };
  }

  /**
   * Waits (on the clock) until one request may go, then calls `go()`; calls `go(refusal)` at once
   * when the wait would pass `deadline`. A `token` aborted while waiting hands the reservation back
   * and ends the wait (the caller sees the abort).
   */
  wait(deadline: number, token: Cancellation, go: (refusal?: GateRefusal) => void): void {
    const reservation = this.reserve(deadline);
    if ('refusedForMs' in reservation) {
      go(reservation);
      return;
    }
    if (reservation.waitMs <= 0) {
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
  }

  private refill(now: number): void {
    const elapsed = now - this.refilledAt;
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + elapsed * this.ratePerMs);
    this.refilledAt = now;
  }
}

function noop(): void {}
