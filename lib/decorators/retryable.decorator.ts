import { recordAndBind } from '../engine/binding/bind.decorator.js';
import type { RetryableOptions } from '../interfaces/resilience-module-options.interface.js';
import { RETRYABLE_METADATA } from '../resilience.constants.js';

/**
 * Retries the route or provider method on transient failures (network errors, 408/429/5xx from a
 * dependency, attempt timeouts), with exponential backoff and full jitter, `Retry-After` honoured
 * and a retry budget per policy key. `maxAttempts` counts the first call (default 3).
 *
 * Pass a string to use a named policy of `forRoot({ policies })`. On HTTP routes, GET, HEAD,
 * OPTIONS, PUT and DELETE are retried; a POST or PATCH route also needs `@Idempotent()` or
 * `allowNonIdempotentMethod: true`, otherwise the application refuses to start. A retry runs the
 * handler again with the same validated arguments (guards, interceptors and pipes run once per
 * request), and nothing is retried once the response has started. Works on methods and
 * classes; method options override class options, which override the policy and module options.
 * @example
 * @Get('forecast')
 * @Retryable({ maxAttempts: 4, backoff: { type: 'exponential', base: 200 } })
 * forecast() { ... }
 * @example
 * @Retryable('payments')
 * @publicApi
 */
export function Retryable(optionsOrPolicy: RetryableOptions | string = {}): MethodDecorator & ClassDecorator {
  return recordAndBind(
    RETRYABLE_METADATA,
    typeof optionsOrPolicy === 'string' ? { policy: optionsOrPolicy } : { ...optionsOrPolicy },
  );
}
