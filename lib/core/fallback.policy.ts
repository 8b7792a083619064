import { isOperationAbortedError, isResilienceError } from './errors.js';
import { errorTypeOf } from './events.js';
import { isTransientError } from './classify.js';
import type { FallbackCause, FallbackOptions, ResolvedFallbackOptions } from './options.js';
import type { PolicyContext, Policy, PolicyEnvironment } from './policy.js';
import { invoke } from './timeout.policy.js';
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
export class FallbackPolicy<R = unknown> implements Policy {
  /** The options with defaults filled in. */
  readonly options: ResolvedFallbackOptions<R>;

  constructor(
    options: FallbackOptions<R>,
    private readonly env: PolicyEnvironment,
  ) {
    this.options = resolveFallbackOptions(options);
  }

  async execute<T>(fn: (context: PolicyContext) => Promise<T>, context: PolicyContext): Promise<T> {
    try {
      return await invoke(fn, context);
    } catch (error) {
      if (!this.handles(error)) throw error;
      this.env.events({
        event: 'fallback_used',
        policy: context.policy,
        outcome: fallbackCauseOf(error) ?? 'error',
        errorType: errorTypeOf(error),
        error,
      });
      return (await this.options.handler(error, context)) as unknown as T;
    }
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
