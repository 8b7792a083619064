import { connect } from 'node:net';
import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { describeFailure, elapsedSince, raceWithTimeout, systemErrorCode } from './health-timeout.js';

/**
 * Options of {@link DependencyHealthIndicator.pingHttp}.
 * @publicApi
 */
export interface HttpPingOptions {
  /** How long the dependency may take to answer (headers), in ms. @default 1000 */
  timeout?: number;
  /**
   * Which status codes mean "up": one code, a list, or a predicate.
   * @default any 2xx or 3xx status
   */
  expectStatus?: number | readonly number[] | ((status: number) => boolean);
  /** HTTP method of the probe. @default 'GET' */
  method?: 'GET' | 'HEAD' | 'OPTIONS';
  /** Extra request headers (an API key, a `Host`). @default {} */
  headers?: Record<string, string>;
}

/**
 * Options of {@link DependencyHealthIndicator.pingTcp}.
 * @publicApi
 */
export interface TcpPingOptions {
  /** How long the TCP connect may take, in ms. @default 1000 */
  timeout?: number;
}

/**
 * Where {@link DependencyHealthIndicator.pingTcp} connects.
 * @publicApi
 */
export interface TcpAddress {
  /** Host name or IP address. */
  host: string;
  /** TCP port. */
  port: number;
}

/**
 * Pings a dependency of the application (an HTTP service or any TCP server such as a cache or a
 * broker) with a timeout and reports its latency. Use it in the **readiness** probe only: when a
 * dependency is down the instance cannot serve, but restarting it (what a failing liveness probe
 * does) repairs nothing and, across a fleet, turns one outage into a restart storm.
 * @example
 * @Get('ready') @HealthCheck()
 * ready() {
 *   return this.health.check([
 *     () => this.dependencies.pingHttp('model_service', 'http://model:8080/healthz', { timeout: 500 }),
 *     () => this.dependencies.pingTcp('redis', { host: 'redis', port: 6379 }),
 *   ]);
 * }
 * @publicApi
 */
@Injectable()
export class DependencyHealthIndicator {
  constructor(private readonly healthIndicatorService: HealthIndicatorService) {}

  /**
   * Sends one HTTP request to `url`. `up` with `latencyMs` and `statusCode` when the dependency
   * answered an expected status in time; `down` with `message` (refused, timed out, unexpected
   * status) otherwise. The response body is not read.
   * @param key Name of the indicator in the health report.
   */
  async pingHttp<const Key extends string>(
    key: Key,
    url: string | URL,
    { timeout = 1000, expectStatus, method = 'GET', headers = {} }: HttpPingOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const check = this.healthIndicatorService.check(key);
    const start = performance.now();
    let status: number;
    try {
      status = await raceWithTimeout(timeout, async (signal) => {
        const response = await fetch(url, { method, headers, signal, redirect: 'manual' });
        // the probe only needs the status line: do not download the body
        await response.body?.cancel().catch(() => undefined);
        return response.status;
      });
    } catch (error) {
      return check.down({ message: `${String(url)} ${describeHttpFailure(error)}.`, latencyMs: elapsedSince(start) });
    }
    const latencyMs = elapsedSince(start);
    if (!isExpectedStatus(status, expectStatus)) {
      return check.down({
        message: `${String(url)} answered HTTP ${status}; expected ${describeExpected(expectStatus)}.`,
        statusCode: status,
        latencyMs,
      });
    }
    return check.up({ statusCode: status, latencyMs });
  }

  /**
   * Opens (and immediately closes) a TCP connection to `host:port`. `up` with `latencyMs` when the
   * connection was accepted in time; `down` with `message` (refused, unreachable, timed out).
   * @param key Name of the indicator in the health report.
   */
  async pingTcp<const Key extends string>(
    key: Key,
    { host, port }: TcpAddress,
    { timeout = 1000 }: TcpPingOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const check = this.healthIndicatorService.check(key);
    const start = performance.now();
    try {
      await raceWithTimeout(timeout, (signal) => tcpConnect(host, port, signal));
    } catch (error) {
      return check.down({ message: `${host}:${port} ${describeTcpFailure(error)}.`, latencyMs: elapsedSince(start) });
    }
    return check.up({ latencyMs: elapsedSince(start) });
  }
}

function tcpConnect(host: string, port: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, signal });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(error);
    });
  });
}

function isExpectedStatus(status: number, expected: HttpPingOptions['expectStatus']): boolean {
  if (expected === undefined) return status >= 200 && status < 400;
  if (typeof expected === 'number') return status === expected;
  if (typeof expected === 'function') return expected(status);
  return expected.includes(status);
}

function describeExpected(expected: HttpPingOptions['expectStatus']): string {
  if (expected === undefined) return 'a 2xx or 3xx status';
  if (typeof expected === 'number') return `HTTP ${expected}`;
  if (typeof expected === 'function') return 'a status accepted by expectStatus';
  return `one of ${expected.join(', ')}`;
}

function describeHttpFailure(error: unknown): string {
  return describeNetworkFailure(error) ?? `request failed: ${describeFailure(error)}`;
}

function describeTcpFailure(error: unknown): string {
  return describeNetworkFailure(error) ?? `connection failed: ${describeFailure(error)}`;
}

function describeNetworkFailure(error: unknown): string | undefined {
  switch (systemErrorCode(error)) {
    case 'ECONNREFUSED':
      return 'refused the connection (ECONNREFUSED)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'could not be resolved (DNS lookup failed)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'is unreachable';
    case 'ECONNRESET':
      return 'reset the connection (ECONNRESET)';
    default:
      return error instanceof Error && error.name === 'HealthCheckTimeoutError' ? describeFailure(error) : undefined;
  }
}
