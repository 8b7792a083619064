import { recordAndBind } from '../engine/binding/bind.decorator.js';
import type { CircuitBreakerDecoratorOptions } from '../interfaces/resilience-module-options.interface.js';
import { CIRCUIT_BREAKER_METADATA } from '../resilience.constants.js';

/**
 * Fails fast while a dependency is sick: after the breaker opens, calls are refused with
 * `CircuitOpenError` (HTTP 503 problem+json `code: "circuit_open"` with `Retry-After`) until
 * `breakDuration` passes and a probe succeeds. 4xx errors do not count as failures. State is
 * shared per key (named policy, `key`, or `Class.method`) across instances and request scopes;
 * inspect and control it with `CircuitBreakerService`. Pass a string to use a named policy.
 * @example
 * @Get('quote')
 * @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 5 }, breakDuration: 10_000 })
 * quote() { ... }
 * @example
 * @CircuitBreaker({ key: ({ args }) => `geo:${String(args[0])}` })
 * @publicApi
 */
export function CircuitBreaker(optionsOrPolicy: CircuitBreakerDecoratorOptions | string = {}): MethodDecorator & ClassDecorator {
  return recordAndBind(
    CIRCUIT_BREAKER_METADATA,
    typeof optionsOrPolicy === 'string' ? { policy: optionsOrPolicy } : { ...optionsOrPolicy },
  );
}
