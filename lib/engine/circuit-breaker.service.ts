import { Injectable } from '@nestjs/common';
import type { CircuitBreakerSnapshot } from '../core/circuit-breaker.policy.js';
import { PolicyRegistry } from '../core/policy-registry.js';

/**
 * Thrown by {@link CircuitBreakerService} for a key that has no breaker.
 * @publicApi
 */
export class UnknownCircuitBreakerError extends Error {
  constructor(
    /** The key that was asked for. */
    readonly key: string,
    known: readonly string[],
  ) {
    super(
      `No circuit breaker has the key "${key}". ` +
        (known.length === 0
          ? 'No breaker exists yet: breakers are created for @CircuitBreaker() routes at start-up and for per-call keys on their first call.'
          : `Known keys: ${known.map((k) => `"${k}"`).join(', ')}. Use one of them (CircuitBreakerService.list() returns them all).`),
    );
    this.name = 'UnknownCircuitBreakerError';
  }
}

/**
 * Lists the application's circuit breakers and controls them by hand (incident response, tests,
 * an admin endpoint). Breakers are shared per policy key by every instance of a provider and every
 * request scope.
 * @example
 * constructor(private readonly breakers: CircuitBreakerService) {}
 * isolatePayments() { this.breakers.isolate('payments'); }
 * @publicApi
 */
@Injectable()
export class CircuitBreakerService {
  constructor(private readonly registry: PolicyRegistry) {}

  /** A snapshot of every breaker (state, failure rate, buffered and refused calls). */
  list(): CircuitBreakerSnapshot[] {
    return this.registry.circuitBreakers();
  }

  /** A snapshot of the breaker of `key`, or `undefined` when there is none. */
  get(key: string): CircuitBreakerSnapshot | undefined {
    return this.registry.findCircuitBreaker(key)?.snapshot();
  }

  /**
   * Opens the breaker of `key` until {@link reset}: every call fails fast with `CircuitOpenError`.
   * @throws UnknownCircuitBreakerError when no breaker has this key.
   */
  isolate(key: string): void {
    this.require(key).isolate();
  }

  /**
   * Closes the breaker of `key` and forgets its history.
   * @throws UnknownCircuitBreakerError when no breaker has this key.
   */
  reset(key: string): void {
    this.require(key).reset();
  }

  private require(key: string) {
    const breaker = this.registry.findCircuitBreaker(key);
    if (!breaker) throw new UnknownCircuitBreakerError(key, this.list().map((snapshot) => snapshot.key));
    return breaker;
  }
}
