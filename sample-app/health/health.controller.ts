import { Controller, Get, Inject } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TypeOrmHealthIndicator, type HealthCheckResult } from '@nestjs/terminus';
import {
  CircuitBreakerHealthIndicator,
  DependencyHealthIndicator,
  IdempotencyStoreHealthIndicator,
} from 'nest-resilience/health';
import { SAMPLE_APP_OPTIONS, type SampleAppOptions } from '../sample-app.options.js';

/**
 * Probes for a load balancer or Kubernetes.
 * - `GET /health` (readiness): can this instance serve? Database, idempotency store, model
 *   service and breakers. A dependency outage takes the instance out of rotation (503).
 * - `GET /health/live` (liveness): is the process alive? Dependencies are deliberately left out:
 *   restarting the app repairs no database and no model service.
 */
@Controller('health')
export class HealthController {
  private readonly modelHealthUrl: string;
  private readonly pingTimeout: number;

  constructor(
    private readonly health: HealthCheckService,
    private readonly database: TypeOrmHealthIndicator,
    private readonly idempotencyStore: IdempotencyStoreHealthIndicator,
    private readonly dependencies: DependencyHealthIndicator,
    private readonly breakers: CircuitBreakerHealthIndicator,
    @Inject(SAMPLE_APP_OPTIONS) options: SampleAppOptions,
  ) {
    this.modelHealthUrl = `${options.modelServiceUrl.replace(/\/+$/, '')}/health`;
    this.pingTimeout = options.healthPingTimeoutMs ?? 1000;
  }

  @Get()
  @HealthCheck()
  readiness(): Promise<HealthCheckResult> {
    return this.health.check([
      () => this.database.pingCheck('database', { timeout: this.pingTimeout }),
      () => this.idempotencyStore.isHealthy('idempotency_store', { timeout: this.pingTimeout }),
      () => this.dependencies.pingHttp('model_service', this.modelHealthUrl, { timeout: this.pingTimeout }),
      () => this.breakers.isHealthy('circuit_breakers'),
    ]);
  }

  @Get('live')
  @HealthCheck()
  liveness(): Promise<HealthCheckResult> {
    return this.health.check([() => ({ process: { status: 'up', uptimeSeconds: Math.round(process.uptime()) } })]);
  }
}
