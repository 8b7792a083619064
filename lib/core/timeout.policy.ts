import { Cancellation, cancellationOf, contextWith, type AbortListener } from './cancellation.js';
import type { Deadline } from './deadline-queue.js';
import { abortErrorOf } from './classify.js';
import { AttemptTimeoutError, DeadlineExceededError, isResilienceError } from './errors.js';
import type { TimerHandle } from './clock.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
import type { RetryHooks } from './retry.policy.js';
import { promiseOf, workOf, type Settle, type Step, type Work } from './step.js';

/**
 * Abort reason of an attempt's signal once the attempt has settled: stray work that still holds the
 * signal (a fetch body, a timer) stops instead of running on unobserved.
 * @publicApi
 */
export class AttemptSettledError extends Error {
  constructor() {
    super('The attempt already settled; its signal was aborted so leftover work stops.');
    this.name = 'AttemptSettledError';
  }
}

/** @internal the abort reason of every settled attempt (one instance: it carries no per-call data). */
export const ATTEMPT_SETTLED = new AttemptSettledError();

/**
 * Bounds the wrapped work in time. At expiry the work's signal is aborted with a typed reason
 * (`AttemptTimeoutError` for `attempt`, `DeadlineExceededError` for `total`) and the caller gets that
 * rejection at once, even if the work ignores its signal. A `total` timeout also ends at the
 * context's deadline when that comes first (a caller deadline or time spent queued).
 * @publicApi
 */
export class TimeoutPolicy implements Policy, Step {
  constructor(
    /** `total` bounds the whole operation (not retried); `attempt` one attempt (retried). */
    readonly kind: 'total' | 'attempt',
    /** Timeout in ms; `Infinity` for a `total` policy that only enforces the context's deadline. */
    readonly timeoutMs: number,
    /** @internal */
    readonly env: PolicyEnvironment,
  ) {}

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    return promiseOf<T>((settle) => this.run(workOf(fn), context, settle));
  }

  /**
   * Settles with the work, or with the abort the moment the token aborts (the work is left to
   * stop through its signal), and cleans up either way.
   * The callback form of {@link execute}, which pipelines compose.
   */
  run(next: Work, context: PolicyContext, settle: Settle, hooks?: RetryHooks): void {
    const attached = cancellationOf(context);
    // a context made by hand: follow its signal, and stop listening to it once done
    const parent = attached ?? Cancellation.from(context.signal);
    if (parent.aborted) {
      if (attached === undefined) parent.dispose();
      settle(true, abortErrorOf(parent));
      return;
    }
    const { clock } = this.env;
    // a total timeout runs once per call, in the pipeline's first pass when nothing queues before
    // it; so does the first attempt's timeout when nothing waits before the attempt either
    const started = (this.kind === 'total' ? hooks?.callStartedAt : context.attempt === 1 ? hooks?.firstAttemptStartedAt : undefined) ?? clock.now();
    const limit = this.kind === 'total' ? Math.min(this.timeoutMs, context.deadline - started) : this.timeoutMs;
    const reportedMs = Number.isFinite(this.timeoutMs) ? this.timeoutMs : Math.max(0, limit);
    if (this.kind === 'total' && limit <= 0) {
      if (attached === undefined) parent.dispose();
      settle(true, this.expire(context, reportedMs));
      return;
    }

    const timed = new TimedRun(this, context, parent, attached === undefined, settle, started, limit, reportedMs);
    next(timed.inner, timed.finish);
  }

  /** @internal the expiry of one run: its event, then its error. */
  expire(context: PolicyContext, timeoutMs: number): AttemptTimeoutError | DeadlineExceededError {
    return timeoutExpired(this.kind, this.env, context.policy, context.attempt, timeoutMs);
  }
}

/** Fires a {@link TimedRun}'s limit (one function for every run: the run is the deadline's argument). */
function expireRun(run: TimedRun): void {
  run.expireNow();
}

/**
 * One run under a {@link TimeoutPolicy}: its child token, the inner context and its timer, in one
 * object (a run costs this object and its settle function, not a closure per step). The limit is
 * a deadline on the environment's shared {@link DeadlineQueue} when it has one, else a timer of
 * its own.
 */
class TimedRun implements AbortListener {
  readonly token: Cancellation;
  readonly inner: PolicyContext;
  /** The settle function handed to the work: the first call decides. */
  readonly finish: Settle = (failed, outcome) => this.complete(failed, outcome);
  private timer: TimerHandle | undefined;
  private deadline: Deadline | undefined;
  private open = true;

  constructor(
    private readonly policy: TimeoutPolicy,
    private readonly context: PolicyContext,
    private readonly parent: Cancellation,
    private readonly ownsParent: boolean,
    private readonly settle: Settle,
    private readonly started: number,
    private readonly limit: number,
    private readonly reportedMs: number,
  ) {
    const token = parent.child();
    this.token = token;
    this.inner = contextWith(token, Math.min(context.deadline, started + limit), context.attempt, context.policy, context.previousError);
    token.listen(this);
    if (Number.isFinite(limit)) {
      const { env } = policy;
      if (env.deadlines !== undefined) this.deadline = env.deadlines.schedule(expireRun, limit, this, started);
      else this.timer = env.clock.setTimeout(() => this.expireNow(), limit);
    }
  }

  /** @internal the token aborted (the limit, the caller): the run settles with the reason. */
  handleAbort(reason: unknown): void {
    this.complete(true, reason);
  }

  /** The limit passed: the work is told to stop, and the run settles with the timeout. */
  expireNow(): void {
    this.timer = undefined;
    this.deadline = undefined;
    this.token.abort(this.policy.expire(this.context, this.reportedMs));
  }

  private get armed(): boolean {
    return this.timer !== undefined || this.deadline !== undefined;
  }

  private disarm(): void {
    const { env } = this.policy;
    if (this.timer !== undefined) env.clock.clearTimeout(this.timer);
    else if (this.deadline !== undefined) env.deadlines!.cancel(this.deadline);
    this.timer = undefined;
    this.deadline = undefined;
  }

  private complete(failed: boolean, outcome: unknown): void {
    if (!this.open) return;
    const { token } = this;
    if (this.armed && this.policy.env.clock.now() - this.started > this.limit) {
      // The work settled after the limit, before the limit's own timer ran: a late event loop runs
      // timers list by list (one list per duration), so a longer timer armed in the same tick can
      // fire first. The limit had passed: it decides, as if its timer had run on time.
      this.disarm();
      token.abort(this.policy.expire(this.context, this.reportedMs));
      return;
    }
    this.open = false;
    this.disarm();
    token.unlisten(this);
    const mapped = attemptOutcome(token, failed, outcome);
    token.dispose();
    // marks the attempt settled; only real work when someone materialised its signal
    token.abort(ATTEMPT_SETTLED);
    if (this.ownsParent) this.parent.dispose();
    this.settle(failed, mapped);
  }
}

/**
 * What an attempt whose token is `token` settled with: a failure that is the token's own abort
 * reason surfaces as `OperationAbortedError` (a caller abort), unless the reason is one of the
 * library's errors (a timeout, a deadline).
 * @internal
 */
export function attemptOutcome(token: Cancellation, failed: boolean, outcome: unknown): unknown {
  return failed && token.aborted && outcome === token.reason && !isResilienceError(outcome) ? abortErrorOf(token) : outcome;
}

/**
 * The error of an expired timeout, after emitting its event (`attempt_timeout` or
 * `deadline_exceeded`).
 * @internal
 */
export function timeoutExpired(
  kind: 'total' | 'attempt',
  env: PolicyEnvironment,
  policy: string,
  attempt: number,
  timeoutMs: number,
): AttemptTimeoutError | DeadlineExceededError {
  if (kind === 'attempt') {
    env.events({ event: 'attempt_timeout', policy, attempt, durationMs: timeoutMs });
    return new AttemptTimeoutError(timeoutMs, attempt);
  }
  env.events({ event: 'deadline_exceeded', policy, attempt, durationMs: timeoutMs });
  return new DeadlineExceededError(timeoutMs);
}
