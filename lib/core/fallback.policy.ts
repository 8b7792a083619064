import { isOperationAbortedError, isResilienceError } from './errors.js';
import { errorTypeOf } from './events.js';
import { isTransientError } from './classify.js';
import { NO_FALLBACK, type FallbackCause, type FallbackOptions, type ResolvedFallbackOptions } from './options.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
import { promiseOf, settleWith, workOf, type Settle, type Step, type Work } from './step.js';
import { resolveFallbackOptions } from './validate.js';

const CAUSE_BY_CODE: Readonly<Record<string, FallbackCause>> = {
  attempt_timeout: 'timeout',
  timeout: 'timeout',
  circuit_open: 'circuit_open',
  bulkhead_rejected: 'bulkhead_rejected',
  retries_exhausted: 'retries_exhausted',
};

/**
 * The named cause of `error` (`timeout` for attempt timeouts and the total deadline,
 * `circuit_open`, `bulkhead_rejected`, `retries_exhausted`), or `undefined`.
 * @publicApi
 */
export function fallbackCauseOf(error: unknown): FallbackCause | undefined {
  if (isResilienceError(error)) return CAUSE_BY_CODE[error.code];
  return isTransientError(error) ? 'transient' : undefined;
}

/**
 * Replaces a failure with a degraded result from `handler`. By default it catches timeouts, open
 * circuits, bulkhead rejections, exhausted retries and the transient failures a retry would have
 * retried (network errors, 408, 429 and 5xx answers); `on` changes that. A caller abort
 * (`OperationAbortedError`) is never caught: nobody is waiting for the result. Emits `fallback_used`
 * with `outcome` set to the cause (`error` for errors matched by class or predicate).
 * @publicApi
 */
export class FallbackPolicy<R = unknown> implements Policy, Step {
  /** The options with defaults filled in. */
  readonly options: ResolvedFallbackOptions<R>;

  constructor(
    options: FallbackOptions<R>,
    private readonly env: PolicyEnvironment,
  ) {
    this.options = resolveFallbackOptions(options);
  }

  execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    return promiseOf<T>((settle) => this.run(workOf(fn), context, settle));
  }

  /** Runs `next`; a failure it handles settles with the handler's result instead. The callback form of {@link execute}, which pipelines compose. */
  run(next: Work, context: PolicyContext, settle: Settle): void {
    next(context, (failed, error) => {
      if (!failed || !this.handles(error)) {
        if (!failed && this.options.onSuccess !== undefined) {
          try {
            this.options.onSuccess(error, context);
          } catch {
            // keeping a result must never fail the call
          }
        }
        settle(failed, error);
        return;
      }
      const used = () =>
        this.env.events({
          event: 'fallback_used',
          policy: context.policy,
          outcome: fallbackCauseOf(error) ?? 'error',
          errorType: errorTypeOf(error),
          error,
        });
      const { mayDecline } = this.options;
      if (!mayDecline) used();
      let result: unknown;
      try {
        result = this.options.handler(error, context);
      } catch (handlerError) {
        if (mayDecline) used();
        settle(true, handlerError);
        return;
      }
      if (!mayDecline) {
        settleWith(result, settle);
        return;
      }
      // the handler may have had nothing to answer with: then the call fails as if it had not run
      settleWith(result, (handlerFailed, value) => {
        if (!handlerFailed && value === NO_FALLBACK) {
          settle(true, error);
          return;
        }
        used();
        settle(handlerFailed, value);
      });
    });
  }

  /** Whether `error` triggers the fallback. */
  handles(error: unknown): boolean {
    if (isOperationAbortedError(error)) return false;
    const { on } = this.options;
    if (typeof on === 'function') return on(error);
    const cause = fallbackCauseOf(error);
    return on.some((entry) => (typeof entry === 'string' ? entry === cause : error instanceof entry));
  }
}
