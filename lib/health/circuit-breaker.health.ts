import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { CircuitBreakerSnapshot } from '../core/circuit-breaker.policy.js';
import { CircuitBreakerService } from '../engine/circuit-breaker.service.js';

/**
 * Which breakers make {@link CircuitBreakerHealthIndicator.isHealthy} report `down`:
 * - `'open'`: any breaker that is open or isolated (half-open breakers are recovering: not down);
 * - `'never'`: none (open breakers only make the indicator `degraded`);
 * - a list of breaker keys: only those, when open or isolated (others are `degraded`).
 * @publicApi
 */
export type CircuitBreakerFailOn = 'open' | 'never' | readonly string[];

/**
 * Options of {@link CircuitBreakerHealthIndicator.isHealthy}.
 * @publicApi
 */
export interface CircuitBreakerHealthOptions {
  /** Which open breakers make the indicator `down`. @default 'open' */
  failOn?: CircuitBreakerFailOn;
}

/**
 * One breaker in the health details.
 * @publicApi
 */
export interface CircuitBreakerHealthDetail {
  /** `closed`, `half_open`, `open` or `isolated`. */
  readonly state: CircuitBreakerSnapshot['state'];
  /** Failure share of the calls currently judged (0–1). */
  readonly failureRate: number;
  /** Calls currently judged. */
  readonly bufferedCalls: number;
  /** Calls refused since the breaker last closed. */
  readonly notPermittedCalls: number;
  /** Time until the next probe, in ms, while open. */
  readonly retryAfterMs?: number;
}

/** @internal whether a breaker refuses calls right now. */
function isOpen(snapshot: CircuitBreakerSnapshot): boolean {
  return snapshot.state === 'open' || snapshot.state === 'isolated';
}

/**
 * Splits the open breakers into those that make the check `down` and those that only degrade it.
 * @internal
 */
export function classifyBreakers(
  snapshots: readonly CircuitBreakerSnapshot[],
  failOn: CircuitBreakerFailOn,
): { failing: string[]; degraded: string[] } {
  const open = snapshots.filter(isOpen).map((s) => s.key);
  const fails = (key: string) => (failOn === 'open' ? true : failOn === 'never' ? false : failOn.includes(key));
  return { failing: open.filter(fails), degraded: open.filter((key) => !fails(key)) };
}

/**
 * Lists every circuit breaker with its state, failure rate, buffered and refused calls, and
 * reports `down` when a breaker selected by `failOn` is open or isolated (`degraded` when only
 * other breakers are open; `up` otherwise). An open breaker means a dependency is failing: use the
 * indicator in the **readiness** probe (or only as information with `failOn: 'never'`), never in
 * the liveness probe — the breaker already protects the instance, and restarting it would reset
 * the breaker and hit the sick dependency again.
 * @example
 * () => this.breakers.isHealthy('circuit_breakers', { failOn: ['ModelService'] })
 * @publicApi
 */
@Injectable()
export class CircuitBreakerHealthIndicator {
  constructor(
    private readonly healthIndicatorService: HealthIndicatorService,
    private readonly circuitBreakers: CircuitBreakerService,
  ) {}

  /**
   * Reports every breaker under `breakers` (keyed by policy key).
   * @param key Name of the indicator in the health report. @default 'circuit_breakers'
   */
  async isHealthy<const Key extends string = 'circuit_breakers'>(
    key: Key = 'circuit_breakers' as Key,
    { failOn = 'open' }: CircuitBreakerHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const check = this.healthIndicatorService.check(key);
    const snapshots = this.circuitBreakers.list();
    const breakers: Record<string, CircuitBreakerHealthDetail> = {};
    for (const snapshot of snapshots) breakers[snapshot.key] = toDetail(snapshot);
    const { failing, degraded } = classifyBreakers(snapshots, failOn);
    if (failing.length > 0) {
      return check.down({ message: `Circuit breaker(s) open: ${failing.join(', ')}.`, open: failing, breakers });
    }
    if (degraded.length > 0) {
      return check.degraded({ message: `Circuit breaker(s) open: ${degraded.join(', ')}.`, open: degraded, breakers });
    }
    return check.up({ breakers });
  }
}

/** @internal one breaker snapshot as health details. */
export function toDetail(snapshot: CircuitBreakerSnapshot): CircuitBreakerHealthDetail {
  const detail: CircuitBreakerHealthDetail = {
    state: snapshot.state,
    failureRate: snapshot.failureRate,
    bufferedCalls: snapshot.bufferedCalls,
    notPermittedCalls: snapshot.notPermittedCalls,
  };
  return snapshot.retryAfterMs === undefined ? detail : { ...detail, retryAfterMs: snapshot.retryAfterMs };
}
