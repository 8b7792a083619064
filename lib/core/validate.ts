import { resolveRateLimit } from './rate-limiter.js';
import { maxBackoffDelay } from './backoff.js';
import { DEFAULT_BACKOFF, DEFAULT_FALLBACK_ON, DEFAULT_RETRY_BUDGET } from './defaults.js';
import { statusOf } from './classify.js';
import { isOperationAbortedError, ResilienceConfigError } from './errors.js';
import { isUpstreamError, type UpstreamErrorCode } from './upstream-http.error.js';
import type {
  BackoffOptions,
  BulkheadOptions,
  CircuitBreakerOptions,
  FallbackOptions,
  PipelineSpec,
  ResolvedBulkheadOptions,
  ResolvedCircuitBreakerOptions,
  ResolvedFallbackOptions,
  ResolvedRetryOptions,
  RetryBudgetOptions,
  RetryOptions,
  TimeoutOptions,
} from './options.js';

/** `UpstreamError` codes of calls that never reached the dependency, or that its caller ended. */
const NOT_SENT_CODES: ReadonlySet<UpstreamErrorCode> = new Set(['rate_limited', 'circuit_open', 'bulkhead_rejected', 'aborted']);

/**
 * The breaker's default failure predicate: everything except 4xx statuses (400-499 other than 408
 * and 429, which mean the dependency is struggling), caller aborts, and `HttpClient` calls refused
 * on this side without being sent (rate limit or `Retry-After` pause, open circuit, full bulkhead).
 * @publicApi
 */
export function isBreakerFailure(error: unknown): boolean {
  if (isOperationAbortedError(error)) return false;
  if (isUpstreamError(error) && NOT_SENT_CODES.has(error.code)) return false;
  if (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError') return false;
  const status = statusOf(error);
  return !(status !== undefined && status >= 400 && status <= 499 && status !== 408 && status !== 429);
}

/** Fills in the retry budget defaults. @publicApi */
export function resolveRetryBudgetOptions(options: RetryBudgetOptions = {}): Required<RetryBudgetOptions> {
  return {
    ratio: options.ratio ?? DEFAULT_RETRY_BUDGET.ratio,
    window: options.window ?? DEFAULT_RETRY_BUDGET.window,
    minRetriesPerSecond: options.minRetriesPerSecond ?? DEFAULT_RETRY_BUDGET.minRetriesPerSecond,
    shared: options.shared ?? false,
  };
}

/** Fills in every retry default (the values are in core/defaults.ts). @publicApi */
export function resolveRetryOptions(options: RetryOptions = {}): ResolvedRetryOptions {
  return {
    maxAttempts: options.maxAttempts ?? 3,
    backoff: options.backoff ?? { ...DEFAULT_BACKOFF },
    maxDelay: options.maxDelay ?? 5000,
    retryOn: options.retryOn ?? [],
    abortOn: options.abortOn ?? [],
    retryIf: options.retryIf,
    honorRetryAfter: options.honorRetryAfter ?? true,
    budget: options.budget === false ? false : resolveRetryBudgetOptions(options.budget),
  };
}

/** Fills in every circuit breaker default (the values are in core/defaults.ts). @publicApi */
export function resolveCircuitBreakerOptions(options: CircuitBreakerOptions = {}): ResolvedCircuitBreakerOptions {
  const strategy = options.strategy ?? { type: 'time' };
  return {
    strategy:
      strategy.type === 'consecutive'
        ? { type: 'consecutive', threshold: strategy.threshold ?? 5 }
        : strategy.type === 'count'
          ? { type: 'count', size: strategy.size ?? 100, failureRatio: strategy.failureRatio ?? 0.5, minimumCalls: strategy.minimumCalls ?? 100 }
          : {
              type: 'time',
              window: strategy.window ?? 30_000,
              minimumThroughput: strategy.minimumThroughput ?? 100,
              failureRatio: strategy.failureRatio ?? 0.1,
            },
    slowCall: options.slowCall,
    breakDuration: options.breakDuration ?? 5000,
    maxBreakDuration: options.maxBreakDuration ?? 60_000,
    halfOpenProbes: options.halfOpenProbes ?? 1,
    isFailure: options.isFailure ?? isBreakerFailure,
    shared: options.shared ?? false,
  };
}

/** Fills in every bulkhead default (the values are in core/defaults.ts). @publicApi */
export function resolveBulkheadOptions(options: BulkheadOptions = {}): ResolvedBulkheadOptions {
  return { maxConcurrent: options.maxConcurrent ?? 1000, maxQueue: options.maxQueue ?? 0, queueTimeout: options.queueTimeout };
}

/** Fills in the fallback's default `on`. @publicApi */
export function resolveFallbackOptions<T>(options: FallbackOptions<T>): ResolvedFallbackOptions<T> {
  return {
    handler: options.handler,
    on: options.on ?? [...DEFAULT_FALLBACK_ON],
    ...(options.onSuccess === undefined ? {} : { onSuccess: options.onSuccess }),
    ...(options.mayDecline === true ? { mayDecline: true } : {}),
  };
}

type Problem = string | undefined;

const isPositive = (value: unknown) => typeof value === 'number' && value > 0 && !Number.isNaN(value);
const isNonNegative = (value: unknown) => typeof value === 'number' && value >= 0 && Number.isFinite(value);
const isIntegerAtLeast = (value: unknown, min: number) => typeof value === 'number' && Number.isInteger(value) && value >= min;
const isRatio = (value: unknown) => typeof value === 'number' && value > 0 && value <= 1;

function checkBackoff(backoff: BackoffOptions, path: string): Problem {
  if (typeof backoff === 'function') return undefined;
  const numbers: Array<[string, unknown]> =
    backoff.type === 'exponential'
      ? [['base', backoff.base], ['factor', backoff.factor]]
      : backoff.type === 'constant'
        ? [['delay', backoff.delay]]
        : backoff.type === 'linear'
          ? [['base', backoff.base], ['step', backoff.step]]
          : backoff.type === 'decorrelated'
            ? [['base', backoff.base]]
            : [];
  if (numbers.length === 0) {
    return `${path}.type is "${String((backoff as { type?: unknown }).type)}". Use "exponential", "constant", "linear", "decorrelated" or a delay function.`;
  }
  for (const [name, value] of numbers) {
    if (value === undefined && name !== 'delay') continue;
    if (!isNonNegative(value)) return `${path}.${name} is ${String(value)}. Set it to a finite number of milliseconds >= 0.`;
  }
  if (backoff.type === 'exponential' && backoff.factor !== undefined && backoff.factor < 1) {
    return `${path}.factor is ${backoff.factor}, which shrinks the delay. Set it to 1 or more.`;
  }
  return undefined;
}

function checkRetry(options: RetryOptions): Problem {
  const resolved = resolveRetryOptions(options);
  if (!isIntegerAtLeast(resolved.maxAttempts, 1)) {
    return `retry.maxAttempts is ${String(resolved.maxAttempts)}, but it counts the first call and must be a whole number >= 1. Set it to 1 to disable retries, 3 for the default.`;
  }
  if (!isNonNegative(resolved.maxDelay)) return `retry.maxDelay is ${String(resolved.maxDelay)}. Set it to a finite number of milliseconds >= 0.`;
  const backoffProblem = checkBackoff(resolved.backoff, 'retry.backoff');
  if (backoffProblem) return backoffProblem;
  const budget = resolved.budget;
  if (budget) {
    if (!isNonNegative(budget.ratio)) return `retry.budget.ratio is ${String(budget.ratio)}. Set it to a share >= 0, such as 0.2.`;
    if (!(typeof budget.window === 'number' && budget.window >= 1000 && budget.window <= 60_000)) {
      return `retry.budget.window is ${String(budget.window)} ms. Set it between 1000 and 60000 ms.`;
    }
    if (!isNonNegative(budget.minRetriesPerSecond)) {
      return `retry.budget.minRetriesPerSecond is ${String(budget.minRetriesPerSecond)}. Set it to a number >= 0.`;
    }
  }
  return undefined;
}

function checkTimeout(timeout: TimeoutOptions): Problem {
  for (const name of ['total', 'attempt'] as const) {
    const value = timeout[name];
    if (value !== undefined && !(isPositive(value) && Number.isFinite(value))) {
      return `timeout.${name} is ${String(value)}. Set it to a positive number of milliseconds, or leave it out for no ${name} timeout.`;
    }
  }
  if (timeout.total !== undefined && timeout.attempt !== undefined && timeout.attempt > timeout.total) {
    return `timeout.attempt (${timeout.attempt} ms) is longer than timeout.total (${timeout.total} ms), so an attempt could never use its full time. Make timeout.attempt <= timeout.total.`;
  }
  return undefined;
}

/** Sum of the largest backoff delays of every retry; `undefined` when a delegate makes it unknowable. */
function maxTotalBackoff(options: RetryOptions): number | undefined {
  const resolved = resolveRetryOptions(options);
  let sum = 0;
  for (let attempt = 1; attempt < resolved.maxAttempts; attempt++) {
    const delay = maxBackoffDelay(resolved.backoff, attempt, resolved.maxDelay);
    if (delay === undefined) return undefined;
    sum += delay;
  }
  return sum;
}

function checkRetryFitsDeadline(spec: PipelineSpec): Problem {
  const total = spec.timeout?.total;
  if (!spec.retry || total === undefined) return undefined;
  const sum = maxTotalBackoff(spec.retry);
  if (sum === undefined || sum < total) return undefined;
  const attempts = resolveRetryOptions(spec.retry).maxAttempts;
  return `the ${attempts - 1} retry delays can add up to ${sum} ms, which is not less than timeout.total (${total} ms), so the last retries could never run. Lower retry.maxAttempts, retry.maxDelay or the backoff, or raise timeout.total.`;
}

function checkBulkhead(options: BulkheadOptions): Problem {
  const resolved = resolveBulkheadOptions(options);
  if (!isIntegerAtLeast(resolved.maxConcurrent, 1)) {
    return `bulkhead.maxConcurrent is ${String(resolved.maxConcurrent)}. Set it to a whole number >= 1.`;
  }
  if (!isIntegerAtLeast(resolved.maxQueue, 0)) {
    return `bulkhead.maxQueue is ${String(resolved.maxQueue)}. Set it to a whole number >= 0 (0 rejects when all slots are busy).`;
  }
  if (resolved.queueTimeout !== undefined && !isPositive(resolved.queueTimeout)) {
    return `bulkhead.queueTimeout is ${String(resolved.queueTimeout)}. Set it to a positive number of milliseconds, or leave it out to wait until the deadline.`;
  }
  return undefined;
}

function checkCircuitBreaker(options: CircuitBreakerOptions): Problem {
  const resolved = resolveCircuitBreakerOptions(options);
  const { strategy } = resolved;
  if (!isIntegerAtLeast(resolved.halfOpenProbes, 1)) {
    return `circuitBreaker.halfOpenProbes is ${String(resolved.halfOpenProbes)}. Set it to a whole number >= 1.`;
  }
  if (strategy.type === 'consecutive' && !isIntegerAtLeast(strategy.threshold, 1)) {
    return `circuitBreaker.strategy.threshold is ${String(strategy.threshold)}. Set it to a whole number >= 1.`;
  }
  if (strategy.type === 'count') {
    if (!isIntegerAtLeast(strategy.size, 1)) return `circuitBreaker.strategy.size is ${String(strategy.size)}. Set it to a whole number >= 1.`;
    if (!isIntegerAtLeast(strategy.minimumCalls, 1)) {
      return `circuitBreaker.strategy.minimumCalls is ${String(strategy.minimumCalls)}. Set it to a whole number >= 1.`;
    }
  }
  if (strategy.type === 'time') {
    if (!(isPositive(strategy.window) && Number.isFinite(strategy.window))) {
      return `circuitBreaker.strategy.window is ${String(strategy.window)}. Set it to a positive number of milliseconds.`;
    }
    if (!isIntegerAtLeast(strategy.minimumThroughput, 1)) {
      return `circuitBreaker.strategy.minimumThroughput is ${String(strategy.minimumThroughput)}. Set it to a whole number >= 1.`;
    }
  }
  if (strategy.type !== 'consecutive' && !isRatio(strategy.failureRatio)) {
    return `circuitBreaker.strategy.failureRatio is ${String(strategy.failureRatio)}, but it is a share of calls. Set it above 0 and at most 1 (0.5 means half the calls failed).`;
  }
  if (resolved.slowCall) {
    if (!isPositive(resolved.slowCall.duration)) {
      return `circuitBreaker.slowCall.duration is ${String(resolved.slowCall.duration)}. Set it to a positive number of milliseconds.`;
    }
    if (!isRatio(resolved.slowCall.rateThreshold)) {
      return `circuitBreaker.slowCall.rateThreshold is ${String(resolved.slowCall.rateThreshold)}. Set it above 0 and at most 1.`;
    }
  }
  if (typeof resolved.breakDuration === 'number') {
    if (!isPositive(resolved.breakDuration)) {
      return `circuitBreaker.breakDuration is ${String(resolved.breakDuration)}. Set it to a positive number of milliseconds.`;
    }
  } else {
    const problem = checkBackoff(resolved.breakDuration, 'circuitBreaker.breakDuration');
    if (problem) return problem;
  }
  if (!isPositive(resolved.maxBreakDuration)) {
    return `circuitBreaker.maxBreakDuration is ${String(resolved.maxBreakDuration)}. Set it to a positive number of milliseconds.`;
  }
  return undefined;
}

function checkFallback(options: FallbackOptions): Problem {
  if (typeof options.handler !== 'function') return 'fallback.handler is not a function. Pass a function that returns the degraded result.';
  return undefined;
}

/**
 * Rejects configurations that can never work, at start-up. The message names `where` (for example
 * `"ReportsController.create"`), the problem and the fix.
 * @throws ResilienceConfigError
 * @publicApi
 */
export function validatePipelineSpec(spec: PipelineSpec, where: string): void {
  const problem =
    (typeof spec.key === 'string' && spec.key !== '' ? undefined : 'the policy key is empty. Give the policy a name or let it default to Class.method.') ??
    (spec.retry ? checkRetry(spec.retry) : undefined) ??
    (spec.timeout ? checkTimeout(spec.timeout) : undefined) ??
    checkRetryFitsDeadline(spec) ??
    (spec.bulkhead ? checkBulkhead(spec.bulkhead) : undefined) ??
    (spec.circuitBreaker ? checkCircuitBreaker(spec.circuitBreaker) : undefined) ??
    (spec.fallback ? checkFallback(spec.fallback) : undefined);
  if (problem === undefined && spec.rateLimit) resolveRateLimit(spec.rateLimit, where.charAt(0).toUpperCase() + where.slice(1));
  if (problem) throw new ResilienceConfigError(`Invalid resilience configuration for ${where}: ${problem}`);
}
