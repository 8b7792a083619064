import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { CircuitBreakerSnapshot } from '../core/circuit-breaker.policy.js';
import { CircuitBreakerService } from '../engine/circuit-breaker.service.js';

/**
 * Which breakers make {@link CircuitBreakerHealthIndicator.isHealthy} report `down`:
 * - `'never'` (the default): none, open breakers only make the indicator `degraded`;
 * - `'open'`: any breaker that is open or isolated (half-open breakers are recovering: not down);
 * - a list of breaker keys: only those, when open or isolated (others are `degraded`).
 * @publicApi
 */
export type CircuitBreakerFailOn = 'open' | 'never' | readonly string[];

/**
 * Options of {@link CircuitBreakerHealthIndicator.isHealthy}.
 * @publicApi
 */
export interface CircuitBreakerHealthOptions {
  /**
   * Which open breakers make the indicator `down` (a 503 from `HealthCheckService`). Opt in only for
   * a breaker without which the instance can serve nothing: every instance sees the same dependency
   * (and with `shared: true` the same breaker), so a `down` here takes the whole fleet out of the
   * load balancer at once.
   * @default 'never'
   */
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
 * Lists every circuit breaker (local or shared) with its state, failure rate, buffered and refused
 * calls. An open breaker means a dependency is failing, not this instance: the indicator is then
 * `degraded` (HTTP 200, the breakers in details), and `down` only for the breakers `failOn` opts in
 * to; `up` otherwise. Use it in a dependency dashboard, or in readiness where `degraded` keeps the
 * instance in rotation; never in liveness (a restart resets the breaker and hits the sick
 * dependency again).
 * @example
 * () => this.breakers.isHealthy('circuit_breakers')                              // degraded while a breaker is open
 * () => this.breakers.isHealthy('circuit_breakers', { failOn: ['ModelService'] }) // down while ModelService's is open
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
    { failOn = 'never' }: CircuitBreakerHealthOptions = {},
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
