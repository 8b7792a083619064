import { computeBackoffDelay } from './backoff.js';
import { abortErrorOf, isTransientError, retryAfterMsOf, statusOf } from './classify.js';
import { RetriesExhaustedError } from './errors.js';
import { errorTypeOf, type ResilienceEvent } from './events.js';
import type { ExecutionContext, Policy, PolicyEnvironment } from './policy.js';
import type { ResolvedRetryOptions, RetryOptions } from './options.js';
import type { RetryBudget } from './retry-budget.js';
import { sleep } from './signals.js';
import { invoke } from './timeout.policy.js';
import { resolveRetryOptions } from './validate.js';

/**
 * Per-call hooks of {@link RetryPolicy.execute}.
 * @publicApi
 */
export interface RetryHooks {
  /**
   * Returns `true` once the result can no longer be retried (an HTTP response started, a stream
   * emitted): a failure then passes through unchanged.
   */
  readonly isCommitted?: () => boolean;
}

/** Why a retry loop stopped on a failure (`outcome` and `detail` of `give_up`). @publicApi */
export type GiveUpReason = 'exhausted' | 'not_retryable' | 'deadline' | 'aborted' | 'committed';

/**
 * Bounded retries of transient failures: `maxAttempts` counts the first call; backoff with jitter
 * capped by `maxDelay`; `Retry-After` honoured (a hint beyond the deadline fails now); abortable
 * sleeps; no attempt starts after an abort; an optional shared {@link RetryBudget}.
 *
 * Outcomes: success → the value; a non-retryable error, a committed result, a denied budget or a
 * deadline too close → the original error; every attempt failed → `RetriesExhaustedError` (with
 * `maxAttempts: 1` the error passes through unchanged); caller abort → `OperationAbortedError`
 * (or the abort reason when it is one of the library's errors, such as `DeadlineExceededError`).
 * @publicApi
 */
export class RetryPolicy implements Policy {
  /** The options with defaults filled in. */
  readonly options: ResolvedRetryOptions;

  constructor(
    options: RetryOptions,
    private readonly env: PolicyEnvironment,
    private readonly budget?: RetryBudget,
  ) {
    this.options = resolveRetryOptions(options);
  }

  async execute<T>(fn: (context: ExecutionContext) => Promise<T>, context: ExecutionContext, hooks?: RetryHooks): Promise<T> {
    const { clock } = this.env;
    let previousError: unknown;
    let previousDelay = 0;
    for (let attempt = 1; ; attempt++) {
      if (context.signal.aborted) throw this.stop(context, attempt - 1, previousError, 'aborted', abortErrorOf(context.signal));
      if (attempt === 1) this.budget?.recordCall();
      const attemptContext: ExecutionContext = attempt === 1 ? { ...context, attempt } : { ...context, attempt, previousError };
      const started = clock.now();
      let error: unknown;
      try {
        const result = await invoke(fn, attemptContext);
        this.emit({ event: 'attempt_end', policy: context.policy, attempt, durationMs: clock.now() - started, outcome: 'success' });
        return result;
      } catch (caught) {
        error = caught;
      }
      this.emit({
        event: 'attempt_end',
        policy: context.policy,
        attempt,
        durationMs: clock.now() - started,
        outcome: 'failure',
        errorType: errorTypeOf(error),
        error,
      });

      if (context.signal.aborted) throw this.stop(context, attempt, error, 'aborted', abortErrorOf(context.signal));
      if (hooks?.isCommitted?.()) throw this.stop(context, attempt, error, 'committed', error);
      if (!this.isRetryable(error, attemptContext)) throw this.stop(context, attempt, error, 'not_retryable', error);
      if (attempt >= this.options.maxAttempts) {
        throw this.stop(context, attempt, error, 'exhausted', attempt > 1 ? new RetriesExhaustedError(attempt, error) : error);
      }

      const delay = this.delayAfter(attempt, error, previousDelay);
      if (clock.now() + delay >= context.deadline) throw this.stop(context, attempt, error, 'deadline', error);
      if (this.budget && !this.budget.tryAcquireRetry()) {
        this.emit({ event: 'budget_exhausted', policy: context.policy, attempt, errorType: errorTypeOf(error), status: statusOf(error), error });
        throw error;
      }
      this.emit({
        event: 'retry',
        policy: context.policy,
        attempt,
        delayMs: delay,
        errorType: errorTypeOf(error),
        status: statusOf(error),
        error,
      });
      if (delay > 0) {
        try {
          await sleep(clock, delay, context.signal);
        } catch {
          throw this.stop(context, attempt, error, 'aborted', abortErrorOf(context.signal), true);
        }
      }
      previousError = error;
      previousDelay = delay;
    }
  }

  /** Whether `error` may be retried: `abortOn` wins, then `retryOn`, then `retryIf` or the default classifier. */
  isRetryable(error: unknown, context: ExecutionContext): boolean {
    const { abortOn, retryOn, retryIf } = this.options;
    if (abortOn.some((type) => error instanceof type)) return false;
    if (retryOn.some((type) => error instanceof type)) return true;
    return retryIf ? retryIf(error, context) : isTransientError(error);
  }

  /** Backoff capped by `maxDelay`, raised to the dependency's `Retry-After` hint when there is one. */
  private delayAfter(attempt: number, error: unknown, previousDelay: number): number {
    const backoff = computeBackoffDelay(
      this.options.backoff,
      { attempt, error, previousDelay, random: this.env.random },
      this.options.maxDelay,
    );
    const hint = this.options.honorRetryAfter ? retryAfterMsOf(error, this.env.clock.now()) : undefined;
    return hint === undefined ? backoff : Math.max(backoff, Math.ceil(hint));
  }

  /**
   * Emits `give_up` only when it is news (a retry happened, was announced or was refused because of
   * the deadline), so healthy and plainly failing paths stay quiet; returns the error to throw.
   */
  private stop(
    context: ExecutionContext,
    attempts: number,
    lastError: unknown,
    reason: GiveUpReason,
    toThrow: unknown,
    retryAnnounced = false,
  ): unknown {
    if (attempts > 1 || retryAnnounced || reason === 'deadline') {
      this.emit({
        event: 'give_up',
        policy: context.policy,
        attempt: attempts,
        outcome: reason,
        detail: reason,
        errorType: errorTypeOf(lastError),
        status: statusOf(lastError),
        error: lastError,
      });
    }
    return toThrow;
  }

  private emit(event: ResilienceEvent): void {
    this.env.events(event);
  }
}
