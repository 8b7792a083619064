import { computeBackoffDelay } from './backoff.js';
import { contextWith, followContext, type Cancellation } from './cancellation.js';
import { abortErrorOf, isTransientError, statusOf } from './classify.js';
import { retryAfterMsOf } from './retry-after.js';
import { RetriesExhaustedError } from './errors.js';
import { errorTypeOf, type ResilienceEvent } from './events.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
import type { ResolvedRetryOptions, RetryOptions } from './options.js';
import type { RetryPermits } from './shared-policy-state.js';
import { promiseOf, workOf, type Settle, type Step, type Work } from './step.js';
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
  /**
   * The clock reading the pipeline took as the call started, when its stages up to the retry run
   * in the same synchronous pass (no bulkhead queue): spares each stage a clock read.
   * @internal
   */
  readonly callStartedAt?: number;
  /**
   * The same reading, when the call's first attempt also starts in that pass (no rate limit that
   * may wait before it): spares the attempt timeout of the first attempt its clock read.
   * @internal
   */
  readonly firstAttemptStartedAt?: number;
}

/**
 * Whether a call was stopped from outside its attempts (its caller, its deadline): a
 * {@link Cancellation}, or the one object that runs a whole call of a timeout-and-retry pipeline.
 * @internal
 */
export interface CallStop {
  readonly aborted: boolean;
  readonly reason: unknown;
}

/**
 * What {@link RetryPolicy.afterFailure} needs to know about the call.
 * @internal
 */
export interface FailureContext {
  /** The policy key. */
  readonly policy: string;
  /** The call's deadline: no retry starts that could not begin before it. */
  readonly deadline: number;
  /** Whether the call was stopped: once it was, nothing is retried. */
  readonly token: CallStop;
  readonly hooks: RetryHooks | undefined;
  /** Whether `attempt_end` events are wanted. */
  readonly timed: boolean;
  /** When the failed attempt started (clock ms; 0 when not timed). */
  readonly started: number;
  /** The delay waited before the failed attempt (0 before the second). */
  readonly previousDelay: number;
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
export class RetryPolicy implements Policy, Step<RetryHooks> {
  /** The options with defaults filled in. */
  readonly options: ResolvedRetryOptions;

  constructor(
    options: RetryOptions,
    private readonly env: PolicyEnvironment,
    private readonly budget?: RetryPermits,
  ) {
    this.options = resolveRetryOptions(options);
  }

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext, hooks?: RetryHooks): Promise<T> {
    return promiseOf<T>((settle) => this.run(workOf(fn), context, settle, hooks));
  }

  /**
   * Runs `next` until an attempt succeeds or the loop stops; waits between attempts on the clock,
   * and stops waiting the moment the call's token aborts.
   * The callback form of {@link execute}, which pipelines compose.
   */
  run(next: Work, context: PolicyContext, settle: Settle, hooks?: RetryHooks): void {
    const { token, done } = followContext(context, settle);
    if (token.aborted) {
      done(true, this.stop(context.policy, 0, undefined, 'aborted', abortErrorOf(token)));
      return;
    }
    const { clock } = this.env;
    // one attempt_end per attempt is the hottest event: skip building it when nobody wants it
    const timed = this.beginCall(hooks?.callStartedAt);
    let previousDelay = 0;
    const attemptOnce = (attempt: number, previousError: unknown): void => {
      const attemptContext = contextWith(token, context.deadline, attempt, context.policy, previousError);
      const started = timed ? clock.now() : 0;
      next(attemptContext, (failed, outcome) => {
        if (!failed) {
          if (timed) this.attemptSucceeded(context.policy, attempt, started);
          done(false, outcome);
          return;
        }
        const decision = this.afterFailure(outcome, attemptContext, { policy: context.policy, deadline: context.deadline, token, hooks, timed, started, previousDelay });
        if ('fail' in decision) {
          done(true, decision.fail);
          return;
        }
        const retry = (delay: number) => {
          previousDelay = delay;
          this.wait(delay, token, () => {
            if (token.aborted) done(true, this.abortedWhileWaiting(context.policy, token, attempt, outcome));
            else attemptOnce(attempt + 1, outcome);
          });
        };
        if (!('permit' in decision)) {
          retry(decision.retryIn);
          return;
        }
        // a shared budget answers after a round trip (bounded by its maxWait)
        decision.permit.then((granted) => {
          if (token.aborted) done(true, this.abortedWhileWaiting(context.policy, token, attempt, outcome));
          else if (granted) retry(this.granted(context.policy, attempt, decision.retryIn, outcome));
          else done(true, this.denied(context.policy, attempt, outcome));
        });
      });
    };
    attemptOnce(1, context.previousError);
  }

  /** Calls `resume` after `ms` on the clock, or at once when `token` aborts first (a zero delay still lets the failed attempt's callbacks finish). */
  private wait(ms: number, token: Cancellation, resume: () => void): void {
    if (ms <= 0) {
      queueMicrotask(resume);
      return;
    }
    const { clock } = this.env;
    const unsubscribe = token.onAbort(() => {
      clock.clearTimeout(timer);
      resume();
    });
    const timer = clock.setTimeout(() => {
      unsubscribe();
      resume();
    }, ms);
  }

  /**
   * Starts one call at `now` (read from the clock if not given): counts it for the retry budget
   * and tells whether `attempt_end` events are wanted (then pass `started` times to
   * {@link afterFailure} and {@link attemptSucceeded}).
   * @internal
   */
  beginCall(now?: number): boolean {
    this.budget?.recordCall(now);
    return this.env.events.wants?.('attempt_end') ?? true;
  }

  /** @internal emits the `attempt_end` of a successful attempt. */
  attemptSucceeded(policy: string, attempt: number, started: number): void {
    this.emit({ event: 'attempt_end', policy, attempt, durationMs: this.env.clock.now() - started, outcome: 'success' });
  }

  /**
   * Decides what follows the failed attempt `attemptContext.attempt`: the delay before the next
   * one, or the error the call fails with. Emits `attempt_end`, `retry`, `budget_exhausted` and
   * `give_up`.
   * @internal
   */
  afterFailure(
    error: unknown,
    attemptContext: PolicyContext,
    call: FailureContext,
  ): { retryIn: number } | { fail: unknown } | { permit: Promise<boolean>; retryIn: number } {
    const { policy, token, hooks } = call;
    const { attempt } = attemptContext;
    if (call.timed) {
      this.emit({
        event: 'attempt_end',
        policy,
        attempt,
        durationMs: this.env.clock.now() - call.started,
        outcome: 'failure',
        errorType: errorTypeOf(error),
        error,
      });
    }
    if (token.aborted) return { fail: this.stop(policy, attempt, error, 'aborted', abortErrorOf(token)) };
    if (hooks?.isCommitted?.()) return { fail: this.stop(policy, attempt, error, 'committed', error) };
    if (!this.isRetryable(error, attemptContext)) return { fail: this.stop(policy, attempt, error, 'not_retryable', error) };
    if (attempt >= this.options.maxAttempts) {
      return { fail: this.stop(policy, attempt, error, 'exhausted', attempt > 1 ? new RetriesExhaustedError(attempt, error) : error) };
    }
    const delay = this.delayAfter(attempt, error, call.previousDelay);
    if (this.env.clock.now() + delay >= call.deadline) return { fail: this.stop(policy, attempt, error, 'deadline', error) };
    const permit = this.budget ? this.budget.tryAcquireRetry() : true;
    if (permit === false) return { fail: this.denied(policy, attempt, error) };
    if (permit !== true) return { permit, retryIn: delay };
    return { retryIn: this.granted(policy, attempt, delay, error) };
  }

  /** @internal announces a retry the budget granted; returns its delay. */
  granted(policy: string, attempt: number, delay: number, error: unknown): number {
    this.emit({ event: 'retry', policy, attempt, delayMs: delay, errorType: errorTypeOf(error), status: statusOf(error), error });
    return delay;
  }

  /** @internal announces a retry the budget refused; returns the error the call fails with. */
  denied(policy: string, attempt: number, error: unknown): unknown {
    this.emit({ event: 'budget_exhausted', policy, attempt, errorType: errorTypeOf(error), status: statusOf(error), error });
    return error;
  }

  /**
   * The error of a call whose `token` aborted while it waited before attempt `attempt + 1` (emits `give_up`).
   * @internal
   */
  abortedWhileWaiting(policy: string, token: CallStop, attempt: number, lastError: unknown): unknown {
    return this.stop(policy, attempt, lastError, 'aborted', abortErrorOf(token), true);
  }

  /** Whether `error` may be retried: `abortOn` wins, then `retryOn`, then `retryIf` or the default classifier. */
  isRetryable(error: unknown, context: PolicyContext): boolean {
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
    policy: string,
    attempts: number,
    lastError: unknown,
    reason: GiveUpReason,
    toThrow: unknown,
    retryAnnounced = false,
  ): unknown {
    if (attempts > 1 || retryAnnounced || reason === 'deadline') {
      this.emit({
        event: 'give_up',
        policy,
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
