import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { ResilienceConfigError } from '../core/errors.js';
import type { HttpClient } from '../http-client/http-client.js';
import { getHttpClientToken } from '../http-client/inject-http-client.decorator.js';
import { toDetail, type CircuitBreakerHealthDetail } from './circuit-breaker.health.js';
import { describeFailure } from './health-timeout.js';

/**
 * Options of {@link HttpClientHealthIndicator.isHealthy}.
 * @publicApi
 */
export interface HttpClientHealthOptions {
  /**
   * Probe the client's `ping` path (outside its policies): `down` when it does not answer 2xx or 3xx
   * within `ping.timeout`.
   * @default true when the client has a `ping` option
   */
  readonly ping?: boolean;
}

/**
 * The health of one `ResilientHttpModule` client: `down` when its circuit breaker for an origin is
 * open (the client refuses calls there) or its `ping` probe fails, `degraded` while an origin asked
 * for a pause (`Retry-After`), `up` otherwise; the details list each origin's breaker, the pause and
 * the probe's status and latency. Like the other dependency indicators it belongs in the
 * **readiness** probe, never the liveness probe.
 * @example
 * () => this.clients.isHealthy('model', 'model')   // the key in the report, then the client's name
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
    const breakers: Record<string, CircuitBreakerHealthDetail> = {};
    const open: string[] = [];
    for (const { origin, snapshot } of instance.circuitBreakers()) {
      breakers[origin] = toDetail(snapshot);
      if (snapshot.state === 'open' || snapshot.state === 'isolated') open.push(origin);
    }
    const pausedUntil = instance.pausedUntil();
    const details: Record<string, unknown> = { client: instance.name, breakers, ...(pausedUntil === undefined ? {} : { pausedUntil: new Date(pausedUntil).toISOString() }) };
    if (open.length > 0) return check.down({ ...details, message: `The circuit breaker of HTTP client "${instance.name}" is open for ${open.join(', ')}.` });
    if (options.ping ?? instance.ping !== undefined) {
      try {
        const { status, latencyMs } = await instance.probe();
        Object.assign(details, { statusCode: status, latencyMs });
        if (status < 200 || status >= 400) {
          return check.down({ ...details, message: `The ping of HTTP client "${instance.name}" answered HTTP ${status}; expected a 2xx or 3xx status.` });
        }
      } catch (error) {
        return check.down({ ...details, message: `The ping of HTTP client "${instance.name}" failed: ${describeFailure(error)}.` });
      }
    }
    if (pausedUntil !== undefined) return check.degraded({ ...details, message: `HTTP client "${instance.name}" is paused by a Retry-After until ${details.pausedUntil as string}.` });
    return check.up(details);
  }

  private clientNamed(name: string): HttpClient {
    try {
      return this.moduleRef.get<HttpClient>(getHttpClientToken(name), { strict: false });
    } catch {
      throw new ResilienceConfigError(`No HTTP client named "${name}" is registered. Register it with ResilientHttpModule.register({ clients: { ${name}: { baseUrl } } }).`);
    }
  }
}
