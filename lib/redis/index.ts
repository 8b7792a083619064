/**
 * `nest-resilience/redis`: the Redis (or Valkey) idempotency store and the shared policy state, on
 * an ioredis 5 or node-redis 5 client. The only part of the library that uses a Redis client.
 * @module nest-resilience/redis
 */
export { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from './redis-idempotency.store.js';
export type { NodeRedisClient, RedisStoreClient } from './redis-connection.js';
export { RedisStoreTimeoutError, RedisStoreUnavailableError } from './redis-store.errors.js';
export { RedisPolicyState, type RedisPolicyStateOptions } from './redis-policy-state.js';
