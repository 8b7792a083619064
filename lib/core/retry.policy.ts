import { computeBackoffDelay } from './backoff.js';
import { Cancellation, cancellationOf, contextWith, sleepUnlessCancelled } from './cancellation.js';
import { abortErrorOf, isTransientError, retryAfterMsOf, statusOf } from './classify.js';
import { RetriesExhaustedError } from './errors.js';
import { errorTypeOf, type ResilienceEvent } from './events.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
import type { ResolvedRetryOptions, RetryOptions } from './options.js';
import type { RetryBudget } from './retry-budget.js';
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

/** What the retry loop carries from one attempt to the next. */
interface AttemptState<T> {
  readonly fn: (context: PolicyContext) => Promise<T>;
  readonly context: PolicyContext;
  readonly token: Cancellation;
  readonly hooks: RetryHooks | undefined;
  /** Whether `attempt_end` events are wanted. */
  readonly timed: boolean;
  readonly attemptContext: PolicyContext;
  /** When the attempt started (clock ms; 0 when not timed). */
  readonly started: number;
}

/**
 * What {@link RetryPolicy.afterFailure} needs to know about the call.
 * @internal
 */
export interface FailureContext {
  /** The context the retry policy was given (its deadline and policy key). */
  readonly context: PolicyContext;
  /** The call's token: once aborted, nothing is retried. */
  readonly token: Cancellation;
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

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext, hooks?: RetryHooks): Promise<T> {
    const attached = cancellationOf(context);
    if (attached !== undefined) return this.run(fn, context, attached, hooks);
    // a context made by hand: follow its signal, and stop listening to it once done
    const token = Cancellation.from(context.signal);
    return this.run(fn, context, token, hooks).finally(() => token.dispose());
  }

  /** The first attempt without an async frame: a success, the common case, costs one `then`. */
  private run<T>(
    fn: (context: PolicyContext) => Promise<T>,
    context: PolicyContext,
    token: Cancellation,
    hooks: RetryHooks | undefined,
  ): Promise<T> {
    if (token.aborted) return Promise.reject(this.stop(context, 0, undefined, 'aborted', abortErrorOf(token)));
    const { clock } = this.env;
    // one attempt_end per attempt is the hottest event: skip building it when nobody wants it
    const timed = this.beginCall();
    const first = contextWith(token, context.deadline, 1, context.policy, context.previousError);
    const started = timed ? clock.now() : 0;
    return invoke(fn, first).then(
      (result) => {
        if (timed) this.attemptSucceeded(context.policy, 1, started);
        return result;
      },
      (error: unknown) => this.retryAfter(error, { fn, context, token, hooks, timed, attemptContext: first, started }),
    );
  }

  /** Handles a failed attempt, then runs the next ones until one succeeds or the loop stops. */
  private async retryAfter<T>(firstError: unknown, state: AttemptState<T>): Promise<T> {
    const { fn, context, token, hooks, timed } = state;
    const { clock } = this.env;
    let { attemptContext, started } = state;
    let error = firstError;
    let previousDelay = 0;
    for (let attempt = 1; ; ) {
      const next = this.afterFailure(error, attemptContext, { context, token, hooks, timed, started, previousDelay });
      if ('fail' in next) throw next.fail;
      const delay = next.retryIn;
      if (delay > 0) {
        try {
          await sleepUnlessCancelled(clock, delay, token);
        } catch {
          throw this.abortedWhileWaiting(context, token, attempt, error);
        }
      }
      previousDelay = delay;

      attempt++;
      if (token.aborted) throw this.abortedWhileWaiting(context, token, attempt - 1, error);
      attemptContext = contextWith(token, context.deadline, attempt, context.policy, error);
      started = timed ? clock.now() : 0;
      try {
        const result = await invoke(fn, attemptContext);
        if (timed) this.attemptSucceeded(context.policy, attempt, started);
        return result;
      } catch (caught) {
        error = caught;
      }
    }
  }

  /**
   * Starts one call at `now` (read from the clock if not given): counts it for the retry budget
   * and tells whether `attempt_end` events are wanted (then pass `started` times to
   * {@link afterFailure} and {@link attemptSucceeded}).
   * @internal for callers that drive the attempts themselves (the Nest route path).
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
   * `give_up` as the loop does.
   * @internal for callers that drive the attempts themselves (the Nest route path).
   */
  afterFailure(error: unknown, attemptContext: PolicyContext, call: FailureContext): { retryIn: number } | { fail: unknown } {
    const { context, token, hooks } = call;
    const { attempt } = attemptContext;
    if (call.timed) {
      this.emit({
        event: 'attempt_end',
        policy: context.policy,
        attempt,
        durationMs: this.env.clock.now() - call.started,
        outcome: 'failure',
        errorType: errorTypeOf(error),
        error,
      });
    }
    if (token.aborted) return { fail: this.stop(context, attempt, error, 'aborted', abortErrorOf(token)) };
    if (hooks?.isCommitted?.()) return { fail: this.stop(context, attempt, error, 'committed', error) };
    if (!this.isRetryable(error, attemptContext)) return { fail: this.stop(context, attempt, error, 'not_retryable', error) };
    if (attempt >= this.options.maxAttempts) {
      return { fail: this.stop(context, attempt, error, 'exhausted', attempt > 1 ? new RetriesExhaustedError(attempt, error) : error) };
    }
    const delay = this.delayAfter(attempt, error, call.previousDelay);
    if (this.env.clock.now() + delay >= context.deadline) return { fail: this.stop(context, attempt, error, 'deadline', error) };
    if (this.budget && !this.budget.tryAcquireRetry()) {
      this.emit({ event: 'budget_exhausted', policy: context.policy, attempt, errorType: errorTypeOf(error), status: statusOf(error), error });
      return { fail: error };
    }
    this.emit({ event: 'retry', policy: context.policy, attempt, delayMs: delay, errorType: errorTypeOf(error), status: statusOf(error), error });
    return { retryIn: delay };
  }

  /**
   * The error of a call whose `token` aborted while it waited before attempt `attempt + 1` (emits `give_up`).
   * @internal
   */
  abortedWhileWaiting(context: PolicyContext, token: Cancellation, attempt: number, lastError: unknown): unknown {
    return this.stop(context, attempt, lastError, 'aborted', abortErrorOf(token), true);
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
    context: PolicyContext,
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
