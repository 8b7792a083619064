// Exports of the shared policy state backend, to be merged into lib/redis/index.ts
// (the `nest-resilience/redis` subpath) next to the Redis idempotency store.
export { RedisPolicyState, type RedisPolicyStateOptions } from './redis-policy-state.js';
