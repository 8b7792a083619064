import type { RateLimitOptions } from './rate-limiter.js';
import type { PolicyContext } from './policy.js';
import type { Random } from './random.js';
import type { PipelineChaos } from './fault-injection.js';

/**
 * Any error class, abstract ones included, for `retryOn` / `abortOn` / fallback `on` lists.
 * @publicApi
 */
export type ErrorClass = abstract new (...args: any[]) => unknown;

/**
 * How a computed delay is randomised. `full` draws uniformly from `[0, delay]` (AWS, Envoy),
 * `equal` from `[delay / 2, delay]`, `none` keeps the delay as computed.
 * @publicApi
 */
export type Jitter = 'full' | 'equal' | 'none';

/**
 * What a {@link BackoffDelegate} is told about the retry it computes a delay for.
 * @publicApi
 */
export interface BackoffInfo {
  /** 1-based number of the attempt that just failed (1 for the delay before the first retry). */
  readonly attempt: number;
  /** The error of the attempt that just failed. */
  readonly error: unknown;
  /** The delay used before the previous retry, in ms (0 before the first retry). */
  readonly previousDelay: number;
  /** The randomness source of the policy: use it instead of `Math.random()` to stay testable. */
  readonly random: Random;
}

/**
 * A custom delay function (the Polly `DelayGenerator` contract). Returning `undefined` falls back to
 * the default exponential backoff. Whatever it returns is capped by `maxDelay`.
 * @example
 * backoff: ({ attempt, error }) => (isThrottling(error) ? 1_000 * attempt : undefined)
 * @publicApi
 */
export type BackoffDelegate = (info: BackoffInfo) => number | undefined;

/**
 * Exponential backoff: `base × factor^(attempt − 1)`, capped by `maxDelay`, then jittered.
 * @publicApi
 */
export interface ExponentialBackoffOptions {
  /** Selects exponential backoff. */
  readonly type: 'exponential';
  /** Delay before the first retry (before jitter), in ms. @default 100 */
  readonly base?: number;
  /** Growth factor between retries. @default 2 */
  readonly factor?: number;
  /** How the computed delay is randomised. @default 'full' */
  readonly jitter?: Jitter;
}

/**
 * The same delay before every retry.
 * @publicApi
 */
export interface ConstantBackoffOptions {
  /** Selects a constant delay. */
  readonly type: 'constant';
  /** Delay before every retry (before jitter), in ms. */
  readonly delay: number;
  /** How the delay is randomised. @default 'none' */
  readonly jitter?: Jitter;
}

/**
 * A delay growing by `step` per retry: `base + step × (attempt − 1)`.
 * @publicApi
 */
export interface LinearBackoffOptions {
  /** Selects a linearly growing delay. */
  readonly type: 'linear';
  /** Delay before the first retry, in ms. @default 100 */
  readonly base?: number;
  /** Added per retry, in ms. @default the value of `base` */
  readonly step?: number;
  /** How the delay is randomised. @default 'none' */
  readonly jitter?: Jitter;
}

/**
 * AWS "decorrelated jitter": `uniform(base, previousDelay × 3)`, capped by `maxDelay`.
 * @publicApi
 */
export interface DecorrelatedBackoffOptions {
  /** Selects decorrelated jitter. */
  readonly type: 'decorrelated';
  /** Lower bound of every delay and the seed of the sequence, in ms. @default 100 */
  readonly base?: number;
}

/**
 * How long to wait between attempts. Every delay, a delegate's included, is capped by `maxDelay`
 * and rounded to whole milliseconds.
 * @publicApi
 */
export type BackoffOptions =
  | ExponentialBackoffOptions
  | ConstantBackoffOptions
  | LinearBackoffOptions
  | DecorrelatedBackoffOptions
  | BackoffDelegate;

/**
 * Finagle-style retry budget shared by every caller of one policy key: in any interval of `window`
 * ms, retries never exceed `ratio × calls + minRetriesPerSecond × window / 1000` (exactly, retries
 * waiting out their back-off included).
 * @publicApi
 */
export interface RetryBudgetOptions {
  /** Share of calls that may be retried. @default 0.2 */
  readonly ratio?: number;
  /** Sliding window, in ms (1 s to 60 s). @default 10_000 */
  readonly window?: number;
  /** Retries always allowed regardless of traffic, per second of window. @default 10 */
  readonly minRetriesPerSecond?: number;
  /**
   * Share the window with every instance of the application through the configured
   * `sharedState` backend: the bound then holds for the calls and retries of all instances
   * together (not once per instance). Needs `ResilienceModule.forRoot({ sharedState })`.
   * @default false
   * @example
   * @Retryable({ budget: { shared: true } })
   */
  readonly shared?: boolean;
}

/**
 * Retry options. Classification order: `abortOn` wins, then `retryOn`, then `retryIf` (which replaces
 * the default transient-error classifier when given) or the default classifier `isTransientError`.
 * @publicApi
 */
export interface RetryOptions {
  /** Total attempts, the first call included (>= 1). @default 3 */
  readonly maxAttempts?: number;
  /** How long to wait before each retry. @default { type: 'exponential', base: 100, factor: 2, jitter: 'full' } */
  readonly backoff?: BackoffOptions;
  /** Cap on every backoff delay, in ms (a `Retry-After` hint is capped only by the deadline). @default 5000 */
  readonly maxDelay?: number;
  /** Error classes that are retried in addition to the classifier's choice. @default [] */
  readonly retryOn?: ErrorClass[];
  /** Error classes that are never retried; wins over `retryOn` and `retryIf`. @default [] */
  readonly abortOn?: ErrorClass[];
  /** Replaces the default classifier: return `true` to retry `error`. @default isTransientError */
  readonly retryIf?: (error: unknown, context: PolicyContext) => boolean;
  /** Wait at least as long as the dependency's `Retry-After` hint. @default true */
  readonly honorRetryAfter?: boolean;
  /** Retry budget of the policy key, or `false` to disable it. @default { ratio: 0.2, window: 10_000, minRetriesPerSecond: 10 } */
  readonly budget?: RetryBudgetOptions | false;
}

/**
 * Timeouts, in ms. `total` bounds the whole operation (queue wait and every retry included);
 * `attempt` bounds each attempt and is retried when it elapses.
 * @publicApi
 */
export interface TimeoutOptions {
  /** Deadline of the whole operation, in ms. @default undefined (none) */
  readonly total?: number;
  /** Limit of one attempt, in ms. @default undefined (none) */
  readonly attempt?: number;
}

/**
 * Opens after `threshold` failures in a row.
 * @publicApi
 */
export interface ConsecutiveBreakerStrategy {
  /** Selects the consecutive-failures strategy. */
  readonly type: 'consecutive';
  /** Failures in a row that open the breaker. @default 5 */
  readonly threshold?: number;
}

/**
 * Opens when the failure ratio of the last `size` calls reaches `failureRatio` (resilience4j style).
 * @publicApi
 */
export interface CountBreakerStrategy {
  /** Selects the count-window strategy. */
  readonly type: 'count';
  /** Number of most recent calls judged. @default 100 */
  readonly size?: number;
  /** Failure share that opens the breaker, in (0, 1]. @default 0.5 */
  readonly failureRatio?: number;
  /** Calls needed before the ratio is judged (at most `size`). @default 100 */
  readonly minimumCalls?: number;
}

/**
 * Opens when the failure ratio of the calls in the last `window` ms reaches `failureRatio`
 * (Polly / Microsoft style). The window moves in tenths of its length.
 * @publicApi
 */
export interface TimeBreakerStrategy {
  /** Selects the time-window strategy. */
  readonly type: 'time';
  /** Sampling window, in ms. @default 30_000 */
  readonly window?: number;
  /** Calls in the window needed before the ratio is judged. @default 100 */
  readonly minimumThroughput?: number;
  /** Failure share that opens the breaker, in (0, 1]. @default 0.1 */
  readonly failureRatio?: number;
}

/**
 * How the breaker decides to open.
 * @publicApi
 */
export type CircuitBreakerStrategy = ConsecutiveBreakerStrategy | CountBreakerStrategy | TimeBreakerStrategy;

/**
 * Slow-call detection: calls lasting at least `duration` ms count as slow; a slow-call share of at
 * least `rateThreshold` opens the breaker. With the `consecutive` strategy, `threshold` slow calls in
 * a row open it. A slow half-open probe counts as a failed probe.
 * @publicApi
 */
export interface SlowCallOptions {
  /** Duration from which a call is slow, in ms. */
  readonly duration: number;
  /** Slow-call share that opens the breaker, in (0, 1]. */
  readonly rateThreshold: number;
}

/**
 * Circuit breaker options. State is shared by every caller of the policy key.
 * @publicApi
 */
export interface CircuitBreakerOptions {
  /** When the breaker opens. @default { type: 'time', window: 30_000, minimumThroughput: 100, failureRatio: 0.1 } */
  readonly strategy?: CircuitBreakerStrategy;
  /** Slow calls counted toward opening. @default undefined (slow calls are not judged) */
  readonly slowCall?: SlowCallOptions;
  /**
   * How long the breaker stays open before a probe, in ms; a backoff makes it grow with each
   * consecutive re-open (the `attempt` it sees is the number of consecutive opens).
   * @default 5000
   */
  readonly breakDuration?: number | BackoffOptions;
  /** Cap on a backoff-computed `breakDuration`, in ms. @default 60_000 */
  readonly maxBreakDuration?: number;
  /** Concurrent probes admitted in half-open; all must succeed to close. @default 1 */
  readonly halfOpenProbes?: number;
  /**
   * Whether an error counts against the dependency.
   * @default not a 4xx status (400-499 except 408 and 429) and not a caller abort
   */
  readonly isFailure?: (error: unknown) => boolean;
  /**
   * Judge the outcomes of every instance of the application in one window, through the configured
   * `sharedState` backend: the breaker opens everywhere once the instances together reach the
   * threshold. Admission still reads state cached in the instance. Needs
   * `ResilienceModule.forRoot({ sharedState })`.
   * @default false
   * @example
   * @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 5 }, shared: true })
   */
  readonly shared?: boolean;
}

/**
 * Bulkhead options: caps concurrent executions of one policy key.
 * @publicApi
 */
export interface BulkheadOptions {
  /** Executions running at once. @default 1000 */
  readonly maxConcurrent?: number;
  /** Callers allowed to wait for a slot. @default 0 */
  readonly maxQueue?: number;
  /** Longest wait in the queue, in ms; the operation's deadline always bounds it too. @default undefined (deadline only) */
  readonly queueTimeout?: number;
}

/**
 * Causes a fallback can catch by name: `timeout` (attempt timeout or total deadline), `circuit_open`,
 * `bulkhead_rejected`, `retries_exhausted`, and `transient` (what the retry classifier retries).
 * @publicApi
 */
export type FallbackCause = 'timeout' | 'circuit_open' | 'bulkhead_rejected' | 'retries_exhausted' | 'transient';

/**
 * Fallback options. A caller abort (`OperationAbortedError`) is never caught.
 * @publicApi
 */
export interface FallbackOptions<T = unknown> {
  /** Produces the degraded result. */
  readonly handler: (error: unknown, context: PolicyContext) => T | Promise<T>;
  /**
   * Which errors trigger the fallback: causes by name, error classes, or a predicate. `transient`
   * is what the retry classifier retries (network errors, 408, 429, 5xx; `isTransientError`).
   * @default ['timeout', 'circuit_open', 'bulkhead_rejected', 'retries_exhausted', 'transient']
   */
  readonly on?: Array<FallbackCause | ErrorClass> | ((error: unknown) => boolean);
  /** Called with the result of each call that succeeded without the fallback (a last-good cache keeps it). */
  readonly onSuccess?: (value: unknown, context: PolicyContext) => void;
  /**
   * Whether `handler` may answer (or resolve to) {@link NO_FALLBACK} when it finds nothing to answer
   * with (a last-good cache on a shared backend, which `on` cannot ask synchronously): the call then
   * fails with its own error and no `fallback_used` is emitted. With it, `fallback_used` is emitted
   * once the handler's answer is known instead of before it runs. @default false
   */
  readonly mayDecline?: boolean;
}

/**
 * What a fallback `handler` with {@link FallbackOptions.mayDecline} answers when it has nothing: the
 * call fails with its own error.
 * @publicApi
 */
export const NO_FALLBACK: unique symbol = Symbol('no fallback');

/** {@link RetryOptions} with every default filled in. @publicApi */
export interface ResolvedRetryOptions {
  /** Total attempts, the first call included. */
  readonly maxAttempts: number;
  /** How long to wait before each retry. */
  readonly backoff: BackoffOptions;
  /** Cap on every backoff delay, in ms. */
  readonly maxDelay: number;
  /** Error classes retried in addition to the classifier's choice. */
  readonly retryOn: ErrorClass[];
  /** Error classes never retried. */
  readonly abortOn: ErrorClass[];
  /** The classifier that replaces the default one, if any. */
  readonly retryIf: ((error: unknown, context: PolicyContext) => boolean) | undefined;
  /** Whether a dependency's `Retry-After` hint is honoured. */
  readonly honorRetryAfter: boolean;
  /** The retry budget, or `false` when disabled. */
  readonly budget: Required<RetryBudgetOptions> | false;
}

/** {@link RetryBudgetOptions} without `shared`: the numbers of a budget's window. @publicApi */
export type RetryBudgetWindow = Required<Omit<RetryBudgetOptions, 'shared'>>;

/** {@link CircuitBreakerOptions} with every default filled in. @publicApi */
export interface ResolvedCircuitBreakerOptions {
  /** When the breaker opens, with every field filled in. */
  readonly strategy: Required<ConsecutiveBreakerStrategy> | Required<CountBreakerStrategy> | Required<TimeBreakerStrategy>;
  /** Slow-call detection, if configured. */
  readonly slowCall: SlowCallOptions | undefined;
  /** How long the breaker stays open, in ms, or the backoff that computes it. */
  readonly breakDuration: number | BackoffOptions;
  /** Cap on a backoff-computed break, in ms. */
  readonly maxBreakDuration: number;
  /** Probes admitted in half-open. */
  readonly halfOpenProbes: number;
  /** Whether an error counts against the dependency. */
  readonly isFailure: (error: unknown) => boolean;
  /** Whether the breaker's window is shared by every instance. */
  readonly shared: boolean;
}

/** {@link BulkheadOptions} with every default filled in. @publicApi */
export interface ResolvedBulkheadOptions {
  /** Executions running at once. */
  readonly maxConcurrent: number;
  /** Callers allowed to wait for a slot. */
  readonly maxQueue: number;
  /** Longest wait in the queue, in ms, or `undefined` for the deadline only. */
  readonly queueTimeout: number | undefined;
}

/** {@link FallbackOptions} with the default `on` filled in. @publicApi */
export interface ResolvedFallbackOptions<T = unknown> {
  /** Produces the degraded result. */
  readonly handler: (error: unknown, context: PolicyContext) => T | Promise<T>;
  /** Which errors trigger the fallback. */
  readonly on: Array<FallbackCause | ErrorClass> | ((error: unknown) => boolean);
  /** Called with the result of each call that succeeded without the fallback. */
  readonly onSuccess?: (value: unknown, context: PolicyContext) => void;
  /** Whether `handler` may answer {@link NO_FALLBACK}. */
  readonly mayDecline?: boolean;
}

/**
 * What a pipeline is made of: the policy key and the options of each part that is present.
 * Field order does not matter: the stages always run in the canonical order.
 * @publicApi
 */
export interface PipelineSpec {
  /** Policy key: keys the breaker, bulkhead and retry budget shared by all its callers. */
  readonly key: string;
  /** Degraded result on the errors it catches; outermost stage. */
  readonly fallback?: FallbackOptions;
  /** Concurrency cap of the key. */
  readonly bulkhead?: BulkheadOptions;
  /** Total deadline and per-attempt timeout. */
  readonly timeout?: TimeoutOptions;
  /** Retries of transient failures. */
  readonly retry?: RetryOptions;
  /** Circuit breaker of the key. */
  readonly circuitBreaker?: CircuitBreakerOptions;
  /** Outgoing rate limit of the key: each attempt waits for its turn (`@RateLimit()`). */
  readonly rateLimit?: RateLimitOptions;
  /**
   * Runtime chaos rules that may apply to this pipeline (`chaos: { enabled: true }`): an injection
   * stage runs innermost, between the attempt timeout and the work. It is not one of
   * {@link Pipeline.stages} (it injects faults, it does not guard against them). Absent, the
   * pipeline has no injection stage at all.
   */
  readonly chaos?: PipelineChaos;
}

/** Why a breaker opened (`detail` of `breaker_opened`). @publicApi */
export type BreakerOpenReason = 'failure_rate' | 'slow_call_rate' | 'consecutive' | 'probe_failed' | 'isolated';
