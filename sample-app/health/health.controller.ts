import { Controller, Get, Inject } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TypeOrmHealthIndicator, type HealthCheckResult } from '@nestjs/terminus';
import { IdempotencyStore } from 'nest-resilience';
import { CircuitBreakerHealthIndicator, HttpClientHealthIndicator, IdempotencyStoreHealthIndicator, RedisHealthIndicator } from 'nest-resilience/health';
import { RedisIdempotencyStore } from 'nest-resilience/redis';
import { MODEL_HTTP_CLIENT } from '../reports/model-client.js';
import { SAMPLE_APP_OPTIONS, type SampleAppOptions } from '../sample-app.options.js';

/**
 * Probes for a load balancer or Kubernetes.
 * - `GET /health` (readiness): can this instance serve? Database, idempotency store (and Redis,
 *   when the records live there) answer 503 when unreachable. The model service and the breakers
 *   are reported in the details: while the model is down or a breaker is open the check is
 *   `degraded` (200), since every instance shares that outage and taking them all out of rotation
 *   would turn it into a full one.
 * - `GET /health/live` (liveness): is the process alive? Dependencies are deliberately left out:
 *   restarting the app repairs no database and no model service.
 */
@Controller('health')
export class HealthController {
  private readonly pingTimeout: number;

  constructor(
    private readonly health: HealthCheckService,
    private readonly database: TypeOrmHealthIndicator,
    private readonly idempotencyStore: IdempotencyStoreHealthIndicator,
    private readonly httpClients: HttpClientHealthIndicator,
    private readonly breakers: CircuitBreakerHealthIndicator,
    private readonly redis: RedisHealthIndicator,
    @Inject(IdempotencyStore) private readonly store: IdempotencyStore,
    @Inject(SAMPLE_APP_OPTIONS) options: SampleAppOptions,
  ) {
    this.pingTimeout = options.healthPingTimeoutMs ?? 1000;
  }

  @Get()
  @HealthCheck()
  readiness(): Promise<HealthCheckResult> {
    const redis = this.store instanceof RedisIdempotencyStore ? this.store.client : undefined;
    return this.health.check([
      () => this.database.pingCheck('database', { timeout: this.pingTimeout }),
      () => this.idempotencyStore.isHealthy('idempotency_store', { timeout: this.pingTimeout }),
      ...(redis ? [() => this.redis.isHealthy('redis', { client: redis, timeout: this.pingTimeout })] : []),
      // the model client's own ping (GET /health, `healthPingTimeoutMs`) and its breakers
      () => this.httpClients.isHealthy('model_service', MODEL_HTTP_CLIENT),
      () => this.breakers.isHealthy('circuit_breakers'),
    ]);
  }

  @Get('live')
  @HealthCheck()
  liveness(): Promise<HealthCheckResult> {
    return this.health.check([() => ({ process: { status: 'up', uptimeSeconds: Math.round(process.uptime()) } })]);
  }
}
