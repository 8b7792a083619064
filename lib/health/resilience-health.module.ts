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
 * Liveness, readiness and a dependency dashboard ask three different questions:
 * - **liveness** (is the process alive? a failure restarts it): no dependency at all;
 * - **readiness** (can this instance serve? a failure takes it out of the load balancer): what the
 *   instance itself cannot do without, such as its own idempotency store
 *   ({@link IdempotencyStoreHealthIndicator}, {@link RedisHealthIndicator} with the Redis store);
 *   {@link CircuitBreakerHealthIndicator} and {@link HttpClientHealthIndicator} may sit there too,
 *   since an open breaker only makes them `degraded` (HTTP 200) unless `failOn` opts in;
 * - a **dependency dashboard** (what is failing around us?): every indicator, breakers included.
 * A dependency's outage is every instance's outage (with shared breakers, at the same moment): if it
 * failed readiness, the whole fleet would leave the load balancer at once.
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
