/**
 * `nest-resilience/health`: `@nestjs/terminus` indicators for the idempotency store, dependencies,
 * circuit breakers, HTTP clients and Redis. The only part of the library that imports terminus.
 * @module nest-resilience/health
 */
export {
  CircuitBreakerHealthIndicator,
  type CircuitBreakerFailOn,
  type CircuitBreakerHealthDetail,
  type CircuitBreakerHealthOptions,
} from './circuit-breaker.health.js';
export {
  DependencyHealthIndicator,
  type HttpPingOptions,
  type TcpAddress,
  type TcpPingOptions,
} from './dependency.health.js';
export { HttpClientHealthIndicator, type HttpClientFailOn, type HttpClientHealthOptions } from './http-client.health.js';
export { IdempotencyStoreHealthIndicator, type IdempotencyStoreHealthOptions } from './idempotency-store.health.js';
export { RedisHealthIndicator, type RedisHealthOptions } from './redis.health.js';
export { ResilienceHealthModule } from './resilience-health.module.js';
