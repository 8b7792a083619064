import { followContext } from './cancellation.js';
import { abortErrorOf } from './classify.js';
import type { PolicyContext, PolicyEnvironment } from './policy.js';
import { RateLimitedError, type RateLimiter } from './rate-limiter.js';
import type { Settle, Step, Work } from './step.js';

/**
 * The rate-limit stage of a pipeline (`@RateLimit()`): each attempt takes its turn from the key's
 * {@link RateLimiter} (in-process, or shared by every instance) before it runs, waiting for it
 * within the attempt's deadline. A turn that comes at or after the deadline fails the attempt at
 * once with {@link RateLimitedError} (never retried: its wait would not fit either); a caller that
 * aborts while waiting hands an in-process turn back.
 * @publicApi
 */
export class RateLimitPolicy implements Step {
  constructor(
    private readonly key: string,
    private readonly limiter: RateLimiter,
    private readonly env: PolicyEnvironment,
  ) {}

  run(next: Work, context: PolicyContext, settle: Settle): void {
    const { token, done } = followContext(context, settle);
    if (token.aborted) {
      done(true, abortErrorOf(token));
      return;
    }
    this.limiter.acquire(context.deadline, (outcome) => {
      if ('refusedForMs' in outcome) {
        this.env.events({ event: 'rate_limited', policy: this.key, detail: outcome.reason, delayMs: outcome.refusedForMs });
        done(true, new RateLimitedError(this.key, outcome.refusedForMs, outcome.reason));
        return;
      }
      if (token.aborted) {
        outcome.release();
        done(true, abortErrorOf(token));
        return;
      }
      if (outcome.waitMs <= 0) {
        next(context, done);
        return;
      }
      const { clock } = this.env;
      const unsubscribe = token.onAbort(() => {
        clock.clearTimeout(timer);
        outcome.release();
        done(true, abortErrorOf(token));
      });
      const timer = clock.setTimeout(() => {
        unsubscribe();
        next(context, done);
      }, outcome.waitMs);
    });
  }

  /** Runs `fn` once its turn comes. */
  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.run(
        (inner, innerSettle) => {
          fn(inner).then(
            (value) => innerSettle(false, value),
            (error: unknown) => innerSettle(true, error),
          );
        },
        context,
        (failed, outcome) => (failed ? reject(outcome) : resolve(outcome as T)),
      );
    });
  }
}
