import { Cancellation, contextWith, type AbortListener } from './cancellation.js';
import type { TimerHandle } from './clock.js';
import type { Deadline } from './deadline-queue.js';
import type { PolicyContext, PolicyEnvironment } from './policy.js';
import type { CallStop, RetryHooks, RetryPolicy } from './retry.policy.js';
import type { Settle, Work } from './step.js';
import { ATTEMPT_SETTLED, attemptOutcome, timeoutExpired } from './timeout.policy.js';

/**
 * A pipeline whose only stages are timeouts and a retry (the commonest: `@Timeout()`,
 * `@Retryable()`, both), as one plan: what {@link TimedRetryRun} needs.
 * @internal
 */
export interface TimedRetryPlan {
  readonly key: string;
  readonly env: PolicyEnvironment;
  /** The total timeout in ms, when the pipeline has one. */
  readonly total: number | undefined;
  /** The attempt timeout in ms, when it can fire (one that is not shorter than the total and not retried never can). */
  readonly attempt: number | undefined;
  readonly retry: RetryPolicy | undefined;
}

/** Fires the limit of a run's current attempt (one function for every run: the run is the deadline's argument). */
function expireAttempt(run: TimedRetryRun): void {
  run.limitReached();
}

/**
 * One call of a timeout-and-retry pipeline, run by one object: what the chain of a total
 * {@link TimeoutPolicy}, a {@link RetryPolicy} and an attempt `TimeoutPolicy` does for it, with the
 * same outcomes and events (the retry's decisions are the policy's own), at the cost of this
 * object, one token and one context per attempt.
 *
 * - Each attempt gets a child token of the caller's, aborted when the attempt's limit or the
 *   call's deadline passes, when the caller aborts, and (with `AttemptSettledError`) once it settled:
 *   without an attempt timeout, a retried attempt runs as under an attempt timeout of `Infinity`
 *   (the chain shared one token between such attempts, so an attempt stopped by its caller or
 *   deadline reported no `attempt_end`).
 * - The attempt's limit and the call's deadline share **one** deadline, the sooner of the two, and
 *   it is only scheduled when the attempt is still running after its first synchronous pass: work
 *   that settles in that pass (a synchronous handler) schedules nothing. Work that settles after a
 *   limit passed, before the deadline's callback ran (a late event loop, a long synchronous pass),
 *   is judged by the clock as the deadline would have: the limit decides.
 * - At the very millisecond of a limit, the limit wins over work settled after its first pass, as it
 *   did in the chain (whose timers were armed before the work's own); see {@link passed}.
 * @internal
 */
export class TimedRetryRun implements AbortListener, CallStop, RetryHooks {
  private open = true;
  /** The error the call's deadline passed with, once its callback ran. */
  private expired: unknown = undefined;
  /** The error of a deadline found passed as an attempt settled, before its callback ran: the call ends with it. */
  private lateExpiry: unknown = undefined;
  private attempt = 0;
  private previousDelay = 0;
  private timed = false;
  /** The running attempt: its token and context, when it started, when its own limit ends. */
  private token: Cancellation | undefined;
  private context: PolicyContext | undefined;
  private attemptStarted = 0;
  private attemptEnd = Infinity;
  private attemptOpen = false;
  /** Whether the attempt's work is in its first synchronous pass (its `work()` call). */
  private inWork = false;
  private deadlineEntry: Deadline | undefined;
  private timer: TimerHandle | undefined;
  /** The timer of the wait before a retry, and its listener on the caller. */
  private waitTimer: TimerHandle | undefined;

  constructor(
    private readonly plan: TimedRetryPlan,
    private readonly work: Work,
    /** The caller's token: followed, never aborted or disposed here. */
    private readonly caller: Cancellation,
    /** The call's deadline (the caller's, or the total timeout's from `started`, whichever is sooner). */
    private readonly deadline: number,
    /** What a passed deadline reports as its limit (the total timeout, or the caller's time left). */
    private readonly deadlineMs: number,
    /** The call's options: their commit check is called on them (a method of the caller's call object). */
    private readonly options: { isCommitted?(): boolean },
    private readonly settle: Settle,
  ) {}

  /** @internal whether the call was stopped from outside its attempts (its caller, its deadline). */
  get aborted(): boolean {
    return this.expired !== undefined || this.caller.aborted;
  }

  /** @internal why the call was stopped. */
  get reason(): unknown {
    return this.expired ?? this.caller.reason;
  }

  /** @internal the call's commit check, for the retry's decision. */
  isCommitted(): boolean {
    return this.options.isCommitted?.() ?? false;
  }

  /** Starts the call at `now` (the caller checked its token is not aborted). */
  start(now: number): void {
    if (this.deadline - now <= 0) {
      this.finish(true, this.expire());
      return;
    }
    const { retry } = this.plan;
    if (retry !== undefined) this.timed = retry.beginCall(now);
    this.startAttempt(undefined, now);
  }

  /** @internal the attempt's token aborted (the caller, a limit): the attempt fails with the reason. */
  handleAbort(reason: unknown): void {
    this.attemptSettled(true, reason);
  }

  /** @internal the sooner of the attempt's limit and the call's deadline passed. */
  limitReached(): void {
    this.deadlineEntry = undefined;
    this.timer = undefined;
    if (!this.attemptOpen) return;
    const token = this.token!;
    if (this.deadline <= this.attemptEnd) {
      this.expired = this.expire();
      token.abort(this.expired);
    } else {
      token.abort(timeoutExpired('attempt', this.plan.env, this.plan.key, this.attempt, this.plan.attempt!));
    }
  }

  private startAttempt(previousError: unknown, now: number): void {
    const attempt = ++this.attempt;
    const token = this.caller.child();
    this.token = token;
    this.attemptStarted = now;
    const limit = this.plan.attempt;
    this.attemptEnd = limit === undefined ? Infinity : now + limit;
    const context = contextWith(token, Math.min(this.deadline, this.attemptEnd), attempt, this.plan.key, previousError);
    this.context = context;
    this.attemptOpen = true;
    token.listen(this);
    // this attempt's own settle: an earlier attempt's work settling late (after its timeout, while
    // this one runs) must not settle this one
    const settle: Settle = (failed, outcome) => {
      if (this.token === token) this.attemptSettled(failed, outcome);
    };
    this.inWork = true;
    try {
      this.work(context, settle);
    } finally {
      this.inWork = false;
    }
    // still running after its first synchronous pass: only now can a limit fire before it settles
    if (this.attemptOpen && this.token === token) this.arm(Math.min(this.deadline, this.attemptEnd), now);
  }

  private arm(dueAt: number, now: number): void {
    if (dueAt === Infinity) return;
    const { env } = this.plan;
    if (env.deadlines !== undefined) this.deadlineEntry = env.deadlines.schedule(expireAttempt, dueAt - now, this, now);
    else this.timer = env.clock.setTimeout(() => this.limitReached(), Math.max(0, dueAt - env.clock.now()));
  }

  private disarm(): void {
    const { env } = this.plan;
    if (this.deadlineEntry !== undefined) env.deadlines!.cancel(this.deadlineEntry);
    else if (this.timer !== undefined) env.clock.clearTimeout(this.timer);
    this.deadlineEntry = undefined;
    this.timer = undefined;
  }

  private attemptSettled(failed: boolean, outcome: unknown): void {
    if (!this.attemptOpen) return;
    const token = this.token!;
    const { env } = this.plan;
    const now = this.attemptEnd !== Infinity || this.deadline !== Infinity || this.timed ? env.clock.now() : 0;
    if (!token.aborted) {
      if (!this.inWork && now >= Math.min(this.attemptEnd, this.deadline)) {
        // settled by a timer or an answer at or after a limit, before the limit's callback ran: the
        // limit, whose timer the chain of policies armed before the work's own, decides
        this.disarm();
        this.limitReached();
        return;
      }
      if (this.inWork && now > this.attemptEnd) {
        // a first pass that ran past the attempt's limit: the limit decides
        token.abort(timeoutExpired('attempt', env, this.plan.key, this.attempt, this.plan.attempt!));
        return;
      }
    }
    this.attemptOpen = false;
    this.disarm();
    token.unlisten(this);
    const result = attemptOutcome(token, failed, outcome);
    token.dispose();
    if (this.expired === undefined && this.passed(this.deadline, now)) {
      // the call's deadline passed before its callback ran: it decides (finish), and leftover work is told why
      this.lateExpiry = this.expire();
      token.abort(this.lateExpiry);
    } else {
      // marks the attempt settled; only real work when someone materialised its signal
      token.abort(ATTEMPT_SETTLED);
    }
    const { retry } = this.plan;
    if (retry === undefined) {
      this.finish(failed, result, now);
      return;
    }
    if (!failed) {
      if (this.timed) retry.attemptSucceeded(this.plan.key, this.attempt, this.attemptStarted);
      this.finish(false, result, now);
      return;
    }
    this.retryAfter(retry, result);
  }

  /** Asks the retry policy what follows a failed attempt, and does it. */
  private retryAfter(retry: RetryPolicy, error: unknown): void {
    const { key } = this.plan;
    const attempt = this.attempt;
    const decision = retry.afterFailure(error, this.context!, {
      policy: key,
      deadline: this.deadline,
      token: this,
      hooks: this,
      timed: this.timed,
      started: this.timed ? this.attemptStarted : 0,
      previousDelay: this.previousDelay,
    });
    if ('fail' in decision) {
      this.finish(true, decision.fail);
      return;
    }
    if (!('permit' in decision)) {
      this.wait(decision.retryIn, error);
      return;
    }
    // a shared budget answers after a round trip (bounded by its maxWait)
    void decision.permit.then((granted) => {
      if (this.aborted) this.finish(true, retry.abortedWhileWaiting(key, this, attempt, error));
      else if (granted) this.wait(retry.granted(key, attempt, decision.retryIn, error), error);
      else this.finish(true, retry.denied(key, attempt, error));
    });
  }

  /** Waits `ms` before the next attempt, or until the caller aborts (a zero delay still lets the failed attempt's callbacks finish). */
  private wait(ms: number, error: unknown): void {
    this.previousDelay = ms;
    const { clock } = this.plan.env;
    const resume = () => this.resume(error, resumeOnAbort);
    const resumeOnAbort: AbortListener = {
      handleAbort: () => {
        if (this.waitTimer !== undefined) clock.clearTimeout(this.waitTimer);
        this.waitTimer = undefined;
        this.resume(error, resumeOnAbort);
      },
    };
    if (ms <= 0) {
      queueMicrotask(resume);
      return;
    }
    this.caller.listen(resumeOnAbort);
    // a wait never outlives the deadline (the retry policy refuses one that would start after it,
    // but a shared budget's answer may come late): resuming at the deadline ends the call there
    this.waitTimer = clock.setTimeout(resume, Math.min(ms, Math.max(0, this.deadline - clock.now())));
  }

  private resume(error: unknown, listener: AbortListener): void {
    this.waitTimer = undefined;
    this.caller.unlisten(listener);
    if (!this.open) return;
    const { retry } = this.plan;
    if (this.caller.aborted) {
      this.finish(true, retry!.abortedWhileWaiting(this.plan.key, this, this.attempt, error));
      return;
    }
    const now = this.plan.env.clock.now();
    // a late timer: the deadline passed during the wait, and no attempt starts after it
    if (now >= this.deadline) {
      this.finish(true, this.expire());
      return;
    }
    this.startAttempt(error, now);
  }

  /**
   * Whether a limit ending at `end` had passed by `now`. At its very millisecond, work settled
   * later than its first synchronous pass (by a timer, an answer) is late: the limit's timer, which
   * the chain of policies armed before the work ran, would have run first. Work settled within its
   * first pass is on time.
   */
  private passed(end: number, now: number): boolean {
    return now > end || (now === end && !this.inWork);
  }

  /** The call's deadline passed: its event (on attempt 1, as the total timeout's own context says), and its error. */
  private expire(): unknown {
    return timeoutExpired('total', this.plan.env, this.plan.key, 1, this.deadlineMs);
  }

  /** Settles the call once; a call that ends after its deadline, before the deadline's callback ran, ends with the deadline. */
  private finish(failed: boolean, outcome: unknown, now?: number): void {
    if (!this.open) return;
    this.open = false;
    if (this.lateExpiry !== undefined) {
      this.settle(true, this.lateExpiry);
      return;
    }
    if (this.expired === undefined && this.deadline !== Infinity && this.passed(this.deadline, now ?? this.plan.env.clock.now())) {
      this.settle(true, this.expire());
      return;
    }
    this.settle(failed, outcome);
  }
}
