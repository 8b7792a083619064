import { abortErrorOf } from './classify.js';
import { AttemptTimeoutError, DeadlineExceededError, isResilienceError } from './errors.js';
import type { TimerHandle } from './clock.js';
import type { ExecutionContext, Policy, PolicyEnvironment } from './policy.js';
import { linkAbort, raceAbort } from './signals.js';

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

const SETTLED = new AttemptSettledError();

/** @internal runs `fn`, turning a synchronous throw into a rejection. */
export function invoke<T>(fn: (context: ExecutionContext) => Promise<T>, context: ExecutionContext): Promise<T> {
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

  async execute<T>(fn: (context: ExecutionContext) => Promise<T>, context: ExecutionContext): Promise<T> {
    if (context.signal.aborted) throw abortErrorOf(context.signal);
    const { clock } = this.env;
    const started = clock.now();
    const limit = this.kind === 'total' ? Math.min(this.timeoutMs, context.deadline - started) : this.timeoutMs;
    const reportedMs = Number.isFinite(this.timeoutMs) ? this.timeoutMs : Math.max(0, limit);
    if (this.kind === 'total' && limit <= 0) throw this.expire(context, reportedMs);

    const link = linkAbort(context.signal);
    const inner: ExecutionContext = { ...context, signal: link.signal, deadline: Math.min(context.deadline, started + limit) };
    let timer: TimerHandle | undefined;
    if (Number.isFinite(limit)) {
      timer = clock.setTimeout(() => {
        timer = undefined;
        link.abort(this.expire(context, reportedMs));
      }, limit);
    }
    try {
      return await raceAbort(invoke(fn, inner), link.signal);
    } catch (error) {
      if (link.signal.aborted && error === link.signal.reason && !isResilienceError(error)) throw abortErrorOf(link.signal);
      throw error;
    } finally {
      if (timer !== undefined) clock.clearTimeout(timer);
      link.dispose();
      link.abort(SETTLED);
    }
  }

  private expire(context: ExecutionContext, timeoutMs: number): AttemptTimeoutError | DeadlineExceededError {
    if (this.kind === 'attempt') {
      this.env.events({ event: 'attempt_timeout', policy: context.policy, attempt: context.attempt, durationMs: timeoutMs });
      return new AttemptTimeoutError(timeoutMs, context.attempt);
    }
    this.env.events({ event: 'deadline_exceeded', policy: context.policy, attempt: context.attempt, durationMs: timeoutMs });
    return new DeadlineExceededError(timeoutMs);
  }
}
