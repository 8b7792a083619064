import { Cancellation, cancellationOf, contextWith } from './cancellation.js';
import { abortErrorOf } from './classify.js';
import { AttemptTimeoutError, DeadlineExceededError, isResilienceError } from './errors.js';
import type { TimerHandle } from './clock.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';

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

/** @internal runs `fn`, turning a synchronous throw into a rejection. */
export function invoke<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
  try {
    return Promise.resolve(fn(context));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Bounds the wrapped work in time. At expiry the work's signal is aborted with a typed reason
 * (`AttemptTimeoutError` for `attempt`, `DeadlineExceededError` for `total`) and the caller gets that
 * rejection at once, even if the work ignores its signal. A `total` timeout also ends at the
 * context's deadline when that comes first (a caller deadline or time spent queued).
 * @publicApi
 */
export class TimeoutPolicy implements Policy {
  constructor(
    /** `total` bounds the whole operation (not retried); `attempt` one attempt (retried). */
    readonly kind: 'total' | 'attempt',
    /** Timeout in ms; `Infinity` for a `total` policy that only enforces the context's deadline. */
    readonly timeoutMs: number,
    private readonly env: PolicyEnvironment,
  ) {}

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    const attached = cancellationOf(context);
    if (attached !== undefined) return this.run(fn, context, attached);
    // a context made by hand: follow its signal, and stop listening to it once done
    const parent = Cancellation.from(context.signal);
    return this.run(fn, context, parent).finally(() => parent.dispose());
  }

  /**
   * One promise per call (no async function, no separate race): it settles with the work, or with
   * the abort the moment the token aborts, and cleans up either way.
   */
  private run<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext, parent: Cancellation): Promise<T> {
    if (parent.aborted) return Promise.reject(abortErrorOf(parent));
    const { clock } = this.env;
    const started = clock.now();
    const limit = this.kind === 'total' ? Math.min(this.timeoutMs, context.deadline - started) : this.timeoutMs;
    const reportedMs = Number.isFinite(this.timeoutMs) ? this.timeoutMs : Math.max(0, limit);
    if (this.kind === 'total' && limit <= 0) return Promise.reject(this.expire(context, reportedMs));

    const token = parent.child();
    const inner = contextWith(token, Math.min(context.deadline, started + limit), context.attempt, context.policy, context.previousError);
    return new Promise<T>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      let unsubscribe: (() => void) | undefined;
      const settle = () => {
        if (timer !== undefined) clock.clearTimeout(timer);
        timer = undefined;
        unsubscribe?.();
        token.dispose();
        // marks the attempt settled; only real work when someone materialised its signal
        token.abort(ATTEMPT_SETTLED);
      };
      const fail = (error: unknown) => {
        // a caller abort surfaces as OperationAbortedError, unless its reason is one of ours
        const mapped = token.aborted && error === token.reason && !isResilienceError(error) ? abortErrorOf(token) : error;
        settle();
        reject(mapped);
      };
      unsubscribe = token.onAbort(fail);
      if (Number.isFinite(limit)) {
        timer = clock.setTimeout(() => {
          timer = undefined;
          token.abort(this.expire(context, reportedMs));
        }, limit);
      }
      let result: Promise<T>;
      try {
        result = Promise.resolve(fn(inner));
      } catch (error) {
        fail(error);
        return;
      }
      result.then((value) => {
        settle();
        resolve(value);
      }, fail);
    });
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
