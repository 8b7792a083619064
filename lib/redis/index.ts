// Subpath `nest-resilience/redis`: the only part of the library that imports ioredis.
export { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from './redis-idempotency.store.js';
export { RedisStoreTimeoutError, RedisStoreUnavailableError } from './redis-store.errors.js';
export { RedisPolicyState, type RedisPolicyStateOptions } from './redis-policy-state.js';
