import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { CircuitBreakerHealthIndicator } from './circuit-breaker.health.js';
import { DependencyHealthIndicator } from './dependency.health.js';
import { HttpClientHealthIndicator } from './http-client.health.js';
import { IdempotencyStoreHealthIndicator } from './idempotency-store.health.js';
import { RedisHealthIndicator } from './redis.health.js';

/**
 * Provides the resilience health indicators for `@nestjs/terminus` and re-exports `TerminusModule`
 * (so `HealthCheckService` is available to your health controller). The idempotency store and the
 * circuit breakers come from the global `ResilienceModule`, which must be imported too.
 *
 * Readiness vs liveness: put {@link IdempotencyStoreHealthIndicator},
 * {@link DependencyHealthIndicator}, {@link CircuitBreakerHealthIndicator} and
 * {@link HttpClientHealthIndicator} (and {@link RedisHealthIndicator} with the Redis store) in the **readiness**
 * probe (stop routing traffic to an instance that cannot serve), and keep the **liveness** probe
 * free of dependencies (the process is alive and its event loop turns): a dependency outage must
 * never make the orchestrator restart every instance.
 * @example
 * @Module({ imports: [ResilienceModule.forRoot({ ... }), ResilienceHealthModule], controllers: [HealthController] })
 * export class AppModule {}
 * @publicApi
 */
@Module({
  imports: [TerminusModule],
  providers: [IdempotencyStoreHealthIndicator, DependencyHealthIndicator, CircuitBreakerHealthIndicator, HttpClientHealthIndicator, RedisHealthIndicator],
  exports: [
    TerminusModule,
    IdempotencyStoreHealthIndicator,
    DependencyHealthIndicator,
    CircuitBreakerHealthIndicator,
    HttpClientHealthIndicator,
    RedisHealthIndicator,
  ],
})
export class ResilienceHealthModule {}
