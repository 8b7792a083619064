// Outgoing rate limits: the options, the in-process token bucket (with the `Retry-After` pause of a
// dependency beside it) and the contract of the shared side (shared-rate-limiter.ts).
import type { Clock } from './clock.js';
import { isResilienceError, ResilienceConfigError, ResilienceError } from './errors.js';
import { once } from './step.js';

/**
 * The rate itself: requests per second or per minute, and the burst allowed after a quiet period.
 * @publicApi
 */
export interface RateOptions {
  /** Requests per second, retries and hedges included (> 0). Give this or `requestsPerMinute`. */
  readonly requestsPerSecond?: number;
  /** Requests per minute, retries and hedges included (> 0). Give this or `requestsPerSecond`. */
  readonly requestsPerMinute?: number;
  /**
   * Requests that may go at once after a quiet period. In any interval of `t` ms at most
   * `burst + rate × t` requests go.
   * @default the rate per second rounded down (at least 1)
   */
  readonly burst?: number;
}

/**
 * Outgoing rate limit of an HTTP client (per origin) or of a `@RateLimit()` method. A request that
 * would have to wait past its deadline for its turn fails at once (`rate_limited`).
 * @example
 * { requestsPerMinute: 600, burst: 20, shared: true }
 * @publicApi
 */
export interface RateLimitOptions extends RateOptions {
  /**
   * One limit for every instance of the application, kept on the configured `sharedState` backend
   * (`ResilienceModule.forRoot({ sharedState: new RedisPolicyState(...) })`): each permit is one
   * round trip (one Lua script on Redis' clock), and a `Retry-After` pause of the dependency
   * reaches every instance. Needs the backend, else the application refuses to start.
   * @default false
   */
  readonly shared?: boolean;
  /**
   * What each instance allows itself while the shared state is unreachable or slower than its
   * `maxWait` (with `shared: true`). The fleet then sends at most `instances × (fallback burst +
   * fallback rate × t)` in any `t` ms; give the shared rate divided by your instance count to keep
   * the fleet's total during an outage.
   * @default the shared rate and burst (each instance alone stays within the limit)
   */
  readonly fallback?: RateOptions;
}

/**
 * A rate limit with its defaults filled in.
 * @publicApi
 */
export interface ResolvedRate {
  /** Time between two requests at the steady rate, in ms (1000 / requests per second). */
  readonly intervalMs: number;
  /** Requests that may go at once. */
  readonly burst: number;
}

/**
 * Checks `options` and fills in the burst.
 * @throws ResilienceConfigError naming the option and the fix.
 * @publicApi
 */
export function resolveRate(options: RateOptions, where: string, field = 'rateLimit'): ResolvedRate {
  const { requestsPerSecond: perSecond, requestsPerMinute: perMinute, burst } = options;
  if (perSecond !== undefined && perMinute !== undefined) {
    throw new ResilienceConfigError(`${where} has both ${field}.requestsPerSecond and ${field}.requestsPerMinute. Give one of them.`);
  }
  if (perSecond === undefined && perMinute === undefined) {
    throw new ResilienceConfigError(`${where} has a ${field} without a rate. Give ${field}.requestsPerSecond or ${field}.requestsPerMinute (a number > 0).`);
  }
  const name = perSecond !== undefined ? 'requestsPerSecond' : 'requestsPerMinute';
  const value = (perSecond ?? perMinute)!;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new ResilienceConfigError(`${where} has ${field}.${name} ${String(value)}. Give a number > 0, or ${field}: false.`);
  }
  if (burst !== undefined && !(Number.isInteger(burst) && burst >= 1)) {
    throw new ResilienceConfigError(`${where} has ${field}.burst ${String(burst)}. Give a whole number >= 1.`);
  }
  const rps = perSecond ?? perMinute! / 60;
  return { intervalMs: 1000 / rps, burst: burst ?? Math.max(1, Math.floor(rps)) };
}

/**
 * Checks a whole {@link RateLimitOptions} (its rate and its fallback's).
 * @throws ResilienceConfigError naming the option and the fix.
 * @publicApi
 */
export function resolveRateLimit(
  options: RateLimitOptions,
  where: string,
  field = 'rateLimit',
): {
  /** The rate kept while the limit is kept (shared, or in-process). */
  readonly rate: ResolvedRate;
  /** The rate each instance keeps alone while the shared state is unreachable. */
  readonly fallback: ResolvedRate;
} {
  if (options === null || typeof options !== 'object') {
    throw new ResilienceConfigError(`${where} has ${field} ${String(options)}. Give { requestsPerSecond } or { requestsPerMinute }.`);
  }
  const rate = resolveRate(options, where, field);
  if (options.fallback !== undefined && options.shared !== true) {
    throw new ResilienceConfigError(`${where} has ${field}.fallback without ${field}.shared: true. The fallback is the limit used while the shared state is down; remove it, or set shared: true.`);
  }
  return { rate, fallback: options.fallback === undefined ? rate : resolveRate(options.fallback, where, `${field}.fallback`) };
}

/**
 * A request refused by a rate limit: its turn, or the end of the dependency's `Retry-After` pause,
 * comes after its deadline. Mapped to 503 `rate_limited` with `Retry-After` on a route.
 * @publicApi
 */
export class RateLimitedError extends ResilienceError {
  readonly code = 'rate_limited';

  constructor(
    /** The rate limit's key (`Class.method`, a named policy, `http:<client>@<origin>`). */
    readonly policy: string,
    /** How long the request would have had to wait, in ms. */
    readonly retryAfterMs: number,
    /** `rate_limited`: the rate; `halted`: the dependency's `Retry-After` pause. */
    readonly reason: 'rate_limited' | 'halted',
  ) {
    super(
      reason === 'halted'
        ? `"${policy}" is paused by the dependency's Retry-After for ${retryAfterMs} ms more, past the call's deadline.`
        : `"${policy}" may send its next request in ${retryAfterMs} ms, past the call's deadline.`,
    );
  }
}

/** Whether `error` is a {@link RateLimitedError}. @publicApi */
export function isRateLimitedError(error: unknown): error is RateLimitedError {
  return isResilienceError(error) && error.code === 'rate_limited';
}

/**
 * The right to send one request after `waitMs`; `release()` hands it back when the request gives
 * up while waiting (an in-process bucket takes it back; a shared one keeps it, which is stricter).
 * @publicApi
 */
export interface RateLimitPermit {
  /** How long to wait before sending, in ms (0: now). */
  readonly waitMs: number;
  /** Hands the turn back when the request gives up while waiting. */
  readonly release: () => void;
}

/**
 * Why a request may not go before its deadline: the pause or the rate would hold it `refusedForMs` longer.
 * @publicApi
 */
export interface RateLimitRefusal {
  /** How much longer than the deadline allows the request would have had to wait, in ms. */
  readonly refusedForMs: number;
  /** `halted`: the dependency's `Retry-After` pause; `rate_limited`: the rate. */
  readonly reason: 'halted' | 'rate_limited';
}

/**
 * Grants requests their turn. Reservations are taken in call order: a request that must wait
 * holds its turn, so later ones wait behind it instead of overtaking.
 * @publicApi
 */
export interface RateLimiter {
  /**
   * Reserves one request's turn and calls `done` with the permit (its wait in ms), or with a
   * refusal when the turn comes at or after `deadline` (nothing is reserved then). In-process
   * limiters answer synchronously; a shared one after its round trip (at most the backend's `maxWait`).
   */
  acquire(deadline: number, done: (outcome: RateLimitPermit | RateLimitRefusal) => void): void;
  /** Pauses every request until `until` (clock ms); a shared limiter pauses every instance. */
  halt(until: number): void;
  /** Until when requests are paused (clock ms), or `undefined`. */
  readonly pausedUntil: number | undefined;
  /** The pause left and, for an in-process bucket, its tokens now (does not take any). */
  snapshot(): RateLimiterSnapshot;
}

/**
 * A rate limiter's state now, as the resilience console shows it.
 * @publicApi
 */
export interface RateLimiterSnapshot {
  /** How long requests stay paused (ms), while they are. */
  readonly pausedForMs?: number;
  /**
   * The in-process bucket: tokens left now (below 0 while requests wait), burst and rate. Absent
   * without a rate, and for a shared limit (its bucket lives on the shared state backend).
   */
  readonly rateLimit?: {
    /** Tokens left now. */
    readonly tokens: number;
    /** Requests that may go at once. */
    readonly burst: number;
    /** The steady rate. */
    readonly requestsPerSecond: number;
  };
}

/**
 * An in-process token bucket with a pause (an origin's `Retry-After`); without a rate it only pauses.
 * @publicApi
 */
export class LocalRateLimiter implements RateLimiter {
  private readonly ratePerMs: number;
  private readonly burst: number;
  private tokens: number;
  private refilledAt: number;
  private haltedUntil = -Infinity;

  constructor(
    private readonly clock: Clock,
    rate: ResolvedRate | undefined,
  ) {
    this.ratePerMs = rate === undefined ? Infinity : 1 / rate.intervalMs;
    this.burst = rate === undefined ? Infinity : rate.burst;
    this.tokens = this.burst;
    this.refilledAt = clock.now();
  }

  get pausedUntil(): number | undefined {
    return this.haltedUntil > this.clock.now() ? this.haltedUntil : undefined;
  }

  halt(until: number): void {
    if (until > this.haltedUntil) this.haltedUntil = until;
  }

  snapshot(): RateLimiterSnapshot {
    const now = this.clock.now();
    const pausedForMs = this.haltedUntil > now ? this.haltedUntil - now : undefined;
    if (this.ratePerMs === Infinity) return pausedForMs === undefined ? {} : { pausedForMs };
    this.refill(now);
    const rateLimit = { tokens: this.tokens, burst: this.burst, requestsPerSecond: this.ratePerMs * 1000 };
    return pausedForMs === undefined ? { rateLimit } : { pausedForMs, rateLimit };
  }

  acquire(deadline: number, done: (outcome: RateLimitPermit | RateLimitRefusal) => void): void {
    done(this.reserve(deadline));
  }

  /** {@link acquire}, synchronously. */
  reserve(deadline: number): RateLimitPermit | RateLimitRefusal {
    const now = this.clock.now();
    const haltWait = Math.max(0, this.haltedUntil - now);
    if (haltWait > 0 && now + haltWait >= deadline) return { refusedForMs: Math.ceil(haltWait), reason: 'halted' };
    if (this.ratePerMs === Infinity) return { waitMs: Math.ceil(haltWait), release: noop };
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

  private refill(now: number): void {
    const elapsed = now - this.refilledAt;
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + elapsed * this.ratePerMs);
    this.refilledAt = now;
  }
}

/**
 * What the shared state backend answers to a permit request (durations, never clock readings: the
 * backend decides on its own clock).
 * @publicApi
 */
export interface SharedRateLimitAnswer {
  /** Whether the turn was reserved (false: it came at or after the deadline, nothing was reserved). */
  readonly granted: boolean;
  /** How long the request waits for its turn (granted), or would have waited (refused), in ms. */
  readonly waitMs: number;
  /** How long the shared `Retry-After` pause still lasts, in ms (0: none). */
  readonly pausedMs: number;
}

/**
 * The shared side of one rate limit key.
 * @publicApi
 */
export interface SharedRateLimitBackend {
  /**
   * Reserves the next turn of the fleet-wide limit, atomically on the backend's clock, unless it
   * comes `maxWaitMs` or more from now (`Infinity`: no deadline).
   */
  acquire(maxWaitMs: number): Promise<SharedRateLimitAnswer>;
  /** Pauses every instance for `pauseMs` from now (a later pause extends it, an earlier one is ignored). */
  pause(pauseMs: number): Promise<void>;
}

function noop(): void {}
