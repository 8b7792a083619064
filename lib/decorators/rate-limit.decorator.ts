import { recordAndBind } from '../engine/binding/bind.decorator.js';
import type { RateLimitDecoratorOptions } from '../interfaces/resilience-module-options.interface.js';
import { RATE_LIMIT_METADATA } from '../resilience.constants.js';

/**
 * Limits how often the method's work runs: each attempt (retries included) waits for its turn
 * within its deadline, `requestsPerSecond` or `requestsPerMinute` with a `burst`. With
 * `shared: true` the limit holds for every instance of the application together, on the
 * `sharedState` backend (one Redis round trip per turn, bounded by its `maxWait`; during an outage
 * each instance keeps `fallback`). A turn that would come after the deadline fails the call at once
 * with `RateLimitedError` (a route answers 503 problem+json `code: "rate_limited"` with `Retry-After`).
 * Keyed like the breaker: `Class.method`, the named policy, or `key`. Pass a string to use a named policy.
 * @example
 * @RateLimit({ requestsPerMinute: 500, burst: 10, shared: true })
 * async complete(prompt: string) { return this.llm.complete(prompt); }
 * @publicApi
 */
export function RateLimit(optionsOrPolicy: RateLimitDecoratorOptions | string): MethodDecorator & ClassDecorator {
  return recordAndBind(RATE_LIMIT_METADATA, typeof optionsOrPolicy === 'string' ? { policy: optionsOrPolicy } : { ...optionsOrPolicy });
}
