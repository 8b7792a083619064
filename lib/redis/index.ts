// Subpath `nest-resilience/redis`: the only part of the library that uses a Redis client (ioredis or node-redis).
export { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from './redis-idempotency.store.js';
export type { NodeRedisClient, RedisStoreClient } from './redis-connection.js';
export { RedisStoreTimeoutError, RedisStoreUnavailableError } from './redis-store.errors.js';
export { RedisPolicyState, type RedisPolicyStateOptions } from './redis-policy-state.js';
