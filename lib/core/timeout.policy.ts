import { Cancellation, cancellationOf, contextWith } from './cancellation.js';
import { abortErrorOf } from './classify.js';
import { AttemptTimeoutError, DeadlineExceededError, isResilienceError } from './errors.js';
import type { TimerHandle } from './clock.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
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
    private readonly env: PolicyEnvironment,
  ) {}

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    return promiseOf<T>((settle) => this.run(workOf(fn), context, settle));
  }

  /**
   * Settles with the work, or with the abort the moment the token aborts (the work is left to
   * stop through its signal), and cleans up either way.
   * The callback form of {@link execute}, which pipelines compose.
   */
  run(next: Work, context: PolicyContext, settle: Settle): void {
    const attached = cancellationOf(context);
    // a context made by hand: follow its signal, and stop listening to it once done
    const parent = attached ?? Cancellation.from(context.signal);
    if (parent.aborted) {
      if (attached === undefined) parent.dispose();
      settle(true, abortErrorOf(parent));
      return;
    }
    const { clock } = this.env;
    const started = clock.now();
    const limit = this.kind === 'total' ? Math.min(this.timeoutMs, context.deadline - started) : this.timeoutMs;
    const reportedMs = Number.isFinite(this.timeoutMs) ? this.timeoutMs : Math.max(0, limit);
    if (this.kind === 'total' && limit <= 0) {
      if (attached === undefined) parent.dispose();
      settle(true, this.expire(context, reportedMs));
      return;
    }

    const token = parent.child();
    const inner = contextWith(token, Math.min(context.deadline, started + limit), context.attempt, context.policy, context.previousError);
    let timer: TimerHandle | undefined;
    let open = true;
    const finish: Settle = (failed, outcome) => {
      if (!open) return;
      if (timer !== undefined && clock.now() - started > limit) {
        // The work settled after the limit, before the limit's own timer ran: a late event loop runs
        // timers list by list (one list per duration), so a longer timer armed in the same tick can
        // fire first. The limit had passed: it decides, as if its timer had run on time.
        clock.clearTimeout(timer);
        timer = undefined;
        token.abort(this.expire(context, reportedMs));
        return;
      }
      open = false;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      unsubscribe();
      // a caller abort surfaces as OperationAbortedError, unless its reason is one of ours
      const mapped = failed && token.aborted && outcome === token.reason && !isResilienceError(outcome) ? abortErrorOf(token) : outcome;
      token.dispose();
      // marks the attempt settled; only real work when someone materialised its signal
      token.abort(ATTEMPT_SETTLED);
      if (attached === undefined) parent.dispose();
      settle(failed, mapped);
    };
    const unsubscribe = token.onAbort((reason) => finish(true, reason));
    if (Number.isFinite(limit)) {
      timer = clock.setTimeout(() => {
        timer = undefined;
        token.abort(this.expire(context, reportedMs));
      }, limit);
    }
    next(inner, finish);
  }

  private expire(context: PolicyContext, timeoutMs: number): AttemptTimeoutError | DeadlineExceededError {
    return timeoutExpired(this.kind, this.env, context.policy, context.attempt, timeoutMs);
  }
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
