import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { ResilienceConfigError } from '../core/errors.js';
import type { HttpClient } from '../http-client/http-client.js';
import { getHttpClientToken } from '../http-client/inject-http-client.decorator.js';
import { toDetail, type CircuitBreakerHealthDetail } from './circuit-breaker.health.js';
import { describeFailure } from './health-timeout.js';

/**
 * What makes {@link HttpClientHealthIndicator.isHealthy} report `down` instead of `degraded`:
 * `'open'` a breaker of the client that is open or isolated, `'ping'` a failed `ping` probe.
 * `'never'` (the default): neither, the dependency's trouble only degrades the report.
 * @publicApi
 */
export type HttpClientFailOn = 'never' | readonly ('open' | 'ping')[];

/**
 * Options of {@link HttpClientHealthIndicator.isHealthy}.
 * @publicApi
 */
export interface HttpClientHealthOptions {
  /**
   * Probe the client's `ping` path (outside its policies): `degraded` (or `down` with
   * `failOn: ['ping']`) when it does not answer 2xx or 3xx within `ping.timeout`.
   * @default true when the client has a `ping` option
   */
  readonly ping?: boolean;
  /**
   * Opt in to failing the check (`down`, a 503 from `HealthCheckService`) on an open breaker or a
   * failed ping. Only for a check whose failure should take the instance out of rotation, e.g. an
   * instance that can serve nothing without this dependency; every instance sees the same dependency,
   * so with it one outage takes the whole fleet out of the load balancer (with shared breakers, at once).
   * @default 'never'
   */
  readonly failOn?: HttpClientFailOn;
}

/**
 * The health of one `ResilientHttpModule` client, as details: each origin's breaker, a
 * `Retry-After` pause, the `ping` probe's status and latency. An open breaker, a pause or a failed
 * ping makes it `degraded` (HTTP 200: the instance still serves, and the breaker is what protects
 * it); `up` otherwise. It is `down` only for what `failOn` opts in to. Use it in a dependency
 * dashboard or in readiness (where `degraded` keeps the instance in rotation), never in liveness.
 * @example
 * () => this.clients.isHealthy('model', 'model')   // the key in the report, then the client's name
 * @example
 * () => this.clients.isHealthy('model', 'model', { failOn: ['open'] })   // opt in: down while a breaker is open
 * @publicApi
 */
@Injectable()
export class HttpClientHealthIndicator {
  constructor(
    private readonly healthIndicatorService: HealthIndicatorService,
    private readonly moduleRef: ModuleRef,
  ) {}

  /**
   * Reports the client `client` (its registered name, or the instance).
   * @param key Name of the indicator in the health report.
   * @throws ResilienceConfigError when no client of that name is registered.
   */
  async isHealthy<const Key extends string>(key: Key, client: string | HttpClient, options: HttpClientHealthOptions = {}): Promise<HealthIndicatorResult<Key>> {
    const check = this.healthIndicatorService.check(key);
    const instance = typeof client === 'string' ? this.clientNamed(client) : client;
    const failOn = options.failOn ?? 'never';
    const breakers: Record<string, CircuitBreakerHealthDetail> = {};
    const open: string[] = [];
    for (const { origin, snapshot } of instance.circuitBreakers()) {
      breakers[origin] = toDetail(snapshot);
      if (snapshot.state === 'open' || snapshot.state === 'isolated') open.push(origin);
    }
    const pausedUntil = instance.pausedUntil();
    const details: Record<string, unknown> = { client: instance.name, breakers, ...(pausedUntil === undefined ? {} : { pausedUntil: new Date(pausedUntil).toISOString() }) };
    const problems: string[] = [];
    let failing = false;
    if (open.length > 0) {
      problems.push(`The circuit breaker of HTTP client "${instance.name}" is open for ${open.join(', ')}.`);
      failing ||= failOn !== 'never' && failOn.includes('open');
    }
    if (options.ping ?? instance.ping !== undefined) {
      let pingFailure: string | undefined;
      try {
        const { status, latencyMs } = await instance.probe();
        Object.assign(details, { statusCode: status, latencyMs });
        if (status < 200 || status >= 400) pingFailure = `The ping of HTTP client "${instance.name}" answered HTTP ${status}; expected a 2xx or 3xx status.`;
      } catch (error) {
        pingFailure = `The ping of HTTP client "${instance.name}" failed: ${describeFailure(error)}.`;
      }
      if (pingFailure !== undefined) {
        problems.push(pingFailure);
        failing ||= failOn !== 'never' && failOn.includes('ping');
      }
    }
    if (pausedUntil !== undefined) problems.push(`HTTP client "${instance.name}" is paused by a Retry-After until ${details.pausedUntil as string}.`);
    if (problems.length === 0) return check.up(details);
    const report = { ...details, message: problems.join(' ') };
    return failing ? check.down(report) : check.degraded(report);
  }

  private clientNamed(name: string): HttpClient {
    try {
      return this.moduleRef.get<HttpClient>(getHttpClientToken(name), { strict: false });
    } catch {
      throw new ResilienceConfigError(`No HTTP client named "${name}" is registered. Register it with ResilientHttpModule.register({ clients: { ${name}: { baseUrl } } }).`);
    }
  }
}
