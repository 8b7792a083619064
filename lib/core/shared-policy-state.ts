import { ResilienceConfigError } from './errors.js';
import type { BreakerOpenReason, PipelineSpec, ResolvedCircuitBreakerOptions, RetryBudgetWindow } from './options.js';
import type { SharedLastGoodBackend } from './last-good.js';
import type { PolicyEnvironment } from './policy.js';
import type { RateLimitOptions, ResolvedRate, SharedRateLimitBackend } from './rate-limiter.js';
import { retryAllowance, type RetryBudget, type RetryBudgetSnapshot } from './retry-budget.js';
import { once } from './step.js';

/**
 * The state of one shared breaker key as the backend holds it. Times are durations, never clock
 * readings: the backend decides on its own clock (Redis' `TIME`) and each instance adds
 * `remainingMs` to its own clock, so clock skew between instances does not matter.
 * @publicApi
 */
export interface SharedBreakerState {
  /** Incremented by every transition; outcomes stamped with another generation are ignored. */
  readonly generation: number;
  /** `open` also covers the wait for a probe (the backend has no half-open: probing is per instance). */
  readonly state: 'closed' | 'open';
  /** How long the break still lasts, in ms (0 once a probe may run). */
  readonly remainingMs: number;
  /** Why it opened, while open. */
  readonly reason?: BreakerOpenReason;
  /** Consecutive opens without a close (drives a backoff `breakDuration`). */
  readonly opens: number;
}

/**
 * One judged call of a shared breaker, sent to the backend in batches.
 * @publicApi
 */
export interface SharedBreakerOutcome {
  /** The shared generation the call was admitted under (-1 before the instance heard of any). */
  readonly generation: number;
  /** Whether the call failed (as the breaker's `isFailure` judges it). */
  readonly failure: boolean;
  /** Whether the call was slow (lasted at least `slowCall.duration`). */
  readonly slow: boolean;
  /** Whether the call was a half-open probe. */
  readonly probe: boolean;
}

/**
 * The shared side of one breaker key.
 * @publicApi
 */
export interface SharedBreakerBackend {
  /**
   * Adds `outcomes` to the shared window (in order) and returns the state after them: the backend
   * decides to open (with `nextBreakMs`) or close, exactly like the in-process strategies.
   */
  record(outcomes: readonly SharedBreakerOutcome[], nextBreakMs: number): Promise<SharedBreakerState>;
  /** The current state. */
  read(): Promise<SharedBreakerState>;
  /** Closes the shared breaker and forgets its window (`CircuitBreakerService.reset`). */
  reset(): Promise<SharedBreakerState>;
  /** Stops listening for pushed state (the key left the registry). */
  release(): void;
}

/**
 * The shared side of one retry budget key.
 * @publicApi
 */
export interface SharedRetryBudgetBackend {
  /** Adds `calls` logical calls to the shared window. */
  deposit(calls: number): Promise<void>;
  /**
   * Adds `calls` (this instance's calls not deposited yet) and grants one retry if every instance's
   * retries still fit `ratio × calls + floor` of the window, atomically.
   */
  acquire(calls: number): Promise<boolean>;
  /**
   * The calls inside the shared window and the retries overlapping it, of every instance (what the
   * next {@link acquire} compares), for the resilience console's fleet view. Optional: a backend
   * without it shows no fleet figures.
   */
  read?(): Promise<{
    /** Logical calls of every instance inside the shared window. */
    readonly calls: number;
    /** Retries every instance was granted in the buckets overlapping the window. */
    readonly retries: number;
  }>;
}

/**
 * What a shared breaker judges with: the strategy and probe count (the break duration comes with
 * each {@link SharedBreakerBackend.record}, computed by the instance).
 * @publicApi
 */
export type SharedBreakerSettings = Pick<ResolvedCircuitBreakerOptions, 'strategy' | 'slowCall' | 'halfOpenProbes' | 'maxBreakDuration'>;

/**
 * A backend that shares breaker and retry budget state between the instances of an application
 * (`RedisPolicyState` from `nest-resilience/redis`). Only policies that ask for it
 * (`circuitBreaker.shared`, `retry.budget.shared`) use it; everything else stays in-process.
 * The library calls it from timers and retry paths, never on the admission path of a call: admission
 * reads state cached in the instance. When a call to it fails or takes longer than `maxWait`, the
 * policies fall back to their in-process state until {@link ping} succeeds again.
 * @publicApi
 */
export interface SharedPolicyState {
  /**
   * The shared side of breaker `key`; `onChange` may be called with state pushed by other instances
   * (pub/sub) at any time until `release()`.
   */
  circuitBreaker(key: string, settings: SharedBreakerSettings, onChange: (state: SharedBreakerState) => void): SharedBreakerBackend;
  /** The shared side of retry budget `key`. */
  retryBudget(key: string, options: RetryBudgetWindow): SharedRetryBudgetBackend;
  /**
   * The shared side of rate limit `key` (`rateLimit.shared`): one bucket and one `Retry-After`
   * pause for every instance. Optional: a backend without it refuses `rateLimit.shared` at start-up.
   */
  rateLimiter?(key: string, rate: ResolvedRate): SharedRateLimitBackend;
  /**
   * The shared side of the last-good cache of `key` (`@Fallback({ lastGood: { shared: true } })`):
   * at most `maxEntries` results, each dropped `ttl` ms after it was produced. Optional: a backend
   * without it refuses `lastGood.shared` at start-up.
   */
  lastGood?(key: string, options: { readonly ttl: number; readonly maxEntries: number }): SharedLastGoodBackend;
  /** Resolves when the backend answers (used to notice it came back after an outage). */
  ping(): Promise<void>;
  /** Longest wait for the backend before a policy uses its in-process state, in ms. @default 50 */
  readonly maxWait?: number;
  /**
   * Answers later than `maxWait` in a row before the backend counts as down (a failure counts at
   * once). Each slow call already used in-process state; one late answer (a GC pause, a stalled
   * event loop) does not switch every shared policy to in-process state. Calls that were waiting
   * together when the first of them ran late count as one slow answer: one stall makes every call
   * in flight late at once. @default 3
   */
  readonly slowAnswersBeforeFallback?: number;
  /** How long outcomes and calls are batched before they are sent, in ms. @default 20 */
  readonly flushInterval?: number;
  /** How often an unreachable backend is pinged, in ms. @default 1000 */
  readonly recoveryInterval?: number;
}

/**
 * Injection token of the configured {@link SharedPolicyState} (throttler-style: the interface and
 * the token share a name). Provided by `ResilienceModule` when `forRoot({ sharedState })` is set.
 * @publicApi
 */
export const SharedPolicyState = Symbol('SharedPolicyState');

/** Default of {@link SharedPolicyState.maxWait}, in ms. @publicApi */
export const DEFAULT_SHARED_STATE_MAX_WAIT = 50;
/** Default of {@link SharedPolicyState.flushInterval}, in ms. @publicApi */
export const DEFAULT_SHARED_STATE_FLUSH_INTERVAL = 20;
/** Default of {@link SharedPolicyState.slowAnswersBeforeFallback}. @publicApi */
export const DEFAULT_SHARED_STATE_SLOW_ANSWERS = 3;
/** Default of {@link SharedPolicyState.recoveryInterval}, in ms. @publicApi */
export const DEFAULT_SHARED_STATE_RECOVERY_INTERVAL = 1000;

/** What {@link SharedStateGuard.call} resolves to when the backend could not be used. @publicApi */
export const UNAVAILABLE: unique symbol = Symbol('shared state unavailable');

/**
 * Every call of one backend goes through here: it bounds the wait (`maxWait` on the policy clock),
 * turns a failure or a slow answer into "unavailable" (one `shared_state_unavailable` event), stops
 * calling the backend meanwhile, pings it every `recoveryInterval` and reports the way back (one
 * `shared_state_recovered` event). The `PolicyRegistry` makes one per backend, so one outage is
 * one pair of events; only code that builds policies by hand needs one of its own.
 * @publicApi
 */
export class SharedStateGuard {
  /** Longest wait for the backend, ms; a slower answer is decided in-process. */
  readonly maxWait: number;
  /** How long outcomes and calls are batched before they are sent, ms. */
  readonly flushInterval: number;
  private readonly recoveryInterval: number;
  private readonly slowAnswersBeforeFallback: number;
  private up = true;
  private slowInARow = 0;
  /** When the last slow answer was counted: calls started before it were late with it. */
  private lastSlowCountedAt = Number.NEGATIVE_INFINITY;
  private pinging: unknown;

  constructor(
    /** The backend this guard watches. */
    readonly backend: SharedPolicyState,
    private readonly env: PolicyEnvironment,
  ) {
    this.maxWait = backend.maxWait ?? DEFAULT_SHARED_STATE_MAX_WAIT;
    this.flushInterval = backend.flushInterval ?? DEFAULT_SHARED_STATE_FLUSH_INTERVAL;
    this.recoveryInterval = backend.recoveryInterval ?? DEFAULT_SHARED_STATE_RECOVERY_INTERVAL;
    this.slowAnswersBeforeFallback = backend.slowAnswersBeforeFallback ?? DEFAULT_SHARED_STATE_SLOW_ANSWERS;
  }

  /** Whether the shared state decides (false during an outage: in-process state decides). */
  get available(): boolean {
    return this.up;
  }

  /** The policy clock, for the timers of batches. */
  get clock() {
    return this.env.clock;
  }

  /**
   * Runs `operation` unless the backend is known to be down; resolves to {@link UNAVAILABLE} when it
   * is, when the operation fails, or when it takes longer than `maxWait` (its late answer is
   * dropped). A failure marks the backend down; so do `slowAnswersBeforeFallback` slow answers in a row.
   */
  call<T>(what: string, operation: () => Promise<T>): Promise<T | typeof UNAVAILABLE> {
    if (!this.up) return Promise.resolve(UNAVAILABLE);
    const { clock } = this.env;
    const startedAt = clock.now();
    return new Promise((resolve) => {
      const finish = once((value: T | typeof UNAVAILABLE, failure?: unknown, slow = false) => {
        clock.clearTimeout(timer);
        if (value !== UNAVAILABLE) this.slowInARow = 0;
        else if (!slow) this.down(what, failure);
        else if (this.countSlowAnswer(startedAt)) this.down(what, failure);
        resolve(value);
      });
      const timer = clock.setTimeout(
        () => finish(UNAVAILABLE, `no answer within ${this.maxWait} ms, ${this.slowInARow + 1} time(s) in a row`, true),
        this.maxWait,
      );
      let pending: Promise<T>;
      try {
        pending = operation();
      } catch (error) {
        finish(UNAVAILABLE, error);
        return;
      }
      pending.then(
        (value) => finish(value),
        (error: unknown) => finish(UNAVAILABLE, error),
      );
    });
  }

  /** Counts a slow answer of a call started at `startedAt`; whether enough came in a row to count as down. */
  private countSlowAnswer(startedAt: number): boolean {
    // late together with the last counted one (they waited through the same stall): not a new one
    if (startedAt < this.lastSlowCountedAt) return false;
    this.lastSlowCountedAt = this.env.clock.now();
    return ++this.slowInARow >= this.slowAnswersBeforeFallback;
  }

  /** Stops the recovery pings (application shutdown). */
  dispose(): void {
    if (this.pinging !== undefined) this.env.clock.clearTimeout(this.pinging);
    this.pinging = undefined;
  }

  private down(what: string, failure: unknown): void {
    if (!this.up) return;
    this.up = false;
    this.slowInARow = 0;
    this.lastSlowCountedAt = Number.NEGATIVE_INFINITY;
    this.env.events({
      event: 'shared_state_unavailable',
      policy: what,
      detail: `in-process state decides until the shared state answers again`,
      cause: causeOf(failure),
    });
    this.schedulePing();
  }

  private schedulePing(): void {
    this.pinging = this.env.clock.setTimeout(() => {
      this.pinging = undefined;
      let ping: Promise<void>;
      try {
        ping = this.backend.ping();
      } catch (error) {
        ping = Promise.reject(error);
      }
      // the ping has the same bounded wait as every other call: a hanging server stays "down"
      let answered = false;
      const timer = this.env.clock.setTimeout(() => {
        if (answered) return;
        answered = true;
        this.schedulePing();
      }, this.maxWait);
      ping.then(
        () => {
          if (answered) return;
          answered = true;
          this.env.clock.clearTimeout(timer);
          this.up = true;
          this.env.events({ event: 'shared_state_recovered', policy: 'shared state', detail: 'the shared state decides again' });
        },
        () => {
          if (answered) return;
          answered = true;
          this.env.clock.clearTimeout(timer);
          this.schedulePing();
        },
      );
    }, this.recoveryInterval);
    unref(this.pinging);
  }
}

/** `Name: message` of a failure, at most 200 characters, for the `cause` of the event. */
function causeOf(failure: unknown): string | undefined {
  if (failure === undefined) return undefined;
  const text = failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure);
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

/**
 * Lets the process exit while a background timer (a flush, a ping) is pending; fake clocks hand out numbers.
 * @internal
 */
export function unref(handle: unknown): void {
  (handle as { unref?: () => void } | undefined)?.unref?.();
}

/**
 * Something that grants retries: the in-process {@link RetryBudget}, or {@link SharedRetryBudget}
 * whose answer may take a round trip.
 * @publicApi
 */
export interface RetryPermits {
  /** Records one logical call (its first attempt). */
  recordCall(now?: number): void;
  /** Takes one retry; `false` means the retry must not happen. */
  tryAcquireRetry(): boolean | Promise<boolean>;
}

/**
 * A retry budget whose window is shared by every instance: calls are deposited in batches (a call
 * not deposited yet only makes the budget stricter), and each retry is granted atomically by the
 * backend against the calls and retries of all instances. During an outage (or an answer slower than
 * `maxWait`) the in-process budget of this instance decides, which has counted every call all along.
 * @publicApi
 */
export class SharedRetryBudget implements RetryPermits {
  private pendingCalls = 0;
  private flushTimer: unknown;

  constructor(
    private readonly local: RetryBudget,
    private readonly backend: SharedRetryBudgetBackend,
    private readonly guard: SharedStateGuard,
    private readonly key: string,
  ) {}

  recordCall(now?: number): void {
    this.local.recordCall(now);
    if (!this.guard.available) return;
    this.pendingCalls++;
    if (this.flushTimer === undefined) {
      this.flushTimer = this.guard.clock.setTimeout(() => this.flush(), this.guard.flushInterval);
      unref(this.flushTimer);
    }
  }

  tryAcquireRetry(): boolean | Promise<boolean> {
    if (!this.guard.available) return this.local.tryAcquireRetry();
    // the calls not deposited yet go with the request: the shared window is as full as it can be
    const calls = this.takePending();
    return this.guard.call(this.key, () => this.backend.acquire(calls)).then((granted) =>
      granted === UNAVAILABLE ? this.local.tryAcquireRetry() : granted,
    );
  }

  /** This instance's budget (what decides during an outage). */
  snapshot(): RetryBudgetSnapshot {
    return this.local.snapshot();
  }

  /**
   * Every instance's window as the backend holds it now (one round trip, bounded by `maxWait`), with
   * what is left of it; `undefined` while the backend does not answer or cannot tell.
   */
  async readShared(): Promise<RetryBudgetSnapshot | undefined> {
    const read = this.backend.read;
    if (read === undefined) return undefined;
    const totals = await this.guard.call(this.key, () => read.call(this.backend));
    if (totals === UNAVAILABLE) return undefined;
    const { ratio, minRetriesPerSecond, window } = this.local.snapshot();
    const { calls, retries } = totals;
    return { calls, retries, ...retryAllowance(calls, retries, ratio, (minRetriesPerSecond * window) / 1000), ratio, minRetriesPerSecond, window };
  }

  private flush(): void {
    this.flushTimer = undefined;
    const calls = this.takePending();
    if (calls > 0) void this.guard.call(this.key, () => this.backend.deposit(calls));
  }

  private takePending(): number {
    const calls = this.pendingCalls;
    this.pendingCalls = 0;
    if (this.flushTimer !== undefined) {
      this.guard.clock.clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    return calls;
  }
}

/**
 * Fails when `spec` asks for shared state and no backend is configured.
 * @throws ResilienceConfigError naming the fix.
 * @internal
 */
export function requireSharedState(
  spec: Pick<PipelineSpec, 'retry' | 'circuitBreaker'> & { readonly rateLimit?: RateLimitOptions | false },
  where: string,
  backend: SharedPolicyState | undefined,
): void {
  if (spec.rateLimit && spec.rateLimit.shared === true && backend !== undefined && typeof backend.rateLimiter !== 'function') {
    throw new ResilienceConfigError(
      `${where} sets rateLimit.shared: true, but the shared state backend has no rateLimiter(). Use RedisPolicyState from 'nest-resilience/redis', or remove rateLimit.shared.`,
    );
  }
  if (backend !== undefined) return;
  const budget = spec.retry?.budget;
  const asks =
    spec.circuitBreaker?.shared === true
      ? 'circuitBreaker.shared'
      : budget && budget.shared === true
        ? 'retry.budget.shared'
        : spec.rateLimit && spec.rateLimit.shared === true
          ? 'rateLimit.shared'
          : undefined;
  if (asks === undefined) return;
  throw new ResilienceConfigError(
    `${where} sets ${asks}: true, but no shared state backend is configured. ` +
      `Pass one to ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) }) (from 'nest-resilience/redis'), or remove ${asks}.`,
  );
}
