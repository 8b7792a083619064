import type { Observable, Subscriber, Subscription } from 'rxjs';
import {
  createContextStore,
  runAttemptCleanups,
  runWithResilienceContext,
  type SharedStoreFields,
} from '../context/resilience-context.js';
import type { Cancellation } from '../core/cancellation.js';
import { contextWith } from '../core/cancellation.js';
import type { DeadlineEntry, DeadlineQueue } from '../core/deadline-queue.js';
import { OperationAbortedError } from '../core/errors.js';
import type { LeanPlan } from '../core/pipeline.js';
import type { ExecutionContext, PolicyEnvironment } from '../core/policy.js';
import type { TimerHandle } from '../core/clock.js';
import type { FailureContext } from '../core/retry.policy.js';
import { ATTEMPT_SETTLED, timeoutExpired } from '../core/timeout.policy.js';
import { toObservable } from '../resilience-pipelines.js';

/**
 * One route call driven by {@link runRouteAttempts}.
 * @internal
 */
export interface RouteCall {
  /**
   * The call's token (the client connection): the total deadline and the teardown abort it, so it
   * must belong to this call alone.
   */
  readonly cancellation: Cancellation;
  /** Returns `true` once the response started (nothing may be retried after it). */
  readonly isCommitted: () => boolean;
  /** Policy key, request, clock and owner of every attempt's resilience context. */
  readonly store: SharedStoreFields;
  /** Turns the call's final error into what the client gets. */
  readonly mapError: (error: unknown) => unknown;
}

/**
 * Runs a route whose pipeline is timeouts and retries only ({@link LeanPlan}) with callbacks
 * instead of promises, and with the attempts' deadlines in a shared {@link DeadlineQueue} instead
 * of a timer each: a successful first attempt (nearly every request) then costs a few plain
 * objects on top of the bare route. Same semantics as the general path (`runObservable` over
 * `Pipeline.execute`):
 * - each attempt subscribes to a fresh `source()` inside its own resilience context;
 * - the first emission (or completion) ends the attempt successfully: it is forwarded at once and
 *   nothing is retried after it; later errors go to `mapError` untouched by any policy;
 * - the attempt timeout aborts the attempt (retryable), the total deadline aborts the call;
 * - a failure goes through the retry policy's decision (classifier, budget, Retry-After,
 *   deadline, events); the backoff waits on the clock and stops at once when the call aborts;
 * - unsubscribing before the outcome aborts the work.
 * Returns the teardown.
 * @internal
 */
export function runRouteAttempts(
  plan: LeanPlan,
  env: PolicyEnvironment,
  deadlines: DeadlineQueue,
  source: () => unknown,
  call: RouteCall,
  subscriber: Subscriber<unknown>,
): () => void {
  const { clock } = env;
  const { retry } = plan;
  const callToken = call.cancellation;
  const policy = call.store.policy;
  const startedAt = clock.now();
  const deadline = plan.total === undefined ? Infinity : startedAt + plan.total;
  const timed = retry?.beginCall(startedAt) ?? false;
  // what the retry policy sees as the call's context (its deadline and key): built on the first failure
  let failureContext: Omit<FailureContext, 'started' | 'previousDelay'> | undefined;
  let settled = false;
  let emitted = false;
  let inner: Subscription | undefined;
  let previousDelay = 0;
  let backoff: TimerHandle | undefined;
  let stopBackoff: (() => void) | undefined;

  const fail = (error: unknown) => {
    settled = true;
    if (!subscriber.closed) subscriber.error(call.mapError(error));
  };

  const startAttempt = (attempt: number, previousError: unknown, started: number): void => {
    const token = callToken.child();
    const limit = plan.attempt === undefined ? deadline : Math.min(deadline, started + plan.attempt);
    const store = createContextStore(call.store, token, limit, attempt, true);
    let open = true;

    const expire = () =>
      runWithResilienceContext(store, () => {
        // the total deadline reports attempt 1 like the general path's outer timeout does
        if (clock.now() >= deadline) callToken.abort(timeoutExpired('total', env, policy, 1, plan.total!));
        else token.abort(timeoutExpired('attempt', env, policy, attempt, plan.attempt!));
      });
    const entry: DeadlineEntry | undefined = Number.isFinite(limit) ? deadlines.schedule(limit - started, expire, started) : undefined;

    const finish = (succeeded: boolean, error?: unknown) => {
      if (!open) return;
      open = false;
      entry?.cancel();
      stopListening();
      token.dispose();
      // marks the attempt settled; only real work when someone materialised its signal
      token.abort(ATTEMPT_SETTLED);
      runAttemptCleanups(store);
      if (succeeded) {
        settled = true;
        if (timed) retry!.attemptSucceeded(policy, attempt, started);
      } else {
        // the retry policy judges the failure in the call's context, as its own loop does
        runWithResilienceContext(store, () => afterFailure(error, contextWith(callToken, deadline, attempt, policy, previousError), started));
      }
    };
    const stopListening = token.onAbort((reason) => {
      if (emitted) return;
      inner?.unsubscribe();
      finish(false, reason);
    });
    if (token.aborted) {
      finish(false, token.reason);
      return;
    }

    runWithResilienceContext(store, () => {
      let source$: Observable<unknown>;
      try {
        source$ = toObservable(source());
      } catch (error) {
        finish(false, error);
        return;
      }
      const subscription = source$.subscribe({
        next: (value) => {
          if (!emitted) {
            emitted = true;
            finish(true);
          }
          subscriber.next(value);
        },
        error: (error: unknown) => {
          if (emitted) fail(error);
          else finish(false, error);
        },
        complete: () => {
          if (!emitted) finish(true);
          subscriber.complete();
        },
      });
      inner = subscription;
      // aborted while subscribing (a synchronous source failed, the deadline passed)
      if (!open && !emitted) subscription.unsubscribe();
    });
  };

  const afterFailure = (error: unknown, attemptContext: ExecutionContext, started: number): void => {
    if (!retry) {
      fail(error);
      return;
    }
    failureContext ??= { context: contextWith(callToken, deadline, 1, policy), token: callToken, hooks: { isCommitted: call.isCommitted }, timed };
    const { context } = failureContext;
    const next = retry.afterFailure(error, attemptContext, { ...failureContext, started, previousDelay });
    if ('fail' in next) {
      fail(next.fail);
      return;
    }
    const attempt = attemptContext.attempt;
    const stop = () => fail(retry.abortedWhileWaiting(context, callToken, attempt, error));
    const resume = () => {
      backoff = undefined;
      stopBackoff?.();
      stopBackoff = undefined;
      if (callToken.aborted) stop();
      else startAttempt(attempt + 1, error, clock.now());
    };
    previousDelay = next.retryIn;
    stopBackoff = callToken.onAbort(() => {
      stopBackoff = undefined;
      if (backoff !== undefined) clock.clearTimeout(backoff);
      backoff = undefined;
      stop();
    });
    // a zero delay still leaves the failed attempt's callbacks before the next one starts
    if (next.retryIn > 0) backoff = clock.setTimeout(resume, next.retryIn);
    else queueMicrotask(() => {
      if (stopBackoff !== undefined) resume();
    });
  };

  startAttempt(1, undefined, startedAt);

  return () => {
    if (!settled) callToken.abort(new OperationAbortedError('the subscriber unsubscribed before the operation finished'));
    inner?.unsubscribe();
  };
}
