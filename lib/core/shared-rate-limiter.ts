// A rate limit shared by every instance through the shared state backend (GCRA on the backend's
// clock, one round trip per permit), with the in-process bucket deciding during an outage.
import { type LocalRateLimiter, type RateLimiter, type RateLimitPermit, type RateLimiterSnapshot, type RateLimitRefusal, type SharedRateLimitBackend } from './rate-limiter.js';
import { UNAVAILABLE, type SharedStateGuard } from './shared-policy-state.js';

/**
 * A rate limit shared by every instance: each permit is one call of the backend, bounded by the
 * backend's `maxWait` (`SharedStateGuard`). While the backend is down or slow, the in-process
 * `fallback` bucket of this instance decides. A pause (`halt`) is applied here at once and sent to
 * the backend for the others; a pause learnt from the backend is applied here too.
 * @publicApi
 */
export class SharedRateLimiter implements RateLimiter {
  constructor(
    private readonly key: string,
    private readonly local: LocalRateLimiter,
    private readonly backend: SharedRateLimitBackend,
    private readonly guard: SharedStateGuard,
  ) {}

  get pausedUntil(): number | undefined {
    return this.local.pausedUntil;
  }

  snapshot(): RateLimiterSnapshot {
    // the fleet's bucket lives on the backend: only this instance's view of the pause is known here
    const { pausedForMs } = this.local.snapshot();
    return pausedForMs === undefined ? {} : { pausedForMs };
  }

  halt(until: number): void {
    this.local.halt(until);
    const pauseMs = Math.ceil(until - this.guard.clock.now());
    if (pauseMs > 0 && this.guard.available) void this.guard.call(this.key, () => this.backend.pause(pauseMs));
  }

  acquire(deadline: number, done: (outcome: RateLimitPermit | RateLimitRefusal) => void): void {
    if (!this.guard.available) {
      done(this.local.reserve(deadline));
      return;
    }
    const { clock } = this.guard;
    const askedAt = clock.now();
    void this.guard.call(this.key, () => this.backend.acquire(deadline - askedAt)).then((answer) => {
      if (answer === UNAVAILABLE) {
        done(this.local.reserve(deadline));
        return;
      }
      const now = clock.now();
      if (answer.pausedMs > 0) this.local.halt(now + answer.pausedMs);
      if (!answer.granted) {
        done({ refusedForMs: Math.max(1, Math.ceil(answer.waitMs)), reason: answer.pausedMs > 0 && answer.pausedMs >= answer.waitMs ? 'halted' : 'rate_limited' });
        return;
      }
      // the wait counts from the backend's decision; the answer's way back only makes it stricter.
      // A pause known here only (the backend did not hear of it yet) is waited out as well.
      const waitMs = Math.max(Math.ceil(answer.waitMs), Math.ceil((this.local.pausedUntil ?? now) - now));
      if (waitMs > 0 && now + waitMs >= deadline) {
        done({ refusedForMs: waitMs, reason: waitMs > answer.waitMs ? 'halted' : 'rate_limited' });
        return;
      }
      done({ waitMs, release: noop });
    });
  }
}

function noop(): void {}
