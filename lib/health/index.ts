// Subpath `nest-resilience/health`: the only part of the library that imports @nestjs/terminus.
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
