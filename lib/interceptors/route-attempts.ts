import type { Observable, Observer, Subscriber, Subscription, Unsubscribable } from 'rxjs';
import {
  createContextStore,
  runAttemptCleanups,
  runWithResilienceContext,
  type ResilienceContextStore,
  type SharedStoreFields,
} from '../context/resilience-context.js';
import type { AbortListener, Cancellation } from '../core/cancellation.js';
import { contextWith } from '../core/cancellation.js';
import type { DeadlineEntry, DeadlineListener, DeadlineQueue } from '../core/deadline-queue.js';
import { OperationAbortedError } from '../core/errors.js';
import type { LeanPlan } from '../core/pipeline.js';
import type { PolicyContext, PolicyEnvironment } from '../core/policy.js';
import type { TimerHandle } from '../core/clock.js';
import type { FailureContext, RetryPolicy } from '../core/retry.policy.js';
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
  /** Called once when the call is torn down (after the work was aborted, if it was still running). */
  readonly release?: () => void;
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
 * Returns the teardown. The call and each attempt are one object each, serving as their own
 * observer and listeners: no closures per request.
 * @internal
 */
export function runRouteAttempts(
  plan: LeanPlan,
  env: PolicyEnvironment,
  deadlines: DeadlineQueue,
  source: () => unknown,
  call: RouteCall,
  subscriber: Subscriber<unknown>,
): Unsubscribable {
  const run = new RouteRun(plan, env, deadlines, source, call, subscriber);
  run.startAttempt(1, undefined, run.startedAt);
  return run;
}

/** One route call: its deadline, its retry state and its teardown. */
class RouteRun implements Unsubscribable, AbortListener {
  readonly startedAt: number;
  readonly deadline: number;
  readonly retry: RetryPolicy | undefined;
  /** Whether `attempt_end` events are wanted (then attempts are timed). */
  readonly timed: boolean;
  /** The call's context as the retry policy sees it (deadline and key): built on the first failure. */
  private failureContext: Omit<FailureContext, 'started' | 'previousDelay'> | undefined;
  /** The outcome reached the subscriber (or is being delivered): nothing is retried any more. */
  settled = false;
  /** The current attempt emitted: from then on its errors go to the subscriber untouched. */
  emitted = false;
  /** The current attempt's subscription to its source. */
  inner: Subscription | undefined;
  private previousDelay = 0;
  /** While waiting before the next attempt: the attempt that failed, its error, and the timer. */
  private waiting: { attempt: number; error: unknown; backoff: TimerHandle | undefined } | undefined;

  constructor(
    readonly plan: LeanPlan,
    readonly env: PolicyEnvironment,
    readonly deadlines: DeadlineQueue,
    readonly source: () => unknown,
    readonly call: RouteCall,
    readonly subscriber: Subscriber<unknown>,
  ) {
    this.startedAt = env.clock.now();
    this.deadline = plan.total === undefined ? Infinity : this.startedAt + plan.total;
    this.retry = plan.retry;
    this.timed = this.retry?.beginCall(this.startedAt) ?? false;
  }

  startAttempt(attempt: number, previousError: unknown, started: number): void {
    new RouteAttempt(this, attempt, previousError, started).start();
  }

  fail(error: unknown): void {
    this.settled = true;
    if (!this.subscriber.closed) this.subscriber.error(this.call.mapError(error));
  }

  /** Decides what follows a failed attempt: fail now, or wait and start the next one. */
  afterFailure(error: unknown, attemptContext: PolicyContext, started: number): void {
    const retry = this.retry;
    if (!retry) {
      this.fail(error);
      return;
    }
    const callToken = this.call.cancellation;
    this.failureContext ??= {
      context: contextWith(callToken, this.deadline, 1, this.call.store.policy),
      token: callToken,
      hooks: { isCommitted: this.call.isCommitted },
      timed: this.timed,
    };
    const next = retry.afterFailure(error, attemptContext, {
      ...this.failureContext,
      started,
      previousDelay: this.previousDelay,
    });
    if ('fail' in next) {
      this.fail(next.fail);
      return;
    }
    this.previousDelay = next.retryIn;
    const waiting = { attempt: attemptContext.attempt, error, backoff: undefined as TimerHandle | undefined };
    this.waiting = waiting;
    callToken.listen(this);
    // a zero delay still leaves the failed attempt's callbacks before the next one starts
    if (next.retryIn > 0) waiting.backoff = this.env.clock.setTimeout(() => this.resume(waiting), next.retryIn);
    else queueMicrotask(() => this.resume(waiting));
  }

  /** The call was aborted while waiting before the next attempt. */
  handleAbort(): void {
    const waiting = this.waiting;
    if (waiting === undefined) return;
    this.waiting = undefined;
    if (waiting.backoff !== undefined) this.env.clock.clearTimeout(waiting.backoff);
    this.stopWaiting(waiting);
  }

  private resume(waiting: NonNullable<RouteRun['waiting']>): void {
    if (this.waiting !== waiting) return;
    this.waiting = undefined;
    const callToken = this.call.cancellation;
    callToken.unlisten(this);
    if (callToken.aborted) this.stopWaiting(waiting);
    else this.startAttempt(waiting.attempt + 1, waiting.error, this.env.clock.now());
  }

  private stopWaiting(waiting: NonNullable<RouteRun['waiting']>): void {
    const { context } = this.failureContext!;
    this.fail(this.retry!.abortedWhileWaiting(context, this.call.cancellation, waiting.attempt, waiting.error));
  }

  unsubscribe(): void {
    if (!this.settled) {
      this.call.cancellation.abort(new OperationAbortedError('the subscriber unsubscribed before the operation finished'));
    }
    this.inner?.unsubscribe();
    this.call.release?.();
  }
}

/** One attempt: its token, deadline and resilience context; the observer of its source. */
class RouteAttempt implements Observer<unknown>, AbortListener, DeadlineListener {
  private readonly token: Cancellation;
  private readonly store: ResilienceContextStore;
  private readonly entry: DeadlineEntry | undefined;
  private open = true;

  constructor(
    private readonly run: RouteRun,
    private readonly attempt: number,
    private readonly previousError: unknown,
    private readonly started: number,
  ) {
    const { plan, call } = run;
    this.token = call.cancellation.child();
    const limit = plan.attempt === undefined ? run.deadline : Math.min(run.deadline, started + plan.attempt);
    this.store = createContextStore(call.store, this.token, limit, attempt, true);
    this.entry = Number.isFinite(limit) ? run.deadlines.schedule(limit - started, this, started) : undefined;
  }

  start(): void {
    const token = this.token;
    if (token.aborted) {
      this.finish(false, token.reason);
      return;
    }
    token.listen(this);
    runWithResilienceContext(this.store, subscribeAttempt, this);
  }

  /** Subscribes to a fresh source inside the attempt's context (see {@link start}). */
  subscribeToSource(): void {
    let source$: Observable<unknown>;
    try {
      source$ = toObservable(this.run.source());
    } catch (error) {
      this.finish(false, error);
      return;
    }
    const subscription = source$.subscribe(this);
    this.run.inner = subscription;
    // aborted while subscribing (a synchronous source failed, the deadline passed)
    if (!this.open && !this.run.emitted) subscription.unsubscribe();
  }

  next(value: unknown): void {
    const run = this.run;
    if (!run.emitted) {
      run.emitted = true;
      this.finish(true);
    }
    run.subscriber.next(value);
  }

  error(error: unknown): void {
    if (this.run.emitted) this.run.fail(error);
    else this.finish(false, error);
  }

  complete(): void {
    if (!this.run.emitted) this.finish(true);
    this.run.subscriber.complete();
  }

  /** The attempt's token aborted (attempt timeout, total deadline, client gone, teardown). */
  handleAbort(reason: unknown): void {
    if (this.run.emitted) return;
    this.run.inner?.unsubscribe();
    this.finish(false, reason);
  }

  /** The attempt's deadline passed: the attempt timeout, or the call's total deadline. */
  onDeadline(): void {
    runWithResilienceContext(this.store, expireAttempt, this);
  }

  expire(): void {
    const { env, plan, deadline, call } = this.run;
    const policy = call.store.policy;
    // the total deadline reports attempt 1 like the general path's outer timeout does
    if (env.clock.now() >= deadline) call.cancellation.abort(timeoutExpired('total', env, policy, 1, plan.total!));
    else this.token.abort(timeoutExpired('attempt', env, policy, this.attempt, plan.attempt!));
  }

  private finish(succeeded: boolean, error?: unknown): void {
    if (!this.open) return;
    this.open = false;
    const { run, token, store } = this;
    this.entry?.cancel();
    token.unlisten(this);
    token.dispose();
    // marks the attempt settled; only real work when someone materialised its signal
    token.abort(ATTEMPT_SETTLED);
    runAttemptCleanups(store);
    if (succeeded) {
      run.settled = true;
      if (run.timed) run.retry!.attemptSucceeded(run.call.store.policy, this.attempt, this.started);
    } else {
      // the retry policy judges the failure in the call's context, as its own loop does
      runWithResilienceContext(store, judgeFailure, { attempt: this, error });
    }
  }

  /** Hands the failure to the call (see {@link finish}). */
  judge(error: unknown): void {
    const { run } = this;
    const { call } = run;
    const context = contextWith(call.cancellation, run.deadline, this.attempt, call.store.policy, this.previousError);
    run.afterFailure(error, context, this.started);
  }
}

// Module-level functions, not closures, for the context switches on the request path.
function subscribeAttempt(attempt: RouteAttempt): void {
  attempt.subscribeToSource();
}

function expireAttempt(attempt: RouteAttempt): void {
  attempt.expire();
}

function judgeFailure({ attempt, error }: { attempt: RouteAttempt; error: unknown }): void {
  attempt.judge(error);
}
