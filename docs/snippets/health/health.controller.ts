import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import {
  CircuitBreakerHealthIndicator,
  DependencyHealthIndicator,
  HttpClientHealthIndicator,
  IdempotencyStoreHealthIndicator,
} from 'nest-resilience/health';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly store: IdempotencyStoreHealthIndicator,
    private readonly breakers: CircuitBreakerHealthIndicator,
    private readonly dependencies: DependencyHealthIndicator,
    private readonly clients: HttpClientHealthIndicator,
  ) {}

  /** Liveness: is the process working at all? No dependencies: a restart repairs none of them. */
  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([]);
  }

  /** Readiness: can this instance serve its own requests? Only what the instance itself needs. */
  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      // the idempotency store: without it every @Idempotent() route answers 503
      () => this.store.isHealthy('idempotency_store', { timeout: 500 }),
      // open breakers are reported (status "degraded", HTTP 200), never a reason to leave the load balancer (the default)
      () => this.breakers.isHealthy('circuit_breakers'),
    ]);
  }

  /** Dependency dashboard: for people and monitoring, not for the load balancer or the orchestrator. */
  @Get('dependencies')
  @HealthCheck()
  dependencyReport() {
    return this.health.check([
      () => this.clients.isHealthy('model_service', 'model', { failOn: ['open', 'ping'] }), // down while its breaker is open or its ping fails
      () => this.dependencies.pingHttp('billing', 'http://billing.internal/healthz', { timeout: 500 }),
      () => this.dependencies.pingTcp('search', { host: 'search.internal', port: 9200 }, { timeout: 500 }),
      () => this.breakers.isHealthy('circuit_breakers', { failOn: 'open' }), // down when any breaker is open
    ]);
  }
}
